/* test_request.c: the request object's lifetime counters and the SDK's
 * request accessors (core/request.c).
 *
 * Requests come from spoke__request_new on a zeroed loop: nothing here
 * runs the loop, and with draining == 0 spoke__loop_maybe_finish returns
 * at once. Each test gives its request back through
 * spoke__request_maybe_free, so AddressSanitizer sees every byte freed.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "http/http.h"

static spoke__loop_t *loop;

static int setup(void **state) {
  (void)state;
  loop = calloc(1, sizeof(*loop));
  return loop == NULL ? -1 : 0;
}

static int teardown(void **state) {
  (void)state;
  /* Every request a test made was freed. */
  assert_int_equal(loop->live_requests, 0);
  spoke__request_pool_free(loop);
  free(loop);
  loop = NULL;
  return 0;
}

static spoke_request_t *req_new(const char *path, const char *query) {
  spoke_request_t *req = spoke__request_new(loop, NULL);
  assert_non_null(req);
  req->method = "GET";
  req->path = path;
  req->path_len = path ? strlen(path) : 0;
  if (query != NULL)
    req->query = query;
  return req;
}

/* Releases every hold REQ has, which frees it. */
static void req_done(spoke_request_t *req) {
  spoke__hold_t order[64];
  size_t n = 0;
  for (int k = 0; k < SPOKE__HOLD_KINDS; k++)
    for (unsigned i = 0; i < req->holds[k] && n < 64; i++)
      order[n++] = (spoke__hold_t)k;
  for (size_t i = 0; i < n; i++)
    spoke__request_release(req, order[i]);
}

static void add_header(spoke_request_t *req, const char *name,
                       const char *value) {
  assert_int_equal(spoke__request_add_header(req, name, strlen(name), value,
                                             strlen(value)),
                   0);
}

/* ---- lifetime ---- */

static void new_and_free(void **state) {
  spoke_request_t *a, *b;
  long live_before = spoke__request_live_count();
  (void)state;

  a = spoke__request_new(loop, NULL);
  assert_non_null(a);
  assert_int_equal(loop->live_requests, 1);
  assert_ptr_equal(a->loop, loop);
  assert_int_equal(a->status, 200);
  assert_string_equal(a->query, "");
  assert_true(spoke__request_held(a, SPOKE__HOLD_CONN));
  assert_true(spoke__request_held(a, SPOKE__HOLD_UNCOMPLETED));
  assert_int_equal(a->nholds, 2);
  assert_int_equal(atomic_load(&a->completed), 0);
  assert_int_equal(atomic_load(&a->aborted), 0);
  b = spoke__request_new(loop, NULL);
  assert_int_equal(loop->live_requests, 2);
  assert_int_equal(spoke__request_live_count(), live_before + 2);

  /* Not freed while anything holds it, whichever hold goes last. */
  spoke__request_release(a, SPOKE__HOLD_CONN);
  assert_int_equal(loop->live_requests, 2);
  spoke__request_hold(a, SPOKE__HOLD_WRITE);
  spoke__request_hold(a, SPOKE__HOLD_WRITE); /* counted: two writes */
  spoke__request_release(a, SPOKE__HOLD_UNCOMPLETED);
  spoke__request_release(a, SPOKE__HOLD_WRITE);
  assert_int_equal(loop->live_requests, 2);
  spoke__request_hold(a, SPOKE__HOLD_TIMER);
  spoke__request_release(a, SPOKE__HOLD_WRITE);
  assert_int_equal(loop->live_requests, 2);
  assert_false(spoke__request_held(a, SPOKE__HOLD_WRITE));
  /* Freed by the last release, with what it allocated. */
  assert_non_null(spoke__request_alloc(a, 100));
  assert_int_equal(spoke__buf_append(&a->body, "body", 4), 0);
  assert_int_equal(spoke__buf_append(&a->resp_headers, "X: y\r\n", 6), 0);
  spoke__request_release(a, SPOKE__HOLD_TIMER);
  assert_int_equal(loop->live_requests, 1);
  req_done(b);
  assert_int_equal(loop->live_requests, 0);
  assert_int_equal(spoke__request_live_count(), live_before);
}

/* A finished request goes back to its loop's pool and comes out of it
 * as new: same memory, nothing of its previous life but buffer room. */
