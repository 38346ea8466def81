/* rollstat.c: what an instance's /metrics says about one plugin, and what
 * changed between two readings.
 *
 * One reading (spoke__roll_stats_read) keeps, for plugin NAME:
 *   spoke_worker_processes                  processes running (1 if absent)
 *   spoke_plugin_serving{plugin,version,build}
 *                                           processes per build; BUILD's,
 *                                           all together, and the top one
 *   spoke_requests_total{plugin,route,class}
 *                                           requests and 5xx, all routes
 *   spoke_route_duration_seconds_bucket{plugin,route,le}
 *                                           buckets added up by bound over
 *                                           the routes, bounds as the text
 *                                           has them, kept ascending
 *   spoke_plugin_crashes_total{plugin,version,signal}
 *                                           at VERSION, by signal
 * Labels are matched by name, so their order does not matter.
 *
 * A delta is the later reading minus the earlier, series by series, a
 * counter that went down counting 0 (a worker restarted and began again
 * from nothing: what it did before is not in either reading). The p99 is
 * the bound of the first bucket whose cumulative count reaches 99% of the
 * whole (compared in integers, 100 * c >= 99 * total): an estimate from
 * above. When that is the +Inf bucket the p99 is INFINITY: above every
 * finite bound, so above any finite limit.
 *
 * Pure functions: no I/O, no allocation.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/rollout.h"

/* The plugin label of L is NAME. */
static int of_plugin(const spoke__prom_line_t *l, const char *name) {
  char v[256];
  return spoke__prom_label(l, "plugin", v, sizeof(v)) == 1 &&
         strcmp(v, name) == 0;
}

static void add_bucket(spoke__roll_stats_t *s, double le, double n) {
  size_t i = 0;
  while (i < s->nbuckets && s->le[i] < le)
    i++;
  if (i < s->nbuckets && s->le[i] == le) {
    s->count[i] += n;
    return;
  }
  if (s->nbuckets == SPOKE__ROLL_BUCKETS)
    return; /* more bounds than any histogram of ours has */
  memmove(&s->le[i + 1], &s->le[i], (s->nbuckets - i) * sizeof(s->le[0]));
  memmove(&s->count[i + 1], &s->count[i],
          (s->nbuckets - i) * sizeof(s->count[0]));
  s->le[i] = le;
  s->count[i] = n;
  s->nbuckets++;
}

static void add_crash(spoke__roll_stats_t *s, const char *signal, double n) {
  size_t i = 0;
  while (i < s->nsignals && strcmp(s->signal[i], signal) != 0)
    i++;
  if (i == s->nsignals) {
    if (s->nsignals == SPOKE__ROLL_SIGNALS)
      i--; /* the last slot takes the rest */
    else
      snprintf(s->signal[s->nsignals++], sizeof(s->signal[0]), "%s", signal);
  }
  s->crashes[i] += n;
}

static void serving(spoke__roll_stats_t *s, const spoke__prom_line_t *l,
                    const char *build) {
  char v[64], b[32];
  if (spoke__prom_label(l, "build", b, sizeof(b)) != 1)
    return;
  if (spoke__prom_label(l, "version", v, sizeof(v)) != 1)
    v[0] = '\0';
  s->serving_any += l->value;
  if (strcmp(b, build) == 0)
    s->serving_build += l->value;
  if (l->value > s->top_n && strlen(b) < sizeof(s->top_build)) {
    s->top_n = l->value;
    snprintf(s->top_version, sizeof(s->top_version), "%s", v);
    snprintf(s->top_build, sizeof(s->top_build), "%.16s", b);
  }
}

void spoke__roll_stats_read(const char *text, size_t len, const char *name,
                            const char *version, const char *build,
                            spoke__roll_stats_t *out) {
  const char *p = text, *end = text + len;
  spoke__prom_line_t l;
  char v[64];
  int have_workers = 0;

  memset(out, 0, sizeof(*out));
  while (spoke__prom_next(&p, end, &l)) {
    if (spoke__prom_is(&l, "spoke_worker_processes")) {
      out->workers += l.value;
      have_workers = 1;
      continue;
    }
    if (!of_plugin(&l, name))
      continue;
    if (spoke__prom_is(&l, "spoke_plugin_serving")) {
      serving(out, &l, build);
    } else if (spoke__prom_is(&l, "spoke_requests_total")) {
      out->requests += l.value;
      if (spoke__prom_label(&l, "class", v, sizeof(v)) == 1 &&
          strcmp(v, "5xx") == 0)
        out->err5xx += l.value;
    } else if (spoke__prom_is(&l, "spoke_route_duration_seconds_bucket")) {
      char *e;
      double le;
      if (spoke__prom_label(&l, "le", v, sizeof(v)) != 1)
        continue;
      le = strtod(v, &e);
      if (*e == '\0' && e != v && !isnan(le))
        add_bucket(out, le, l.value);
    } else if (spoke__prom_is(&l, "spoke_plugin_crashes_total")) {
      if (spoke__prom_label(&l, "version", v, sizeof(v)) == 1 &&
          strcmp(v, version) == 0) {
        char sig[32];
        if (spoke__prom_label(&l, "signal", sig, sizeof(sig)) != 1)
          snprintf(sig, sizeof(sig), "?");
        add_crash(out, sig, l.value);
      }
    }
  }
  if (!have_workers)
    out->workers = 1;
}

static double minus(double now, double base) {
  return now > base ? now - base : 0;
}

double spoke__roll_p99(const double *le, const double *count, size_t n) {
  double total;
  if (n == 0 || (total = count[n - 1]) <= 0)
    return NAN;
  for (size_t i = 0; i < n; i++)
    if (100.0 * count[i] >= 99.0 * total)
      return le[i];
  return le[n - 1];
}

void spoke__roll_delta(const spoke__roll_stats_t *base,
                       const spoke__roll_stats_t *now,
                       spoke__roll_delta_t *d) {
  double count[SPOKE__ROLL_BUCKETS];
  size_t used = 0;

  memset(d, 0, sizeof(*d));
  d->requests = minus(now->requests, base->requests);
  d->err5xx = minus(now->err5xx, base->err5xx);
  for (size_t i = 0; i < now->nbuckets; i++) {
    double was = 0;
    for (size_t j = 0; j < base->nbuckets; j++)
      if (base->le[j] == now->le[i])
        was = base->count[j];
    count[i] = minus(now->count[i], was);
    if (!isinf(now->le[i]))
      d->top_ms = now->le[i] * 1000.0;
  }
  d->p99_ms = spoke__roll_p99(now->le, count, now->nbuckets) * 1000.0;
  for (size_t i = 0; i < now->nsignals; i++) {
    double was = 0, n;
    for (size_t j = 0; j < base->nsignals; j++)
      if (strcmp(base->signal[j], now->signal[i]) == 0)
        was = base->crashes[j];
    if ((n = minus(now->crashes[i], was)) <= 0)
      continue;
    d->crashes += n;
    used += (size_t)snprintf(d->crash_text + used,
                             sizeof(d->crash_text) - used, "%s%s x %.0f",
                             used ? ", " : "", now->signal[i], n);
    if (used >= sizeof(d->crash_text))
      used = sizeof(d->crash_text) - 1;
  }
}

void spoke__roll_build_of(const void *p, size_t n, char out[17]) {
  spoke__build_id_hex(spoke__fnv1a(SPOKE__FNV64_OFFSET, p, n), out);
}
