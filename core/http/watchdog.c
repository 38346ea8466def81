/* watchdog.c: which plugin call holds an I/O loop, and for how long.
 *
 * An async handler (or a timer, abort or drain callback) that blocks
 * holds its whole loop: every other connection of that loop waits. The
 * watchdog finds out who, without costing the request path more than
 * what plugin/call.c already does (relaxed stores, no clock read):
 *
 * - Each loop bumps its heartbeat once per iteration (loop.c's prepare
 *   callback) and publishes the address of its thread's call record
 *   (loop->call) while it runs.
 * - The watchdog thread (spoke-watchdog) looks at every loop each tick
 *   (--stall-warn / 4, at least 5 ms). A loop whose heartbeat has not
 *   moved, and whose record shows the same call (seq and depth, depth >
 *   0) as at the look before, has been inside that one call since. Once
 *   that has lasted --stall-warn (counted from the first look that saw
 *   the call: it surely ran that long), the watchdog sets the record's
 *   stalled_at to the estimated start: the look before the first that
 *   saw it, so what is reported is never less than the truth and at most
 *   one tick more. It reads only the record's atomics and never follows
 *   its instance pointer.
 * - When the call returns, spoke__call_leave runs the stall hook below on
 *   the loop's own thread, where the instance is surely still loaded: it
 *   logs one warning naming the plugin, version, route and mode, and
 *   counts the stall and its duration in the instance's row for the route
 *   and this loop (plugin/counts.h; /metrics: spoke_loop_stalls_total and
 *   spoke_loop_stall_seconds_total).
 * - A heartbeat frozen with depth 0 is a loop blocked outside any call
 *   spoke made into a plugin: a plugin's own libuv callback, or the core.
 *   An idle loop turns at least every SPOKE__LAG_PERIOD_MS (its lag
 *   timer), so a heartbeat frozen longer than that plus --stall-warn is
 *   a loop blocked for at least --stall-warn: the watchdog logs it once
 *   per frozen heartbeat, as nobody else can.
 *
 * - The hard limit (--stall-kill): a call seen holding its loop for
 *   kill_ms or more (counted, like the warning, from the first look that
 *   saw it, so never early) is handed to the on_kill callback the
 *   control floor installed, once per call, from the watchdog thread,
 *   with the estimated time held (from the look before: at least
 *   kill_ms). Just before, the record is read again: a call that has
 *   returned meanwhile is not reported. The callback runs while the
 *   loop's record is being read (call_reading), so the record stays
 *   valid; the instance it points at is loaded while the call is still
 *   in progress, which is the case the callback is for (it kills the
 *   process). The warning and the kill are independent: either may be
 *   off (0), and the watchdog runs when either is on, ticking at a
 *   quarter of the smaller one (at least 5 ms).
 *
 * Only loops are watched: sync handlers run on the workers, which are
 * there to block (their long jobs show in /status, pool.c).
 *
 * Threads: start and stop run on the control thread, the rest of the
 * watchdog on its own; the per-loop state below is the watchdog's alone.
 * A record is read only between loop->call_reading = 1 and = 0 and only
 * while loop->call is set (loop.c's end waits for the read to finish).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>

#include "http/http.h"

/* What the watchdog saw of one loop at its last look. */
typedef struct seen_s {
  uint64_t heartbeat;
  unsigned seq;
  int depth;
  uint64_t first;   /* the first look that saw this (heartbeat, seq,
                       depth) */
  uint64_t before;  /* the look before that one: the estimated start */
  int marked;       /* stalled_at set for this call */
  int killed;       /* on_kill called for this call */
  int logged;       /* "blocked outside" logged for this heartbeat */
} seen_t;

static struct {
  spoke__loop_t *loops;
  int n;
  uint64_t warn_ns, tick_ms; /* warn_ns 0: no warnings */
  uint64_t kill_ns;          /* 0: no hard limit */
  spoke__stall_kill_cb on_kill;
  seen_t *seen;
  uint64_t last_look;
  uv_thread_t thread;
  uv_mutex_t mu;   /* guards stop, for the thread's timed wait */
  uv_cond_t cv;
  int stop;
  int running;
} wd;

