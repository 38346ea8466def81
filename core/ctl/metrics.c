/* metrics.c: the Prometheus text of /metrics, and counts that outlive a version.
 *
 * The counts are written by each loop for its own row (http/reqstats.c,
 * http/watchdog.c's stalls, http/loop.c's lag; plugin/counts.h). Everything here runs on the control thread: folding
 * the counts of an instance that unloads, and writing /metrics.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctl/ctl.h"


/* ---- totals by label, surviving reloads (control thread) ---- */

typedef struct row_s {
  char *plugin, *route; /* route: "GET /users/:id" */
  uint64_t n[SPOKE__STATUS_CLASSES];
  uint64_t stalls, stall_us; /* the watchdog's (http/watchdog.c) */
  uint64_t lat[SPOKE__LAT_BUCKETS + 1], lat_sum_us; /* latency */
} row_t;

static row_t *retired;
static size_t nretired, retired_cap;

static row_t *row_find(row_t *rows, size_t n, const char *plugin,
                       const char *route) {
  for (size_t i = 0; i < n; i++)
    if (strcmp(rows[i].plugin, plugin) == 0 &&
        strcmp(rows[i].route, route) == 0)
      return &rows[i];
  return NULL;
}

/* The row for PLUGIN/ROUTE in *ROWS, added if new (strings copied). */
static row_t *row_get(row_t **rows, size_t *n, size_t *cap,
                      const char *plugin, const char *route) {
  row_t *r = row_find(*rows, *n, plugin, route);
  if (r != NULL)
    return r;
  if (spoke__array_grow(rows, cap, *n, sizeof(**rows)) != 0)
    return NULL;
  r = &(*rows)[*n];
  memset(r, 0, sizeof(*r));
  r->plugin = strdup(plugin);
  r->route = strdup(route);
  if (r->plugin == NULL || r->route == NULL) {
    free(r->plugin);
    free(r->route);
    return NULL;
  }
  (*n)++;
  return r;
}

static void route_label(const spoke__instance_t *inst, size_t i, char *out,
                        size_t cap) {
  const spoke_route_t *r = &inst->desc->routes[i];
  snprintf(out, cap, "%s %s", r->method ? r->method : "*", r->path);
}

/* Adds INST's counts, every loop's row, to the rows. */
static void add_instance(row_t **rows, size_t *n, size_t *cap,
                         const spoke__instance_t *inst) {
  char label[512];
  if (inst->counts == NULL)
    return;
  for (size_t i = 0; i < inst->counts_nroutes; i++) {
    row_t *r;
    route_label(inst, i, label, sizeof(label));
    r = row_get(rows, n, cap, inst->name, label);
    if (r == NULL)
      return;
    for (int l = 0; l < spoke__stats_nloops; l++) {
      spoke__route_counts_t *rc =
          &inst->counts[(size_t)l * inst->counts_nroutes + i];
      for (int c = 0; c < SPOKE__STATUS_CLASSES; c++)
        r->n[c] += spoke__stat_get(&rc->n[c]);
      r->stalls += spoke__stat_get(&rc->stalls);
      r->stall_us += spoke__stat_get(&rc->stall_us);
      for (int k = 0; k <= SPOKE__LAT_BUCKETS; k++)
        r->lat[k] += spoke__stat_get(&rc->lat[k]);
      r->lat_sum_us += spoke__stat_get(&rc->lat_sum_us);
    }
  }
}

void spoke__stats_fold(const spoke__instance_t *inst) {
  add_instance(&retired, &nretired, &retired_cap, inst);
}

static void rows_free(row_t *rows, size_t n) {
  for (size_t i = 0; i < n; i++) {
    free(rows[i].plugin);
    free(rows[i].route);
  }
  free(rows);
}

void spoke__stats_free(void) {
  rows_free(retired, nretired);
  retired = NULL;
  nretired = retired_cap = 0;
}

/* ---- /metrics ---- */

/* A label value: backslash, quote and newline escaped. */
static void label_value(spoke__buf_t *b, const char *s) {
  for (; *s; s++) {
    if (*s == '\\' || *s == '"')
      spoke__buf_appendf(b, "\\%c", *s);
    else if (*s == '\n')
      spoke__buf_append(b, "\\n", 2);
    else
      spoke__buf_append(b, s, 1);
  }
}

static void help(spoke__buf_t *b, const char *name, const char *type,
                 const char *text) {
  spoke__buf_appendf(b, "# HELP %s %s\n# TYPE %s %s\n", name, text, name,
                     type);
}

