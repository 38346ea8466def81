/* test_router.c: route patterns, conflicts, precedence and matching
 * (core/plugin/router.c), as tables: patterns that compile (and to which
 * segments) or not (and why), routes that conflict or not, and lookups
 * of a method and path in a set of routes (result, route, parameters,
 * Allow). Every lookup runs with the routes added in the table's order
 * and in reverse: precedence comes from finish, not from add.
 *
 * Routes here belong to no real plugin instance; where an instance
 * pointer matters (remove_instance) the addresses of local objects stand
 * in for instances, never dereferenced.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "base/base.h"
#include "plugin/router.h"

#define COUNT(a) (sizeof(a) / sizeof((a)[0]))
#define MAX_ROUTES 10

/* ---- helpers ---- */

static spoke__route_t compile_ok(const char *method, const char *pattern) {
  spoke__route_t r;
  char err[160] = "";
  int rc = spoke__route_compile(&r, method, pattern, err, sizeof(err));
  if (rc != 0)
    fail_msg("compile %s %s: %s", method ? method : "(null)", pattern, err);
  return r;
}

static void add_ok(spoke__router_t *rt, const char *method,
                   const char *pattern) {
  spoke__route_t r = compile_ok(method, pattern);
  assert_int_equal(spoke__router_add(rt, &r, NULL), 0);
}

/* "METHOD /pattern" ("*" for any method) split into its two halves; the
 * method is copied into MBUF, the pattern points into SPEC. */
static const char *split_route(const char *spec, char *mbuf, size_t mlen) {
  const char *sp = strchr(spec, ' ');
  if (sp == NULL || (size_t)(sp - spec) >= mlen)
    fail_msg("bad route spec \"%s\"", spec);
  memcpy(mbuf, spec, (size_t)(sp - spec));
  mbuf[sp - spec] = '\0';
  return sp + 1;
}

/* A route as "METHOD /pattern", "*" for any method. */
static void route_name(const spoke__route_t *r, char *buf, size_t len) {
  snprintf(buf, len, "%s %s", r->method ? r->method : "*", r->pattern);
}

/* Adds "METHOD /pattern" routes (method buffers in MBUF) to RT; 0, or -1
 * with why in WHY. */
static int add_specs(spoke__router_t *rt, const char *const *specs, size_t n,
                     int reverse, char (*mbuf)[16], char *why, size_t wlen) {
  for (size_t k = 0; k < n; k++) {
    size_t i = reverse ? n - 1 - k : k;
    const char *pattern = split_route(specs[i], mbuf[i], sizeof(mbuf[i]));
    spoke__route_t r;
    char err[160] = "";
    int rc = spoke__route_compile(&r, mbuf[i], pattern, err, sizeof(err));
    if (rc == 0)
      rc = spoke__router_add(rt, &r, NULL);
    if (rc != 0) {
      snprintf(why, wlen, "adding %s: %d %s", specs[i], rc, err);
      return -1;
    }
  }
  return 0;
}

/* ALLOW, a ", "-separated list, holds exactly the methods in WANT (same
 * syntax), each once, in any order, separated by exactly ", ". Returns
 * 0, or -1 with why in WHY. */
static int check_allow_set(const char *allow, const char *want, char *why,
                           size_t wlen) {
  char a[128], w[128], *save = NULL, *tok;
  size_t nallow = 0, nwant = 0;

  snprintf(a, sizeof(a), "%s", allow);
  for (tok = strtok_r(a, ", ", &save); tok; tok = strtok_r(NULL, ", ", &save))
    nallow++;
  snprintf(w, sizeof(w), "%s", want);
  for (tok = strtok_r(w, ", ", &save); tok; tok = strtok_r(NULL, ", ", &save)) {
    const char *p = allow;
    int count = 0;
    size_t n = strlen(tok);
    while ((p = strstr(p, tok)) != NULL) {
      if ((p == allow || p[-1] == ' ') && (p[n] == ',' || p[n] == '\0'))
        count++;
      p += n;
    }
    if (count != 1) {
      snprintf(why, wlen, "Allow \"%s\": %s listed %d times, want once",
               allow, tok, count);
      return -1;
    }
    nwant++;
  }
  if (nallow != nwant) {
    snprintf(why, wlen, "Allow \"%s\" has %zu methods, want \"%s\"", allow,
             nallow, want);
    return -1;
  }
  for (const char *p = allow; *p; p++)
    if (*p == ',' && !(p[1] == ' ' && p[2] != ' ' && p[2] != '\0')) {
      snprintf(why, wlen, "Allow \"%s\": separator is not \", \"", allow);
      return -1;
    }
  return 0;
}

