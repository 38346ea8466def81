/* test_router.c: route patterns, conflicts, precedence and matching
 * (core/router.c).
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
#include <string.h>

#include <cmocka.h>

#include "base/base.h"
#include "plugin/router.h"

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

static int compile_err(const char *method, const char *pattern, char *err,
                       size_t errlen) {
  spoke__route_t r;
  err[0] = '\0';
  return spoke__route_compile(&r, method, pattern, err, errlen);
}

static spoke__match_result_t match(const spoke__router_t *rt,
                                   const char *method, const char *path,
                                   spoke__match_t *m) {
  return spoke__router_match(rt, method, path, strlen(path), m);
}

/* The route M found, as "METHOD PATTERN" ("*" for any method). */
static const char *found(const spoke__match_t *m) {
  static char buf[160];
  assert_non_null(m->route);
  snprintf(buf, sizeof(buf), "%s %s",
           m->route->method ? m->route->method : "*", m->route->pattern);
  return buf;
}

/* Parameter NAME's value in PATH, or NULL. */
static const char *param(const spoke__match_t *m, const char *path,
                         const char *name) {
  static char buf[256];
  for (size_t i = 0; i < m->nparams; i++) {
    const spoke__param_t *p = &m->params[i];
    if (p->name_len == strlen(name) && memcmp(p->name, name, p->name_len) == 0) {
      assert_true(p->off + p->len <= strlen(path));
      snprintf(buf, sizeof(buf), "%.*s", (int)p->len, path + p->off);
      return buf;
    }
  }
  return NULL;
}

/* ALLOW, a ", "-separated list, holds exactly the methods in WANT (same
 * syntax), each once, in any order. */
static void assert_allow(const char *allow, const char *want) {
  char a[128], w[128], *save = NULL, *tok;
  size_t nallow = 0, nwant = 0;

  snprintf(a, sizeof(a), "%s", allow);
  for (tok = strtok_r(a, ", ", &save); tok; tok = strtok_r(NULL, ", ", &save))
    nallow++;
  snprintf(w, sizeof(w), "%s", want);
  for (tok = strtok_r(w, ", ", &save); tok; tok = strtok_r(NULL, ", ", &save)) {
    char needle[64];
    const char *p = allow;
    int count = 0;
    size_t n = strlen(tok);
    snprintf(needle, sizeof(needle), "%s", tok);
    while ((p = strstr(p, needle)) != NULL) {
      if ((p == allow || p[-1] == ' ') && (p[n] == ',' || p[n] == '\0'))
        count++;
      p += n;
    }
    if (count != 1)
      fail_msg("Allow \"%s\": %s listed %d times, want once (want \"%s\")",
               allow, tok, count, want);
    nwant++;
  }
  if (nallow != nwant)
    fail_msg("Allow \"%s\" has %zu methods, want \"%s\"", allow, nallow, want);
  /* The separator is exactly ", ". */
  for (const char *p = allow; *p; p++)
    if (*p == ',')
      assert_true(p[1] == ' ' && p[2] != ' ' && p[2] != '\0');
}

/* ---- route_compile ---- */

static void compile_literals(void **state) {
  spoke__route_t r = compile_ok("GET", "/api/v1/users");
  (void)state;
  assert_string_equal(r.method, "GET");
  assert_string_equal(r.pattern, "/api/v1/users");
  assert_int_equal(r.nsegs, 3);
  for (size_t i = 0; i < 3; i++)
    assert_int_equal(r.segs[i].kind, SPOKE__SEG_LITERAL);
  assert_int_equal(r.segs[0].len, 3);
  assert_memory_equal(r.segs[0].text, "api", 3);
  assert_int_equal(r.segs[1].len, 2);
  assert_memory_equal(r.segs[1].text, "v1", 2);
  assert_int_equal(r.segs[2].len, 5);
  assert_memory_equal(r.segs[2].text, "users", 5);

  /* "/" is one empty literal segment. */
  r = compile_ok("GET", "/");
  assert_int_equal(r.nsegs, 1);
  assert_int_equal(r.segs[0].kind, SPOKE__SEG_LITERAL);
  assert_int_equal(r.segs[0].len, 0);

  /* A trailing slash is an empty last segment. */
  r = compile_ok("GET", "/users/");
  assert_int_equal(r.nsegs, 2);
  assert_int_equal(r.segs[1].kind, SPOKE__SEG_LITERAL);
  assert_int_equal(r.segs[1].len, 0);
}

