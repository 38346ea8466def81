/* offload.c: spoke_offload, "run this blocking call on the pool, then
 * go on here" (SDK 1.4): Quart's run_sync, asyncio's run_in_executor.
 *
 * The request itself is the pool's job (pool.c): offload_fn set means
 * "run FN(ARG)" instead of the route's handler. It is admitted by the
 * same rule as a sync handler (workers + --max-queue running or
 * waiting; past that SPOKE_EBUSY, for the plugin to answer 503), and
 * comes back to its loop through done_msg, where DONE runs.
 *
 * Lifetime: an OFFLOAD hold from submission until DONE has returned
 * keeps the request, and so its pin on the plugin version, alive even if
 * the client leaves (DONE is then told SPOKE_ECANCELED) or the core
 * answered 504 for the plugin meanwhile (timeouts.c leaves a request
 * with an OFFLOAD hold pinned). FN runs plugin code on a pool thread, so
 * the version must stay mapped until it returns: the pin sees to that.
 *
 * Threads: spoke__offload and DONE on the request's loop thread only;
 * FN on a pool thread, touching nothing of the request.
 */
#include "http/http.h"

static void offload_done(spoke__msg_t *msg) {
  spoke_request_t *req = SPOKE__CONTAINER_OF(msg, spoke_request_t, done_msg);
  spoke_offload_done_cb done = req->offload_done;
  void *arg = req->offload_arg;
  spoke__call_save_t save;
  int status = atomic_load(&req->aborted) ? SPOKE_ECANCELED : 0;

  req->offload_fn = NULL;
  req->offload_done = NULL;
  req->offload_arg = NULL;
  spoke__request_hold(req, SPOKE__HOLD_STACK);
  spoke__call_enter(&save, req->inst, "offload callback", req->route_index);
  done(req, arg, status);
  spoke__call_leave(&save);
  /* The core may have answered for the plugin (504) while the job ran,
   * and DONE did not complete the request either. */
  spoke__request_orphan_if_idle(req, SPOKE__HOLD_OFFLOAD);
  spoke__request_release(req, SPOKE__HOLD_OFFLOAD);
  spoke__request_release(req, SPOKE__HOLD_STACK);
}

int spoke__offload(spoke_request_t *req, spoke_offload_cb fn, void *arg,
                   spoke_offload_done_cb done) {
  if (fn == NULL || done == NULL)
    return SPOKE_EINVAL;
  if (!spoke__loop_is_current(req->loop))
    return SPOKE_ETHREAD;
  if (!atomic_load(&req->plugin_owes))
    return SPOKE_EALREADY; /* completed, or not an async request */
  if (req->inst == NULL)
    return SPOKE_ECANCELED; /* answered for the plugin and let go of */
  if (spoke__request_held(req, SPOKE__HOLD_OFFLOAD))
    return SPOKE_EBUSY;
  if (spoke__pool_admit(req->loop->shared) != 0)
    return SPOKE_EBUSY;
  req->offload_fn = fn;
  req->offload_arg = arg;
  req->offload_done = done;
  req->done_msg.run = offload_done;
  spoke__request_hold(req, SPOKE__HOLD_OFFLOAD);
  spoke__pool_submit(req);
  return 0;
}
