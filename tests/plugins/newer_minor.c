/* newer_minor.c: a plugin as a future SDK (one minor newer than this
 * host's) would build it. Its descriptor claims abi_minor =
 * SPOKE_ABI_MINOR + 1 and is larger than this host's spoke_plugin_t: a
 * wrapper struct puts one more pointer (a "future hook") after the
 * descriptor this host knows, and is exported under the descriptor's
 * symbol name, so the symbol's size covers the claimed struct_size.
 * Everything the host knows is valid, so the loader must serve it and
 * log one warning naming what the plugin may miss.
 */
#include <spoke.h>

static int newer_minor_handler(spoke_request_t *req) {
  spoke_response_header(req, "Content-Type", "text/plain");
  return spoke_response_send(req, "newer minor\n", 12);
}

static void future_hook(void) {}

static const spoke_route_t routes[] = {
  { "GET", "/newerminor", SPOKE_ASYNC, newer_minor_handler },
};

typedef struct newer_descriptor_s {
  spoke_plugin_t known;        /* everything this host reads */
  void (*future_hook)(void);   /* a member a later minor would append */
} newer_descriptor_t;

__attribute__((visibility("hidden"))) const spoke_host_t *spoke_host;

__attribute__((visibility("default"))) const newer_descriptor_t
    spoke_plugin = {
  .known = {
    .abi_major = SPOKE_ABI_MAJOR,
    .abi_minor = SPOKE_ABI_MINOR + 1,
    .struct_size = sizeof(newer_descriptor_t),
    .host = &spoke_host,
    .name = "newer_minor",
    .version = "1.0.0",
    .routes = routes,
    .nroutes = sizeof(routes) / sizeof(routes[0]),
  },
  .future_hook = future_hook,
};
