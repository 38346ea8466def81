/* test_path.c: request-path normalization (core/path.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "base/base.h"

static void expect_path(const char *in, const char *want) {
  char buf[256];
  size_t n = 0;
  snprintf(buf, sizeof(buf), "%s", in);
  assert_int_equal(spoke__path_normalize(buf, strlen(buf), &n), 0);
  assert_string_equal(buf, want);
  assert_int_equal(n, strlen(want));
}

static void expect_refused(const char *in) {
  char buf[256];
  size_t n = 0;
  snprintf(buf, sizeof(buf), "%s", in);
  assert_int_equal(spoke__path_normalize(buf, strlen(buf), &n), SPOKE_EINVAL);
}

static void plain_paths_unchanged(void **state) {
  (void)state;
  expect_path("/", "/");
  expect_path("/hello", "/hello");
  expect_path("/a/b/c", "/a/b/c");
  expect_path("/a/b/", "/a/b/");
  expect_path("/a.b/c..d/.e", "/a.b/c..d/.e");
}

static void dot_segments_resolved(void **state) {
  (void)state;
  expect_path("/a/../hello", "/hello");
  expect_path("/./hello", "/hello");
  expect_path("/a/./b/../c", "/a/c");
  expect_path("/a/b/..", "/a/");
  expect_path("/a/b/.", "/a/b/");
  expect_path("/a/..", "/");
}

static void never_above_the_root(void **state) {
  (void)state;
  expect_path("/..", "/");
  expect_path("/../hello", "/hello");
  expect_path("/../../../etc/passwd", "/etc/passwd");
  expect_path("/a/../../b", "/b");
}

static void encoded_dots_are_dots(void **state) {
  (void)state;
  expect_path("/a/%2e%2e/hello", "/hello");
  expect_path("/a/%2E%2E/hello", "/hello");
  expect_path("/%2e/hello", "/hello");
  expect_path("/a/.%2e/b", "/b");
  expect_path("/%2e%2e/%2e%2e/x", "/x");
}

static void slashes_merged(void **state) {
  (void)state;
  expect_path("//hello", "/hello");
  expect_path("/a///b//", "/a/b/");
  expect_path("///", "/");
}

static void encodings_canonical(void **state) {
  (void)state;
  expect_path("/h%65llo", "/hello");         /* unreserved: decoded */
  expect_path("/%7Euser", "/~user");
  expect_path("/a%2fb", "/a%2Fb");           /* a slash stays encoded */
  expect_path("/a%2F..%2Fb", "/a%2F..%2Fb"); /* and is no separator */
  expect_path("/sp%20ace", "/sp%20ace");
}

static void bad_paths_refused(void **state) {
  (void)state;
  expect_refused("");
  expect_refused("hello");
  expect_refused("*");
  expect_refused("/a%zz");
  expect_refused("/a%4");
  expect_refused("/a%");
  expect_refused("/a%00b");
  expect_refused("/%2");
}

int main(void) {
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(plain_paths_unchanged),
    cmocka_unit_test(dot_segments_resolved),
    cmocka_unit_test(never_above_the_root),
    cmocka_unit_test(encoded_dots_are_dots),
    cmocka_unit_test(slashes_merged),
    cmocka_unit_test(encodings_canonical),
    cmocka_unit_test(bad_paths_refused),
  };
  return cmocka_run_group_tests_name("path", tests, NULL, NULL);
}
