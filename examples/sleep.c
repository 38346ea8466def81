/* sleep.c: waiting two ways, the C form of Flask's
 *
 *   time.sleep(2)              # blocks the worker thread
 *   await asyncio.sleep(2)     # parks the request, frees the thread
 *
 *   GET /sleep/sync?ms=N   ->  200 "Hello, World!" after N ms (SPOKE_SYNC)
 *   GET /sleep/async?ms=N  ->  200 "Hello, World!" after N ms (SPOKE_ASYNC)
 *
 * N defaults to 2000 and is clamped to 0..60000; anything but decimal
 * digits gets 400.
 *
 * Threading: /sleep/sync runs on a worker-pool thread, so it may block: it
 * calls nanosleep() and holds that pool thread the whole time. With W pool
 * threads, at most W such sleeps run at once; the rest queue (and past
 * --max-queue get 503). /sleep/async runs on an I/O loop thread and must
 * not block, so it asks the server for a timer with spoke_timer_start()
 * and returns at once; the loop keeps serving other requests and calls
 * done() on the same loop thread when the time is up. One loop can hold
 * thousands of such waiting requests.
 *
 * A sync handler must complete the request before it returns; an async
 * one may complete later, here from the timer callback.
 */
#include <errno.h>
#include <stdlib.h>
#include <time.h>

#include <spoke.h>

#define DEFAULT_MS 2000UL
#define MAX_MS 60000UL

/* Reads ?ms=N into *ms. Returns 0, or -1 when N is not a decimal number. */
static int parse_ms(spoke_request_t *req, unsigned long *ms) {
  const char *s = spoke_request_query_param(req, "ms");
  char *end;

  if (s == NULL) {
    *ms = DEFAULT_MS;
    return 0;
  }
  /* strtoul alone would accept " 5", "+5" and even "-5" (as a huge value). */
  if (*s < '0' || *s > '9')
    return -1;
  errno = 0;
  *ms = strtoul(s, &end, 10);
  if (*end != '\0')
    return -1;
  if (errno == ERANGE || *ms > MAX_MS)
    *ms = MAX_MS;
  return 0;
}

static int bad_request(spoke_request_t *req) {
  static const char body[] = "ms must be a number of milliseconds\n";

  spoke_response_status(req, 400);
  spoke_response_header(req, "Content-Type", "text/plain");
  return spoke_response_send(req, body, sizeof(body) - 1);
}

static int send_hello(spoke_request_t *req) {
  static const char body[] = "Hello, World!";

  spoke_response_header(req, "Content-Type", "text/plain");
  return spoke_response_send(req, body, sizeof(body) - 1);
}

/* SPOKE_SYNC: on a pool thread, blocking is allowed. */
static int sleep_sync(spoke_request_t *req) {
  unsigned long ms;
  struct timespec ts;

  if (parse_ms(req, &ms) != 0)
    return bad_request(req);
  ts.tv_sec = (time_t)(ms / 1000);
  ts.tv_nsec = (long)(ms % 1000) * 1000000L;
  /* A signal may cut the sleep short; nanosleep leaves what is left in ts. */
  while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
    ;
  return send_hello(req);
}

/* Timer callback: runs on the request's loop thread once the time is up. */
static void sleep_done(spoke_request_t *req) {
  /* If the client left meanwhile, the server discards this response. */
  send_hello(req);
}

/* SPOKE_ASYNC: on a loop thread, never block; resume later instead. */
static int sleep_async(spoke_request_t *req) {
  unsigned long ms;

  if (parse_ms(req, &ms) != 0)
    return bad_request(req);
  /* On failure the callback never runs and the client gets 500. */
  return spoke_timer_start(req, ms, sleep_done);
}

static const spoke_route_t routes[] = {
  { "GET", "/sleep/sync", SPOKE_SYNC, sleep_sync },
  { "GET", "/sleep/async", SPOKE_ASYNC, sleep_async },
};

SPOKE_PLUGIN(.name = "sleep", .version = "1.0.0", SPOKE_ROUTES(routes));