/* ---- on the stalled loop's thread, when the call returns ---- */

static void stall_hook(const spoke__call_t *call, uint64_t stalled_at) {
  spoke__loop_t *loop = spoke__loop_current();
  const spoke__instance_t *inst =
      atomic_load_explicit(&call->inst, memory_order_relaxed);
  const char *what = atomic_load_explicit(&call->what, memory_order_relaxed);
  uint32_t ri = atomic_load_explicit(&call->route, memory_order_relaxed);
  uint64_t now = uv_hrtime();
  uint64_t us = now > stalled_at ? (now - stalled_at) / 1000 : 0;
  const spoke_route_t *route = NULL;
  char where[384];

  if (loop == NULL || inst == NULL)
    return; /* only loop threads are watched, and only plugin calls */
  if (what == NULL)
    what = "call";
  if (ri != SPOKE__CALL_NO_ROUTE && ri < inst->desc->nroutes)
    route = &inst->desc->routes[ri];
  if (route != NULL && strcmp(what, "handler") == 0)
    snprintf(where, sizeof(where), "%s %s (%s): this handler blocks; make it "
             "SPOKE_SYNC or move the blocking work off the loop",
             route->method ? route->method : "*", route->path,
             route->mode == SPOKE_SYNC ? "sync" : "async");
  else if (route != NULL)
    snprintf(where, sizeof(where), "%s of %s %s: this callback blocks; move "
             "the blocking work off the loop",
             what, route->method ? route->method : "*", route->path);
  else
    snprintf(where, sizeof(where), "%s: this callback blocks; move the "
             "blocking work off the loop", what);
  /* This loop's row of the route: this thread is its only writer.
   * Counted before the line is logged, so whoever reads the line finds
   * the stall in /metrics. */
  if (route != NULL && inst->counts != NULL && ri < inst->counts_nroutes &&
      loop->id < spoke__stats_nloops) {
    spoke__route_counts_t *row =
        &inst->counts[(size_t)loop->id * inst->counts_nroutes + ri];
    spoke__stat_add(&row->stalls, 1);
    spoke__stat_add(&row->stall_us, us);
  }
  spoke__warn("loop %d blocked %llu ms by plugin %s %s, %s", loop->id,
              (unsigned long long)(us / 1000), inst->name, inst->version,
              where);
}

/* ---- the watchdog thread ---- */

/* Marks REC stalled since START, unless the call at SEQ has ended
 * meanwhile (then the mark is taken back, if the loop has not taken it:
 * a later call in the same iteration must not be blamed). */
static void mark(spoke__call_t *rec, unsigned seq, uint64_t start) {
  uint64_t zero = 0;
  if (!atomic_compare_exchange_strong(&rec->stalled_at, &zero, start))
    return; /* already marked */
  if (atomic_load(&rec->seq) != seq ||
      atomic_load(&rec->depth) <= 0) {
    uint64_t mine = start;
    atomic_compare_exchange_strong(&rec->stalled_at, &mine, 0);
  }
}

