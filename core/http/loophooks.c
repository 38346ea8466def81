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
 * Around loop_fini the loop keeps a reference to the version and gives
 * it back only before its next poll (spoke__loop_defer_unref): handles
 * the plugin closed in loop_fini have their close callbacks run first,
 * so the version's code is still mapped when they do.
 *
 * Loop thread only; versions without hooks have no slots and cost a
 * NULL test.
 */
#include "http/http.h"

/* loop_fini for INST on LOOP, keeping its code mapped through the close
 * callbacks that follow in this loop iteration. */
static void stop_here(spoke__loop_t *loop, spoke__instance_t *inst) {
  spoke__instance_ref(inst);
  spoke__perloop_stop(inst, loop->id, &loop->uv);
  spoke__loop_defer_unref(loop, inst);
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
