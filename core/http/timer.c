/* timer.c: spoke_timer_start, "resume this request in MS milliseconds".
 *
 * Loop thread only: the timer is a uv_timer_t on the request's loop. Each
 * pending timer counts in req->ntimers, so the request (and the plugin
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
  req->ntimers--;
  spoke__request_maybe_free(req);
}

static void timer_fired(uv_timer_t *h) {
  timer_t_ *t = h->data;
  spoke_request_t *req = t->req;
  req->holds |= SPOKE__REQ_IN_CALLBACK;
  t->cb(req);
  req->holds &= ~(unsigned)SPOKE__REQ_IN_CALLBACK;
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
  req->ntimers++;
  return 0;
}
