/* versioned.c: one source, several builds (versioned_v1.so with -DVERSION=1,
 * versioned_v2.so with -DVERSION=2, ...), all named "versioned", for the hot
 * reload tests: swap one file for the other and see which code answers.
 *
 *   GET /v/async?ms=N  ->  "vV\n" after N ms (SPOKE_ASYNC, timer helper)
 *   GET /v/sync?ms=N   ->  "vV\n" after N ms (SPOKE_SYNC, nanosleep)
 *   GET /v/crash       ->  build 2 writes through a NULL pointer (the
 *                          quarantine tests' bad build); the others
 *                          answer "vV\n" (SPOKE_SYNC)
 *
 * N defaults to 0 (answer at once), is clamped to 60000, and anything but
 * decimal digits gets 400. A request that is waiting when the reload
 * happens must still answer with the version it started in.
 *
 * Threading: /v/async never blocks its loop; /v/sync blocks a pool thread.
 * No shared state.
 */
#include <errno.h>
#include <stdlib.h>
#include <time.h>

#include <spoke.h>

#ifndef VERSION
#error "build with -DVERSION=N (1, 2, 3, ...)"
#endif

#define STR_(x) #x
#define STR(x) STR_(x)

static const char body[] = "v" STR(VERSION) "\n";

static int parse_ms(spoke_request_t *req, unsigned long *ms) {
  const char *s = spoke_request_query_param(req, "ms");
  char *end;

  *ms = 0;
  if (s == NULL)
    return 0;
  if (*s < '0' || *s > '9')
    return -1;
  errno = 0;
  *ms = strtoul(s, &end, 10);
  if (*end != '\0')
    return -1;
  if (errno == ERANGE || *ms > 60000)
    *ms = 60000;
  return 0;
}

static int send_body(spoke_request_t *req) {
  spoke_response_header(req, "Content-Type", "text/plain");
  return spoke_response_send(req, body, sizeof(body) - 1);
}

static int bad_ms(spoke_request_t *req) {
  spoke_response_status(req, 400);
  spoke_response_header(req, "Content-Type", "text/plain");
  return spoke_response_send(req, "bad ms\n", 7);
}

static void v_async_done(spoke_request_t *req) {
  send_body(req);
}

static int v_async(spoke_request_t *req) {
  unsigned long ms;

  if (parse_ms(req, &ms) != 0)
    return bad_ms(req);
  if (ms == 0)
    return send_body(req);
  return spoke_timer_start(req, ms, v_async_done);
}

static int v_sync(spoke_request_t *req) {
  unsigned long ms;
  struct timespec ts;

  if (parse_ms(req, &ms) != 0)
    return bad_ms(req);
  ts.tv_sec = (time_t)(ms / 1000);
  ts.tv_nsec = (long)(ms % 1000) * 1000000L;
  while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
    ;
  return send_body(req);
}

/* Volatile: the compiler may not know it is NULL. */
static int *volatile nowhere;

static int v_crash(spoke_request_t *req) {
  if (VERSION == 2)
    *nowhere = 1;
  return send_body(req);
}

static const spoke_route_t routes[] = {
  { "GET", "/v/async", SPOKE_ASYNC, v_async },
  { "GET", "/v/sync", SPOKE_SYNC, v_sync },
  { "GET", "/v/crash", SPOKE_SYNC, v_crash },
};

SPOKE_PLUGIN(.name = "versioned", .version = STR(VERSION),
             SPOKE_ROUTES(routes));
