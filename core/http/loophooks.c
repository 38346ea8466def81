/* loophooks.c: when a loop runs its plugins' per-loop hooks (SDK 1.4).
 *
 * plugin/perloop.c knows how to run loop_init and loop_fini; this file
 * decides when, on the loop's own thread:
 *   - loop_init, for every version in a snapshot the loop adopts: the
 *     first snapshot before uv_run starts, each published one before the
 *     loop routes a request through it. So a version's loop_init has run
 *     before it takes its first request on that loop.
 *   - loop_fini, for every version the loop routes to no more (left out
 *     of the snapshot it adopts, or all of them when the loop finishes
 *     draining), once the last request pinned in it on this loop is
 *     freed. Requests are counted per loop in the version's slot:
 *     dispatch counts one in, request.c's unpin counts it out.
 *
 * loop_fini never runs inside a call of the plugin's: the last request
 * is often freed inside its own spoke_response_send. A version due for
 * it goes on the loop's list of stops (one reference each) and the
 * loop's hooks_idle handle runs the list on the next turn, from a clean
 * stack; as the drained loop closes, the idle handle closes after it.
 *
 * Around loop_fini the loop keeps the version until the close callbacks
 * of the handles the plugin closed there have run, so its code is still
 * mapped when they do. libuv runs close callbacks at the end of the
 * iteration, after the prepare phase where deferred references go back
 * (spoke__loop_defer_unref), so the reference rides on a handle of the
 * core's own, closed right after loop_fini, whose close callback (in the
 * same batch as the plugin's) defers it to the next iteration.
 *
 * Loop thread only; versions without hooks have no slots and cost a
 * NULL test.
 */
#include <stdlib.h>

#include "http/http.h"

/* A reference to a version held until this iteration's close callbacks
 * have run. */
typedef struct fini_guard_s {
  uv_idle_t handle;
  spoke__loop_t *loop;
  spoke__instance_t *inst;
} fini_guard_t;

static void guard_closed(uv_handle_t *h) {
  fini_guard_t *g = h->data;
  spoke__loop_defer_unref(g->loop, g->inst);
  free(g);
}

/* loop_fini for INST on LOOP now, from a clean stack; the caller's
 * reference to INST is given back once this iteration's close callbacks
 * have run. */
static void stop_now(spoke__loop_t *loop, spoke__instance_t *inst) {
  fini_guard_t *g = malloc(sizeof(*g));
  spoke__perloop_stop(inst, loop->id, &loop->uv);
  if (g == NULL) { /* the plugin's close callbacks had better be quick */
    spoke__loop_defer_unref(loop, inst);
    return;
  }
  g->loop = loop;
  g->inst = inst;
  g->handle.data = g;
  uv_idle_init(&loop->uv, &g->handle);
  uv_close((uv_handle_t *)&g->handle, guard_closed);
}

static void run_stops(uv_idle_t *idle) {
  spoke__loop_t *loop = idle->data;
  /* Stops queued by a loop_fini below (none today) wait for the next
   * turn: take the list as it is. */
  spoke__instance_t **list = loop->stops;
  size_t n = loop->nstops;
  loop->stops = NULL;
  loop->nstops = loop->stops_cap = 0;
  uv_idle_stop(idle);
  for (size_t i = 0; i < n; i++)
    stop_now(loop, list[i]);
  free(list);
  if (loop->nstops > 0)
    uv_idle_start(idle, run_stops);
  else if (loop->hooks_closing && !loop->hooks_closed) {
    loop->hooks_closed = 1;
    uv_close((uv_handle_t *)idle, NULL);
  }
}

/* INST is due for loop_fini on LOOP: on the next turn. */
static void schedule_stop(spoke__loop_t *loop, spoke__instance_t *inst) {
  spoke__instance_ref(inst);
  if (loop->hooks_closed ||
      spoke__array_grow(&loop->stops, &loop->stops_cap, loop->nstops,
                        sizeof(*loop->stops)) != 0) {
    stop_now(loop, inst); /* after uv_run, or no memory for the list */
    return;
  }
  loop->stops[loop->nstops++] = inst;
  uv_idle_start(&loop->hooks_idle, run_stops);
}

/* The slot is retired and idle: loop_fini is due if loop_init ran. */
static void slot_done(spoke__loop_t *loop, spoke__instance_t *inst) {
  spoke__perloop_t *slot = &inst->perloop[loop->id];
  if (slot->phase == SPOKE__PERLOOP_RUNNING)
    schedule_stop(loop, inst);
  else /* no loop_fini owed: marked DONE, nothing of the plugin runs */
    spoke__perloop_stop(inst, loop->id, &loop->uv);
}

void spoke__loophooks_init(spoke__loop_t *loop) {
  uv_idle_init(&loop->uv, &loop->hooks_idle);
  loop->hooks_idle.data = loop;
}

void spoke__loophooks_adopt(spoke__loop_t *loop, spoke__snapshot_t *snap) {
  for (size_t i = 0; i < snap->ninst; i++)
    spoke__perloop_start(snap->inst[i], loop->id, &loop->uv);
}

void spoke__loophooks_retire(spoke__loop_t *loop, spoke__snapshot_t *old,
                             spoke__snapshot_t *now) {
  if (old == NULL)
    return;
  for (size_t i = 0; i < old->ninst; i++) {
    spoke__instance_t *inst = old->inst[i];
    spoke__perloop_t *slot;
    if (inst->perloop == NULL || (now != NULL && spoke__snapshot_has(now, inst)))
      continue;
    slot = &inst->perloop[loop->id];
    if (slot->retired)
      continue;
    slot->retired = 1;
    if (slot->requests == 0)
      slot_done(loop, inst);
  }
}

void spoke__loophooks_unpinned(spoke__loop_t *loop, spoke__instance_t *inst) {
  spoke__perloop_t *slot = &inst->perloop[loop->id];
  if (--slot->requests == 0 && slot->retired)
    slot_done(loop, inst);
}

void spoke__loophooks_close(spoke__loop_t *loop) {
  if (loop->hooks_closing)
    return;
  loop->hooks_closing = 1;
  if (loop->nstops == 0) {
    loop->hooks_closed = 1;
    uv_close((uv_handle_t *)&loop->hooks_idle, NULL);
  } /* else run_stops closes it once the list is done */
}

void spoke__loophooks_end(spoke__loop_t *loop) {
  /* After uv_run (a loop that ended without draining, a test's, or one
   * abandoned at start-up): what is still due runs now, and
   * spoke__loop_end runs the loop once more for the handles closed. */
  uv_handle_t *idle = (uv_handle_t *)&loop->hooks_idle;
  if (!uv_is_closing(idle))
    uv_close(idle, NULL);
  loop->hooks_closing = loop->hooks_closed = 1; /* no turn is left */
  for (size_t i = 0; i < loop->nstops; i++)
    stop_now(loop, loop->stops[i]);
  free(loop->stops);
  loop->stops = NULL;
  loop->nstops = loop->stops_cap = 0;
  spoke__loophooks_retire(loop, loop->snap, NULL);
}

void *spoke__loophooks_state(const spoke_request_t *req) {
  const spoke__instance_t *inst = spoke__request_inst(req);
  if (inst == NULL || inst->perloop == NULL)
    return NULL;
  return inst->perloop[req->loop->id].state;
}