static void compile_params_and_wildcard(void **state) {
  spoke__route_t r = compile_ok("POST", "/users/:id/posts/:post_id");
  (void)state;
  assert_int_equal(r.nsegs, 4);
  assert_int_equal(r.segs[0].kind, SPOKE__SEG_LITERAL);
  assert_int_equal(r.segs[1].kind, SPOKE__SEG_PARAM);
  assert_int_equal(r.segs[1].len, 2);
  assert_memory_equal(r.segs[1].text, "id", 2);
  assert_int_equal(r.segs[2].kind, SPOKE__SEG_LITERAL);
  assert_int_equal(r.segs[3].kind, SPOKE__SEG_PARAM);
  assert_int_equal(r.segs[3].len, 7);
  assert_memory_equal(r.segs[3].text, "post_id", 7);

  r = compile_ok("GET", "/static/*");
  assert_int_equal(r.nsegs, 2);
  assert_int_equal(r.segs[0].kind, SPOKE__SEG_LITERAL);
  assert_int_equal(r.segs[1].kind, SPOKE__SEG_WILDCARD);

  r = compile_ok("GET", "/*");
  assert_int_equal(r.nsegs, 1);
  assert_int_equal(r.segs[0].kind, SPOKE__SEG_WILDCARD);

  /* '*' inside a segment is an ordinary literal character. */
  r = compile_ok("GET", "/a*");
  assert_int_equal(r.nsegs, 1);
  assert_int_equal(r.segs[0].kind, SPOKE__SEG_LITERAL);
  assert_int_equal(r.segs[0].len, 2);
}

static void compile_any_method(void **state) {
  spoke__route_t r = compile_ok("*", "/x");
  (void)state;
  assert_null(r.method);
  r = compile_ok(NULL, "/x");
  assert_null(r.method);
  r = compile_ok("PROPFIND", "/x");
  assert_string_equal(r.method, "PROPFIND");
}

static void compile_errors(void **state) {
  char err[160];
  (void)state;

  assert_int_equal(compile_err("GET", "users", err, sizeof(err)), SPOKE_EINVAL);
  assert_non_null(strstr(err, "'/'"));
  assert_int_equal(compile_err("GET", "", err, sizeof(err)), SPOKE_EINVAL);
  assert_int_equal(compile_err("GET", NULL, err, sizeof(err)), SPOKE_EINVAL);
  assert_true(err[0] != '\0');

  assert_int_equal(compile_err("GET", "/a/*/b", err, sizeof(err)),
                   SPOKE_EINVAL);
  assert_non_null(strstr(err, "last"));
  assert_int_equal(compile_err("GET", "/*/", err, sizeof(err)), SPOKE_EINVAL);

  assert_int_equal(compile_err("GET", "/a/:", err, sizeof(err)), SPOKE_EINVAL);
  assert_non_null(strstr(err, "name"));
  assert_int_equal(compile_err("GET", "/:/b", err, sizeof(err)), SPOKE_EINVAL);

  assert_int_equal(compile_err("GE T", "/a", err, sizeof(err)), SPOKE_EINVAL);
  assert_non_null(strstr(err, "GE T"));
  assert_int_equal(compile_err("", "/a", err, sizeof(err)), SPOKE_EINVAL);
  assert_int_equal(compile_err("GET\r\n", "/a", err, sizeof(err)),
                   SPOKE_EINVAL);
  assert_int_equal(compile_err("G:T", "/a", err, sizeof(err)), SPOKE_EINVAL);
}

