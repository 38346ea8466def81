/* perloop.c: running a plugin version's per-loop hooks (SDK 1.4).
 *
 * A plugin that owns loop-bound resources (a libpq pool, a curl multi
 * handle, poll watchers) declares loop_init and loop_fini. Each instance
 * of such a plugin has one slot per I/O loop (plugin.h,
 * spoke__perloop_t); the loop's thread, and only it, moves its slot
 * through IDLE -> RUNNING (or FAILED) -> DONE. When that happens is the
 * http layer's business (http/perloop_sched.c): here is only how, each
 * call bracketed by the call marker so that a crash or a stall inside
 * the hook names the plugin.
 *
 * Invariants: loop_init runs at most once per loop; loop_fini runs
 * exactly once per loop where loop_init succeeded, and never where it
 * did not; a FAILED slot is never retried (the version's routes answer
 * 503 on that loop, http/dispatch.c).
 */
#include <stddef.h>

#include "plugin/plugin.h"

int (*spoke__perloop_init_of(const spoke_plugin_t *d))(
    const spoke_host_t *, struct uv_loop_s *, void *, void **) {
  if (d->struct_size <
      offsetof(spoke_plugin_t, loop_init) + sizeof(d->loop_init))
    return NULL;
  return d->loop_init;
}

void (*spoke__perloop_fini_of(const spoke_plugin_t *d))(struct uv_loop_s *,
                                                        void *, void *) {
  if (d->struct_size <
      offsetof(spoke_plugin_t, loop_fini) + sizeof(d->loop_fini))
    return NULL;
  return d->loop_fini;
}

void spoke__perloop_start(spoke__instance_t *inst, int loop_id,
                          struct uv_loop_s *uv) {
  spoke__perloop_t *slot;
  spoke__call_save_t save;
  int (*init)(const spoke_host_t *, struct uv_loop_s *, void *, void **);
  int rc = 0;

  if (inst->perloop == NULL)
    return;
  slot = &inst->perloop[loop_id];
  if (slot->phase != SPOKE__PERLOOP_IDLE)
    return;
  init = spoke__perloop_init_of(inst->desc);
  if (init != NULL) {
    spoke__call_enter(&save, inst, "loop_init", SPOKE__CALL_NO_ROUTE);
    rc = init(&inst->host, uv, inst->state, &slot->state);
    spoke__call_leave(&save);
  }
  if (rc == 0) {
    slot->phase = SPOKE__PERLOOP_RUNNING;
    return;
  }
  slot->phase = SPOKE__PERLOOP_FAILED;
  slot->state = NULL;
  spoke__error("plugin %s %s: loop_init failed on loop %d: %s (%s); its "
               "routes answer 503 on that loop",
               inst->name, inst->version, loop_id, spoke_err_name(rc),
               spoke_strerror(rc));
}

void spoke__perloop_stop(spoke__instance_t *inst, int loop_id,
                         struct uv_loop_s *uv) {
  spoke__perloop_t *slot;
  spoke__call_save_t save;
  void (*fini)(struct uv_loop_s *, void *, void *);

  if (inst->perloop == NULL)
    return;
  slot = &inst->perloop[loop_id];
  if (slot->phase == SPOKE__PERLOOP_RUNNING &&
      (fini = spoke__perloop_fini_of(inst->desc)) != NULL) {
    spoke__call_enter(&save, inst, "loop_fini", SPOKE__CALL_NO_ROUTE);
    fini(uv, inst->state, slot->state);
    spoke__call_leave(&save);
  }
  slot->phase = SPOKE__PERLOOP_DONE;
  slot->state = NULL;
}
