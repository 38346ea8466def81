/* test_descriptor.c: spoke__descriptor_check on crafted descriptors
 * (core/descriptor.c).
 *
 * Each test starts from a valid descriptor, breaks one thing and checks
 * both the code and that the message says what is wrong.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "plugin/plugin.h"

static const spoke_host_t *fake_host_slot;

static int handler(spoke_request_t *req) {
  (void)req;
  return 0;
}

static const spoke_route_t good_routes[] = {
  { "GET", "/hello", SPOKE_ASYNC, handler },
  { "*", "/any/:id", SPOKE_SYNC, handler },
  { "POST", "/static/*", SPOKE_ASYNC, handler },
};

static spoke_plugin_t good(void) {
  spoke_plugin_t d = {
    .abi_major = SPOKE_ABI_MAJOR,
    .abi_minor = SPOKE_ABI_MINOR,
    .struct_size = sizeof(spoke_plugin_t),
    .host = &fake_host_slot,
    .name = "good_plugin-1",
    .version = "1.0.0",
    .routes = good_routes,
    .nroutes = sizeof(good_routes) / sizeof(good_routes[0]),
  };
  return d;
}

static char err[512];

static int check(const spoke_plugin_t *d) {
  memset(err, 0, sizeof(err));
  return spoke__descriptor_check(d, err, sizeof(err));
}

static void accepts_valid(void **state) {
  spoke_plugin_t d = good();
  (void)state;
  assert_int_equal(check(&d), 0);
  /* Same minor, same size: accepted without a warning. */
  assert_string_equal(err, "");
  /* Optional members may be absent: no version, no init or fini. */
  d.version = NULL;
  assert_int_equal(check(&d), 0);
  assert_string_equal(err, "");
}

static void accepts_older_minor_quietly(void **state) {
  spoke_plugin_t d = good();
  (void)state;
  /* An SDK 1.0 descriptor: this host has everything it was built for. */
  d.abi_minor = 0;
  d.struct_size = (uint32_t)(offsetof(spoke_plugin_t, fini) + sizeof(d.fini));
  memset(err, 'x', sizeof(err) - 1);
  assert_int_equal(spoke__descriptor_check(&d, err, sizeof(err)), 0);
  assert_string_equal(err, "");
  assert_int_equal(spoke__descriptor_warning(&d, err, sizeof(err)), 0);
  assert_string_equal(err, "");
}

static void accepts_newer_minor_with_a_warning(void **state) {
  spoke_plugin_t d = good();
  char want[256], warn[512];
  (void)state;
  d.abi_minor = SPOKE_ABI_MINOR + 1;
  assert_int_equal(check(&d), 0);
  snprintf(want, sizeof(want),
           "plugin good_plugin-1 1.0.0 was built for SDK %d.%d; this host "
           "speaks %d.%d: host functions added after %d.%d are missing "
           "here (the plugin must test them with SPOKE_HOST_HAS)",
           SPOKE_ABI_MAJOR, SPOKE_ABI_MINOR + 1, SPOKE_ABI_MAJOR,
           SPOKE_ABI_MINOR, SPOKE_ABI_MAJOR, SPOKE_ABI_MINOR);
  assert_string_equal(err, want);
  /* The same text from spoke__descriptor_warning (what `spoke check`
   * prints). */
  assert_int_equal(spoke__descriptor_warning(&d, warn, sizeof(warn)), 1);
  assert_string_equal(warn, want);
  /* Without a version string the name stands alone. */
  d.version = NULL;
  assert_int_equal(check(&d), 0);
  assert_non_null(strstr(err, "plugin good_plugin-1 was built for SDK"));
}

static void larger_descriptor_names_the_ignored_bytes(void **state) {
  spoke_plugin_t d = good();
  char bytes[64];
  (void)state;
  /* A newer minor's descriptor may be larger than ours: accepted, and the
   * warning says how much of it this host does not read. */
  d.abi_minor = SPOKE_ABI_MINOR + 1;
  d.struct_size = sizeof(spoke_plugin_t) + 8;
  assert_int_equal(check(&d), 0);
  assert_non_null(strstr(err, "SPOKE_HOST_HAS); its descriptor has 8 bytes "
                              "this host does not read"));
  d.abi_minor = 99;
  d.struct_size = sizeof(spoke_plugin_t) + 64;
  assert_int_equal(check(&d), 0);
  assert_non_null(strstr(err, "built for SDK 1.99"));
  assert_non_null(strstr(err, "its descriptor has 64 bytes"));
  /* Larger at the same minor (written by hand): only the bytes. */
  d.abi_minor = SPOKE_ABI_MINOR;
  d.struct_size = sizeof(spoke_plugin_t) + 16;
  assert_int_equal(check(&d), 0);
  assert_null(strstr(err, "SPOKE_HOST_HAS"));
  snprintf(bytes, sizeof(bytes), "speaks %d.%d: its descriptor has 16 bytes",
           SPOKE_ABI_MAJOR, SPOKE_ABI_MINOR);
  assert_non_null(strstr(err, bytes));
}

