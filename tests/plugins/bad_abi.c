/* bad_abi.c: a descriptor written by hand, not with SPOKE_PLUGIN, that
 * claims ABI major 99. Everything else is valid, so the loader must refuse
 * it for the ABI alone (SPOKE_EABI), naming both versions.
 */
#include <spoke.h>

static int bad_abi_handler(spoke_request_t *req) {
  return spoke_response_send(req, "unreachable\n", 12);
}

static const spoke_route_t routes[] = {
  { "GET", "/badabi", SPOKE_ASYNC, bad_abi_handler },
};

__attribute__((visibility("hidden"))) const spoke_host_t *spoke_host;

__attribute__((visibility("default"))) const spoke_plugin_t spoke_plugin = {
  .abi_major = 99,
  .abi_minor = 0,
  .struct_size = sizeof(spoke_plugin_t),
  .host = &spoke_host,
  .name = "bad_abi",
  .version = "1",
  .routes = routes,
  .nroutes = sizeof(routes) / sizeof(routes[0]),
};