/* One histogram series: NAME_bucket per bound (BOUNDS_US, NBOUNDS of
 * them, then +Inf) with cumulative COUNTS (NBOUNDS + 1 per bucket),
 * NAME_sum and NAME_count. LABELS: the series' labels, escaped, without
 * braces ("" for none). */
static void histogram(spoke__buf_t *b, const char *name, const char *labels,
                      const uint64_t *bounds_us, int nbounds,
                      const uint64_t *counts, uint64_t sum_us) {
  const char *sep = labels[0] ? "," : "";
  uint64_t cum = 0;
  for (int k = 0; k <= nbounds; k++) {
    cum += counts[k];
    if (k < nbounds)
      spoke__buf_appendf(b, "%s_bucket{%s%sle=\"%g\"} %llu\n", name, labels,
                         sep, (double)bounds_us[k] / 1e6,
                         (unsigned long long)cum);
    else
      spoke__buf_appendf(b, "%s_bucket{%s%sle=\"+Inf\"} %llu\n", name,
                         labels, sep, (unsigned long long)cum);
  }
  if (labels[0])
    spoke__buf_appendf(b, "%s_sum{%s} %.6f\n%s_count{%s} %llu\n", name,
                       labels, (double)sum_us / 1e6, name, labels,
                       (unsigned long long)cum);
  else
    spoke__buf_appendf(b, "%s_sum %.6f\n%s_count %llu\n", name,
                       (double)sum_us / 1e6, name, (unsigned long long)cum);
}

/* Every plugin and route ever counted: the retired totals plus what the
 * loaded versions count now. */
static void rows_gather(row_t **rows, size_t *n, size_t *cap) {
  for (size_t i = 0; i < nretired; i++) {
    row_t *r = row_get(rows, n, cap, retired[i].plugin, retired[i].route);
    if (r == NULL)
      continue;
    for (int c = 0; c < SPOKE__STATUS_CLASSES; c++)
      r->n[c] += retired[i].n[c];
    r->stalls += retired[i].stalls;
    r->stall_us += retired[i].stall_us;
    for (int k = 0; k <= SPOKE__LAT_BUCKETS; k++)
      r->lat[k] += retired[i].lat[k];
    r->lat_sum_us += retired[i].lat_sum_us;
  }
  for (spoke__instance_t *i = spoke__instance_live_first(); i != NULL;
       i = i->live_next)
    add_instance(rows, n, cap, i);
}

static void requests_metric(spoke__buf_t *b, spoke__server_t *srv,
                            const row_t *rows, size_t n) {
  uint64_t core[SPOKE__STATUS_CLASSES] = {0};

  for (int l = 0; l < srv->nloops; l++)
    for (int c = 0; c < SPOKE__STATUS_CLASSES; c++)
      core[c] += spoke__stat_get(&srv->loops[l].stats.core[c]);

  help(b, "spoke_requests_total", "counter",
       "Requests answered, by plugin, route and status class (plugin "
       "\"core\": answered by the server itself, e.g. 404).");
  for (size_t i = 0; i < n; i++)
    for (int c = 0; c < SPOKE__STATUS_CLASSES; c++) {
      if (rows[i].n[c] == 0)
        continue;
      spoke__buf_appendf(b, "spoke_requests_total{plugin=\"");
      label_value(b, rows[i].plugin);
      spoke__buf_appendf(b, "\",route=\"");
      label_value(b, rows[i].route);
      spoke__buf_appendf(b, "\",class=\"%dxx\"} %llu\n", c + 1,
                         (unsigned long long)rows[i].n[c]);
    }
  for (int c = 0; c < SPOKE__STATUS_CLASSES; c++)
    if (core[c] != 0)
      spoke__buf_appendf(b,
                         "spoke_requests_total{plugin=\"core\",route=\"\","
                         "class=\"%dxx\"} %llu\n",
                         c + 1, (unsigned long long)core[c]);
}

/* The latency histogram of every route that has answered. */
static void route_latency_metric(spoke__buf_t *b, const row_t *rows,
                                 size_t n) {
  spoke__buf_t labels = {0};
  help(b, "spoke_route_duration_seconds", "histogram",
       "From a request's first byte to its response's last byte queued, "
       "by plugin and route.");
  for (size_t i = 0; i < n; i++) {
    uint64_t total = 0;
    for (int k = 0; k <= SPOKE__LAT_BUCKETS; k++)
      total += rows[i].lat[k];
    if (total == 0)
      continue;
    spoke__buf_reset(&labels);
    spoke__buf_appendf(&labels, "plugin=\"");
    label_value(&labels, rows[i].plugin);
    spoke__buf_appendf(&labels, "\",route=\"");
    label_value(&labels, rows[i].route);
    spoke__buf_append(&labels, "\"", 2); /* with its NUL */
    if (labels.data != NULL)
      histogram(b, "spoke_route_duration_seconds", labels.data,
                spoke__lat_bound_us, SPOKE__LAT_BUCKETS, rows[i].lat,
                rows[i].lat_sum_us);
  }
  spoke__buf_free(&labels);
}