static void warning_fits_a_small_buffer(void **state) {
  spoke_plugin_t d = good();
  char tiny[16];
  (void)state;
  d.abi_minor = SPOKE_ABI_MINOR + 1;
  d.struct_size = sizeof(spoke_plugin_t) + 8;
  memset(tiny, 'x', sizeof(tiny));
  assert_int_equal(spoke__descriptor_warning(&d, tiny, sizeof(tiny)), 1);
  assert_int_equal(strlen(tiny), sizeof(tiny) - 1);
  assert_int_equal(spoke__descriptor_warning(&d, tiny, 0), 1);
}

static void null_descriptor(void **state) {
  (void)state;
  assert_int_equal(check(NULL), SPOKE_ENODESC);
  assert_true(err[0] != '\0');
}

static void abi_major_mismatch(void **state) {
  spoke_plugin_t d = good();
  char want[32];
  (void)state;
  d.abi_major = 2;
  d.abi_minor = 3;
  assert_int_equal(check(&d), SPOKE_EABI);
  /* Names the plugin's version and the host's. */
  assert_non_null(strstr(err, "2.3"));
  snprintf(want, sizeof(want), "%d.%d", SPOKE_ABI_MAJOR, SPOKE_ABI_MINOR);
  assert_non_null(strstr(err, want));

  d.abi_major = 0;
  assert_int_equal(check(&d), SPOKE_EABI);
  assert_non_null(strstr(err, "0.3"));
}

static void abi_checked_before_anything_else(void **state) {
  /* An old-major descriptor may be any shape: nothing past the version
   * fields may be read, so everything else here is garbage. */
  spoke_plugin_t d;
  (void)state;
  memset(&d, 0, sizeof(d));
  d.abi_major = 7;
  d.struct_size = 4;
  assert_int_equal(check(&d), SPOKE_EABI);
}

static void too_small(void **state) {
  spoke_plugin_t d = good();
  (void)state;
  d.struct_size = 8;
  assert_int_equal(check(&d), SPOKE_EDESC);
  assert_non_null(strstr(err, "too small"));
  assert_non_null(strstr(err, "8 bytes"));

  /* One byte short of SDK 1.0's descriptor. */
  d.struct_size = (uint32_t)(offsetof(spoke_plugin_t, fini) +
                             sizeof(d.fini) - 1);
  assert_int_equal(check(&d), SPOKE_EDESC);
  assert_non_null(strstr(err, "too small"));
  d.struct_size++;
  assert_int_equal(check(&d), 0);
}

static void null_host_slot(void **state) {
  spoke_plugin_t d = good();
  (void)state;
  d.host = NULL;
  assert_int_equal(check(&d), SPOKE_EDESC);
  assert_non_null(strstr(err, "host"));
}

static void bad_names(void **state) {
  static const char *bad[] = {"", "Hello", "HELLO", "hello world",
                              "hello.so", "héllo", "a/b", "x:y"};
  char name[80];
  spoke_plugin_t d = good();
  (void)state;

  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
    d.name = bad[i];
    if (check(&d) != SPOKE_EDESC)
      fail_msg("name \"%s\" was accepted", bad[i]);
    assert_non_null(strstr(err, "name"));
  }
  d.name = NULL;
  assert_int_equal(check(&d), SPOKE_EDESC);

  /* 64 characters is the limit. */
  memset(name, 'a', 64);
  name[64] = '\0';
  d.name = name;
  assert_int_equal(check(&d), 0);
  name[64] = 'a';
  name[65] = '\0';
  assert_int_equal(check(&d), SPOKE_EDESC);

  d.name = "a";
  assert_int_equal(check(&d), 0);
  d.name = "0-9_z";
  assert_int_equal(check(&d), 0);
}

