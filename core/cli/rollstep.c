/* rollstep.c: one instance's steps in `spoke rollout`, and its progress
 * lines.
 *
 * Installing the new file on an instance (spoke__roll_install):
 *   1. a reading of /metrics, for the crash counts before anything moves
 *   2. GET /plugins/BASE: the file it has now, kept in memory for the
 *      undo (404: it has none, and the undo is a DELETE)
 *   3. PUT /plugins/BASE with the new bytes; anything but 200, or an
 *      entry for BASE saying "refused", fails the instance
 *   4. every 100 ms a reading, until as many processes serve the new
 *      build as the instance runs (spoke_worker_processes), within
 *      --ready-timeout; a crash of the new version meanwhile fails it
 * The undo (spoke__roll_undo) PUTs the kept bytes back (or DELETEs), then
 * waits the same way: for the old build to serve everywhere if it did
 * just before the upload, else for the new build to serve nowhere. An
 * instance it cannot reach is tried again for --ready-timeout.
 *
 * The instance counts as touched (to be rolled back) from the moment the
 * PUT goes out: a PUT that failed midway may still have written the
 * file, and a refused one did write it (the old version keeps serving,
 * but the refused file sits in the plugins directory). Only a 4xx answer
 * (401, 403, 404, 413: nothing was written) leaves it untouched.
 *
 * Progress lines go to stdout, each flushed as it is written: a test or
 * an operator reads them while the rollout runs.
 *
 * Once the rollout changes anything, SIGINT and SIGTERM no longer end
 * the process: they are noted, going forward stops at the next wait or
 * bake reading, and what was done is rolled back (a second one ends the
 * process as usual). SIGPIPE is ignored, so a reader that went away
 * does not end a rollout half-way either.
 */
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "cli/rollout.h"

static volatile sig_atomic_t interrupted; /* the signal, or 0 */

static void on_signal(int sig) {
  interrupted = sig;
}

void spoke__roll_catch_signals(void) {
  struct sigaction sa;
  memset(&sa, 0, sizeof(sa));
  sigemptyset(&sa.sa_mask);
  sa.sa_handler = on_signal;
  sa.sa_flags = SA_RESETHAND; /* a second one is not caught */
  sigaction(SIGINT, &sa, NULL);
  sigaction(SIGTERM, &sa, NULL);
  signal(SIGPIPE, SIG_IGN);
}

const char *spoke__roll_interrupted(void) {
  int sig = interrupted;
  return sig == 0 ? NULL : sig == SIGINT ? "SIGINT" : "SIGTERM";
}

