/* test_plugin_mock.c: an example plugin run against a mock host table.
 *
 * A plugin reaches the server only through the spoke_host_t table it is
 * handed, so a test can hand it a table of cmocka mocks instead: no core,
 * no sockets, no dlopen. This file is compiled once per example together
 * with that example's source (test_example_hello, test_example_counter;
 * each example defines spoke_plugin and spoke_host, so one per
 * executable). It installs the table the way the loader does, through
 * the descriptor's host slot, and calls the handler through the route
 * table with a dummy request pointer the mocks check for.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include <spoke.h>

/* Defined by the example compiled into this executable. */
extern const spoke_plugin_t spoke_plugin;

/* Never dereferenced: the mocks only compare it. */
static int dummy_request;
#define REQ ((spoke_request_t *)&dummy_request)

/* ---- the mock host table ---- */

static int mock_response_header(spoke_request_t *req, const char *name,
                                const char *value) {
  check_expected_ptr(req);
  check_expected_ptr(name);
  check_expected_ptr(value);
  return mock_type(int);
}

static int mock_response_send(spoke_request_t *req, const void *body,
                              size_t len) {
  check_expected_ptr(req);
  check_expected_ptr(body);
  check_expected(len);
  return mock_type(int);
}

static void *mock_plugin_state(const spoke_request_t *req) {
  check_expected_ptr(req);
  return mock_ptr_type(void *);
}

static int log_lines;

static void mock_logv(const spoke_host_t *host, int level, const char *fmt,
                      va_list ap) {
  (void)host;
  (void)level;
  (void)fmt;
  (void)ap;
  log_lines++;
}

/* Members the examples must not call stay NULL: a call would crash the
 * test, which fails it. */
static spoke_host_t mock_host = {
  .struct_size = sizeof(spoke_host_t),
  .abi_major = SPOKE_ABI_MAJOR,
  .abi_minor = SPOKE_ABI_MINOR,
  .response_header = mock_response_header,
  .response_send = mock_response_send,
  .plugin_state = mock_plugin_state,
  .logv = mock_logv,
};

static int install_host(void **state) {
  (void)state;
  /* As the loader does: store the table through the descriptor. */
  *spoke_plugin.host = &mock_host;
  return 0;
}

static int remove_host(void **state) {
  (void)state;
  *spoke_plugin.host = NULL;
  return 0;
}

static void expect_header(const char *name, const char *value, int rc) {
  expect_value(mock_response_header, req, REQ);
  expect_string(mock_response_header, name, name);
  expect_string(mock_response_header, value, value);
  will_return(mock_response_header, rc);
}

static void expect_send(const char *body, int rc) {
  size_t len = strlen(body);
  expect_value(mock_response_send, req, REQ);
  expect_memory(mock_response_send, body, body, len);
  expect_value(mock_response_send, len, len);
  will_return(mock_response_send, rc);
}

/* Calls route I's handler as the server would. */
static int call_route(size_t i) {
  assert_true(i < spoke_plugin.nroutes);
  return spoke_plugin.routes[i].handler(REQ);
}

static void descriptor_is_sdk_v1(void **state) {
  (void)state;
  assert_int_equal(spoke_plugin.abi_major, SPOKE_ABI_MAJOR);
  assert_int_equal(spoke_plugin.abi_minor, SPOKE_ABI_MINOR);
  assert_int_equal(spoke_plugin.struct_size, sizeof(spoke_plugin_t));
  assert_ptr_equal(spoke_plugin.host, &spoke_host);
  assert_ptr_equal(spoke_host, &mock_host);
}

static void host_has(void **state) {
  (void)state;
  /* The plugin can tell what the host's table holds. */
  assert_true(SPOKE_HOST_HAS(response_send));
  assert_false(SPOKE_HOST_HAS(timer_start)); /* NULL in the mock */
  mock_host.struct_size = (uint32_t)offsetof(spoke_host_t, response_send);
  assert_false(SPOKE_HOST_HAS(response_send));
  assert_true(SPOKE_HOST_HAS(plugin_state));
  mock_host.struct_size = sizeof(spoke_host_t);
}

#if defined(SPOKE_MOCK_EXAMPLE_HELLO)

/* ---- examples/hello.c ---- */

static void hello_descriptor(void **state) {
  const spoke_route_t *r = &spoke_plugin.routes[0];
  (void)state;
  assert_string_equal(spoke_plugin.name, "hello");
  assert_string_equal(spoke_plugin.version, "1.0.0");
  assert_int_equal(spoke_plugin.nroutes, 2);
  assert_string_equal(r->method, "GET");
  assert_string_equal(r->path, "/hello");
  assert_int_equal(r->mode, SPOKE_ASYNC);
  assert_non_null(r->handler);
  /* The same handler again, as a sync route (the mode benchmark). */
  assert_string_equal(r[1].path, "/hello/sync");
  assert_int_equal(r[1].mode, SPOKE_SYNC);
  assert_ptr_equal(r[1].handler, r->handler);
  assert_null(spoke_plugin.init);
  assert_null(spoke_plugin.fini);
}

static void hello_says_hello(void **state) {
  (void)state;
  expect_header("Content-Type", "text/plain", 0);
  expect_send("Hello, World!", 0);
  assert_int_equal(call_route(0), 0);
  /* The same again: the handler keeps no state. */
  expect_header("Content-Type", "text/plain", 0);
  expect_send("Hello, World!", 0);
  assert_int_equal(call_route(0), 0);
}

