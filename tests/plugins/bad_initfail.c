/* bad_initfail.c: a valid plugin whose init refuses to start. The loader
 * must refuse it (SPOKE_EINIT) and never publish GET /initfail.
 */
#include <spoke.h>

static int initfail_handler(spoke_request_t *req) {
  return spoke_response_send(req, "unreachable\n", 12);
}

static int initfail_init(const spoke_host_t *host, void **state) {
  (void)host;
  (void)state;
  return SPOKE_EINIT;
}

static const spoke_route_t routes[] = {
  { "GET", "/initfail", SPOKE_ASYNC, initfail_handler },
};

SPOKE_PLUGIN(.name = "bad_initfail", .version = "1", SPOKE_ROUTES(routes),
             .init = initfail_init);