static void look(int i, uint64_t now) {
  spoke__loop_t *loop = &wd.loops[i];
  seen_t *s = &wd.seen[i];
  spoke__call_t *rec;
  uint64_t hb;
  unsigned seq;
  int depth;

  atomic_store(&loop->call_reading, 1);
  rec = atomic_load(&loop->call);
  if (rec == NULL) { /* not running yet, or ended */
    atomic_store(&loop->call_reading, 0);
    return;
  }
  hb = atomic_load_explicit(&loop->heartbeat, memory_order_relaxed);
  depth = atomic_load_explicit(&rec->depth, memory_order_acquire);
  seq = atomic_load_explicit(&rec->seq, memory_order_relaxed);
  if (hb != s->heartbeat || seq != s->seq || depth != s->depth) {
    if (hb != s->heartbeat)
      s->logged = 0;
    s->heartbeat = hb;
    s->seq = seq;
    s->depth = depth;
    s->first = now;
    s->before = wd.last_look;
    s->marked = 0;
    s->killed = 0;
  } else if (depth > 0) {
    if (wd.warn_ns != 0 && !s->marked && now - s->first >= wd.warn_ns) {
      mark(rec, seq, s->before);
      s->marked = 1;
    }
    if (wd.kill_ns != 0 && !s->killed && now - s->first >= wd.kill_ns) {
      s->killed = 1;
      /* Still the same call? (It may have returned since the loads.) */
      if (atomic_load(&rec->seq) == seq && atomic_load(&rec->depth) > 0 &&
          atomic_load_explicit(&loop->heartbeat, memory_order_relaxed) ==
              hb)
        wd.on_kill(loop->id, rec, (now - s->before) / 1000000);
    }
  } else if (wd.warn_ns != 0 && !s->logged &&
             now - s->first >=
                 wd.warn_ns + SPOKE__LAG_PERIOD_MS * 1000000ull) {
    spoke__warn("loop %d blocked over %llu ms outside a plugin call spoke "
                "made (a plugin's own libuv callback, or the core)",
                loop->id,
                (unsigned long long)((now - s->first) / 1000000 -
                                     SPOKE__LAG_PERIOD_MS));
    s->logged = 1;
  }
  atomic_store(&loop->call_reading, 0);
}

static void watchdog_main(void *arg) {
  (void)arg;
  prctl(PR_SET_NAME, "spoke-watchdog", 0, 0, 0);
  uv_mutex_lock(&wd.mu);
  while (!wd.stop) {
    uint64_t now;
    uv_cond_timedwait(&wd.cv, &wd.mu, wd.tick_ms * 1000000ull);
    if (wd.stop)
      break;
    uv_mutex_unlock(&wd.mu);
    now = uv_hrtime();
    for (int i = 0; i < wd.n; i++)
      look(i, now);
    wd.last_look = now;
    uv_mutex_lock(&wd.mu);
  }
  uv_mutex_unlock(&wd.mu);
}

int spoke__watchdog_start(spoke__loop_t *loops, int n, uint64_t warn_ms,
                          uint64_t kill_ms, spoke__stall_kill_cb on_kill) {
  uint64_t least;
  int rc;
  if (on_kill == NULL)
    kill_ms = 0;
  if ((warn_ms == 0 && kill_ms == 0) || wd.running)
    return 0;
  spoke__call_set_stall_hook(stall_hook);
  wd.seen = calloc((size_t)n, sizeof(*wd.seen));
  if (wd.seen == NULL)
    return SPOKE_ENOMEM;
  wd.loops = loops;
  wd.n = n;
  wd.warn_ns = warn_ms * 1000000ull;
  wd.kill_ns = kill_ms * 1000000ull;
  wd.on_kill = on_kill;
  least = warn_ms == 0 ? kill_ms
          : kill_ms == 0 ? warn_ms
          : warn_ms < kill_ms ? warn_ms : kill_ms;
  wd.tick_ms = least / 4 < 5 ? 5 : least / 4;
  wd.last_look = uv_hrtime();
  for (int i = 0; i < n; i++) /* as if each loop turned just now */
    wd.seen[i].first = wd.seen[i].before = wd.last_look;
  wd.stop = 0;
  uv_mutex_init(&wd.mu);
  uv_cond_init(&wd.cv);
  rc = uv_thread_create(&wd.thread, watchdog_main, NULL);
  if (rc != 0) {
    uv_cond_destroy(&wd.cv);
    uv_mutex_destroy(&wd.mu);
    free(wd.seen);
    wd.seen = NULL;
    return rc;
  }
  wd.running = 1;
  return 0;
}

void spoke__watchdog_stop(void) {
  if (!wd.running)
    return;
  uv_mutex_lock(&wd.mu);
  wd.stop = 1;
  uv_cond_signal(&wd.cv);
  uv_mutex_unlock(&wd.mu);
  uv_thread_join(&wd.thread);
  uv_cond_destroy(&wd.cv);
  uv_mutex_destroy(&wd.mu);
  free(wd.seen);
  wd.seen = NULL;
  wd.loops = NULL;
  wd.n = 0;
  wd.warn_ns = wd.kill_ns = 0;
  wd.on_kill = NULL;
  wd.running = 0;
}