static void pool_reuses_cleared_requests(void **state) {
  spoke_request_t *a, *b, *c;
  char *p;
  (void)state;

  a = req_new("/a", "x=1");
  add_header(a, "Host", "example");
  a->status = 404;
  atomic_store(&a->completed, 1);
  assert_int_equal(spoke__buf_append(&a->body, "body", 4), 0);
  assert_int_equal(spoke__buf_append(&a->wire, "HTTP/1.1", 8), 0);
  /* Small allocations come from the request itself. */
  p = spoke__request_alloc(a, 64);
  assert_true(p >= a->arena_storage &&
              p + 64 <= a->arena_storage + sizeof(a->arena_storage));
  req_done(a);
  assert_int_equal(loop->nfree_reqs, 1);
  assert_int_equal(loop->live_requests, 0);

  b = spoke__request_new(loop, NULL);
  assert_ptr_equal(b, a);
  assert_int_equal(loop->nfree_reqs, 0);
  assert_int_equal(b->status, 200);
  assert_string_equal(b->query, "");
  assert_null(b->path);
  assert_int_equal(b->nheaders, 0);
  assert_null(spoke__request_header(b, "Host"));
  assert_int_equal(atomic_load(&b->completed), 0);
  assert_int_equal(b->body.len, 0);
  assert_int_equal(b->wire.len, 0);
  assert_int_equal(b->nholds, 2);
  assert_true(spoke__request_held(b, SPOKE__HOLD_CONN));
  assert_true(spoke__request_held(b, SPOKE__HOLD_UNCOMPLETED));
  /* The arena is rewound to the request's own block. */
  assert_null(b->arena.chunks);
  p = spoke__request_alloc(b, 64);
  assert_ptr_equal(p, b->arena_storage);

  /* A second live request while the first is out: a new one. */
  c = spoke__request_new(loop, NULL);
  assert_ptr_not_equal(c, b);
  req_done(b);
  req_done(c);
  assert_int_equal(loop->nfree_reqs, 2);
}

static int aborts_seen;
static spoke_request_t *aborted_req;

static void on_abort(spoke_request_t *req) {
  aborts_seen++;
  aborted_req = req;
  /* The request is still alive and marked in the callback. */
  assert_int_equal(spoke__request_aborted(req), 1);
  assert_true(spoke__request_held(req, SPOKE__HOLD_STACK));
}

static void detach_aborts(void **state) {
  spoke_request_t *req = req_new("/", NULL);
  (void)state;

  aborts_seen = 0;
  assert_int_equal(spoke__request_aborted(req), 0);
  assert_int_equal(spoke__request_on_abort(req, on_abort), 0);
  spoke__request_detach(req);
  assert_int_equal(aborts_seen, 1);
  assert_ptr_equal(aborted_req, req);
  assert_null(req->conn);
  assert_int_equal(req->nholds, 1);
  assert_true(spoke__request_held(req, SPOKE__HOLD_UNCOMPLETED));
  assert_int_equal(spoke__request_aborted(req), 1);
  /* Asking after the fact says the client already left. */
  assert_int_equal(spoke__request_on_abort(req, on_abort), SPOKE_ECANCELED);
  assert_int_equal(aborts_seen, 1);
  assert_int_equal(loop->live_requests, 1);
  req_done(req);

  /* A completed request is not aborted by its client leaving, and the
   * detach frees it once nothing else holds it. */
  req = req_new("/", NULL);
  aborts_seen = 0;
  assert_int_equal(spoke__request_on_abort(req, on_abort), 0);
  atomic_store(&req->completed, 1);
  spoke__request_release(req, SPOKE__HOLD_UNCOMPLETED); /* only CONN left */
  spoke__request_detach(req);
  assert_int_equal(aborts_seen, 0);
  assert_int_equal(loop->live_requests, 0);
}

/* A hold released twice, or an exclusive hold taken twice, is a bug in
 * the core: it must stop the process at once (assert) rather than free a
 * request under someone. Checked in a child process; assert is compiled
 * in the Debug builds (ASan, TSan), not in the release build. */
#ifndef NDEBUG
static int dies_of_assert(void (*what)(void)) {
  pid_t pid = fork();
  int st = 0;
  if (pid == 0) {
    (void)!freopen("/dev/null", "w", stderr); /* the assert's message */
    what();
    _exit(0);
  }
  waitpid(pid, &st, 0);
  return WIFSIGNALED(st) && WTERMSIG(st) == SIGABRT;
}