static void stall_row(spoke__buf_t *b, const char *name, const row_t *r) {
  spoke__buf_appendf(b, "%s{plugin=\"", name);
  label_value(b, r->plugin);
  spoke__buf_appendf(b, "\",route=\"");
  label_value(b, r->route);
  spoke__buf_appendf(b, "\"} ");
}

/* Async calls that held their loop past --stall-warn (http/watchdog.c). */
static void stalls_metric(spoke__buf_t *b, const row_t *rows, size_t n) {
  help(b, "spoke_loop_stalls_total", "counter",
       "Async handler or callback calls that blocked their I/O loop for "
       "--stall-warn or longer, by plugin and route.");
  for (size_t i = 0; i < n; i++)
    if (rows[i].stalls != 0) {
      stall_row(b, "spoke_loop_stalls_total", &rows[i]);
      spoke__buf_appendf(b, "%llu\n", (unsigned long long)rows[i].stalls);
    }
  help(b, "spoke_loop_stall_seconds_total", "counter",
       "How long those calls blocked their loop, in all.");
  for (size_t i = 0; i < n; i++)
    if (rows[i].stalls != 0) {
      stall_row(b, "spoke_loop_stall_seconds_total", &rows[i]);
      spoke__buf_appendf(b, "%.6f\n", (double)rows[i].stall_us / 1e6);
    }
}

/* How late each loop's lag timer ran (http/loop.c), all loops. */
static void lag_metric(spoke__buf_t *b, spoke__server_t *srv) {
  uint64_t lag[SPOKE__LAG_BUCKETS + 1] = {0}, sum_us = 0;
  for (int l = 0; l < srv->nloops; l++) {
    for (int k = 0; k <= SPOKE__LAG_BUCKETS; k++)
      lag[k] += spoke__stat_get(&srv->loops[l].stats.lag[k]);
    sum_us += spoke__stat_get(&srv->loops[l].stats.lag_sum_us);
  }
  help(b, "spoke_loop_lag_seconds", "histogram",
       "How late each I/O loop ran a timer due every 100 ms: what any "
       "callback on that loop waited for it.");
  histogram(b, "spoke_loop_lag_seconds", "", spoke__lag_bound_us,
            SPOKE__LAG_BUCKETS, lag, sum_us);
}

static void latency_metric(spoke__buf_t *b, spoke__server_t *srv) {
  uint64_t lat[SPOKE__LAT_BUCKETS + 1] = {0}, sum_us = 0;
  for (int l = 0; l < srv->nloops; l++) {
    for (int k = 0; k <= SPOKE__LAT_BUCKETS; k++)
      lat[k] += spoke__stat_get(&srv->loops[l].stats.lat[k]);
    sum_us += spoke__stat_get(&srv->loops[l].stats.lat_sum_us);
  }
  help(b, "spoke_request_duration_seconds", "histogram",
       "From a request's first byte to its response's last byte queued.");
  histogram(b, "spoke_request_duration_seconds", "", spoke__lat_bound_us,
            SPOKE__LAT_BUCKETS, lat, sum_us);
}

static void gauge(spoke__buf_t *b, const char *name, const char *type,
                  const char *text, unsigned long long v) {
  help(b, name, type, text);
  spoke__buf_appendf(b, "%s %llu\n", name, v);
}

/* What keeps loaded versions alive: each version's own plugin holds,
 * and how many versions are retiring (replaced or removed, not yet
 * unloaded: requests or holds still keep them). */
static void versions_metric(spoke__buf_t *b, spoke__server_t *srv) {
  uint64_t retiring = 0;
  /* Summed over worker processes (promsum.c), a series counts the
   * workers serving that build: how `spoke rollout` knows a new build
   * serves everywhere, and that it still does. */
  help(b, "spoke_plugin_serving", "gauge",
       "The plugin builds this server routes to (1 per worker process); "
       "not a quarantined one, whose routes answer 503.");
  for (spoke__instance_t *i = spoke__instance_live_first(); i != NULL;
       i = i->live_next) {
    if (!spoke__snapshot_has(srv->current, i) || i->quarantined != NULL)
      continue;
    spoke__buf_appendf(b, "spoke_plugin_serving{plugin=\"");
    label_value(b, i->name);
    spoke__buf_appendf(b, "\",version=\"");
    label_value(b, i->version);
    spoke__buf_appendf(b, "\",build=\"%s\"} 1\n", i->build);
  }
  help(b, "spoke_plugin_holds", "gauge",
       "spoke_plugin_hold()s a loaded plugin version has not released.");
  for (spoke__instance_t *i = spoke__instance_live_first(); i != NULL;
       i = i->live_next) {
    long h = atomic_load(&i->holds);
    if (!spoke__snapshot_has(srv->current, i))
      retiring++;
    spoke__buf_appendf(b, "spoke_plugin_holds{plugin=\"");
    label_value(b, i->name);
    spoke__buf_appendf(b, "\",version=\"");
    label_value(b, i->version);
    spoke__buf_appendf(b, "\",generation=\"%llu\"} %ld\n",
                       (unsigned long long)i->generation, h > 0 ? h : 0);
  }
  gauge(b, "spoke_plugin_versions_retiring", "gauge",
        "Plugin versions no longer serving but still loaded (their "
        "requests or holds are not done).", retiring);
}