/* ---- route_compile ---- */

/* SEGS describes the compiled segments, space-separated: "L:text" a
 * literal (empty after the colon for an empty one), "P:name" a parameter,
 * "W" the wildcard; NULL checks only their number, NSEGS. */
typedef struct {
  const char *method;
  const char *pattern;
  const char *err;  /* NULL: compiles; else SPOKE_EINVAL, a message
                       containing this ("" for any non-empty one) */
  const char *segs;
  size_t nsegs;
} compile_case_t;

/* Limits: SPOKE__MAX_SEGMENTS segments and SPOKE__MAX_PARAMS parameters
 * compile, one more does not. The patterns are spelled out below. */
_Static_assert(SPOKE__MAX_SEGMENTS == 32, "S32 below has 32 segments");
_Static_assert(SPOKE__MAX_PARAMS == 16, "P16 below has 16 parameters");
#define S8 "/s/s/s/s/s/s/s/s"
#define S32 S8 S8 S8 S8
#define P16                                                                 \
  "/:p0/:p1/:p2/:p3/:p4/:p5/:p6/:p7/:p8/:p9/:p10/:p11/:p12/:p13/:p14/:p15"

static const compile_case_t compile_cases[] = {
  /* literals */
  {"GET", "/api/v1/users", NULL, "L:api L:v1 L:users", 3},
  {"GET", "/", NULL, "L:", 1}, /* one empty literal */
  {"GET", "/users/", NULL, "L:users L:", 2}, /* trailing slash: empty last */
  {"GET", "/a*", NULL, "L:a*", 1},  /* '*' inside a segment is literal */
  {"GET", "/a:b", NULL, "L:a:b", 1}, /* ':' not first is literal */
  /* parameters and wildcard */
  {"POST", "/users/:id/posts/:post_id", NULL,
   "L:users P:id L:posts P:post_id", 4},
  {"GET", "/static/*", NULL, "L:static W", 2},
  {"GET", "/*", NULL, "W", 1},
  {"GET", "/:a/*", NULL, "P:a W", 2},
  /* methods: "*" and NULL are any method, any token is a method */
  {"*", "/x", NULL, "L:x", 1},
  {NULL, "/x", NULL, "L:x", 1},
  {"PROPFIND", "/x", NULL, "L:x", 1},
  /* limits */
  {"GET", S32, NULL, NULL, SPOKE__MAX_SEGMENTS},
  {"GET", S32 "/s", "segments", NULL, 0},
  {"GET", P16, NULL, NULL, SPOKE__MAX_PARAMS},
  {"GET", P16 "/*", "parameters", NULL, 0}, /* the wildcard counts */
  /* errors */
  {"GET", "users", "'/'", NULL, 0},
  {"GET", "", "", NULL, 0},
  {"GET", NULL, "", NULL, 0},
  {"GET", "/a/*/b", "last", NULL, 0},
  {"GET", "/*/", "", NULL, 0},
  {"GET", "/a/:", "name", NULL, 0},
  {"GET", "/:/b", "", NULL, 0},
  {"GE T", "/a", "GE T", NULL, 0},
  {"", "/a", "", NULL, 0},
  {"GET\r\n", "/a", "", NULL, 0},
  {"G:T", "/a", "", NULL, 0},
};

/* Checks R's segments against SPEC; 0, or -1 with why in WHY. */
static int check_segs(const spoke__route_t *r, const char *spec, char *why,
                      size_t wlen) {
  char buf[256], *save = NULL, *tok;
  size_t i = 0;
  snprintf(buf, sizeof(buf), "%s", spec);
  for (tok = strtok_r(buf, " ", &save); tok;
       tok = strtok_r(NULL, " ", &save), i++) {
    const spoke__seg_t *s = &r->segs[i];
    spoke__seg_kind_t kind = tok[0] == 'L'   ? SPOKE__SEG_LITERAL
                             : tok[0] == 'P' ? SPOKE__SEG_PARAM
                                             : SPOKE__SEG_WILDCARD;
    const char *text = tok[0] == 'W' ? NULL : tok + 2;
    if (i >= r->nsegs || s->kind != kind ||
        (text && (s->len != strlen(text) ||
                  memcmp(s->text, text, s->len) != 0))) {
      snprintf(why, wlen, "segment %zu is %d \"%.*s\", want %s", i,
               i < r->nsegs ? (int)s->kind : -1,
               i < r->nsegs ? (int)s->len : 0, i < r->nsegs ? s->text : "",
               tok);
      return -1;
    }
  }
  return 0;
}

