/* snapshot.c: immutable route tables over plugin instances.
 *
 * Built on the control thread from an ordered list of instances; an
 * instance whose routes collide with an earlier instance's is left out
 * whole (its other routes too), so a plugin is either fully served or
 * not at all. The caller is told why through a callback and decides what
 * to log: only the caller knows whether an older version keeps serving. Once built, a snapshot never changes: loops read it
 * without locks. The last unref frees the router and drops the
 * snapshot's reference on every instance.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <uv.h>

#include "plugin/plugin.h"

/* Adds every route of INST; on a conflict backs INST out and says why. */
static int add_instance(spoke__router_t *rt, spoke__instance_t *inst,
                        char *why, size_t whylen) {
  const spoke_plugin_t *d = inst->desc;
  for (size_t i = 0; i < d->nroutes; i++) {
    const spoke_route_t *sr = &d->routes[i];
    const spoke__route_t *other = NULL;
    spoke__route_t r;
    int rc = spoke__route_compile(&r, sr->method, sr->path, why, whylen);
    if (rc == 0) {
      r.mode = sr->mode;
      r.handler = sr->handler;
      r.inst = inst;
      r.index = (uint32_t)i;
      rc = spoke__router_add(rt, &r, &other);
    }
    if (rc != 0) {
      spoke__router_remove_instance(rt, inst);
      if (rc == SPOKE_ECONFLICT && other->inst == inst)
        snprintf(why, whylen, "%s %s is declared twice", sr->method,
                 sr->path);
      else if (rc == SPOKE_ECONFLICT)
        snprintf(why, whylen,
                 "route %s %s already taken by plugin %s (%s %s)",
                 sr->method, sr->path, other->inst->name,
                 other->method ? other->method : "*", other->pattern);
      else if (rc != SPOKE_EINVAL)
        snprintf(why, whylen, "%s", spoke_strerror(rc));
      return rc;
    }
  }
  return 0;
}

spoke__snapshot_t *spoke__snapshot_build(uint64_t generation,
                                         spoke__instance_t **inst, size_t n,
                                         spoke__refused_cb refused,
                                         void *ctx) {
  spoke__snapshot_t *s = calloc(1, sizeof(*s));
  if (s == NULL)
    return NULL;
  s->inst = calloc(n ? n : 1, sizeof(*s->inst));
  if (s->inst == NULL) {
    free(s);
    return NULL;
  }
  atomic_init(&s->refs, 1);
  s->generation = generation;
  spoke__router_init(&s->router);
  for (size_t i = 0; i < n; i++) {
    char why[256];
    if (add_instance(&s->router, inst[i], why, sizeof(why)) != 0) {
      if (refused != NULL)
        refused(ctx, inst[i], why);
      continue;
    }
    spoke__instance_ref(inst[i]);
    atomic_fetch_add(&inst[i]->snaps, 1);
    s->inst[s->ninst++] = inst[i];
  }
  spoke__router_finish(&s->router);
  return s;
}

int spoke__snapshot_has(const spoke__snapshot_t *s,
                        const spoke__instance_t *inst) {
  for (size_t i = 0; s != NULL && i < s->ninst; i++)
    if (s->inst[i] == inst)
      return 1;
  return 0;
}

void spoke__snapshot_ref(spoke__snapshot_t *s) {
  atomic_fetch_add_explicit(&s->refs, 1, memory_order_relaxed);
}

void spoke__snapshot_unref(spoke__snapshot_t *s) {
  if (s == NULL ||
      atomic_fetch_sub_explicit(&s->refs, 1, memory_order_acq_rel) != 1)
    return;
  spoke__router_free(&s->router);
  for (size_t i = 0; i < s->ninst; i++) {
    if (atomic_fetch_sub(&s->inst[i]->snaps, 1) == 1) /* retiring now */
      atomic_store(&s->inst[i]->retired_at, uv_hrtime());
    spoke__instance_unref(s->inst[i]);
  }
  free(s->inst);
  free(s);
}
