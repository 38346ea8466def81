/* host.c: the function table every plugin instance is handed.
 *
 * Each instance embeds its own copy of the table as its first member,
 * so calls that need to know which plugin is calling (logging) find the
 * instance from the table pointer the plugin passes back. The members
 * themselves live with their modules: request.c (accessors),
 * response.c (status, headers, send, write, end), timer.c, conffile.c
 * (a plugin's config section).
 */
#include <stdio.h>
#include <string.h>

#include "http/http.h"
#include "plugin/plugin.h"

static void host_logv(const spoke_host_t *host, int level, const char *fmt,
                      va_list ap) {
  const spoke__instance_t *inst = (const spoke__instance_t *)host;
  char tag[96];
  if (host == NULL) {
    spoke__logv_tagged(level, "plugin", fmt, ap);
    return;
  }
  snprintf(tag, sizeof(tag), "plugin %s", inst->name ? inst->name : "?");
  spoke__logv_tagged(level, tag, fmt, ap);
}

/* The plugin's [plugin NAME] section of the config file. */
static const char *host_config(const spoke_host_t *host, const char *key) {
  const spoke__instance_t *inst = (const spoke__instance_t *)host;
  if (host == NULL || key == NULL)
    return NULL;
  return spoke__conffile_lookup(inst->name, key);
}

/* A plugin's hold on its own loaded version (SDK 1.3): a reference on
 * the instance the table belongs to; see spoke__instance_hold. */
static int host_plugin_hold(const spoke_host_t *host) {
  if (host == NULL)
    return SPOKE_EINVAL;
  spoke__instance_hold((spoke__instance_t *)host);
  return 0;
}

/* On a loop thread the reference goes back once the plugin's callback
 * has returned (the release is usually the last thing a close callback
 * does, and the code after it is still the plugin's). */
static void host_plugin_release(const spoke_host_t *host) {
  spoke__instance_t *inst = (spoke__instance_t *)host;
  spoke__loop_t *loop;
  if (inst == NULL)
    return;
  if (spoke__instance_drop_hold(inst) != 0) {
    spoke__warn("plugin %s: spoke_plugin_release() without a hold "
                "(ignored)", inst->name);
    return;
  }
  loop = spoke__loop_current();
  if (loop != NULL)
    spoke__loop_defer_unref(loop, inst);
  else
    spoke__instance_unref(inst);
}

static void *host_plugin_state(const spoke_request_t *req) {
  const spoke__instance_t *inst = spoke__request_inst(req);
  return inst ? inst->state : NULL;
}

static spoke_host_t table;
static uv_once_t table_once = UV_ONCE_INIT;

static void table_init(void) {
  spoke_host_t *h = &table;
  memset(h, 0, sizeof(*h));
  h->struct_size = sizeof(*h);
  h->abi_major = SPOKE_ABI_MAJOR;
  h->abi_minor = SPOKE_ABI_MINOR;
  h->request_method = spoke__request_method;
  h->request_path = spoke__request_path;
  h->request_query = spoke__request_query;
  h->request_query_param = spoke__request_query_param;
  h->request_header = spoke__request_header;
  h->request_header_count = spoke__request_header_count;
  h->request_header_at = spoke__request_header_at;
  h->request_param = spoke__request_param;
  h->request_body = spoke__request_body;
  h->request_loop = spoke__request_loop;
  h->request_alloc = spoke__request_alloc;
  h->request_set_data = spoke__request_set_data;
  h->request_data = spoke__request_data;
  h->request_aborted = spoke__request_aborted;
  h->request_on_abort = spoke__request_on_abort;
  h->plugin_state = host_plugin_state;
  h->response_status = spoke__response_status;
  h->response_header = spoke__response_header;
  h->response_send = spoke__response_send;
  h->response_write = spoke__response_write;
  h->response_end = spoke__response_end;
  h->timer_start = spoke__timer_start;
  h->logv = host_logv;
  h->config = host_config;
  h->plugin_hold = host_plugin_hold;
  h->plugin_release = host_plugin_release;
  h->response_pending = spoke__response_pending;
  h->response_on_drain = spoke__response_on_drain;
  h->loop_state = spoke__loophooks_state;
  h->offload = spoke__offload;
  h->response_file = spoke__response_file;
  h->response_length = spoke__response_length;
}