static void compile_table(void **state) {
  size_t failed = 0;
  (void)state;
  for (size_t i = 0; i < COUNT(compile_cases); i++) {
    const compile_case_t *c = &compile_cases[i];
    spoke__route_t r;
    char err[160] = "", why[256] = "";
    int rc = spoke__route_compile(&r, c->method, c->pattern, err, sizeof(err));
    int any = c->method == NULL || strcmp(c->method, "*") == 0;

    if (c->err != NULL) {
      if (rc != SPOKE_EINVAL)
        snprintf(why, sizeof(why), "returned %d, want SPOKE_EINVAL", rc);
      else if (err[0] == '\0' || strstr(err, c->err) == NULL)
        snprintf(why, sizeof(why), "error \"%s\", want one with \"%s\"", err,
                 c->err);
    } else if (rc != 0) {
      snprintf(why, sizeof(why), "returned %d: %s", rc, err);
    } else if (any ? r.method != NULL
                   : r.method == NULL || strcmp(r.method, c->method) != 0) {
      snprintf(why, sizeof(why), "method \"%s\"",
               r.method ? r.method : "(any)");
    } else if (r.pattern == NULL || strcmp(r.pattern, c->pattern) != 0) {
      snprintf(why, sizeof(why), "pattern \"%s\"", r.pattern);
    } else if (r.nsegs != c->nsegs) {
      snprintf(why, sizeof(why), "%zu segments, want %zu", r.nsegs, c->nsegs);
    } else if (c->segs != NULL) {
      check_segs(&r, c->segs, why, sizeof(why));
    }
    if (why[0] != '\0') {
      print_error("compile %s \"%s\": %s\n", c->method ? c->method : "(null)",
                  c->pattern ? c->pattern : "(null)", why);
      failed++;
    }
  }
  if (failed)
    fail_msg("%zu of %zu compile cases wrong", failed, COUNT(compile_cases));
}

/* ---- router_add conflicts ---- */

/* ROUTES are added first (all must be accepted), then METHOD PATTERN:
 * refused with SPOKE_ECONFLICT pointing at CONFLICT, or (CONFLICT NULL)
 * accepted. */
typedef struct {
  const char *routes[MAX_ROUTES];
  const char *route;
  const char *conflict;
} conflict_case_t;

#define BASE "GET /users/:id", "GET /static/*", "* /any/:x"
#define ALL_NINE                                                  \
  BASE, "POST /users/:id", "GET /users/me", "GET /people/:id",      \
      "GET /users/:id/posts", "GET /users", "GET /users/"

static const conflict_case_t conflict_cases[] = {
  /* same method, same shape, whatever the parameter names */
  {{BASE}, "GET /users/:name", "GET /users/:id"},
  {{BASE}, "GET /static/*", "GET /static/*"}, /* identical */
  /* "*" overlaps every method, both ways */
  {{BASE}, "* /users/:x", "GET /users/:id"},
  {{BASE}, "DELETE /any/:y", "* /any/:x"},
  {{BASE}, "* /any/:z", "* /any/:x"},
  /* no conflict: another method, literal or shape */
  {{BASE}, "POST /users/:id", NULL},
  {{BASE}, "HEAD /users/:id", NULL},
  {{BASE}, "GET /users/me", NULL},
  {{BASE}, "GET /people/:id", NULL},
  {{BASE}, "GET /users/:id/posts", NULL},
  {{BASE}, "GET /users", NULL},
  {{BASE, "GET /users"}, "GET /users/", NULL},
  {{BASE}, "GET /static/:file", NULL},
  {{BASE}, "GET /static", NULL},
  {{BASE}, "GET /any/:x/*", NULL},
  /* all of the above together: ten routes */
  {{ALL_NINE}, "GET /static/:file", NULL},
  {{ALL_NINE}, "POST /users/:x", "POST /users/:id"},
  {{ALL_NINE}, "* /users/", "GET /users/"},
};

