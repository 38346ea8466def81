/* test_authority.c: the Host value check (core/http/authority.c), RFC
 * 3986's uri-host [":" port] as RFC 9112 §3.2 asks of a Host field.
 *
 * - Accepted: names, IPv4, IPv6 and IPvFuture literals, percent
 *   escapes, every unreserved and sub-delims character, a port of
 *   digits or an empty one, and the empty value.
 * - Each byte alone: valid exactly when unreserved or a sub-delim.
 * - Refused: whitespace, '/', '@', '?', '#', control bytes, a port with
 *   anything but digits, an unclosed or empty literal, junk after a
 *   literal, letters beyond hex inside one, a short percent escape.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "http/http.h"

static int ok(const char *v) { return spoke__host_value_ok(v, strlen(v)); }

static void test_valid(void **state) {
  static const char *const good[] = {
      "", "example.com", "EXAMPLE.com", "example.com:8080", "example.com:",
      "127.0.0.1", "127.0.0.1:80", "[::1]", "[::1]:443",
      "[2001:db8::7]", "[::ffff:192.0.2.1]", "[v1.fe80::a+en1]",
      "a%41b", "x_y~z-1.", "!$&'()*+,;=", "localhost"};
  (void)state;
  for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
    if (!ok(good[i]))
      fail_msg("refused \"%s\"", good[i]);
  }
}

static void test_invalid(void **state) {
  static const char *const bad[] = {
      "a b", " a", "a\t", "a/b", "u@a", "a?b", "a#b", "a:8o", "a:-1",
      "a:80:80", "[::1", "[]", "[::1]x", "[::1]:a", "[::g]", "[v.x]",
      "[v1]", "[v1.]", "a%4", "a%zz", "a%", "a\"b", "a<b", "a\\b",
      "\x01"};
  (void)state;
  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
    if (ok(bad[i]))
      fail_msg("accepted \"%s\"", bad[i]);
  }
}

/* Every byte alone as a host: valid exactly when it is unreserved or a
 * sub-delim (authority.c keeps those as a bit set). ':' (an empty host
 * and port), '[' (a literal) and '%' (an escape) have rules of their own,
 * checked above. */
static void test_every_byte(void **state) {
  (void)state;
  for (int c = 0; c < 256; c++) {
    char v[1] = {(char)c};
    int want = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
               (c >= '0' && c <= '9') ||
               (c != 0 && strchr("-._~!$&'()*+,;=", c) != NULL);
    if (c == ':' || c == '[' || c == '%')
      continue;
    if (spoke__host_value_ok(v, 1) != want)
      fail_msg("byte 0x%02x: got %d, want %d", c, !want, want);
  }
}

static void test_length_not_nul(void **state) {
  (void)state;
  /* Only V[0..n) counts: what follows is not read. */
  assert_true(spoke__host_value_ok("a b", 1));
  assert_false(spoke__host_value_ok("a%41", 3));
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_valid),
      cmocka_unit_test(test_invalid),
      cmocka_unit_test(test_every_byte),
      cmocka_unit_test(test_length_not_nul),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
