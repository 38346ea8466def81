/* rollbake.c: the bake of one instance in `spoke rollout`: it serves the
 * new build; watch it for --bake seconds before going on.
 *
 * A baseline reading of /metrics first, then a reading every 500 ms and
 * one at the end of the bake, each compared with the baseline
 * (rollstat.c's delta), and each judged in this order:
 *   - a crash of the plugin at the new version (counted from the reading
 *     before the upload, so none falls between two steps): fail at once
 *   - fewer processes serving the new build than the instance runs
 *     (quarantined, replaced behind our back, a worker restarted
 *     without it): fail
 *   - once 20 requests were seen: the 5xx share above --max-5xx-rate, or
 *     the p99 above --max-p99: fail
 * A reading that fails (no connection, no 200) is retried with the next;
 * 5 s of nothing but failures in a row fails the instance, and so does a
 * bake that cannot get its baseline within 5 s. The bake ends with the
 * first good reading taken once its time is up.
 *
 * A progress line every 5 s (every 2 s for bakes under 20 s), and one
 * verdict line. What the last good reading saw goes into r->seen, for
 * the report should this instance fail.
 */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "cli/rollout.h"

#define SAMPLE_S 0.5
#define DOWN_S 5.0
#define ENOUGH 20 /* requests before the rate and the p99 count */

/* "p99 <= 5 ms", "p99 > 10000 ms" (above every bound), "no p99". */
static void p99_text(const spoke__roll_delta_t *d, char *out, size_t cap) {
  if (isnan(d->p99_ms))
    snprintf(out, cap, "no p99");
  else if (isinf(d->p99_ms))
    snprintf(out, cap, "p99 > %g ms", d->top_ms);
  else
    snprintf(out, cap, "p99 <= %g ms", d->p99_ms);
}

void spoke__roll_seen_text(const spoke__roll_delta_t *d, char *out,
                           size_t cap) {
  char p99[64];
  p99_text(d, p99, sizeof(p99));
  snprintf(out, cap, "%.0f requests, %.0f 5xx (%.2f%%), %s", d->requests,
           d->err5xx, d->requests > 0 ? 100.0 * d->err5xx / d->requests : 0.0,
           p99);
}

/* The verdict on one reading: 0 fine, or -1 with the failure recorded. */
static int judge(spoke__roll_t *r, spoke__roll_inst_t *in,
                 const spoke__roll_stats_t *now, const spoke__roll_delta_t *d) {
  char p99[64];
  if (d->crashes > 0) {
    spoke__roll_fail(r, in, "baking", "crashed: %s", d->crash_text);
    return -1;
  }
  if (now->workers <= 0 || now->serving_build < now->workers) {
    char what[256];
    spoke__roll_describe(r, now, what, sizeof(what));
    spoke__roll_fail(r, in, "baking",
                     "the new build serves on %.0f/%.0f processes only "
                     "(now: %s)",
                     now->serving_build, now->workers, what);
    return -1;
  }
  if (d->requests < ENOUGH)
    return 0;
  if (d->err5xx / d->requests > r->opts.max_5xx_rate) {
    spoke__roll_fail(r, in, "baking",
                     "5xx rate %.2f%% (%.0f of %.0f requests), above "
                     "--max-5xx-rate %g",
                     100.0 * d->err5xx / d->requests, d->err5xx, d->requests,
                     r->opts.max_5xx_rate);
    return -1;
  }
  if (d->p99_ms > r->opts.max_p99_ms) {
    if (isinf(d->p99_ms))
      snprintf(p99, sizeof(p99), "p99 above %g ms, the largest bound",
               d->top_ms);
    else
      snprintf(p99, sizeof(p99), "p99 estimate %g ms (its bucket's bound)",
               d->p99_ms);
    spoke__roll_fail(r, in, "baking",
                     "%s over %.0f requests, above --max-p99 %g ms", p99,
                     d->requests, r->opts.max_p99_ms);
    return -1;
  }
  return 0;
}

/* A good reading into *ST, retried for DOWN_S: 0, or -1 recorded. */
static int read_until_up(spoke__roll_t *r, spoke__roll_inst_t *in,
                         spoke__roll_stats_t *st, double *down_since) {
  char err[256];
  for (;;) {
    double t = spoke__roll_clock();
    if (spoke__roll_metrics(r, in, r->build, st, err, sizeof(err)) == 0) {
      *down_since = -1;
      return 0;
    }
    if (*down_since < 0) {
      *down_since = t;
      spoke__roll_say(r, in, "no reading (%s); retrying", err);
    }
    if (spoke__roll_clock() - *down_since >= DOWN_S) {
      spoke__roll_fail(r, in, "baking",
                       "instance unreachable for %gs: %s", DOWN_S, err);
      return -1;
    }
    spoke__roll_sleep(SAMPLE_S);
  }
}

int spoke__roll_bake(spoke__roll_t *r, spoke__roll_inst_t *in) {
  spoke__roll_stats_t base, now;
  spoke__roll_delta_t d;
  double start, end, every, next_say, down = -1, t;
  char text[256];

  r->have_seen = 0;
  if (read_until_up(r, in, &base, &down) != 0)
    return -1;
  /* Crashes count from before the upload: none slips in between. */
  base.nsignals = in->before.nsignals;
  memcpy(base.signal, in->before.signal, sizeof(base.signal));
  memcpy(base.crashes, in->before.crashes, sizeof(base.crashes));
  start = spoke__roll_clock();
  end = start + r->opts.bake_s;
  every = r->opts.bake_s < 20 ? 2 : 5;
  next_say = start + every;
  spoke__roll_say(r, in, "baking for %gs", r->opts.bake_s);
  do {
    t = spoke__roll_clock();
    spoke__roll_sleep((t + SAMPLE_S < end ? t + SAMPLE_S : end) - t);
    t = spoke__roll_clock();
    if (read_until_up(r, in, &now, &down) != 0)
      return -1;
    spoke__roll_delta(&base, &now, &d);
    r->have_seen = 1;
    r->seen = d;
    r->seen_s = t - start;
    if (judge(r, in, &now, &d) != 0)
      return -1;
    if (spoke__roll_interrupted() != NULL) {
      spoke__roll_fail(r, in, "baking", "interrupted by %s",
                       spoke__roll_interrupted());
      return -1;
    }
    if (t >= next_say && t < end) {
      spoke__roll_seen_text(&d, text, sizeof(text));
      spoke__roll_say(r, in, "baking: %.0fs of %gs, %s", t - start,
                      r->opts.bake_s, text);
      while (next_say <= t)
        next_say += every;
    }
  } while (t < end);
  spoke__roll_seen_text(&d, text, sizeof(text));
  spoke__roll_say(r, in, "baked %gs: %s: ok%s", r->opts.bake_s, text,
                  d.requests < ENOUGH
                      ? " (fewer than 20 requests: the 5xx rate and the p99 "
                        "were not judged)"
                      : "");
  return 0;
}