static void conflict_table(void **state) {
  size_t failed = 0;
  (void)state;
  for (size_t i = 0; i < COUNT(conflict_cases); i++) {
    const conflict_case_t *c = &conflict_cases[i];
    spoke__router_t rt;
    spoke__route_t r;
    const spoke__route_t *other = NULL;
    char mbuf[MAX_ROUTES][16], method[16], why[256] = "", got[160] = "";
    size_t n = 0;
    const char *pattern = split_route(c->route, method, sizeof(method));
    int rc, rc_null;

    while (n < MAX_ROUTES && c->routes[n] != NULL)
      n++;
    spoke__router_init(&rt);
    if (add_specs(&rt, c->routes, n, 0, mbuf, why, sizeof(why)) == 0) {
      r = compile_ok(method, pattern);
      /* Without a conflict pointer first (nothing is added on refusal),
       * then with it. */
      rc_null = c->conflict ? spoke__router_add(&rt, &r, NULL) : 0;
      rc = spoke__router_add(&rt, &r, &other);
      if (other != NULL)
        route_name(other, got, sizeof(got));
      if (c->conflict == NULL) {
        if (rc != 0)
          snprintf(why, sizeof(why), "refused (%d), conflict %s", rc, got);
        else if (rt.n != n + 1)
          snprintf(why, sizeof(why), "%zu routes, want %zu", rt.n, n + 1);
      } else if (rc_null != SPOKE_ECONFLICT || rc != SPOKE_ECONFLICT) {
        snprintf(why, sizeof(why), "returned %d and %d, want conflict",
                 rc_null, rc);
      } else if (strcmp(got, c->conflict) != 0) {
        snprintf(why, sizeof(why), "conflict \"%s\", want \"%s\"", got,
                 c->conflict);
      } else if (rt.n != n) {
        snprintf(why, sizeof(why), "%zu routes after refusal, want %zu",
                 rt.n, n);
      }
    }
    spoke__router_free(&rt);
    if (rt.n != 0 || rt.routes != NULL)
      snprintf(why, sizeof(why), "router not empty after free");
    if (why[0] != '\0') {
      print_error("conflict case %zu (%s): %s\n", i, c->route, why);
      failed++;
    }
  }
  if (failed)
    fail_msg("%zu of %zu conflict cases wrong", failed, COUNT(conflict_cases));
}

static void add_grows(void **state) {
  spoke__router_t rt;
  char patterns[100][16];
  (void)state;

  spoke__router_init(&rt);
  for (int i = 0; i < 100; i++) {
    snprintf(patterns[i], sizeof(patterns[i]), "/r%d", i);
    add_ok(&rt, "GET", patterns[i]);
  }
  assert_int_equal(rt.n, 100);
  spoke__router_finish(&rt);
  for (int i = 0; i < 100; i++) {
    spoke__match_t m;
    assert_int_equal(spoke__router_match(&rt, "GET", patterns[i],
                                         strlen(patterns[i]), &m),
                     SPOKE__MATCH_FOUND);
    assert_string_equal(m.route->pattern, patterns[i]);
  }
  spoke__router_free(&rt);
}

/* ---- router_match: precedence and lookups ---- */

/* ROUTES are added (in order, then in reverse) and finished; METHOD PATH
 * (its first LEN bytes, 0 for all) is looked up. For FOUND, ROUTE is the
 * route found ("METHOD /pattern") and PARAMS its parameters in order,
 * space-separated "name=value", or "name@off=value" to pin the value's
 * offset too ("" for none). Otherwise no route and no parameters; ALLOW
 * is the exact Allow list (for NOT_FOUND always "") or ALLOW_SET the
 * methods it must hold, in any order. */
typedef struct {
  const char *routes[MAX_ROUTES];
  const char *method;
  const char *path;
  size_t len;
  spoke__match_result_t want;
  const char *route;
  const char *params;
  const char *allow;
  const char *allow_set;
} match_case_t;

#define FOUND SPOKE__MATCH_FOUND
#define NOT_FOUND SPOKE__MATCH_NOT_FOUND
#define NOT_ALLOWED SPOKE__MATCH_METHOD_NOT_ALLOWED
/* The expected half of a row: want, route, params, allow, allow_set. */
#define FOUND_AS(route, params) FOUND, route, params, NULL, NULL
#define NO_ROUTE NOT_FOUND, NULL, NULL, "", NULL
#define ALLOW(exact) NOT_ALLOWED, NULL, NULL, exact, NULL
#define ALLOW_SET(set) NOT_ALLOWED, NULL, NULL, NULL, set

/* Route sets the rows share. */
#define LIT_PARAM "GET /users/:id", "GET /users/me"
#define PARAM_WILD "GET /files/*", "GET /files/:name"
#define LEFTMOST "GET /:a/b", "GET /a/*", "GET /a/:b"
#define ANY_AND_GET "* /users/:id", "GET /users/me"
#define POST_AND_GET "POST /users/me", "GET /users/:id"