static void hello_reports_send_failure(void **state) {
  (void)state;
  expect_header("Content-Type", "text/plain", 0);
  expect_send("Hello, World!", SPOKE_ECANCELED);
  assert_int_equal(call_route(0), SPOKE_ECANCELED);
}

#define EXAMPLE_NAME "example_hello"
#define EXAMPLE_TESTS                                                     \
  cmocka_unit_test(hello_descriptor),                                     \
  cmocka_unit_test(hello_says_hello),                                     \
  cmocka_unit_test(hello_reports_send_failure)

#elif defined(SPOKE_MOCK_EXAMPLE_COUNTER)

/* ---- examples/counter.c ---- */

static void counter_descriptor(void **state) {
  const spoke_route_t *r = &spoke_plugin.routes[0];
  (void)state;
  assert_string_equal(spoke_plugin.name, "counter");
  assert_int_equal(spoke_plugin.nroutes, 1);
  assert_string_equal(r->method, "GET");
  assert_string_equal(r->path, "/counter");
  assert_non_null(r->handler);
  assert_non_null(spoke_plugin.init);
  assert_non_null(spoke_plugin.fini);
}

static void expect_count(void *counter_state, const char *body) {
  expect_value(mock_plugin_state, req, REQ);
  will_return(mock_plugin_state, counter_state);
  expect_header("Content-Type", "text/plain", 0);
  expect_send(body, 0);
}

static void counter_counts(void **state) {
  void *st = NULL;
  (void)state;

  assert_int_equal(spoke_plugin.init(&mock_host, &st), 0);
  assert_non_null(st);
  expect_count(st, "1\n");
  assert_int_equal(call_route(0), 0);
  expect_count(st, "2\n");
  assert_int_equal(call_route(0), 0);
  expect_count(st, "3\n");
  assert_int_equal(call_route(0), 0);
  /* fini frees the state (AddressSanitizer would report a leak). */
  spoke_plugin.fini(st);
}

static void counter_states_are_independent(void **state) {
  /* Two loaded versions each run init and get their own count. */
  void *a = NULL, *b = NULL;
  (void)state;

  assert_int_equal(spoke_plugin.init(&mock_host, &a), 0);
  assert_int_equal(spoke_plugin.init(&mock_host, &b), 0);
  assert_ptr_not_equal(a, b);
  expect_count(a, "1\n");
  assert_int_equal(call_route(0), 0);
  expect_count(a, "2\n");
  assert_int_equal(call_route(0), 0);
  expect_count(b, "1\n");
  assert_int_equal(call_route(0), 0);
  expect_count(a, "3\n");
  assert_int_equal(call_route(0), 0);
  spoke_plugin.fini(a);
  spoke_plugin.fini(b);
}

static void counter_handover_shares_the_count(void **state) {
  /* A reload: v2's handover takes v1's state; both count on it while v1
   * drains, and the state outlives whichever version finishes first. */
  void *v1 = NULL, *v2 = NULL;
  (void)state;

  assert_non_null(spoke_plugin.handover);
  assert_int_equal(spoke_plugin.init(&mock_host, &v1), 0);
  expect_count(v1, "1\n");
  assert_int_equal(call_route(0), 0);
  log_lines = 0;
  assert_int_equal(spoke_plugin.handover(&mock_host, v1, "1.0.0", &v2), 0);
  assert_ptr_equal(v2, v1);
  assert_int_equal(log_lines, 1);
  expect_count(v2, "2\n"); /* the new version goes on from the old count */
  assert_int_equal(call_route(0), 0);
  expect_count(v1, "3\n"); /* a request still draining in the old one */
  assert_int_equal(call_route(0), 0);
  spoke_plugin.fini(v1);    /* the old version unloads first */
  expect_count(v2, "4\n"); /* ASan: use-after-free if fini freed it */
  assert_int_equal(call_route(0), 0);
  spoke_plugin.fini(v2);    /* LSan: leak if the last fini kept it */
}

static void counter_handover_from_another_layout_starts_fresh(void **state) {
  void *v1 = NULL, *v2 = NULL;
  (void)state;

  assert_int_equal(spoke_plugin.init(&mock_host, &v1), 0);
  expect_count(v1, "1\n");
  assert_int_equal(call_route(0), 0);
  assert_int_equal(spoke_plugin.handover(&mock_host, v1, "2.0.0", &v2), 0);
  assert_ptr_not_equal(v2, v1);
  expect_count(v2, "1\n");
  assert_int_equal(call_route(0), 0);
  spoke_plugin.fini(v1);
  spoke_plugin.fini(v2);
}

#define EXAMPLE_NAME "example_counter"
#define EXAMPLE_TESTS                                                     \
  cmocka_unit_test(counter_descriptor),                                   \
  cmocka_unit_test(counter_counts),                                       \
  cmocka_unit_test(counter_states_are_independent),                       \
  cmocka_unit_test(counter_handover_shares_the_count),                    \
  cmocka_unit_test(counter_handover_from_another_layout_starts_fresh)

#else
#error "define SPOKE_MOCK_EXAMPLE_HELLO or SPOKE_MOCK_EXAMPLE_COUNTER"
#endif

int main(void) {
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(descriptor_is_sdk_v1),
    cmocka_unit_test(host_has),
    EXAMPLE_TESTS,
  };
  return cmocka_run_group_tests_name(EXAMPLE_NAME, tests, install_host,
                                     remove_host);
}