const spoke_host_t *spoke__host_table(void) {
  uv_once(&table_once, table_init);
  return &table;
}

/* The ABI is frozen: these offsets may never change within SDK 1 (LP64).
 * New members go at the end of each struct. */
#if UINTPTR_MAX == 0xffffffffffffffffu
_Static_assert(offsetof(spoke_plugin_t, abi_major) == 0, "ABI");
_Static_assert(offsetof(spoke_plugin_t, abi_minor) == 2, "ABI");
_Static_assert(offsetof(spoke_plugin_t, struct_size) == 4, "ABI");
_Static_assert(offsetof(spoke_plugin_t, host) == 8, "ABI");
_Static_assert(offsetof(spoke_plugin_t, name) == 16, "ABI");
_Static_assert(offsetof(spoke_plugin_t, version) == 24, "ABI");
_Static_assert(offsetof(spoke_plugin_t, routes) == 32, "ABI");
_Static_assert(offsetof(spoke_plugin_t, nroutes) == 40, "ABI");
_Static_assert(offsetof(spoke_plugin_t, init) == 48, "ABI");
_Static_assert(offsetof(spoke_plugin_t, fini) == 56, "ABI");
_Static_assert(offsetof(spoke_plugin_t, handover) == 64, "ABI 1.1");
_Static_assert(offsetof(spoke_plugin_t, loop_init) == 72, "ABI 1.4");
_Static_assert(offsetof(spoke_plugin_t, loop_fini) == 80, "ABI 1.4");
_Static_assert(sizeof(spoke_plugin_t) == 88, "ABI");
_Static_assert(offsetof(spoke_route_t, method) == 0, "ABI");
_Static_assert(offsetof(spoke_route_t, path) == 8, "ABI");
_Static_assert(offsetof(spoke_route_t, mode) == 16, "ABI");
_Static_assert(offsetof(spoke_route_t, handler) == 24, "ABI");
_Static_assert(sizeof(spoke_route_t) == 32, "ABI");
_Static_assert(offsetof(spoke_host_t, struct_size) == 0, "ABI");
_Static_assert(offsetof(spoke_host_t, abi_major) == 4, "ABI");
_Static_assert(offsetof(spoke_host_t, abi_minor) == 6, "ABI");
_Static_assert(offsetof(spoke_host_t, request_method) == 8, "ABI");
_Static_assert(offsetof(spoke_host_t, request_body) == 8 + 8 * 8, "ABI");
_Static_assert(offsetof(spoke_host_t, plugin_state) == 8 + 15 * 8, "ABI");
_Static_assert(offsetof(spoke_host_t, response_status) == 8 + 16 * 8, "ABI");
_Static_assert(offsetof(spoke_host_t, response_end) == 8 + 20 * 8, "ABI");
_Static_assert(offsetof(spoke_host_t, timer_start) == 8 + 21 * 8, "ABI");
_Static_assert(offsetof(spoke_host_t, logv) == 8 + 22 * 8, "ABI");
_Static_assert(offsetof(spoke_host_t, config) == 8 + 23 * 8, "ABI 1.2");
_Static_assert(offsetof(spoke_host_t, plugin_hold) == 8 + 24 * 8, "ABI 1.3");
_Static_assert(offsetof(spoke_host_t, plugin_release) == 8 + 25 * 8, "ABI");
_Static_assert(offsetof(spoke_host_t, response_pending) == 8 + 26 * 8, "ABI");
_Static_assert(offsetof(spoke_host_t, response_on_drain) == 8 + 27 * 8,
               "ABI");
_Static_assert(offsetof(spoke_host_t, loop_state) == 8 + 28 * 8, "ABI 1.4");
_Static_assert(offsetof(spoke_host_t, offload) == 8 + 29 * 8, "ABI 1.4");
_Static_assert(offsetof(spoke_host_t, response_file) == 8 + 30 * 8, "ABI 1.5");
_Static_assert(offsetof(spoke_host_t, response_length) == 8 + 31 * 8, "ABI 1.5");
_Static_assert(sizeof(spoke_host_t) == 8 + 32 * 8, "ABI");
#endif