static void release_twice(void) {
  spoke_request_t *req = spoke__request_new(loop, NULL);
  spoke__request_hold(req, SPOKE__HOLD_STACK);
  spoke__request_release(req, SPOKE__HOLD_CONN);
  spoke__request_release(req, SPOKE__HOLD_CONN);
}

static void hold_conn_twice(void) {
  spoke_request_t *req = spoke__request_new(loop, NULL);
  spoke__request_hold(req, SPOKE__HOLD_CONN);
}

static void release_after_free(void) {
  spoke_request_t *req = spoke__request_new(loop, NULL);
  spoke__request_release(req, SPOKE__HOLD_CONN);
  spoke__request_release(req, SPOKE__HOLD_UNCOMPLETED); /* freed: pooled */
  spoke__request_release(req, SPOKE__HOLD_UNCOMPLETED);
}

#endif

static void hold_misuse_asserts(void **state) {
  (void)state;
#ifdef NDEBUG
  skip();
#else
  assert_true(dies_of_assert(release_twice));
  assert_true(dies_of_assert(hold_conn_twice));
  assert_true(dies_of_assert(release_after_free));
#endif
}

/* ---- simple accessors ---- */

static void basic_accessors(void **state) {
  spoke_request_t *req = req_new("/users/42", "a=1");
  int x;
  char *p;
  (void)state;

  assert_string_equal(spoke__request_method(req), "GET");
  assert_string_equal(spoke__request_path(req), "/users/42");
  assert_string_equal(spoke__request_query(req), "a=1");
  assert_ptr_equal(spoke__request_loop(req), &loop->uv);

  assert_null(spoke__request_data(req));
  spoke__request_set_data(req, &x);
  assert_ptr_equal(spoke__request_data(req), &x);

  p = spoke__request_alloc(req, 64);
  assert_non_null(p);
  assert_int_equal((uintptr_t)p % 16, 0);
  memset(p, 1, 64);
  req_done(req);

  /* No query: "" (never NULL). */
  req = req_new("/", NULL);
  assert_string_equal(spoke__request_query(req), "");
  req_done(req);
}

static void body(void **state) {
  spoke_request_t *req = req_new("/", NULL);
  const char *b;
  size_t len = 99;
  (void)state;

  b = spoke__request_body(req, &len);
  assert_non_null(b);
  assert_int_equal(len, 0);
  assert_string_equal(b, "");
  assert_non_null(spoke__request_body(req, NULL));

  assert_int_equal(spoke__buf_append(&req->body, "a\0b", 3), 0);
  b = spoke__request_body(req, &len);
  assert_int_equal(len, 3);
  assert_memory_equal(b, "a\0b", 3);
  req_done(req);
}

/* ---- query parameters ---- */

static void query_param(void **state) {
  spoke_request_t *req =
      req_new("/", "a=1&b=x%20y&c&d=p+q&e=%zz&a=2&k%31=v&empty=&ab=3");
  (void)state;

  assert_string_equal(spoke__request_query_param(req, "a"), "1");
  assert_string_equal(spoke__request_query_param(req, "b"), "x y");
  assert_string_equal(spoke__request_query_param(req, "c"), "");
  assert_string_equal(spoke__request_query_param(req, "d"), "p q");
  assert_string_equal(spoke__request_query_param(req, "empty"), "");
  assert_string_equal(spoke__request_query_param(req, "ab"), "3");
  /* Keys are decoded too. */
  assert_string_equal(spoke__request_query_param(req, "k1"), "v");
  assert_null(spoke__request_query_param(req, "k%31"));
  /* An invalid escape in the value: no value. */
  assert_null(spoke__request_query_param(req, "e"));
  assert_null(spoke__request_query_param(req, "missing"));
  assert_null(spoke__request_query_param(req, "A"));
  assert_null(spoke__request_query_param(req, "x"));
  /* The query itself is left as it was. */
  assert_string_equal(spoke__request_query(req),
                      "a=1&b=x%20y&c&d=p+q&e=%zz&a=2&k%31=v&empty=&ab=3");
  req_done(req);

  req = req_new("/", "q=a%2Bb+c%26d%3De&&x=%3D=&first+name=Ada");
  assert_string_equal(spoke__request_query_param(req, "q"), "a+b c&d=e");
  assert_string_equal(spoke__request_query_param(req, "x"), "==");
  assert_string_equal(spoke__request_query_param(req, "first name"), "Ada");
  req_done(req);

  req = req_new("/", NULL);
  assert_null(spoke__request_query_param(req, "a"));
  req_done(req);
}

