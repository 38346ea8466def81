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
 * Around loop_fini the loop keeps a reference to the version until the
 * close callbacks of the handles the plugin closed there have run, so
 * the version's code is still mapped when they do. libuv runs close
 * callbacks at the end of the loop iteration, after the prepare phase
 * where deferred references go back (spoke__loop_defer_unref), and a
 * loop_fini run from a timer comes before that phase: so the reference
 * rides on a handle of the core's own, closed right after loop_fini,
 * whose close callback (in the same batch as the plugin's) defers it to
 * the next iteration's prepare phase.
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

/* loop_fini for INST on LOOP, keeping its code mapped through the close
 * callbacks that follow in this loop iteration. */
static void stop_here(spoke__loop_t *loop, spoke__instance_t *inst) {
  fini_guard_t *g = malloc(sizeof(*g));
  spoke__instance_ref(inst);
  spoke__perloop_stop(inst, loop->id, &loop->uv);
  if (g == NULL) { /* the plugin's close callbacks must be quick now */
    spoke__loop_defer_unref(loop, inst);
    return;
  }
  g->loop = loop;
  g->inst = inst;
  g->handle.data = g;
  uv_idle_init(&loop->uv, &g->handle);
  uv_close((uv_handle_t *)&g->handle, guard_closed);
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
      stop_here(loop, inst);
  }
}

void spoke__loophooks_unpinned(spoke__loop_t *loop, spoke__instance_t *inst) {
  spoke__perloop_t *slot = &inst->perloop[loop->id];
  if (--slot->requests == 0 && slot->retired)
    stop_here(loop, inst);
}

void *spoke__loophooks_state(const spoke_request_t *req) {
  const spoke__instance_t *inst = spoke__request_inst(req);
  if (inst == NULL || inst->perloop == NULL)
    return NULL;
  return inst->perloop[req->loop->id].state;
}
