/* reqstats.c: counting a request whose response is queued whole.
 *
 * Runs on the request's loop thread (conn.c's delivery of the last
 * bytes) and touches only that loop's row: the instance's per-route
 * counts by status class, or the core's when no plugin answered, the
 * latency histogram and the in-flight gauge (plugin/counts.h: one writer
 * per counter, so no lock and no atomic read-modify-write). The control
 * thread reads them for /metrics (ctl/metrics.c).
 */
#include "http/http.h"

/* Upper bounds of the latency buckets, in microseconds. */
const uint64_t spoke__lat_bound_us[SPOKE__LAT_BUCKETS] = {
    250,    500,    1000,    2500,    5000,    10000,   25000,
    50000,  100000, 250000,  500000,  1000000, 2500000, 10000000};

static int status_class(int status) {
  int c = status / 100 - 1;
  return c < 0 ? 0 : c >= SPOKE__STATUS_CLASSES ? SPOKE__STATUS_CLASSES - 1
                                                : c;
}

void spoke__stats_request_done(spoke_request_t *req) {
  spoke__loop_stats_t *st = &req->loop->stats;
  spoke__instance_t *inst = req->inst;
  int cls = status_class(req->status);
  uint64_t us = (uv_hrtime() - req->t_start) / 1000;
  size_t b = 0;

  while (b < SPOKE__LAT_BUCKETS && us > spoke__lat_bound_us[b])
    b++;
  if (inst != NULL && inst->counts != NULL &&
      req->route_index < inst->counts_nroutes) {
    spoke__route_counts_t *rc =
        &inst->counts[(size_t)req->loop->id * inst->counts_nroutes +
                      req->route_index];
    spoke__stat_add(&rc->n[cls], 1);
    spoke__stat_add(&rc->lat[b], 1);
    spoke__stat_add(&rc->lat_sum_us, us);
  } else {
    spoke__stat_add(&st->core[cls], 1);
  }
  spoke__stat_add(&st->lat[b], 1);
  spoke__stat_add(&st->lat_sum_us, us);
  if (req->routed) {
    req->routed = 0;
    spoke__stat_sub(&st->in_flight, 1);
  }
}