static const match_case_t precedence_cases[] = {
  /* literal before parameter */
  {{LIT_PARAM}, "GET", "/users/me", 0, FOUND_AS("GET /users/me", "")},
  {{LIT_PARAM}, "GET", "/users/42", 0, FOUND_AS("GET /users/:id", "id=42")},
  /* parameter before wildcard; a parameter needs a non-empty segment */
  {{PARAM_WILD}, "GET", "/files/a.txt", 0,
   FOUND_AS("GET /files/:name", "name=a.txt")},
  {{PARAM_WILD}, "GET", "/files/a/b.txt", 0,
   FOUND_AS("GET /files/*", "*=a/b.txt")},
  {{PARAM_WILD}, "GET", "/files/", 0, FOUND_AS("GET /files/*", "*=")},
  /* the leftmost differing segment decides */
  {{LEFTMOST}, "GET", "/a/b", 0, FOUND_AS("GET /a/:b", "b=b")},
  {{LEFTMOST}, "GET", "/a/b/c", 0, FOUND_AS("GET /a/*", "*=b/c")},
  {{LEFTMOST}, "GET", "/x/b", 0, FOUND_AS("GET /:a/b", "a=x")},
  /* a named method on a more precise shape wins for that method; other
   * methods fall through to "*"; HEAD follows GET's precedence */
  {{ANY_AND_GET}, "GET", "/users/me", 0, FOUND_AS("GET /users/me", "")},
  {{ANY_AND_GET}, "POST", "/users/me", 0, FOUND_AS("* /users/:id", "id=me")},
  {{ANY_AND_GET}, "DELETE", "/users/7", 0, FOUND_AS("* /users/:id", "id=7")},
  {{ANY_AND_GET}, "HEAD", "/users/me", 0, FOUND_AS("GET /users/me", "")},
  {{ANY_AND_GET}, "HEAD", "/users/7", 0, FOUND_AS("* /users/:id", "id=7")},
  /* a more precise route of another method is no 405 */
  {{POST_AND_GET}, "GET", "/users/me", 0,
   FOUND_AS("GET /users/:id", "id=me")},
  {{POST_AND_GET}, "POST", "/users/me", 0, FOUND_AS("POST /users/me", "")},
  {{POST_AND_GET}, "HEAD", "/users/me", 0,
   FOUND_AS("GET /users/:id", "id=me")},
};

#define POSTS "GET /users/:id/posts/:slug"
#define SLUG_PATH "/users/42/posts/hello%20world"
#define STATIC "GET /static/*"
#define ALLOWS "GET /a", "POST /b", "PUT /b", "GET /c", "HEAD /c", \
               "DELETE /d/:id", "GET /d/me"
#define HEADS "GET /page/:n", "GET /both", "HEAD /both"
#define ROOT "GET /", "GET /users", "POST /users/"

