/* router.c: compiles route patterns and matches request paths.
 *
 * Paths and patterns are split on '/' after the leading one: "/" is one
 * empty segment, "/a/b" is "a","b". A wildcard "*" (last segment only)
 * takes the rest of the path, even nothing: a pattern ending "/static/" + "*" matches
 * "/static", "/static/" and "/static/a/b". Matching walks the path in
 * place and records parameters as offsets; it never copies or allocates,
 * so lookups are cheap and safe from any number of threads once
 * spoke__router_finish() has run. See router.h for precedence and
 * conflicts.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/base.h"
#include "plugin/router.h"

int spoke__route_compile(spoke__route_t *r, const char *method,
                         const char *pattern, char *err, size_t errlen) {
  const char *p, *end;
  size_t n = 0;

  memset(r, 0, sizeof(*r));
  if (method != NULL && strcmp(method, "*") != 0) {
    if (!spoke__is_token(method, strlen(method))) {
      snprintf(err, errlen, "method \"%s\" is not an HTTP token", method);
      return SPOKE_EINVAL;
    }
    r->method = method;
  }
  if (pattern == NULL || pattern[0] != '/') {
    snprintf(err, errlen, "path \"%s\" must start with '/'",
             pattern ? pattern : "(null)");
    return SPOKE_EINVAL;
  }
  r->pattern = pattern;
  p = pattern + 1;
  for (;;) {
    spoke__seg_t *s;
    end = strchr(p, '/');
    if (end == NULL)
      end = p + strlen(p);
    if (n == SPOKE__MAX_SEGMENTS) {
      snprintf(err, errlen, "path \"%s\" has more than %d segments", pattern,
               SPOKE__MAX_SEGMENTS);
      return SPOKE_EINVAL;
    }
    s = &r->segs[n++];
    if (end - p == 1 && p[0] == '*') {
      if (*end != '\0') {
        snprintf(err, errlen, "path \"%s\": '*' must be the last segment",
                 pattern);
        return SPOKE_EINVAL;
      }
      s->kind = SPOKE__SEG_WILDCARD;
      s->text = "*";
      s->len = 1;
    } else if (p[0] == ':') {
      if (end - p == 1) {
        snprintf(err, errlen, "path \"%s\": parameter without a name",
                 pattern);
        return SPOKE_EINVAL;
      }
      s->kind = SPOKE__SEG_PARAM;
      s->text = p + 1;
      s->len = (size_t)(end - p - 1);
    } else {
      s->kind = SPOKE__SEG_LITERAL;
      s->text = p;
      s->len = (size_t)(end - p);
    }
    if (*end == '\0')
      break;
    p = end + 1;
  }
  {
    size_t nparams = 0;
    for (size_t i = 0; i < n; i++)
      nparams += r->segs[i].kind != SPOKE__SEG_LITERAL;
    if (nparams > SPOKE__MAX_PARAMS) {
      snprintf(err, errlen, "path \"%s\" has more than %d parameters",
               pattern, SPOKE__MAX_PARAMS);
      return SPOKE_EINVAL;
    }
  }
  r->nsegs = n;
  return 0;
}

void spoke__router_init(spoke__router_t *rt) {
  rt->routes = NULL;
  rt->n = rt->cap = 0;
}

void spoke__router_free(spoke__router_t *rt) {
  free(rt->routes);
  spoke__router_init(rt);
}

static int same_shape(const spoke__route_t *a, const spoke__route_t *b) {
  if (a->nsegs != b->nsegs)
    return 0;
  for (size_t i = 0; i < a->nsegs; i++) {
    const spoke__seg_t *x = &a->segs[i], *y = &b->segs[i];
    if (x->kind != y->kind)
      return 0;
    if (x->kind == SPOKE__SEG_LITERAL &&
        (x->len != y->len || memcmp(x->text, y->text, x->len) != 0))
      return 0;
  }
  return 1;
}

static int methods_overlap(const spoke__route_t *a, const spoke__route_t *b) {
  return a->method == NULL || b->method == NULL ||
         strcmp(a->method, b->method) == 0;
}

int spoke__router_add(spoke__router_t *rt, const spoke__route_t *r,
                      const spoke__route_t **conflict) {
  for (size_t i = 0; i < rt->n; i++) {
    if (methods_overlap(&rt->routes[i], r) && same_shape(&rt->routes[i], r)) {
      if (conflict)
        *conflict = &rt->routes[i];
      return SPOKE_ECONFLICT;
    }
  }
  if (spoke__array_grow(&rt->routes, &rt->cap, rt->n,
                        sizeof(*rt->routes)) != 0)
    return SPOKE_ENOMEM;
  rt->routes[rt->n++] = *r;
  return 0;
}

void spoke__router_remove_instance(spoke__router_t *rt,
                                   const struct spoke__instance_s *inst) {
  size_t w = 0;
  for (size_t i = 0; i < rt->n; i++)
    if (rt->routes[i].inst != inst)
      rt->routes[w++] = rt->routes[i];
  rt->n = w;
}

/* Precedence order: segment by segment literal < param < wildcard, then
 * fewer segments first; within one shape HEAD first, then the other named
 * methods by name (so Allow lists come out in a fixed order), "any" last.
 * HEAD first lets a HEAD request take the first GET route it meets: an
 * explicit HEAD route of the same shape would have come before it. */