double spoke__roll_clock(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

void spoke__roll_sleep(double seconds) {
  struct timespec ts;
  if (seconds <= 0)
    return;
  ts.tv_sec = (time_t)seconds;
  ts.tv_nsec = (long)((seconds - (double)ts.tv_sec) * 1e9);
  while (nanosleep(&ts, &ts) != 0) {
  }
}

static void vsay(const spoke__roll_t *r, const spoke__roll_inst_t *in,
                 const char *fmt, va_list ap) {
  printf("[%5.1fs] %-*s  ", spoke__roll_clock() - r->t0, r->width,
         in != NULL ? in->addr->text : "");
  vprintf(fmt, ap);
  printf("\n");
  fflush(stdout);
}

void spoke__roll_say(const spoke__roll_t *r, const spoke__roll_inst_t *in,
                     const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsay(r, in, fmt, ap);
  va_end(ap);
}

void spoke__roll_fail(spoke__roll_t *r, const spoke__roll_inst_t *in,
                      const char *step, const char *fmt, ...) {
  va_list ap;
  if (!r->failed) {
    r->failed = 1;
    r->failed_at = (size_t)(in - r->insts);
    r->failed_step = step;
    va_start(ap, fmt);
    vsnprintf(r->why, sizeof(r->why), fmt, ap);
    va_end(ap);
  }
  spoke__roll_say(r, in, "FAILED while %s: %s", step, r->why);
}

void spoke__roll_describe(const spoke__roll_t *r,
                          const spoke__roll_stats_t *s, char *out,
                          size_t cap) {
  if (s->serving_any <= 0) {
    snprintf(out, cap, "not loaded");
    return;
  }
  snprintf(out, cap, "%s %s (build %s) on %.0f/%.0f processes%s", r->name,
           s->top_version[0] ? s->top_version : "(no version)", s->top_build,
           s->top_n, s->workers,
           s->serving_any > s->top_n ? ", other builds on the rest" : "");
}

int spoke__roll_metrics(const spoke__roll_t *r, const spoke__roll_inst_t *in,
                        const char *build, spoke__roll_stats_t *st, char *err,
                        size_t errlen) {
  spoke__buf_t body = {0};
  int status, rc;

  rc = spoke__adminc_request(in->addr, "GET", "/metrics", NULL, NULL, 0,
                             &status, &body, err, errlen);
  if (rc == 0 && status != 200) {
    snprintf(err, errlen, "GET /metrics answered %d", status);
    rc = SPOKE_EIO;
  }
  if (rc == 0)
    spoke__roll_stats_read(body.data ? body.data : "", body.len, r->name,
                           r->version, build, st);
  spoke__buf_free(&body);
  return rc;
}

/* Why STATUS refused a request with the token, or NULL for 200. */
static const char *refusal(int status) {
  switch (status) {
    case 200: return NULL;
    case 401: return "the token was refused (401)";
    case 403: return "it has no admin token configured (403)";
    case 404: return "no such file (404)";
    case 413: return "the file is too large for it (413)";
    default: return "an unexpected answer";
  }
}

int spoke__roll_fetch(const spoke__roll_t *r, const spoke__roll_inst_t *in,
                      spoke__buf_t *out, int *has, char build[17], char *err,
                      size_t errlen) {
  int status;
  *has = 0;
  build[0] = '\0';
  if (spoke__adminc_request(in->addr, "GET", r->path, r->token, NULL, 0,
                            &status, out, err, errlen) != 0)
    return SPOKE_EIO;
  if (status != 200 && status != 404) {
    snprintf(err, errlen, "GET %s: %s", r->path, refusal(status));
    return SPOKE_EIO;
  }
  *has = status == 200;
  if (*has)
    spoke__roll_build_of(out->data ? out->data : "", out->len, build);
  return 0;
}

/* METHOD /plugins/BASE with BODY: 0 when it answered 200 and did not
 * refuse the file, else -1 with WHY set. */
static int change_file(spoke__roll_t *r, spoke__roll_inst_t *in,
                       const char *method, const void *body, size_t len,
                       spoke__roll_change_t *c, int *status, char *why,
                       size_t whylen) {
  spoke__buf_t ans = {0};
  int rc;

  memset(c, 0, sizeof(*c));
  /* A PUT always has a body, if only an empty one. */
  if (body == NULL && strcmp(method, "PUT") == 0)
    body = "";
  rc = spoke__adminc_request(in->addr, method, r->path, r->token, body, len,
                             status, &ans, why, whylen);
  if (rc == 0 && *status != 200) {
    snprintf(why, whylen, "%s %s: %s%s%.200s", method, r->path,
             refusal(*status), ans.len ? ": " : "", ans.data ? ans.data : "");
    rc = -1;
  } else if (rc == 0 && spoke__roll_json_change(ans.data ? ans.data : "",
                                                ans.len, r->base, c) < 0) {
    snprintf(why, whylen, "%s %s: an answer that is not JSON", method,
             r->path);
    rc = -1;
  } else if (rc == 0 && strcmp(c->change, "refused") == 0) {
    snprintf(why, whylen, "refused by %s: %s", in->addr->text,
             c->error[0] ? c->error : "(no reason given)");
    rc = -1;
  }
  spoke__buf_free(&ans);
  return rc == 0 ? 0 : -1;
}

/* Polls until BUILD serves on every process (FULL) or on none (!FULL),
 * for --ready-timeout; *ST is the last reading. With BASE (going
 * forward, not undoing), crashes of the new version since BASE and an
 * interrupt fail it at once. 0, or -1 with WHY set. */
static int wait_build(spoke__roll_t *r, spoke__roll_inst_t *in,
                      const char *build, int full,
                      const spoke__roll_stats_t *base,
                      spoke__roll_stats_t *st, char *why, size_t whylen) {
  double until = spoke__roll_clock() + r->opts.ready_s;
  char err[256] = "", seen[256] = "no answer yet";
  spoke__roll_delta_t d;

  for (;;) {
    if (base != NULL && spoke__roll_interrupted() != NULL) {
      snprintf(why, whylen, "interrupted by %s", spoke__roll_interrupted());
      return -1;
    }
    if (spoke__roll_metrics(r, in, build, st, err, sizeof(err)) == 0) {
      if (base != NULL) {
        spoke__roll_delta(base, st, &d);
        if (d.crashes > 0) {
          snprintf(why, whylen, "crashed: %s", d.crash_text);
          return -1;
        }
      }
      if (full ? st->workers > 0 && st->serving_build == st->workers
               : st->serving_build == 0)
        return 0;
      snprintf(seen, sizeof(seen), "build %s on %.0f/%.0f processes", build,
               st->serving_build, st->workers);
    } else {
      snprintf(seen, sizeof(seen), "%s", err);
    }
    if (spoke__roll_clock() >= until)
      break;
    spoke__roll_sleep(0.1);
  }
  snprintf(why, whylen, "%s build %s within %gs (last seen: %s)",
           full ? "not serving the" : "still serving", build,
           r->opts.ready_s, seen);
  return -1;
}

int spoke__roll_install(spoke__roll_t *r, spoke__roll_inst_t *in) {
  spoke__roll_stats_t now;
  spoke__roll_change_t c;
  char why[1024], what[256];
  int status;

  if (spoke__roll_metrics(r, in, r->build, &in->before, why, sizeof(why)) !=
      0) {
    spoke__roll_fail(r, in, "reading it", "%s", why);
    return -1;
  }
  if (spoke__roll_fetch(r, in, &in->old, &in->had_file, in->old_build, why,
                        sizeof(why)) != 0) {
    spoke__roll_fail(r, in, "fetching the old file", "%s", why);
    return -1;
  }
  if (in->had_file) {
    spoke__roll_say(r, in, "kept its %s (%zu bytes, build %s)", r->base,
                    in->old.len, in->old_build);
  } else {
    spoke__roll_say(r, in, "has no %s (an undo deletes it)", r->base);
  }

  in->touched = 1;
  status = 0;
  if (change_file(r, in, "PUT", r->bytes.data, r->bytes.len, &c, &status,
                  why, sizeof(why)) != 0 && status != 0) {
    in->touched = status < 400 || status >= 500; /* 4xx: nothing written */
    spoke__roll_fail(r, in, "uploading", "%s", why);
    return -1;
  }
  /* No answer at all: the worker process that took the upload may have
   * died after writing it (the new build crashing at once does that);
   * what it serves and its crash counts tell, as for any upload. */
  if (status == 0)
    spoke__roll_say(r, in, "no answer to the upload (%s); watching what "
                    "it serves", why);
  else if (c.change[0] != '\0')
    spoke__roll_say(r, in, "uploaded %s: %s%s%s", r->base, c.change,
                    c.version[0] ? ", version " : "", c.version);
  else
    spoke__roll_say(r, in, "uploaded %s (the answer lists no change for it)",
                    r->base);

  if (wait_build(r, in, r->build, 1, &in->before, &now, why, sizeof(why)) !=
      0) {
    spoke__roll_fail(r, in, "waiting for the new build", "%s", why);
    return -1;
  }
  spoke__roll_describe(r, &now, what, sizeof(what));
  spoke__roll_say(r, in, "serving %s", what);
  return 0;
}

void spoke__roll_undo(spoke__roll_t *r, spoke__roll_inst_t *in) {
  double until = spoke__roll_clock() + r->opts.ready_s;
  spoke__roll_stats_t st;
  spoke__roll_change_t c;
  char why[1024];
  int status, rc, retried = 0;
  /* Wait for the old build if it served everywhere before the upload;
   * else only for the new one to be gone. */
  int old_served = in->had_file &&
                   strcmp(in->before.top_build, in->old_build) == 0 &&
                   in->before.top_n == in->before.workers;

  if (in->had_file)
    spoke__roll_say(r, in, "rolling back: PUT the old %s (build %s)", r->base,
                    in->old_build);
  else
    spoke__roll_say(r, in, "rolling back: DELETE %s (it had none)", r->base);
  /* An instance that cannot be reached is tried again, for as long as
   * it would be waited for. */
  for (;;) {
    if (in->had_file)
      rc = change_file(r, in, "PUT", in->old.data, in->old.len, &c, &status,
                       why, sizeof(why));
    else
      rc = change_file(r, in, "DELETE", NULL, 0, &c, &status, why,
                       sizeof(why));
    if (rc != 0 && !in->had_file && status == 404)
      rc = 0; /* gone already */
    if (rc == 0 || status != 0 || spoke__roll_clock() >= until)
      break;
    if (!retried++)
      spoke__roll_say(r, in, "cannot reach it (%s); retrying for %gs", why,
                      r->opts.ready_s);
    spoke__roll_sleep(0.5);
  }
  if (rc == 0)
    rc = old_served ? wait_build(r, in, in->old_build, 1, NULL, &st, why,
                                 sizeof(why))
                    : wait_build(r, in, r->build, 0, NULL, &st, why,
                                 sizeof(why));
  if (rc != 0) {
    in->undone = -1;
    snprintf(in->undo_err, sizeof(in->undo_err), "%s", why);
    spoke__roll_say(r, in, "ROLLBACK FAILED: %s", why);
    return;
  }
  in->undone = 1;
  if (old_served)
    spoke__roll_say(r, in, "rolled back: serving build %s again on every "
                           "process", in->old_build);
  else
    spoke__roll_say(r, in, "rolled back: build %s serves nowhere", r->build);
}
