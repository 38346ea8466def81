/* timer.c: spoke_timer_start, "resume this request in MS milliseconds".
 *
 * Loop thread only: the timer is a uv_timer_t on the request's loop. Each
 * pending timer is a TIMER hold on the request, so it (and the plugin
 * version it is pinned to) outlives the timer even if the client left;
 * the callback then runs and its completion is discarded.
 */
#include <stdlib.h>

#include "http/http.h"

typedef struct timer_s {
  uv_timer_t handle;
  spoke_request_t *req;
  spoke_timer_cb cb;
} timer_t_;

static void timer_closed(uv_handle_t *h) {
  timer_t_ *t = h->data;
  spoke_request_t *req = t->req;
  free(t);
  /* The core may have answered for the plugin (504) while this timer
   * was pending, and the callback did not complete the request either. */
  spoke__request_orphan_if_idle(req, SPOKE__HOLD_TIMER);
  spoke__request_release(req, SPOKE__HOLD_TIMER);
}

static void timer_fired(uv_timer_t *h) {
  timer_t_ *t = h->data;
  spoke_request_t *req = t->req;
  spoke__call_save_t save;
  spoke__request_hold(req, SPOKE__HOLD_STACK);
  spoke__call_enter(&save, req->inst, "timer callback", req->route_index);
  t->cb(req);
  spoke__call_leave(&save);
  spoke__request_release(req, SPOKE__HOLD_STACK);
  uv_close((uv_handle_t *)&t->handle, timer_closed);
}

int spoke__timer_start(spoke_request_t *req, uint64_t ms, spoke_timer_cb cb) {
  timer_t_ *t;
  if (cb == NULL)
    return SPOKE_EINVAL;
  if (!spoke__loop_is_current(req->loop))
    return SPOKE_ETHREAD;
  t = malloc(sizeof(*t));
  if (t == NULL)
    return SPOKE_ENOMEM;
  t->req = req;
  t->cb = cb;
  t->handle.data = t;
  uv_timer_init(&req->loop->uv, &t->handle);
  uv_timer_start(&t->handle, timer_fired, ms, 0);
  spoke__request_hold(req, SPOKE__HOLD_TIMER);
  return 0;
}
