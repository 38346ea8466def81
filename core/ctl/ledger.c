/* ledger.c: what a master knows of its workers' deaths and of the plugin
 * builds they serve, shared with the workers.
 *
 * The ledger holds the worker pids (so a worker's admin finds its
 * siblings), the restarts, the crashes counted per plugin version and
 * signal (/metrics), and one entry per plugin build the master heard
 * of (a worker loaded it, or it crashed): its crashes, whether a copy is
 * in the archive (a rollback target), whether it is quarantined and why.
 *
 * It lives in one anonymous MAP_SHARED mapping made by the master before
 * its first fork, so every worker sees it as it changes. The master is
 * the only writer, on its one thread; workers read consistent copies
 * through a sequence lock (the master makes the count odd while it
 * writes; a reader that saw it odd, or changed, copies again). The crash
 * times behind the quarantine window are the master's alone, in its
 * private memory. Without a master (--processes 0) nothing is mapped and
 * every read gives an empty ledger.
 *
 * At most SPOKE__LEDGER_ROWS crash rows (a crash past them is still
 * logged, not counted) and SPOKE__LEDGER_BUILDS builds: a new build
 * takes the place of the oldest one that is not quarantined, whose
 * archived copy is removed.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "ctl/ctl.h"

#define MAX_TIMES 16 /* crash times kept per build: --quarantine-after */

typedef struct shared_s {
  _Atomic uint64_t seq; /* odd while the master writes */
  spoke__ledger_t l;
} shared_t;

/* Mapped once by the master and never unmapped: it lives as long as the
 * master and every worker forked from it (they inherit the mapping). */
static shared_t *shared;            /* NULL without a master */
/* The master's alone: times[i] are builds[i]'s latest crash times. */
static uint64_t times[SPOKE__LEDGER_BUILDS][MAX_TIMES];
static uint64_t next_order;         /* master only */
/* Master only: the archive directory, supervise.c's string, valid until
 * the master exits. */
static const char *archive;

int spoke__ledger_open(const char *archive_dir) {
  void *p = mmap(NULL, sizeof(shared_t), PROT_READ | PROT_WRITE,
                 MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED)
    return SPOKE_ENOMEM;
  shared = p; /* zero-filled */
  archive = archive_dir;
  return 0;
}

void spoke__ledger_read(spoke__ledger_t *out) {
  uint64_t before, after;
  if (shared == NULL) {
    memset(out, 0, sizeof(*out));
    return;
  }
  do {
    before = atomic_load_explicit(&shared->seq, memory_order_acquire);
    memcpy(out, &shared->l, sizeof(*out));
    atomic_thread_fence(memory_order_acquire);
    after = atomic_load_explicit(&shared->seq, memory_order_relaxed);
  } while ((before & 1) != 0 || before != after);
}

spoke__ledger_t *spoke__ledger_copy(void) {
  spoke__ledger_t *l = malloc(sizeof(*l));
  if (l != NULL)
    spoke__ledger_read(l);
  return l;
}

static void write_begin(void) {
  atomic_store_explicit(&shared->seq, shared->seq + 1, memory_order_relaxed);
  atomic_thread_fence(memory_order_release);
}

static void write_end(void) {
  atomic_store_explicit(&shared->seq, shared->seq + 1, memory_order_release);
}

/* ---- lookups on a copy (any process) ---- */

const spoke__build_t *spoke__ledger_find(const spoke__ledger_t *l,
                                         const char *build) {
  for (size_t i = 0; i < l->nbuilds; i++)
    if (strcmp(l->builds[i].build, build) == 0)
      return &l->builds[i];
  return NULL;
}

int spoke__ledger_any_quarantined(const spoke__ledger_t *l) {
  for (size_t i = 0; i < l->nbuilds; i++)
    if (l->builds[i].quarantined)
      return 1;
  return 0;
}

const spoke__build_t *spoke__ledger_rollback(const spoke__ledger_t *l,
                                             const char *plugin,
                                             const char *except) {
  const spoke__build_t *best = NULL;
  for (size_t i = 0; i < l->nbuilds; i++) {
    const spoke__build_t *b = &l->builds[i];
    if (strcmp(b->plugin, plugin) != 0 || strcmp(b->build, except) == 0 ||
        !b->archived || b->quarantined || b->crashes > 0)
      continue;
    if (best == NULL || b->order > best->order)
      best = b;
  }
  return best;
}

/* ---- the master's writes ---- */

void spoke__ledger_restart(void) {
  if (shared == NULL)
    return;
  write_begin();
  shared->l.restarts++;
  write_end();
}

