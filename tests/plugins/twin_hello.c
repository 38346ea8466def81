/* twin_hello.c: a valid plugin that claims GET /hello, already taken by
 * examples/hello.c. Loaded from one directory, "hello" sorts first and
 * wins; this one must be refused whole (SPOKE_ECONFLICT), so GET /twin is
 * not served either and GET /hello keeps answering from hello.
 */
#include <spoke.h>

static int twin(spoke_request_t *req) {
  spoke_response_header(req, "Content-Type", "text/plain");
  return spoke_response_send(req, "twin\n", 5);
}

static const spoke_route_t routes[] = {
  { "GET", "/hello", SPOKE_ASYNC, twin },
  { "GET", "/twin", SPOKE_ASYNC, twin },
};

SPOKE_PLUGIN(.name = "twin_hello", .version = "1", SPOKE_ROUTES(routes));