static const match_case_t match_cases[] = {
  /* parameters: raw values at their offsets, never empty */
  {{POSTS}, "GET", SLUG_PATH, 0,
   FOUND_AS(POSTS, "id@7=42 slug@16=hello%20world")},
  {{POSTS}, "GET", SLUG_PATH, 9, NO_ROUTE}, /* only LEN bytes count */
  {{POSTS}, "GET", "/users//posts/x", 0, NO_ROUTE},
  {{POSTS}, "GET", "/users/42/posts/", 0, NO_ROUTE},
  {{POSTS}, "GET", "/users/42/posts/x/y", 0, NO_ROUTE},
  /* the wildcard takes the rest, even nothing, slash or not */
  {{STATIC}, "GET", "/static/css/site.css", 0,
   FOUND_AS(STATIC, "*@8=css/site.css")},
  {{STATIC}, "GET", "/static/", 0, FOUND_AS(STATIC, "*@8=")},
  {{STATIC}, "GET", "/static", 0, FOUND_AS(STATIC, "*@7=")},
  {{STATIC}, "GET", "/static/a//b/", 0, FOUND_AS(STATIC, "*=a//b/")},
  {{STATIC}, "GET", "/staticx", 0, NO_ROUTE}, /* no prefix match */
  {{STATIC}, "GET", "/stati", 0, NO_ROUTE},
  {{STATIC}, "GET", "/", 0, NO_ROUTE},
  {{"GET /*"}, "GET", "/", 0, FOUND_AS("GET /*", "*=")},
  {{"GET /*"}, "GET", "/a/b", 0, FOUND_AS("GET /*", "*=a/b")},
  /* literals match whole, case-sensitive, from the leading '/'; a path
   * that matches nothing is 404 whatever the method */
  {{"GET /hello"}, "GET", "/hello", 0, FOUND_AS("GET /hello", "")},
  {{"GET /hello"}, "HEAD", "/hello", 0, FOUND_AS("GET /hello", "")},
  {{"GET /hello"}, "GET", "/hell", 0, NO_ROUTE},
  {{"GET /hello"}, "GET", "/hello/x", 0, NO_ROUTE},
  {{"GET /hello"}, "GET", "/HELLO", 0, NO_ROUTE},
  {{"GET /hello"}, "GET", "hello", 0, NO_ROUTE},
  {{"GET /hello"}, "GET", "", 0, NO_ROUTE},
  {{"GET /hello"}, "POST", "/nope", 0, NO_ROUTE},
  {{NULL}, "GET", "/", 0, NO_ROUTE}, /* no routes */
  /* 405: Allow gathers every route whose path matches, GET implies
   * HEAD, each listed once */
  {{ALLOWS}, "POST", "/a", 0, ALLOW("GET, HEAD")},
  {{ALLOWS}, "GET", "/b", 0, ALLOW_SET("POST, PUT")},
  {{ALLOWS}, "HEAD", "/b", 0, ALLOW_SET("POST, PUT")}, /* no GET route */
  {{ALLOWS}, "PATCH", "/c", 0, ALLOW_SET("GET, HEAD")},
  {{ALLOWS}, "POST", "/d/me", 0, ALLOW_SET("GET, HEAD, DELETE")},
  {{ALLOWS}, "POST", "/d/7", 0, ALLOW("DELETE")},
  {{ALLOWS}, "DELETE", "/d/me", 0, FOUND_AS("DELETE /d/:id", "id=me")},
  {{ALLOWS}, "GET", "/e", 0, NO_ROUTE},
  /* HEAD uses the GET route, with its parameters, unless it has its
   * own; GET never uses a HEAD route */
  {{HEADS}, "HEAD", "/page/3", 0, FOUND_AS("GET /page/:n", "n=3")},
  {{HEADS}, "HEAD", "/both", 0, FOUND_AS("HEAD /both", "")},
  {{HEADS}, "GET", "/both", 0, FOUND_AS("GET /both", "")},
  {{"HEAD /h"}, "GET", "/h", 0, ALLOW("HEAD")},
  {{"HEAD /h"}, "HEAD", "/h", 0, FOUND_AS("HEAD /h", "")},
  /* the root and a trailing slash are routes of their own */
  {{ROOT}, "GET", "/", 0, FOUND_AS("GET /", "")},
  {{ROOT}, "GET", "//", 0, NO_ROUTE},
  {{ROOT}, "GET", "/x", 0, NO_ROUTE},
  {{ROOT}, "GET", "/users", 0, FOUND_AS("GET /users", "")},
  {{ROOT}, "GET", "/users/", 0, ALLOW("POST")},
  {{ROOT}, "POST", "/users/", 0, FOUND_AS("POST /users/", "")},
  {{ROOT}, "POST", "/users", 0, ALLOW("GET, HEAD")},
};

/* Checks M's parameters against SPEC (see match_case_t) for PATH[0..len);
 * 0, or -1 with why in WHY. */
static int check_params(const spoke__match_t *m, const char *path,
                        size_t len, const char *spec, char *why,
                        size_t wlen) {
  char buf[256], *save = NULL, *tok;
  size_t i = 0;
  snprintf(buf, sizeof(buf), "%s", spec);
  for (tok = strtok_r(buf, " ", &save); tok;
       tok = strtok_r(NULL, " ", &save), i++) {
    char *eq = strchr(tok, '='), *at = strchr(tok, '@');
    const char *value = eq + 1;
    size_t name_len = (size_t)((at && at < eq ? at : eq) - tok);
    const spoke__param_t *p = &m->params[i];
    if (i >= m->nparams) {
      snprintf(why, wlen, "%zu parameters, want %s", m->nparams, spec);
      return -1;
    }
    if (p->off + p->len > len || p->name_len != name_len ||
        memcmp(p->name, tok, name_len) != 0 || p->len != strlen(value) ||
        memcmp(path + p->off, value, p->len) != 0 ||
        (at && at < eq && p->off != strtoul(at + 1, NULL, 10))) {
      snprintf(why, wlen, "parameter %zu is %.*s@%zu+%zu, want %s", i,
               (int)p->name_len, p->name, p->off, p->len, tok);
      return -1;
    }
  }
  if (i != m->nparams) {
    snprintf(why, wlen, "%zu parameters, want %zu (%s)", m->nparams, i, spec);
    return -1;
  }
  return 0;
}