static void compile_segment_limits(void **state) {
  char pattern[256], err[160];
  spoke__route_t r;
  size_t n = 0;
  (void)state;

  /* Exactly SPOKE__MAX_SEGMENTS segments compile; one more does not. */
  for (int i = 0; i < SPOKE__MAX_SEGMENTS; i++)
    n += (size_t)snprintf(pattern + n, sizeof(pattern) - n, "/s");
  assert_int_equal(spoke__route_compile(&r, "GET", pattern, err, sizeof(err)),
                   0);
  assert_int_equal(r.nsegs, SPOKE__MAX_SEGMENTS);
  snprintf(pattern + n, sizeof(pattern) - n, "/s");
  assert_int_equal(spoke__route_compile(&r, "GET", pattern, err, sizeof(err)),
                   SPOKE_EINVAL);
  assert_non_null(strstr(err, "segments"));

  /* Exactly SPOKE__MAX_PARAMS parameters compile; one more does not. */
  n = 0;
  for (int i = 0; i < SPOKE__MAX_PARAMS; i++)
    n += (size_t)snprintf(pattern + n, sizeof(pattern) - n, "/:p%d", i);
  assert_int_equal(spoke__route_compile(&r, "GET", pattern, err, sizeof(err)),
                   0);
  snprintf(pattern + n, sizeof(pattern) - n, "/*");
  assert_int_equal(spoke__route_compile(&r, "GET", pattern, err, sizeof(err)),
                   SPOKE_EINVAL);
  assert_non_null(strstr(err, "parameters"));
}

/* ---- router_add conflicts ---- */

static void add_conflicts(void **state) {
  spoke__router_t rt;
  spoke__route_t r;
  const spoke__route_t *other = NULL;
  (void)state;

  spoke__router_init(&rt);
  add_ok(&rt, "GET", "/users/:id");
  add_ok(&rt, "GET", "/static/*");

  /* Same method, same shape, other parameter name. */
  r = compile_ok("GET", "/users/:name");
  assert_int_equal(spoke__router_add(&rt, &r, &other), SPOKE_ECONFLICT);
  assert_non_null(other);
  assert_string_equal(other->pattern, "/users/:id");

  /* Identical route. */
  other = NULL;
  r = compile_ok("GET", "/static/*");
  assert_int_equal(spoke__router_add(&rt, &r, &other), SPOKE_ECONFLICT);
  assert_string_equal(other->pattern, "/static/*");

  /* "*" conflicts with any method of the same shape, both ways. */
  r = compile_ok("*", "/users/:x");
  assert_int_equal(spoke__router_add(&rt, &r, NULL), SPOKE_ECONFLICT);
  add_ok(&rt, "*", "/any/:x");
  r = compile_ok("DELETE", "/any/:y");
  assert_int_equal(spoke__router_add(&rt, &r, &other), SPOKE_ECONFLICT);
  assert_string_equal(other->pattern, "/any/:x");

  /* No conflict: another method, another literal, another shape. */
  add_ok(&rt, "POST", "/users/:id");
  add_ok(&rt, "GET", "/users/me");
  add_ok(&rt, "GET", "/people/:id");
  add_ok(&rt, "GET", "/users/:id/posts");
  add_ok(&rt, "GET", "/users");
  add_ok(&rt, "GET", "/users/");
  add_ok(&rt, "GET", "/static/:file");
  assert_int_equal(rt.n, 10);

  spoke__router_free(&rt);
  assert_int_equal(rt.n, 0);
  assert_null(rt.routes);
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
    assert_int_equal(match(&rt, "GET", patterns[i], &m), SPOKE__MATCH_FOUND);
    assert_string_equal(m.route->pattern, patterns[i]);
  }
  spoke__router_free(&rt);
}

/* ---- precedence (router_finish) ---- */

