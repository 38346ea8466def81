/* blocker.c: a fixture plugin that blocks, for the stall watchdog tests.
 *
 *   GET /blocker/block?ms=N   ASYNC, logs "blocker: loop block start"
 *                             (a marker), blocks its I/O loop N ms
 *                             (nanosleep), then answers "blocked N ms":
 *                             a stall
 *   GET /blocker/sync?ms=N    SYNC, the same on a worker: allowed; logs
 *                             "blocker: sync start" first (a marker)
 *   GET /blocker/timer?ms=N   ASYNC, a 1 ms spoke timer whose callback
 *                             blocks N ms, then answers: a stall in a
 *                             timer callback
 *   GET /blocker/own?ms=N     ASYNC, a uv_timer_t of the plugin's own on
 *                             the request's loop, whose callback blocks N
 *                             ms, then answers: a loop blocked outside any
 *                             call spoke made
 *   GET /blocker/ok           ASYNC, answers "ok" at once
 *
 * N defaults to 0 and is capped at 10000.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <spoke.h>
#include <uv.h>

static long ms_of(spoke_request_t *req) {
  const char *v = spoke_request_query_param(req, "ms");
  long ms = v != NULL ? strtol(v, NULL, 10) : 0;
  return ms < 0 ? 0 : ms > 10000 ? 10000 : ms;
}

/* Sleeps MS milliseconds whatever signals come (nanosleep's remainder). */
static void block(long ms) {
  struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L}, rem;
  while (nanosleep(&ts, &rem) != 0)
    ts = rem;
}

static int answer(spoke_request_t *req, long ms) {
  char text[64];
  int n = snprintf(text, sizeof(text), "blocked %ld ms\n", ms);
  spoke_response_header(req, "Content-Type", "text/plain");
  return spoke_response_send(req, text, (size_t)n);
}

static int blocking(spoke_request_t *req) {
  long ms = ms_of(req);
  spoke_log(SPOKE_LOG_INFO, "blocker: loop block start (%ld ms)", ms);
  block(ms);
  return answer(req, ms);
}

static int sync_blocking(spoke_request_t *req) {
  long ms = ms_of(req);
  spoke_log(SPOKE_LOG_INFO, "blocker: sync start (%ld ms)", ms);
  block(ms);
  return answer(req, ms);
}

static void timer_fired(spoke_request_t *req) {
  long ms = (long)(intptr_t)spoke_request_data(req);
  block(ms);
  answer(req, ms);
}

static int timer(spoke_request_t *req) {
  spoke_request_set_data(req, (void *)(intptr_t)ms_of(req));
  return spoke_timer_start(req, 1, timer_fired);
}

typedef struct own_s {
  uv_timer_t timer;
  spoke_request_t *req;
  long ms;
} own_t;

static void own_closed(uv_handle_t *h) { free(h->data); }

static void own_fired(uv_timer_t *t) {
  own_t *own = t->data;
  block(own->ms);
  answer(own->req, own->ms);
  uv_close((uv_handle_t *)&own->timer, own_closed);
}

static int own(spoke_request_t *req) {
  own_t *o = malloc(sizeof(*o));
  if (o == NULL)
    return SPOKE_ENOMEM;
  o->req = req;
  o->ms = ms_of(req);
  o->timer.data = o;
  uv_timer_init(spoke_request_loop(req), &o->timer);
  uv_timer_start(&o->timer, own_fired, 0, 0);
  return 0;
}

static int ok(spoke_request_t *req) {
  spoke_response_header(req, "Content-Type", "text/plain");
  return spoke_response_send(req, "ok\n", 3);
}

static spoke_route_t routes[] = {
  { "GET", "/blocker/block", SPOKE_ASYNC, blocking },
  { "GET", "/blocker/sync", SPOKE_SYNC, sync_blocking },
  { "GET", "/blocker/timer", SPOKE_ASYNC, timer },
  { "GET", "/blocker/own", SPOKE_ASYNC, own },
  { "GET", "/blocker/ok", SPOKE_ASYNC, ok },
};

SPOKE_PLUGIN(.name = "blocker", .version = "1.0.0", SPOKE_ROUTES(routes));
