/* bad_small.c: a descriptor with the right ABI version but a struct_size of
 * 8: just its three version and size fields, far smaller than the
 * spoke_plugin_t any host needs. The loader must refuse it as too small,
 * naming both sizes, and trust nothing past those 8 bytes.
 */
#include <spoke.h>

static int bad_small_handler(spoke_request_t *req) {
  return spoke_response_send(req, "unreachable\n", 12);
}

static const spoke_route_t routes[] = {
  { "GET", "/badsmall", SPOKE_ASYNC, bad_small_handler },
};

__attribute__((visibility("hidden"))) const spoke_host_t *spoke_host;

__attribute__((visibility("default"))) const spoke_plugin_t spoke_plugin = {
  .abi_major = SPOKE_ABI_MAJOR,
  .abi_minor = SPOKE_ABI_MINOR,
  .struct_size = 8,
  .host = &spoke_host,
  .name = "bad_small",
  .version = "1",
  .routes = routes,
  .nroutes = sizeof(routes) / sizeof(routes[0]),
};