static void query_param_values_stay_valid(void **state) {
  spoke_request_t *req = req_new("/", "a=one&b=two");
  const char *a, *b;
  (void)state;
  /* Each call's string lives until the request ends. */
  a = spoke__request_query_param(req, "a");
  b = spoke__request_query_param(req, "b");
  for (int i = 0; i < 500; i++)
    assert_non_null(spoke__request_query_param(req, "b"));
  assert_string_equal(a, "one");
  assert_string_equal(b, "two");
  req_done(req);
}

/* ---- headers ---- */

static void headers(void **state) {
  spoke_request_t *req = req_new("/", NULL);
  const char *name = NULL, *value = NULL;
  (void)state;

  assert_int_equal(spoke__request_header_count(req), 0);
  assert_null(spoke__request_header(req, "Host"));
  assert_int_equal(spoke__request_header_at(req, 0, &name, &value),
                   SPOKE_EINVAL);

  add_header(req, "Host", "example.com");
  add_header(req, "Content-Type", "text/plain");
  add_header(req, "X-Dup", "first");
  add_header(req, "x-dup", "second");
  add_header(req, "X-Space", " \t padded value \t ");
  add_header(req, "X-Empty", "");

  assert_int_equal(spoke__request_header_count(req), 6);
  assert_string_equal(spoke__request_header(req, "host"), "example.com");
  assert_string_equal(spoke__request_header(req, "CONTENT-TYPE"),
                      "text/plain");
  assert_string_equal(spoke__request_header(req, "Content-Type"),
                      "text/plain");
  /* Repeated: the first wins. */
  assert_string_equal(spoke__request_header(req, "X-DUP"), "first");
  /* Optional whitespace around the value is dropped, inner kept. */
  assert_string_equal(spoke__request_header(req, "x-space"), "padded value");
  assert_string_equal(spoke__request_header(req, "x-empty"), "");
  assert_null(spoke__request_header(req, "Content"));
  assert_null(spoke__request_header(req, "Content-Type2"));

  /* By index, in arrival order, names as sent. */
  assert_int_equal(spoke__request_header_at(req, 0, &name, &value), 0);
  assert_string_equal(name, "Host");
  assert_string_equal(value, "example.com");
  assert_int_equal(spoke__request_header_at(req, 3, &name, &value), 0);
  assert_string_equal(name, "x-dup");
  assert_string_equal(value, "second");
  assert_int_equal(spoke__request_header_at(req, 5, NULL, &value), 0);
  assert_string_equal(value, "");
  assert_int_equal(spoke__request_header_at(req, 5, &name, NULL), 0);
  assert_string_equal(name, "X-Empty");
  name = value = "untouched";
  assert_int_equal(spoke__request_header_at(req, 6, &name, &value),
                   SPOKE_EINVAL);
  assert_int_equal(spoke__request_header_at(req, (size_t)-1, &name, &value),
                   SPOKE_EINVAL);
  assert_string_equal(name, "untouched");
  assert_string_equal(value, "untouched");
  req_done(req);
}

static void headers_many(void **state) {
  spoke_request_t *req = req_new("/", NULL);
  char name[32], value[32];
  (void)state;

  /* Past the first table's 16 entries, several times over; the names
   * and values are copied (the buffers here are reused). */
  for (int i = 0; i < 100; i++) {
    snprintf(name, sizeof(name), "X-H%d", i);
    snprintf(value, sizeof(value), "v%d", i);
    add_header(req, name, value);
  }
  assert_int_equal(spoke__request_header_count(req), 100);
  for (int i = 0; i < 100; i++) {
    const char *n, *v;
    snprintf(name, sizeof(name), "x-h%d", i);
    snprintf(value, sizeof(value), "v%d", i);
    assert_string_equal(spoke__request_header(req, name), value);
    assert_int_equal(spoke__request_header_at(req, (size_t)i, &n, &v), 0);
    assert_string_equal(v, value);
  }
  req_done(req);
}