static int route_cmp(const void *pa, const void *pb) {
  const spoke__route_t *a = pa, *b = pb;
  size_t n = a->nsegs < b->nsegs ? a->nsegs : b->nsegs;
  for (size_t i = 0; i < n; i++) {
    const spoke__seg_t *x = &a->segs[i], *y = &b->segs[i];
    if (x->kind != y->kind)
      return (int)x->kind - (int)y->kind;
    if (x->kind == SPOKE__SEG_LITERAL) {
      size_t m = x->len < y->len ? x->len : y->len;
      int c = memcmp(x->text, y->text, m);
      if (c != 0)
        return c;
      if (x->len != y->len)
        return x->len < y->len ? -1 : 1;
    }
  }
  if (a->nsegs != b->nsegs)
    return a->nsegs < b->nsegs ? -1 : 1;
  if ((a->method == NULL) != (b->method == NULL))
    return a->method == NULL ? 1 : -1;
  if (a->method == NULL)
    return 0;
  if ((strcmp(a->method, "HEAD") == 0) != (strcmp(b->method, "HEAD") == 0))
    return strcmp(a->method, "HEAD") == 0 ? -1 : 1;
  return strcmp(a->method, b->method);
}

void spoke__router_finish(spoke__router_t *rt) {
  if (rt->n > 1)
    qsort(rt->routes, rt->n, sizeof(*rt->routes), route_cmp);
}

/* Matches the path shape of R against PATH; fills M's params. */
static int match_path(const spoke__route_t *r, const char *path, size_t len,
                      spoke__match_t *m) {
  size_t pos = 1, np = 0;
  for (size_t i = 0; i < r->nsegs; i++) {
    const spoke__seg_t *s = &r->segs[i];
    const char *end;
    size_t slen;
    if (s->kind == SPOKE__SEG_WILDCARD) {
      m->params[np].name = "*";
      m->params[np].name_len = 1;
      m->params[np].off = pos > len ? len : pos;
      m->params[np].len = pos > len ? 0 : len - pos;
      m->nparams = np + 1;
      return 1;
    }
    if (pos > len)
      return 0;
    end = memchr(path + pos, '/', len - pos);
    slen = end ? (size_t)(end - (path + pos)) : len - pos;
    if (s->kind == SPOKE__SEG_LITERAL) {
      if (slen != s->len || memcmp(path + pos, s->text, slen) != 0)
        return 0;
    } else {
      if (slen == 0)
        return 0;
      m->params[np].name = s->text;
      m->params[np].name_len = s->len;
      m->params[np].off = pos;
      m->params[np].len = slen;
      np++;
    }
    pos += slen + 1;
  }
  m->nparams = np;
  return pos == len + 1;
}

static void allow_add(char *allow, size_t cap, const char *method) {
  size_t mlen = strlen(method), used = strlen(allow);
  const char *p = allow;
  while ((p = strstr(p, method)) != NULL) {
    if ((p == allow || p[-1] == ' ') && (p[mlen] == ',' || p[mlen] == '\0'))
      return; /* already listed */
    p += mlen;
  }
  if (used + mlen + 3 > cap)
    return;
  if (used)
    strcat(allow, ", ");
  strcat(allow, method);
}

spoke__match_result_t spoke__router_match(const spoke__router_t *rt,
                                          const char *method,
                                          const char *path, size_t len,
                                          spoke__match_t *m) {
  int is_head = strcmp(method, "HEAD") == 0;
  int path_seen = 0;

  m->route = NULL;
  m->nparams = 0;
  m->allow[0] = '\0';
  if (len == 0 || path[0] != '/')
    return SPOKE__MATCH_NOT_FOUND;
  for (size_t i = 0; i < rt->n; i++) {
    const spoke__route_t *r = &rt->routes[i];
    if (!match_path(r, path, len, m))
      continue;
    path_seen = 1;
    if (r->method == NULL || strcmp(r->method, method) == 0 ||
        (is_head && strcmp(r->method, "GET") == 0)) {
      m->route = r;
      return SPOKE__MATCH_FOUND;
    }
    allow_add(m->allow, sizeof(m->allow), r->method);
    if (strcmp(r->method, "GET") == 0)
      allow_add(m->allow, sizeof(m->allow), "HEAD");
  }
  m->nparams = 0;
  return path_seen ? SPOKE__MATCH_METHOD_NOT_ALLOWED : SPOKE__MATCH_NOT_FOUND;
}