static void precedence_literal_over_param(void **state) {
  /* Both insertion orders: precedence comes from finish, not from add. */
  for (int order = 0; order < 2; order++) {
    spoke__router_t rt;
    spoke__match_t m;
    (void)state;
    spoke__router_init(&rt);
    if (order == 0) {
      add_ok(&rt, "GET", "/users/:id");
      add_ok(&rt, "GET", "/users/me");
    } else {
      add_ok(&rt, "GET", "/users/me");
      add_ok(&rt, "GET", "/users/:id");
    }
    spoke__router_finish(&rt);

    assert_int_equal(match(&rt, "GET", "/users/me", &m), SPOKE__MATCH_FOUND);
    assert_string_equal(found(&m), "GET /users/me");
    assert_int_equal(m.nparams, 0);

    assert_int_equal(match(&rt, "GET", "/users/42", &m), SPOKE__MATCH_FOUND);
    assert_string_equal(found(&m), "GET /users/:id");
    assert_string_equal(param(&m, "/users/42", "id"), "42");
    spoke__router_free(&rt);
  }
}

static void precedence_param_over_wildcard(void **state) {
  for (int order = 0; order < 2; order++) {
    spoke__router_t rt;
    spoke__match_t m;
    (void)state;
    spoke__router_init(&rt);
    if (order == 0) {
      add_ok(&rt, "GET", "/files/*");
      add_ok(&rt, "GET", "/files/:name");
    } else {
      add_ok(&rt, "GET", "/files/:name");
      add_ok(&rt, "GET", "/files/*");
    }
    spoke__router_finish(&rt);

    assert_int_equal(match(&rt, "GET", "/files/a.txt", &m),
                     SPOKE__MATCH_FOUND);
    assert_string_equal(found(&m), "GET /files/:name");
    assert_string_equal(param(&m, "/files/a.txt", "name"), "a.txt");

    assert_int_equal(match(&rt, "GET", "/files/a/b.txt", &m),
                     SPOKE__MATCH_FOUND);
    assert_string_equal(found(&m), "GET /files/*");
    assert_string_equal(param(&m, "/files/a/b.txt", "*"), "a/b.txt");

    /* ":name" needs a non-empty segment; the wildcard takes nothing. */
    assert_int_equal(match(&rt, "GET", "/files/", &m), SPOKE__MATCH_FOUND);
    assert_string_equal(found(&m), "GET /files/*");
    assert_string_equal(param(&m, "/files/", "*"), "");
    spoke__router_free(&rt);
  }
}

static void precedence_leftmost_segment_decides(void **state) {
  spoke__router_t rt;
  spoke__match_t m;
  (void)state;

  spoke__router_init(&rt);
  add_ok(&rt, "GET", "/:a/b");
  add_ok(&rt, "GET", "/a/*");
  add_ok(&rt, "GET", "/a/:b");
  spoke__router_finish(&rt);
  /* All three match "/a/b"; the literal first segment wins, then param
   * over wildcard in the second. */
  assert_int_equal(match(&rt, "GET", "/a/b", &m), SPOKE__MATCH_FOUND);
  assert_string_equal(found(&m), "GET /a/:b");
  assert_int_equal(match(&rt, "GET", "/a/b/c", &m), SPOKE__MATCH_FOUND);
  assert_string_equal(found(&m), "GET /a/*");
  assert_int_equal(match(&rt, "GET", "/x/b", &m), SPOKE__MATCH_FOUND);
  assert_string_equal(found(&m), "GET /:a/b");
  assert_string_equal(param(&m, "/x/b", "a"), "x");
  spoke__router_free(&rt);
}

