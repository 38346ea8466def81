/* bad.c: a fixture that crashes on request, for test_crash.py.
 *
 *   GET /bad/crash        SPOKE_SYNC: writes through a NULL pointer
 *   GET /bad/crash-async  SPOKE_ASYNC: the same, on the loop thread
 *   GET /bad/abort        SPOKE_ASYNC: calls abort()
 *   GET /bad/overflow     SPOKE_SYNC: recurses until its stack overflows
 *   GET /bad/ok           SPOKE_ASYNC: 200 "bad ok\n"
 *
 * With `crash = init` in its [plugin bad] config section, init writes
 * through a NULL pointer instead.
 */
#include <stdlib.h>
#include <string.h>

#include <spoke.h>

/* Both volatile: the compiler may neither know p is NULL nor drop the
 * store through it. */
static void write_null(void) {
  volatile int *volatile p = NULL;
  *p = 42;
}

static int crash(spoke_request_t *req) {
  (void)req;
  write_null();
  return 0;
}

static int crash_abort(spoke_request_t *req) {
  (void)req;
  abort();
}

/* Never reached: keeps the compiler from calling the recursion infinite. */
static volatile long depth_limit = -1;

/* A frame the compiler must keep (volatile, and used after the call, so
 * no tail call) on every level, until the guard page below the stack.
 * Small frames: the fault comes with the stack pointer just inside the
 * guard page, where the kernel can put no signal frame, so only an
 * alternate stack lets the handler run (a large frame could jump the
 * guard and land on a neighbouring mapping, hiding a missing one). */
static long recurse(volatile char *up, long depth) {
  volatile char frame[64];
  frame[0] = up != NULL ? up[0] : 1;
  if (depth == depth_limit)
    return frame[0];
  return recurse(frame, depth + 1) + frame[0];
}

static int overflow(spoke_request_t *req) {
  (void)req;
  return (int)recurse(NULL, 0);
}

static int ok(spoke_request_t *req) {
  spoke_response_header(req, "Content-Type", "text/plain");
  return spoke_response_send(req, "bad ok\n", 7);
}

static const spoke_route_t routes[] = {
  { "GET", "/bad/crash", SPOKE_SYNC, crash },
  { "GET", "/bad/crash-async", SPOKE_ASYNC, crash },
  { "GET", "/bad/abort", SPOKE_ASYNC, crash_abort },
  { "GET", "/bad/overflow", SPOKE_SYNC, overflow },
  { "GET", "/bad/ok", SPOKE_ASYNC, ok },
};

static int init(const spoke_host_t *host, void **state) {
  const char *when = spoke_config("crash");
  (void)host;
  (void)state;
  if (when != NULL && strcmp(when, "init") == 0)
    write_null();
  return 0;
}

SPOKE_PLUGIN(.name = "bad", .version = "1.0.0", SPOKE_ROUTES(routes),
             .init = init);
