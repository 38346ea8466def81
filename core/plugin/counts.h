/* counts.h: the counters behind GET /metrics.
 *
 * Counting must not slow the path it counts, so every counter has one
 * writer: a loop thread bumps only its own row (relaxed load + store, no
 * read-modify-write, no lock), and the control thread sums the rows when
 * /metrics is asked for. Readers may see a count a moment old, never a
 * torn one. (Two loops' rows of one instance may share a cache line at
 * their edge; the per-loop stats are each inside their own loop.)
 *
 * - Requests by plugin, route and status class: per instance, a row of
 *   spoke__route_counts_t per loop (instance.c allocates them once the
 *   route table is final). When an instance unloads its totals fold into
 *   a registry kept by plugin name and route (control thread), so a
 *   reload does not reset a counter.
 * - What the core answers itself (404, 405, 400s, 503): per loop.
 * - Latency, from the first byte of a request to its last response byte
 *   queued: one histogram per loop, and one per route in the route's
 *   row (what `spoke rollout` watches for one plugin).
 * - Stalls (http/watchdog.c): an async call into a plugin that held its
 *   loop past --stall-warn, counted with its duration in the route's row
 *   of the loop it blocked, by that loop's thread, like the requests.
 * - Loop lag: how late each loop's 100 ms lag timer fired, one histogram
 *   per loop (http/loop.c).
 */
#ifndef SPOKE_STATS_H
#define SPOKE_STATS_H

#include <stdatomic.h>
#include <stdint.h>

#define SPOKE__STATUS_CLASSES 5 /* 1xx .. 5xx */
#define SPOKE__LAT_BUCKETS 14   /* finite upper bounds; one more: +Inf */
#define SPOKE__LAG_BUCKETS 10   /* loop lag: finite bounds; one more: +Inf */

typedef struct spoke__route_counts_s {
  _Atomic uint64_t n[SPOKE__STATUS_CLASSES];
  _Atomic uint64_t stalls;    /* calls that held the loop past --stall-warn */
  _Atomic uint64_t stall_us;  /* how long they held it, in all */
  _Atomic uint64_t lat[SPOKE__LAT_BUCKETS + 1]; /* per bucket */
  _Atomic uint64_t lat_sum_us;
} spoke__route_counts_t;

typedef struct spoke__loop_stats_s {
  _Atomic uint64_t core[SPOKE__STATUS_CLASSES]; /* answered by the core */
  _Atomic uint64_t lat[SPOKE__LAT_BUCKETS + 1];  /* per bucket */
  _Atomic uint64_t lat_sum_us;
  _Atomic uint64_t in_flight;  /* routed to a plugin, not answered yet */
  _Atomic uint64_t abandoned;  /* answered for a plugin that never
                                  completed them (504), not yet freed */
  _Atomic uint64_t lag[SPOKE__LAG_BUCKETS + 1]; /* lag timer, per bucket */
  _Atomic uint64_t lag_sum_us;
} spoke__loop_stats_t;

/* Bumps a counter only its writer thread changes. */
static inline void spoke__stat_add(_Atomic uint64_t *c, uint64_t v) {
  atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + v,
                        memory_order_relaxed);
}

static inline void spoke__stat_sub(_Atomic uint64_t *c, uint64_t v) {
  atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) - v,
                        memory_order_relaxed);
}

static inline uint64_t spoke__stat_get(_Atomic uint64_t *c) {
  return atomic_load_explicit(c, memory_order_relaxed);
}

/* How many loops count (rows per instance); set once at start-up. */
extern int spoke__stats_nloops;

#endif /* SPOKE_STATS_H */