/* One lookup of C, routes added in order or in REVERSE; the router is
 * freed before anything is reported. 0, or -1 with why in WHY. */
static int run_match(const match_case_t *c, int reverse, char *why,
                     size_t wlen) {
  spoke__router_t rt;
  spoke__match_t m;
  spoke__match_result_t got;
  char mbuf[MAX_ROUTES][16], route[160] = "-";
  size_t n = 0, len = c->len ? c->len : strlen(c->path);

  while (n < MAX_ROUTES && c->routes[n] != NULL)
    n++;
  why[0] = '\0';
  spoke__router_init(&rt);
  if (add_specs(&rt, c->routes, n, reverse, mbuf, why, wlen) == 0) {
    spoke__router_finish(&rt);
    memset(&m, 0xa5, sizeof(m)); /* nothing left over from before */
    got = spoke__router_match(&rt, c->method, c->path, len, &m);
    if (got == FOUND && m.route != NULL)
      route_name(m.route, route, sizeof(route));
    if (got != c->want) {
      snprintf(why, wlen, "result %d (route %s, Allow \"%.*s\"), want %d",
               (int)got, route, (int)sizeof(m.allow), m.allow, (int)c->want);
    } else if (got == FOUND) {
      if (m.route == NULL || strcmp(route, c->route) != 0)
        snprintf(why, wlen, "route %s, want %s", route, c->route);
      else
        check_params(&m, c->path, len, c->params, why, wlen);
    } else if (m.route != NULL || m.nparams != 0) {
      snprintf(why, wlen, "route %p and %zu parameters left set",
               (const void *)m.route, m.nparams);
    } else if (memchr(m.allow, '\0', sizeof(m.allow)) == NULL) {
      snprintf(why, wlen, "Allow not terminated");
    } else if (c->allow_set != NULL) {
      check_allow_set(m.allow, c->allow_set, why, wlen);
    } else if (strcmp(m.allow, c->allow) != 0) {
      snprintf(why, wlen, "Allow \"%s\", want \"%s\"", m.allow, c->allow);
    } else if (c->allow[0] != '\0') {
      check_allow_set(m.allow, c->allow, why, wlen); /* the separator */
    }
  }
  spoke__router_free(&rt);
  return why[0] != '\0' ? -1 : 0;
}

static void run_match_table(const match_case_t *cases, size_t n,
                            const char *what) {
  size_t failed = 0;
  for (size_t i = 0; i < n; i++) {
    const match_case_t *c = &cases[i];
    int bad = 0;
    for (int reverse = 0; reverse < 2; reverse++) {
      char why[320];
      if (run_match(c, reverse, why, sizeof(why)) != 0) {
        print_error("%s case %zu, %s %s%s: %s\n", what, i, c->method, c->path,
                    reverse ? " (routes added in reverse)" : "", why);
        bad = 1;
      }
    }
    failed += (size_t)bad;
  }
  if (failed)
    fail_msg("%zu of %zu %s cases wrong", failed, n, what);
}

static void precedence_table(void **state) {
  (void)state;
  run_match_table(precedence_cases, COUNT(precedence_cases), "precedence");
}

static void match_table(void **state) {
  (void)state;
  run_match_table(match_cases, COUNT(match_cases), "match");
}

/* The table's premise: FOUND cases name a route and parameters, the
 * others an Allow, and every route spec parses. */
static void match_tables_well_formed(void **state) {
  const match_case_t *tables[] = {precedence_cases, match_cases};
  size_t counts[] = {COUNT(precedence_cases), COUNT(match_cases)};
  (void)state;
  for (size_t t = 0; t < 2; t++)
    for (size_t i = 0; i < counts[t]; i++) {
      const match_case_t *c = &tables[t][i];
      if (c->want == FOUND) {
        assert_non_null(c->route);
        assert_non_null(c->params);
      } else {
        assert_null(c->route);
        assert_true((c->allow != NULL) != (c->allow_set != NULL));
        if (c->want == NOT_FOUND)
          assert_string_equal(c->allow, "");
      }
    }
}