static void precedence_specific_method_before_any(void **state) {
  spoke__router_t rt;
  spoke__match_t m;
  (void)state;

  /* A named method on the more precise shape wins for that method; other
   * methods fall through to the "*" route instead of getting 405. */
  spoke__router_init(&rt);
  add_ok(&rt, "*", "/users/:id");
  add_ok(&rt, "GET", "/users/me");
  spoke__router_finish(&rt);
  assert_int_equal(match(&rt, "GET", "/users/me", &m), SPOKE__MATCH_FOUND);
  assert_string_equal(found(&m), "GET /users/me");
  assert_int_equal(match(&rt, "POST", "/users/me", &m), SPOKE__MATCH_FOUND);
  assert_string_equal(found(&m), "* /users/:id");
  assert_string_equal(param(&m, "/users/me", "id"), "me");
  assert_int_equal(match(&rt, "DELETE", "/users/7", &m), SPOKE__MATCH_FOUND);
  assert_string_equal(found(&m), "* /users/:id");
  spoke__router_free(&rt);

  /* Same shape: router_add refuses the pair (a conflict), so the
   * tiebreak in finish only matters for tables built directly. Build one
   * directly and check finish puts the named method first. */
  spoke__router_init(&rt);
  {
    spoke__route_t routes[2] = {compile_ok("*", "/same"),
                                compile_ok("GET", "/same")};
    rt.routes = routes;
    rt.n = rt.cap = 2;
    spoke__router_finish(&rt);
    assert_null(rt.routes[1].method);
    assert_string_equal(rt.routes[0].method, "GET");
    assert_int_equal(match(&rt, "GET", "/same", &m), SPOKE__MATCH_FOUND);
    assert_string_equal(found(&m), "GET /same");
    assert_int_equal(match(&rt, "PUT", "/same", &m), SPOKE__MATCH_FOUND);
    assert_string_equal(found(&m), "* /same");
    spoke__router_init(&rt); /* routes is on the stack */
  }
}

static void method_falls_through_to_lower_precedence(void **state) {
  spoke__router_t rt;
  spoke__match_t m;
  (void)state;

  /* POST /users/me is more precise but only for POST: a GET of
   * /users/me is the GET /users/:id route's, not a 405. */
  spoke__router_init(&rt);
  add_ok(&rt, "POST", "/users/me");
  add_ok(&rt, "GET", "/users/:id");
  spoke__router_finish(&rt);
  assert_int_equal(match(&rt, "GET", "/users/me", &m), SPOKE__MATCH_FOUND);
  assert_string_equal(found(&m), "GET /users/:id");
  assert_int_equal(m.nparams, 1);
  assert_string_equal(param(&m, "/users/me", "id"), "me");
  assert_int_equal(match(&rt, "POST", "/users/me", &m), SPOKE__MATCH_FOUND);
  assert_string_equal(found(&m), "POST /users/me");
  assert_int_equal(m.nparams, 0);
  spoke__router_free(&rt);
}

/* ---- router_match ---- */

static void match_params(void **state) {
  spoke__router_t rt;
  spoke__match_t m;
  const char *path = "/users/42/posts/hello%20world";
  (void)state;

  spoke__router_init(&rt);
  add_ok(&rt, "GET", "/users/:id/posts/:slug");
  spoke__router_finish(&rt);

  assert_int_equal(match(&rt, "GET", path, &m), SPOKE__MATCH_FOUND);
  assert_int_equal(m.nparams, 2);
  assert_int_equal(m.params[0].name_len, 2);
  assert_memory_equal(m.params[0].name, "id", 2);
  assert_int_equal(m.params[0].off, 7);
  assert_int_equal(m.params[0].len, 2);
  assert_int_equal(m.params[1].name_len, 4);
  assert_memory_equal(m.params[1].name, "slug", 4);
  assert_int_equal(m.params[1].off, 16);
  assert_int_equal(m.params[1].len, 13);
  /* Values stay raw (decoding is the accessor's job). */
  assert_string_equal(param(&m, path, "slug"), "hello%20world");

  /* Only LEN bytes count: the same buffer with a shorter length. */
  assert_int_equal(spoke__router_match(&rt, "GET", path, 9, &m),
                   SPOKE__MATCH_NOT_FOUND);

  /* A parameter never matches an empty segment. */
  assert_int_equal(match(&rt, "GET", "/users//posts/x", &m),
                   SPOKE__MATCH_NOT_FOUND);
  assert_int_equal(match(&rt, "GET", "/users/42/posts/", &m),
                   SPOKE__MATCH_NOT_FOUND);
  assert_int_equal(m.nparams, 0);
  assert_null(m.route);
  spoke__router_free(&rt);
}