void spoke__ledger_workers(const int32_t *pids, int n) {
  if (shared == NULL)
    return;
  if (n > SPOKE__LEDGER_WORKERS)
    n = SPOKE__LEDGER_WORKERS;
  write_begin();
  shared->l.nworkers = n;
  memcpy(shared->l.workers, pids, (size_t)n * sizeof(*pids));
  write_end();
}

/* Removes the archived copy of build B (master). */
static void unarchive(const spoke__build_t *b) {
  char path[4096];
  if (!b->archived || archive == NULL)
    return;
  snprintf(path, sizeof(path), "%s/%s.so", archive, b->build);
  if (unlink(path) != 0 && errno != ENOENT)
    spoke__warn("cannot remove archived build %s: %s", path,
                strerror(errno));
}

/* The entry of BUILD, added for PLUGIN VERSION if new: in a free place,
 * else in the oldest's that is not quarantined; NULL when every entry is
 * quarantined. Inside a write. */
static spoke__build_t *entry(const char *build, const char *plugin,
                             const char *version) {
  spoke__ledger_t *l = &shared->l;
  spoke__build_t *b = (spoke__build_t *)spoke__ledger_find(l, build);
  size_t i;
  if (b != NULL)
    return b;
  if (l->nbuilds < SPOKE__LEDGER_BUILDS) {
    i = l->nbuilds++;
  } else {
    size_t oldest = SPOKE__LEDGER_BUILDS;
    for (i = 0; i < l->nbuilds; i++)
      if (!l->builds[i].quarantined &&
          (oldest == SPOKE__LEDGER_BUILDS ||
           l->builds[i].order < l->builds[oldest].order))
        oldest = i;
    if (oldest == SPOKE__LEDGER_BUILDS)
      return NULL;
    i = oldest;
    unarchive(&l->builds[i]);
  }
  b = &l->builds[i];
  memset(b, 0, sizeof(*b));
  memset(times[i], 0, sizeof(times[i]));
  snprintf(b->build, sizeof(b->build), "%s", build);
  snprintf(b->plugin, sizeof(b->plugin), "%s", plugin);
  snprintf(b->version, sizeof(b->version), "%s", version);
  b->order = ++next_order;
  return b;
}

void spoke__ledger_loaded(const spoke__crash_record_t *rec) {
  spoke__build_t *b;
  if (shared == NULL || rec->build[0] == '\0')
    return;
  write_begin();
  if ((b = entry(rec->build, rec->plugin, rec->version)) != NULL)
    b->archived = 1;
  write_end();
}

static void count_crash(spoke__ledger_t *l, const spoke__crash_record_t *rec) {
  const char *sig = rec->kind == SPOKE__REC_STALL
                        ? "stall"
                        : spoke__signal_name(rec->signo);
  for (size_t i = 0; i < l->ncrashes; i++) {
    spoke__crash_count_t *c = &l->crashes[i];
    if (strcmp(c->plugin, rec->plugin) == 0 &&
        strcmp(c->version, rec->version) == 0 && strcmp(c->signal, sig) == 0) {
      c->n++;
      return;
    }
  }
  if (l->ncrashes == SPOKE__LEDGER_ROWS)
    return;
  spoke__crash_count_t *c = &l->crashes[l->ncrashes++];
  snprintf(c->plugin, sizeof(c->plugin), "%s", rec->plugin);
  snprintf(c->version, sizeof(c->version), "%s", rec->version);
  snprintf(c->signal, sizeof(c->signal), "%s", sig);
  c->n = 1;
}

int spoke__ledger_crash(const spoke__crash_record_t *rec, int after,
                        uint64_t window_ns, uint64_t now,
                        spoke__build_t *quarantined) {
  spoke__build_t *b;
  int hit = 0;
  if (shared == NULL || !rec->in_plugin)
    return 0;
  write_begin();
  count_crash(&shared->l, rec);
  b = rec->build[0] != '\0' ? entry(rec->build, rec->plugin, rec->version)
                            : NULL;
  if (b != NULL) {
    uint64_t *t = times[b - shared->l.builds];
    int recent = 0;
    b->crashes++;
    memmove(t + 1, t, (MAX_TIMES - 1) * sizeof(*t));
    t[0] = now;
    for (int i = 0; i < MAX_TIMES && t[i] != 0; i++)
      recent += now - t[i] <= window_ns;
    if (after > 0 && recent >= after && !b->quarantined) {
      b->quarantined = 1;
      snprintf(b->reason, sizeof(b->reason),
               "build %s crashed %d times within %llu s", b->build, recent,
               (unsigned long long)(window_ns / 1000000000ull));
      *quarantined = *b;
      hit = 1;
    }
  }
  write_end();
  return hit;
}