/* A router with no routes finds nothing, finished or not. */
static void match_empty_router(void **state) {
  spoke__router_t rt;
  spoke__match_t m;
  (void)state;
  spoke__router_init(&rt);
  assert_int_equal(spoke__router_match(&rt, "GET", "/", 1, &m),
                   SPOKE__MATCH_NOT_FOUND);
  assert_null(m.route);
  spoke__router_finish(&rt);
  assert_int_equal(spoke__router_match(&rt, "GET", "/", 1, &m),
                   SPOKE__MATCH_NOT_FOUND);
  spoke__router_free(&rt);
}

/* router_add refuses a "*" and a named route of the same shape, so the
 * tiebreak in finish only matters for tables built directly. Build one
 * and check finish puts the named method first. */
static void precedence_same_shape_named_method_first(void **state) {
  spoke__router_t rt;
  spoke__match_t m;
  spoke__route_t routes[2];
  char name[160];
  (void)state;

  routes[0] = compile_ok("*", "/same");
  routes[1] = compile_ok("GET", "/same");
  rt.routes = routes; /* on the stack: not freed */
  rt.n = rt.cap = 2;
  spoke__router_finish(&rt);
  assert_null(rt.routes[1].method);
  assert_string_equal(rt.routes[0].method, "GET");
  assert_int_equal(spoke__router_match(&rt, "GET", "/same", 5, &m),
                   SPOKE__MATCH_FOUND);
  route_name(m.route, name, sizeof(name));
  assert_string_equal(name, "GET /same");
  assert_int_equal(spoke__router_match(&rt, "PUT", "/same", 5, &m),
                   SPOKE__MATCH_FOUND);
  route_name(m.route, name, sizeof(name));
  assert_string_equal(name, "* /same");
}

/* ---- remove_instance ---- */

static void remove_instance(void **state) {
  spoke__router_t rt;
  spoke__match_t m;
  spoke__route_t r;
  int a, b, c; /* stand-ins for instances; only their addresses count */
  struct spoke__instance_s *ia = (struct spoke__instance_s *)&a;
  struct spoke__instance_s *ib = (struct spoke__instance_s *)&b;
  struct spoke__instance_s *ic = (struct spoke__instance_s *)&c;
  static const struct {
    const char *method, *pattern;
    int who; /* 0: a, 1: b */
  } adds[] = {
    {"GET", "/a1", 0}, {"GET", "/b1", 1}, {"GET", "/a2/:x", 0},
    {"POST", "/b2", 1},
  };
  (void)state;

  spoke__router_init(&rt);
  for (size_t i = 0; i < COUNT(adds); i++) {
    r = compile_ok(adds[i].method, adds[i].pattern);
    r.inst = adds[i].who ? ib : ia;
    assert_int_equal(spoke__router_add(&rt, &r, NULL), 0);
  }

  spoke__router_remove_instance(&rt, ia);
  assert_int_equal(rt.n, 2);
  for (size_t i = 0; i < rt.n; i++)
    assert_ptr_equal(rt.routes[i].inst, ib);

  /* Its routes are free again: re-adding one (as a new version of the
   * plugin would) is no conflict. */
  r = compile_ok("GET", "/a2/:y");
  r.inst = ic;
  assert_int_equal(spoke__router_add(&rt, &r, NULL), 0);

  spoke__router_finish(&rt);
  assert_int_equal(spoke__router_match(&rt, "GET", "/a1", 3, &m),
                   SPOKE__MATCH_NOT_FOUND);
  assert_int_equal(spoke__router_match(&rt, "GET", "/b1", 3, &m),
                   SPOKE__MATCH_FOUND);
  assert_ptr_equal(m.route->inst, ib);
  assert_int_equal(spoke__router_match(&rt, "POST", "/b2", 3, &m),
                   SPOKE__MATCH_FOUND);

  /* Removing an instance with no routes left changes nothing. */
  spoke__router_remove_instance(&rt, ia);
  assert_int_equal(rt.n, 3);
  spoke__router_remove_instance(&rt, ib);
  assert_int_equal(rt.n, 1);
  assert_ptr_equal(rt.routes[0].inst, ic);
  assert_string_equal(rt.routes[0].pattern, "/a2/:y");
  spoke__router_free(&rt);
}

int main(void) {
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(compile_table),
    cmocka_unit_test(conflict_table),
    cmocka_unit_test(add_grows),
    cmocka_unit_test(match_tables_well_formed),
    cmocka_unit_test(precedence_table),
    cmocka_unit_test(precedence_same_shape_named_method_first),
    cmocka_unit_test(match_table),
    cmocka_unit_test(match_empty_router),
    cmocka_unit_test(remove_instance),
  };
  return cmocka_run_group_tests_name("router", tests, NULL, NULL);
}