static void match_wildcard_rest(void **state) {
  spoke__router_t rt;
  spoke__match_t m;
  (void)state;

  spoke__router_init(&rt);
  add_ok(&rt, "GET", "/static/*");
  spoke__router_finish(&rt);

  assert_int_equal(match(&rt, "GET", "/static/css/site.css", &m),
                   SPOKE__MATCH_FOUND);
  assert_int_equal(m.nparams, 1);
  assert_int_equal(m.params[0].name_len, 1);
  assert_memory_equal(m.params[0].name, "*", 1);
  assert_int_equal(m.params[0].off, 8);
  assert_int_equal(m.params[0].len, 12);

  /* The rest may be empty, with or without the slash. */
  assert_int_equal(match(&rt, "GET", "/static/", &m), SPOKE__MATCH_FOUND);
  assert_int_equal(m.nparams, 1);
  assert_int_equal(m.params[0].off, 8);
  assert_int_equal(m.params[0].len, 0);
  assert_int_equal(match(&rt, "GET", "/static", &m), SPOKE__MATCH_FOUND);
  assert_int_equal(m.nparams, 1);
  assert_int_equal(m.params[0].off, 7);
  assert_int_equal(m.params[0].len, 0);

  assert_int_equal(match(&rt, "GET", "/static/a//b/", &m), SPOKE__MATCH_FOUND);
  assert_string_equal(param(&m, "/static/a//b/", "*"), "a//b/");

  /* Not a prefix match on the literal. */
  assert_int_equal(match(&rt, "GET", "/staticx", &m), SPOKE__MATCH_NOT_FOUND);
  assert_int_equal(match(&rt, "GET", "/stati", &m), SPOKE__MATCH_NOT_FOUND);
  assert_int_equal(match(&rt, "GET", "/", &m), SPOKE__MATCH_NOT_FOUND);
  spoke__router_free(&rt);

  /* A pattern that is only a wildcard takes everything. */
  spoke__router_init(&rt);
  add_ok(&rt, "GET", "/*");
  spoke__router_finish(&rt);
  assert_int_equal(match(&rt, "GET", "/", &m), SPOKE__MATCH_FOUND);
  assert_string_equal(param(&m, "/", "*"), "");
  assert_int_equal(match(&rt, "GET", "/a/b", &m), SPOKE__MATCH_FOUND);
  assert_string_equal(param(&m, "/a/b", "*"), "a/b");
  spoke__router_free(&rt);
}

static void match_not_found(void **state) {
  spoke__router_t rt;
  spoke__match_t m;
  (void)state;

  spoke__router_init(&rt);
  assert_int_equal(match(&rt, "GET", "/", &m), SPOKE__MATCH_NOT_FOUND);
  add_ok(&rt, "GET", "/hello");
  spoke__router_finish(&rt);
  assert_int_equal(match(&rt, "GET", "/hello", &m), SPOKE__MATCH_FOUND);
  assert_int_equal(match(&rt, "GET", "/hell", &m), SPOKE__MATCH_NOT_FOUND);
  assert_int_equal(match(&rt, "GET", "/hello/x", &m), SPOKE__MATCH_NOT_FOUND);
  assert_int_equal(match(&rt, "GET", "/HELLO", &m), SPOKE__MATCH_NOT_FOUND);
  assert_int_equal(match(&rt, "GET", "hello", &m), SPOKE__MATCH_NOT_FOUND);
  assert_int_equal(match(&rt, "GET", "", &m), SPOKE__MATCH_NOT_FOUND);
  assert_null(m.route);
  /* A path that matches nothing is 404 whatever the method. */
  assert_int_equal(match(&rt, "POST", "/nope", &m), SPOKE__MATCH_NOT_FOUND);
  assert_string_equal(m.allow, "");
  spoke__router_free(&rt);
}

