/* configured.c: a fixture that reads its [plugin configured] section.
 *
 *   GET PREFIX/KEY  ->  200 with the value of KEY in the plugin's config
 *                       section, or 404 "unset" when the key is absent
 *
 * PREFIX is "/configured" unless the section sets `prefix`: init writes
 * the route's path from it, which the server checks again after init
 * (a prefix without a leading '/' must get the plugin refused). Init
 * fails when the section sets `fail = yes`.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <spoke.h>

static int show(spoke_request_t *req) {
  const char *key = spoke_request_param(req, "key");
  const char *v = key ? spoke_config(key) : NULL;
  spoke_response_header(req, "Content-Type", "text/plain");
  if (v == NULL) {
    spoke_response_status(req, 404);
    return spoke_response_send(req, "unset", 5);
  }
  return spoke_response_send(req, v, strlen(v));
}

static spoke_route_t routes[] = {
  { "GET", "/configured/:key", SPOKE_ASYNC, show },
};

static char *path; /* routes[0].path when the config set a prefix */

static int init(const spoke_host_t *host, void **state) {
  const char *prefix = spoke_config("prefix");
  const char *fail = spoke_config("fail");
  (void)host;
  (void)state;
  if (fail != NULL && strcmp(fail, "yes") == 0)
    return SPOKE_EINVAL;
  if (prefix != NULL) {
    size_t n = strlen(prefix) + sizeof("/:key");
    path = malloc(n);
    if (path == NULL)
      return SPOKE_ENOMEM;
    snprintf(path, n, "%s/:key", prefix);
    routes[0].path = path;
  }
  return 0;
}

static void fini(void *state) {
  (void)state;
  free(path);
  path = NULL;
}

SPOKE_PLUGIN(.name = "configured", .version = "1.0.0",
             SPOKE_ROUTES(routes), .init = init, .fini = fini);
