/* descriptor.c: decides whether a plugin's descriptor can be trusted.
 *
 * Checked in order, so that nothing is read that the plugin's declared
 * size does not cover: ABI major, struct size, the host slot, the name,
 * the route table and each route (method, path pattern, mode, handler).
 *
 * Newer minors: the rule is to load, with one warning. A plugin built
 * against a newer minor of SDK 1 (1.6 on this 1.5 host) is accepted: the
 * host functions it may lack here are missing from this host's table, and
 * a plugin tests them with SPOKE_HOST_HAS. Likewise a descriptor larger
 * than this host's spoke_plugin_t is accepted, but the host never reads
 * the bytes past its own struct, so a member appended there (a future
 * hook) is silently not used. The host cannot tell whether the plugin
 * needs what it lacks, nor name members it has never heard of, so it
 * refuses neither; spoke__descriptor_warning says what it can, once per
 * load (instance.c logs it, `spoke check` prints it). An older minor
 * needs no word: this host has everything it was built for.
 *
 * Pure: no I/O, no allocation beyond a scratch route on the stack.
 */
#include <stdio.h>
#include <string.h>

#include "plugin/plugin.h"

#define NAME_MAX_LEN 64
#define ROUTES_MAX 1024

/* The smallest descriptor this host can use: SDK 1.0's. */
#define DESC_V1_0_SIZE \
  (offsetof(spoke_plugin_t, fini) + sizeof(((spoke_plugin_t *)0)->fini))

static int name_ok(const char *name) {
  size_t n;
  if (name == NULL)
    return 0;
  n = strlen(name);
  if (n == 0 || n > NAME_MAX_LEN)
    return 0;
  for (size_t i = 0; i < n; i++) {
    char c = name[i];
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' ||
          c == '-'))
      return 0;
  }
  return 1;
}

int spoke__descriptor_warning(const spoke_plugin_t *d, char *buf,
                              size_t buflen) {
  int newer = d->abi_minor > SPOKE_ABI_MINOR;
  int larger = d->struct_size > sizeof(spoke_plugin_t);
  const char *ver = d->version != NULL ? d->version : "";
  size_t n;
  int w;

  if (buflen > 0)
    buf[0] = '\0';
  if (!newer && !larger)
    return 0;
  w = snprintf(buf, buflen,
               "plugin %s%s%s was built for SDK %u.%u; this host speaks "
               "%d.%d: ",
               d->name, ver[0] ? " " : "", ver, d->abi_major, d->abi_minor,
               SPOKE_ABI_MAJOR, SPOKE_ABI_MINOR);
  n = w > 0 ? (size_t)w : 0;
  if (newer && n < buflen) {
    w = snprintf(buf + n, buflen - n,
                 "host functions added after %d.%d are missing here (the "
                 "plugin must test them with SPOKE_HOST_HAS)%s",
                 SPOKE_ABI_MAJOR, SPOKE_ABI_MINOR, larger ? "; " : "");
    n += w > 0 ? (size_t)w : 0;
  }
  if (larger && n < buflen)
    snprintf(buf + n, buflen - n,
             "its descriptor has %zu bytes this host does not read "
             "(descriptor members added after %d.%d, such as new hooks, "
             "are ignored)",
             (size_t)d->struct_size - sizeof(spoke_plugin_t),
             SPOKE_ABI_MAJOR, SPOKE_ABI_MINOR);
  return 1;
}

int spoke__descriptor_check(const spoke_plugin_t *d, char *err,
                            size_t errlen) {
  spoke__route_t scratch;
  char why[160];

  if (d == NULL) {
    snprintf(err, errlen, "%s", spoke_strerror(SPOKE_ENODESC));
    return SPOKE_ENODESC;
  }
  if (d->abi_major != SPOKE_ABI_MAJOR) {
    snprintf(err, errlen,
             "SDK ABI version mismatch: plugin built for %u.%u, this host "
             "speaks %d.%d; rebuild the plugin against SDK %d",
             d->abi_major, d->abi_minor, SPOKE_ABI_MAJOR, SPOKE_ABI_MINOR,
             SPOKE_ABI_MAJOR);
    return SPOKE_EABI;
  }
  if (d->struct_size < DESC_V1_0_SIZE) {
    snprintf(err, errlen,
             "descriptor too small: %u bytes, SDK %d.0 needs at least %zu",
             d->struct_size, SPOKE_ABI_MAJOR, (size_t)DESC_V1_0_SIZE);
    return SPOKE_EDESC;
  }
  if (d->host == NULL) {
    snprintf(err, errlen, "descriptor has no host slot (use SPOKE_PLUGIN)");
    return SPOKE_EDESC;
  }
  if (!name_ok(d->name)) {
    snprintf(err, errlen,
             "plugin name must be 1-%d characters of [a-z0-9_-]",
             NAME_MAX_LEN);
    return SPOKE_EDESC;
  }
  if (d->routes == NULL || d->nroutes == 0 || d->nroutes > ROUTES_MAX) {
    snprintf(err, errlen, "plugin %s: needs 1 to %d routes (SPOKE_ROUTES)",
             d->name, ROUTES_MAX);
    return SPOKE_EDESC;
  }
  for (size_t i = 0; i < d->nroutes; i++) {
    const spoke_route_t *r = &d->routes[i];
    if (r->mode != SPOKE_SYNC && r->mode != SPOKE_ASYNC) {
      snprintf(err, errlen,
               "plugin %s: route %zu: mode must be SPOKE_SYNC or SPOKE_ASYNC",
               d->name, i);
      return SPOKE_EDESC;
    }
    if (r->handler == NULL) {
      snprintf(err, errlen, "plugin %s: route %zu: no handler", d->name, i);
      return SPOKE_EDESC;
    }
    if (r->method == NULL) {
      snprintf(err, errlen, "plugin %s: route %zu: no method (use \"*\")",
               d->name, i);
      return SPOKE_EDESC;
    }
    if (spoke__route_compile(&scratch, r->method, r->path, why,
                             sizeof(why)) != 0) {
      snprintf(err, errlen, "plugin %s: route %zu: %s", d->name, i, why);
      return SPOKE_EDESC;
    }
  }
  spoke__descriptor_warning(d, err, errlen);
  return 0;
}