static void match_method_not_allowed(void **state) {
  spoke__router_t rt;
  spoke__match_t m;
  (void)state;

  spoke__router_init(&rt);
  add_ok(&rt, "GET", "/a");
  add_ok(&rt, "POST", "/b");
  add_ok(&rt, "PUT", "/b");
  add_ok(&rt, "GET", "/c");
  add_ok(&rt, "HEAD", "/c");
  add_ok(&rt, "DELETE", "/d/:id");
  add_ok(&rt, "GET", "/d/me");
  spoke__router_finish(&rt);

  assert_int_equal(match(&rt, "POST", "/a", &m),
                   SPOKE__MATCH_METHOD_NOT_ALLOWED);
  assert_string_equal(m.allow, "GET, HEAD");
  assert_null(m.route);
  assert_int_equal(m.nparams, 0);

  assert_int_equal(match(&rt, "GET", "/b", &m),
                   SPOKE__MATCH_METHOD_NOT_ALLOWED);
  assert_allow(m.allow, "POST, PUT");
  /* HEAD of a path with no GET route is 405 too. */
  assert_int_equal(match(&rt, "HEAD", "/b", &m),
                   SPOKE__MATCH_METHOD_NOT_ALLOWED);
  assert_allow(m.allow, "POST, PUT");

  /* An explicit HEAD route and the implied one are listed once. */
  assert_int_equal(match(&rt, "PATCH", "/c", &m),
                   SPOKE__MATCH_METHOD_NOT_ALLOWED);
  assert_allow(m.allow, "GET, HEAD");

  /* Allow gathers every route whose path matches. */
  assert_int_equal(match(&rt, "POST", "/d/me", &m),
                   SPOKE__MATCH_METHOD_NOT_ALLOWED);
  assert_allow(m.allow, "GET, HEAD, DELETE");
  assert_int_equal(match(&rt, "POST", "/d/7", &m),
                   SPOKE__MATCH_METHOD_NOT_ALLOWED);
  assert_string_equal(m.allow, "DELETE");
  spoke__router_free(&rt);
}

static void match_head(void **state) {
  spoke__router_t rt;
  spoke__match_t m;
  (void)state;

  spoke__router_init(&rt);
  add_ok(&rt, "GET", "/page/:n");
  add_ok(&rt, "GET", "/both");
  add_ok(&rt, "HEAD", "/both");
  spoke__router_finish(&rt);

  /* HEAD uses the GET route, with its parameters. */
  assert_int_equal(match(&rt, "HEAD", "/page/3", &m), SPOKE__MATCH_FOUND);
  assert_string_equal(found(&m), "GET /page/:n");
  assert_int_equal(m.nparams, 1);
  assert_string_equal(param(&m, "/page/3", "n"), "3");

  /* An explicit HEAD route wins over the GET one. */
  assert_int_equal(match(&rt, "HEAD", "/both", &m), SPOKE__MATCH_FOUND);
  assert_string_equal(found(&m), "HEAD /both");
  assert_int_equal(match(&rt, "GET", "/both", &m), SPOKE__MATCH_FOUND);
  assert_string_equal(found(&m), "GET /both");

  /* GET never uses a HEAD route. */
  spoke__router_free(&rt);
  spoke__router_init(&rt);
  add_ok(&rt, "HEAD", "/h");
  spoke__router_finish(&rt);
  assert_int_equal(match(&rt, "GET", "/h", &m),
                   SPOKE__MATCH_METHOD_NOT_ALLOWED);
  assert_string_equal(m.allow, "HEAD");
  spoke__router_free(&rt);
}

/* HEAD follows GET's precedence: with GET /users/me and * /users/:id,
 * HEAD /users/me must be the GET /users/me route (the one GET gets),
 * not the less precise catch-all. */
static void match_head_keeps_precedence(void **state) {
  spoke__router_t rt;
  spoke__match_t m;
  spoke__match_result_t get_rc, head_rc;
  char get_route[160], head_route[160];
  size_t head_nparams;
  (void)state;

  spoke__router_init(&rt);
  add_ok(&rt, "GET", "/users/me");
  add_ok(&rt, "*", "/users/:id");
  spoke__router_finish(&rt);
  get_rc = match(&rt, "GET", "/users/me", &m);
  snprintf(get_route, sizeof(get_route), "%s", m.route ? found(&m) : "-");
  head_rc = match(&rt, "HEAD", "/users/me", &m);
  snprintf(head_route, sizeof(head_route), "%s",
           m.route ? found(&m) : "-");
  head_nparams = m.nparams;
  spoke__router_free(&rt); /* before asserting: no leak when this fails */

  assert_int_equal(get_rc, SPOKE__MATCH_FOUND);
  assert_string_equal(get_route, "GET /users/me");
  assert_int_equal(head_rc, SPOKE__MATCH_FOUND);
  assert_string_equal(head_route, "GET /users/me");
  assert_int_equal(head_nparams, 0);
}