static void header_copies_only_lengths(void **state) {
  spoke_request_t *req = req_new("/", NULL);
  const char raw[] = "Accept: */*\r\nNext";
  (void)state;
  /* As the parser hands them over: pointers into a larger buffer. */
  assert_int_equal(spoke__request_add_header(req, raw, 6, raw + 8, 3), 0);
  assert_string_equal(spoke__request_header(req, "accept"), "*/*");
  req_done(req);
}

/* ---- route parameters ---- */

static void set_param(spoke_request_t *req, const char *name, size_t off,
                      size_t len) {
  spoke__param_t *p = &req->params[req->nparams++];
  p->name = name;
  p->name_len = strlen(name);
  p->off = off;
  p->len = len;
}

static void params(void **state) {
  /* As matched against the pattern "/users/:id/files/" + "*". */
  const char *path = "/users/a%20b+c/files/dir/x%2Fy.txt";
  spoke_request_t *req = req_new(path, NULL);
  (void)state;

  set_param(req, "id", 7, 7);
  set_param(req, "*", 21, strlen(path) - 21);
  assert_string_equal(spoke__request_param(req, "id"), "a b+c");
  assert_string_equal(spoke__request_param(req, "*"), "dir/x/y.txt");
  assert_null(spoke__request_param(req, "i"));
  assert_null(spoke__request_param(req, "idx"));
  assert_null(spoke__request_param(req, "users"));
  /* The path is not modified by decoding. */
  assert_string_equal(spoke__request_path(req), path);
  req_done(req);
}

static void params_names_not_terminated(void **state) {
  /* Names point into the route pattern, without a NUL after them. */
  const char *pattern = "/:ab/:abc";
  const char *path = "/one/two";
  spoke_request_t *req = req_new(path, NULL);
  (void)state;

  req->params[0] = (spoke__param_t){pattern + 2, 2, 1, 3};
  req->params[1] = (spoke__param_t){pattern + 6, 3, 5, 3};
  req->nparams = 2;
  assert_string_equal(spoke__request_param(req, "ab"), "one");
  assert_string_equal(spoke__request_param(req, "abc"), "two");
  assert_null(spoke__request_param(req, "a"));
  req_done(req);
}

static void params_bad_escape_and_empty(void **state) {
  const char *path = "/f/%zz/static";
  spoke_request_t *req = req_new(path, NULL);
  (void)state;

  set_param(req, "name", 3, 3);
  set_param(req, "*", strlen(path), 0); /* "/static" + "*": empty rest */
  assert_null(spoke__request_param(req, "name"));
  assert_string_equal(spoke__request_param(req, "*"), "");
  req_done(req);

  req = req_new("/", NULL);
  assert_null(spoke__request_param(req, "id"));
  req_done(req);
}

int main(void) {
  const struct CMUnitTest tests[] = {
    cmocka_unit_test_setup_teardown(new_and_free, setup, teardown),
    cmocka_unit_test_setup_teardown(pool_reuses_cleared_requests, setup,
                                    teardown),
    cmocka_unit_test_setup_teardown(detach_aborts, setup, teardown),
    cmocka_unit_test_setup_teardown(hold_misuse_asserts, setup, teardown),
    cmocka_unit_test_setup_teardown(basic_accessors, setup, teardown),
    cmocka_unit_test_setup_teardown(body, setup, teardown),
    cmocka_unit_test_setup_teardown(query_param, setup, teardown),
    cmocka_unit_test_setup_teardown(query_param_values_stay_valid, setup,
                                    teardown),
    cmocka_unit_test_setup_teardown(headers, setup, teardown),
    cmocka_unit_test_setup_teardown(headers_many, setup, teardown),
    cmocka_unit_test_setup_teardown(header_copies_only_lengths, setup,
                                    teardown),
    cmocka_unit_test_setup_teardown(params, setup, teardown),
    cmocka_unit_test_setup_teardown(params_names_not_terminated, setup,
                                    teardown),
    cmocka_unit_test_setup_teardown(params_bad_escape_and_empty, setup,
                                    teardown),
  };
  return cmocka_run_group_tests_name("request", tests, NULL, NULL);
}
