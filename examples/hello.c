/* hello.c: the smallest useful spoke plugin.
 *
 * It shows the three pieces every plugin has: a handler, a route table
 * and the SPOKE_PLUGIN descriptor, the one symbol the .so exports.
 *
 *   GET /hello       ->  200 "Hello, World!" (text/plain), SPOKE_ASYNC
 *   GET /hello/sync  ->  the same handler as SPOKE_SYNC, on a pool thread
 *
 * Threading: /hello is SPOKE_ASYNC, so the handler runs on an I/O loop
 * thread and must not block. It does not need to: it completes the request
 * at once with spoke_response_send(), which copies the body, so a string
 * literal (or a stack buffer) is fine. The handler keeps no state, so it
 * is safe to run on every loop at the same time, and as /hello/sync on
 * any pool thread too: the benchmarks compare the two modes with it.
 *
 * Build it with spoke_add_plugin(hello hello.c) and drop hello.so into the
 * server's plugins directory; replacing the file later reloads it.
 */
#include <spoke.h>

static int hello(spoke_request_t *req) {
  static const char body[] = "Hello, World!";

  spoke_response_header(req, "Content-Type", "text/plain");
  /* Returns 0, or a negative SPOKE_E* code the server logs. */
  return spoke_response_send(req, body, sizeof(body) - 1);
}

static const spoke_route_t routes[] = {
  { "GET", "/hello", SPOKE_ASYNC, hello },
  { "GET", "/hello/sync", SPOKE_SYNC, hello },
};

SPOKE_PLUGIN(.name = "hello", .version = "1.0.0", SPOKE_ROUTES(routes));