static void no_routes(void **state) {
  spoke_plugin_t d = good();
  (void)state;
  d.nroutes = 0;
  assert_int_equal(check(&d), SPOKE_EDESC);
  assert_non_null(strstr(err, "routes"));
  d = good();
  d.routes = NULL;
  assert_int_equal(check(&d), SPOKE_EDESC);
  assert_non_null(strstr(err, "routes"));
  /* An absurd count is refused before the table is read. */
  d = good();
  d.nroutes = (size_t)1 << 40;
  assert_int_equal(check(&d), SPOKE_EDESC);
}

/* A descriptor with GOOD's routes, route INDEX replaced by R. */
static int check_route(size_t index, spoke_route_t r) {
  spoke_route_t routes[3];
  spoke_plugin_t d = good();
  memcpy(routes, good_routes, sizeof(routes));
  routes[index] = r;
  d.routes = routes;
  return check(&d);
}

static void bad_mode(void **state) {
  spoke_route_t r = {"GET", "/x", (spoke_mode_t)0, handler};
  (void)state;
  assert_int_equal(check_route(1, r), SPOKE_EDESC);
  assert_non_null(strstr(err, "mode"));
  assert_non_null(strstr(err, "route 1"));
  r.mode = (spoke_mode_t)3;
  assert_int_equal(check_route(2, r), SPOKE_EDESC);
  assert_non_null(strstr(err, "route 2"));
}

static void null_handler(void **state) {
  spoke_route_t r = {"GET", "/x", SPOKE_SYNC, NULL};
  (void)state;
  assert_int_equal(check_route(0, r), SPOKE_EDESC);
  assert_non_null(strstr(err, "handler"));
  assert_non_null(strstr(err, "route 0"));
  assert_non_null(strstr(err, "good_plugin-1"));
}

static void null_method(void **state) {
  spoke_route_t r = {NULL, "/x", SPOKE_SYNC, handler};
  (void)state;
  assert_int_equal(check_route(2, r), SPOKE_EDESC);
  assert_non_null(strstr(err, "method"));
}

static void bad_method(void **state) {
  spoke_route_t r = {"GET /x", "/x", SPOKE_SYNC, handler};
  (void)state;
  assert_int_equal(check_route(0, r), SPOKE_EDESC);
  assert_non_null(strstr(err, "token"));
}

static void bad_path(void **state) {
  static const char *bad[] = {"x", "", "/a/*/b", "/:", "/a/:/b"};
  (void)state;
  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
    spoke_route_t r = {"GET", bad[i], SPOKE_SYNC, handler};
    if (check_route(1, r) != SPOKE_EDESC)
      fail_msg("path \"%s\" was accepted", bad[i]);
    assert_non_null(strstr(err, "route 1"));
  }
  {
    spoke_route_t r = {"GET", NULL, SPOKE_SYNC, handler};
    assert_int_equal(check_route(1, r), SPOKE_EDESC);
  }
}

static void small_error_buffer(void **state) {
  spoke_plugin_t d = good();
  char tiny[8];
  (void)state;
  d.abi_major = 2;
  memset(tiny, 'x', sizeof(tiny));
  assert_int_equal(spoke__descriptor_check(&d, tiny, sizeof(tiny)),
                   SPOKE_EABI);
  assert_int_equal(strlen(tiny), sizeof(tiny) - 1);
}

int main(void) {
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(accepts_valid),
    cmocka_unit_test(accepts_older_minor_quietly),
    cmocka_unit_test(accepts_newer_minor_with_a_warning),
    cmocka_unit_test(larger_descriptor_names_the_ignored_bytes),
    cmocka_unit_test(warning_fits_a_small_buffer),
    cmocka_unit_test(null_descriptor),
    cmocka_unit_test(abi_major_mismatch),
    cmocka_unit_test(abi_checked_before_anything_else),
    cmocka_unit_test(too_small),
    cmocka_unit_test(null_host_slot),
    cmocka_unit_test(bad_names),
    cmocka_unit_test(no_routes),
    cmocka_unit_test(bad_mode),
    cmocka_unit_test(null_handler),
    cmocka_unit_test(null_method),
    cmocka_unit_test(bad_method),
    cmocka_unit_test(bad_path),
    cmocka_unit_test(small_error_buffer),
  };
  return cmocka_run_group_tests_name("descriptor", tests, NULL, NULL);
}
