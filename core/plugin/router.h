/* router.h: path patterns compiled to segments, and the lookup.
 *
 * A pattern is "/"-separated segments: literal ("users"), parameter
 * (":id", matches one non-empty segment) or, last only, "*" (matches the
 * rest, possibly empty). A router is built once (add routes, then
 * finish) and is immutable afterwards, so any number of threads may match
 * against it at once. Routes point into strings owned by the plugin
 * instance that declared them; the snapshot holding the router keeps that
 * instance loaded.
 *
 * Precedence, at each segment from the left: literal before parameter
 * before wildcard, so "/users/me" wins over "/users/:id". Two routes
 * conflict when they have the same method (or either is "*") and the
 * same shape (same literals, parameters and wildcard in the same places,
 * whatever the parameter names).
 */
#ifndef SPOKE_ROUTER_H
#define SPOKE_ROUTER_H

#include <stddef.h>

#include "spoke.h"

#define SPOKE__MAX_SEGMENTS 32
#define SPOKE__MAX_PARAMS 16

struct spoke__instance_s;

typedef enum {
  SPOKE__SEG_LITERAL = 0,
  SPOKE__SEG_PARAM = 1,
  SPOKE__SEG_WILDCARD = 2
} spoke__seg_kind_t;

typedef struct spoke__seg_s {
  spoke__seg_kind_t kind;
  const char *text; /* literal text, or the parameter's name without ':' */
  size_t len;
} spoke__seg_t;

typedef struct spoke__route_s {
  const char *method;  /* NULL for any method */
  const char *pattern; /* as declared */
  spoke_mode_t mode;
  spoke_handler_cb handler;
  struct spoke__instance_s *inst; /* not owned: the snapshot pins it */
  uint32_t index;                 /* in inst's descriptor routes */
  size_t nsegs;
  spoke__seg_t segs[SPOKE__MAX_SEGMENTS];
} spoke__route_t;

typedef struct spoke__router_s {
  spoke__route_t *routes; /* sorted by precedence after finish */
  size_t n;
  size_t cap;
} spoke__router_t;

typedef struct spoke__param_s {
  const char *name; /* points into the pattern; not NUL-terminated */
  size_t name_len;
  size_t off;       /* value: path[off .. off+len) */
  size_t len;
} spoke__param_t;

typedef enum {
  SPOKE__MATCH_FOUND = 0,
  SPOKE__MATCH_NOT_FOUND = 1,          /* 404 */
  SPOKE__MATCH_METHOD_NOT_ALLOWED = 2  /* 405, see allow */
} spoke__match_result_t;

typedef struct spoke__match_s {
  const spoke__route_t *route;
  size_t nparams;
  spoke__param_t params[SPOKE__MAX_PARAMS];
  char allow[128]; /* "GET, HEAD, POST" for 405 */
} spoke__match_t;

/* Compiles PATTERN for METHOD ("*" or NULL: any) into R. On error returns
 * SPOKE_EINVAL and writes why into ERR. */
int spoke__route_compile(spoke__route_t *r, const char *method,
                         const char *pattern, char *err, size_t errlen);

void spoke__router_init(spoke__router_t *rt);
void spoke__router_free(spoke__router_t *rt);

/* Adds R (copied). SPOKE_ECONFLICT if an existing route has the same
 * method and shape; *conflict then points at it. */
int spoke__router_add(spoke__router_t *rt, const spoke__route_t *r,
                      const spoke__route_t **conflict);

/* Drops every route of INST (used to back out a refused plugin). */
void spoke__router_remove_instance(spoke__router_t *rt,
                                   const struct spoke__instance_s *inst);

/* Sorts by precedence. Call once after the last add. */
void spoke__router_finish(spoke__router_t *rt);

/* Looks PATH[0..len) up for METHOD. HEAD matches GET routes. */
spoke__match_result_t spoke__router_match(const spoke__router_t *rt,
                                          const char *method,
                                          const char *path, size_t len,
                                          spoke__match_t *m);

#endif /* SPOKE_ROUTER_H */