static void match_trailing_slash_and_root(void **state) {
  spoke__router_t rt;
  spoke__match_t m;
  (void)state;

  spoke__router_init(&rt);
  add_ok(&rt, "GET", "/");
  add_ok(&rt, "GET", "/users");
  add_ok(&rt, "POST", "/users/");
  spoke__router_finish(&rt);

  assert_int_equal(match(&rt, "GET", "/", &m), SPOKE__MATCH_FOUND);
  assert_string_equal(found(&m), "GET /");
  assert_int_equal(m.nparams, 0);
  assert_int_equal(match(&rt, "GET", "//", &m), SPOKE__MATCH_NOT_FOUND);
  assert_int_equal(match(&rt, "GET", "/x", &m), SPOKE__MATCH_NOT_FOUND);

  assert_int_equal(match(&rt, "GET", "/users", &m), SPOKE__MATCH_FOUND);
  assert_string_equal(found(&m), "GET /users");
  /* "/users/" is another route (POST only). */
  assert_int_equal(match(&rt, "GET", "/users/", &m),
                   SPOKE__MATCH_METHOD_NOT_ALLOWED);
  assert_string_equal(m.allow, "POST");
  assert_int_equal(match(&rt, "POST", "/users/", &m), SPOKE__MATCH_FOUND);
  assert_string_equal(found(&m), "POST /users/");
  assert_int_equal(match(&rt, "POST", "/users", &m),
                   SPOKE__MATCH_METHOD_NOT_ALLOWED);
  assert_string_equal(m.allow, "GET, HEAD");
  spoke__router_free(&rt);
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
  (void)state;

  spoke__router_init(&rt);
  r = compile_ok("GET", "/a1");
  r.inst = ia;
  assert_int_equal(spoke__router_add(&rt, &r, NULL), 0);
  r = compile_ok("GET", "/b1");
  r.inst = ib;
  assert_int_equal(spoke__router_add(&rt, &r, NULL), 0);
  r = compile_ok("GET", "/a2/:x");
  r.inst = ia;
  assert_int_equal(spoke__router_add(&rt, &r, NULL), 0);
  r = compile_ok("POST", "/b2");
  r.inst = ib;
  assert_int_equal(spoke__router_add(&rt, &r, NULL), 0);

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
  assert_int_equal(match(&rt, "GET", "/a1", &m), SPOKE__MATCH_NOT_FOUND);
  assert_int_equal(match(&rt, "GET", "/b1", &m), SPOKE__MATCH_FOUND);
  assert_ptr_equal(m.route->inst, ib);
  assert_int_equal(match(&rt, "POST", "/b2", &m), SPOKE__MATCH_FOUND);

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
    cmocka_unit_test(compile_literals),
    cmocka_unit_test(compile_params_and_wildcard),
    cmocka_unit_test(compile_any_method),
    cmocka_unit_test(compile_errors),
    cmocka_unit_test(compile_segment_limits),
    cmocka_unit_test(add_conflicts),
    cmocka_unit_test(add_grows),
    cmocka_unit_test(precedence_literal_over_param),
    cmocka_unit_test(precedence_param_over_wildcard),
    cmocka_unit_test(precedence_leftmost_segment_decides),
    cmocka_unit_test(precedence_specific_method_before_any),
    cmocka_unit_test(method_falls_through_to_lower_precedence),
    cmocka_unit_test(match_params),
    cmocka_unit_test(match_wildcard_rest),
    cmocka_unit_test(match_not_found),
    cmocka_unit_test(match_method_not_allowed),
    cmocka_unit_test(match_head),
    cmocka_unit_test(match_head_keeps_precedence),
    cmocka_unit_test(match_trailing_slash_and_root),
    cmocka_unit_test(remove_instance),
  };
  return cmocka_run_group_tests_name("router", tests, NULL, NULL);
}
