/* crashcount.c: what the master counts of its workers' deaths.
 *
 * Worker processes replaced, and the crashes (by signal) and stalls
 * (past --stall-kill) each plugin version cost. Written by the master
 * (supervise.c) on its one thread; a worker inherits the counts at fork
 * and its /metrics (metrics.c) reads them there, read-only, so they are
 * the master's counts as of that worker's start. At most MAX_ROWS rows:
 * a crash past them is not counted (and is still logged).
 */
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "ctl/ctl.h"

#define MAX_ROWS 256

static uint64_t restarts;
static spoke__crash_count_t rows[MAX_ROWS];
static size_t nrows;

uint64_t spoke__supervise_restarts(void) { return restarts; }

const spoke__crash_count_t *spoke__supervise_crashes(size_t *n) {
  *n = nrows;
  return rows;
}

void spoke__crashcount_restart(void) { restarts++; }

const char *spoke__signal_name(int signo) {
  static char other[16];
  switch (signo) {
    case SIGSEGV: return "SIGSEGV";
    case SIGBUS: return "SIGBUS";
    case SIGFPE: return "SIGFPE";
    case SIGILL: return "SIGILL";
    case SIGABRT: return "SIGABRT";
    case SIGKILL: return "SIGKILL";
    case SIGTERM: return "SIGTERM";
    default:
      snprintf(other, sizeof(other), "signal %d", signo);
      return other;
  }
}

void spoke__crashcount_add(const spoke__crash_record_t *rec) {
  const char *sig = rec->kind == SPOKE__REC_STALL
                        ? "stall"
                        : spoke__signal_name(rec->signo);
  for (size_t i = 0; i < nrows; i++) {
    spoke__crash_count_t *c = &rows[i];
    if (strcmp(c->plugin, rec->plugin) == 0 &&
        strcmp(c->version, rec->version) == 0 && strcmp(c->signal, sig) == 0) {
      c->n++;
      return;
    }
  }
  if (nrows == MAX_ROWS)
    return;
  snprintf(rows[nrows].plugin, sizeof(rows[0].plugin), "%s", rec->plugin);
  snprintf(rows[nrows].version, sizeof(rows[0].version), "%s", rec->version);
  snprintf(rows[nrows].signal, sizeof(rows[0].signal), "%s", sig);
  rows[nrows++].n = 1;
}