/* The master's counts (its ledger, shared with this worker). */
static void supervise_metrics(spoke__buf_t *b) {
  spoke__ledger_t *l = spoke__ledger_copy();
  size_t quarantined = 0;
  if (l == NULL)
    return;
  gauge(b, "spoke_worker_restarts_total", "counter",
        "Worker processes the master replaced (a crash, a --stall-kill, a "
        "death).", l->restarts);
  help(b, "spoke_plugin_crashes_total", "counter",
       "Worker processes lost to a plugin: its crash (by signal) or its "
       "stall past --stall-kill (signal=\"stall\").");
  for (size_t i = 0; i < l->ncrashes; i++) {
    const spoke__crash_count_t *c = &l->crashes[i];
    spoke__buf_appendf(b, "spoke_plugin_crashes_total{plugin=\"");
    label_value(b, c->plugin);
    spoke__buf_appendf(b, "\",version=\"");
    label_value(b, c->version);
    spoke__buf_appendf(b, "\",signal=\"%s\"} %llu\n", c->signal,
                       (unsigned long long)c->n);
  }
  for (size_t i = 0; i < l->nbuilds; i++)
    quarantined += l->builds[i].quarantined != 0;
  gauge(b, "spoke_plugin_builds_quarantined", "gauge",
        "Plugin builds quarantined for crashing --quarantine-after times "
        "within --quarantine-window.", quarantined);
  free(l);
}

static int metrics_text(spoke__server_t *srv, spoke__buf_t *b, int master);

int spoke__metrics_text(spoke__server_t *srv, spoke__buf_t *b) {
  return metrics_text(srv, b, 1);
}

int spoke__metrics_text_local(spoke__server_t *srv, spoke__buf_t *b) {
  return metrics_text(srv, b, 0);
}

static int metrics_text(spoke__server_t *srv, spoke__buf_t *b, int master) {
  uint64_t in_flight = 0, abandoned = 0;
  row_t *rows = NULL;
  size_t n = 0, cap = 0;
  for (int l = 0; l < srv->nloops; l++) {
    in_flight += spoke__stat_get(&srv->loops[l].stats.in_flight);
    abandoned += spoke__stat_get(&srv->loops[l].stats.abandoned);
  }
  rows_gather(&rows, &n, &cap);
  requests_metric(b, srv, rows, n);
  latency_metric(b, srv);
  route_latency_metric(b, rows, n);
  stalls_metric(b, rows, n);
  lag_metric(b, srv);
  rows_free(rows, n);
  gauge(b, "spoke_requests_in_flight", "gauge",
        "Requests routed to a plugin and not answered yet.", in_flight);
  gauge(b, "spoke_sync_queue_depth", "gauge",
        "Sync requests waiting for a worker.",
        atomic_load(&srv->shared.sync_waiting));
  gauge(b, "spoke_sync_rejected_total", "counter",
        "Sync requests answered 503 because the queue was full "
        "(--max-queue).",
        atomic_load(&srv->shared.sync_rejected));
  gauge(b, "spoke_plugin_loads_total", "counter",
        "Plugin versions loaded (start-up and reloads).", srv->loads);
  gauge(b, "spoke_plugin_load_failures_total", "counter",
        "Plugin files refused (the version before kept serving).",
        srv->load_failures);
  gauge(b, "spoke_open_connections", "gauge", "Client connections open.",
        atomic_load(&srv->shared.open_conns));
  gauge(b, "spoke_requests_abandoned", "gauge",
        "Requests answered 504 for an async plugin that has not completed "
        "them; they no longer keep its version loaded.", abandoned);
  versions_metric(b, srv);
  if (srv->supervised && master)
    supervise_metrics(b);
  return b->data != NULL ? 0 : SPOKE_ENOMEM;
}
