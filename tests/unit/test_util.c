/* test_util.c: the small shared helpers of internal.h: the arena
 * (core/arena.c), the growable buffer (core/buf.c), string helpers
 * (core/strutil.c) and status reasons (core/status.c).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "base/base.h"

/* Under AddressSanitizer (or TSan) a huge malloc would abort instead of returning
 * NULL; the overflow tests below want to see the NULL. */
__attribute__((used, visibility("default"))) const char *
__asan_default_options(void);
const char *__asan_default_options(void) {
  return "allocator_may_return_null=1";
}
/* The same under ThreadSanitizer. */
__attribute__((used, visibility("default"))) const char *
__tsan_default_options(void);
const char *__tsan_default_options(void) {
  return "allocator_may_return_null=1";
}

/* Runs FN(ARG) in a child process with a time limit, so that a hang or a
 * crash fails one test instead of the whole executable. Returns FN's
 * result (FN returns 0 or 10 and up; a sanitizer aborting the child exits
 * with 1), or -1 if the child was killed or ran out of time. */
static int in_child(int (*fn)(void *), void *arg, unsigned seconds) {
  int status;
  pid_t pid = fork();
  assert_true(pid >= 0);
  if (pid == 0) {
    alarm(seconds);
    _exit(fn(arg));
  }
  assert_int_equal(waitpid(pid, &status, 0), pid);
  if (WIFEXITED(status))
    return WEXITSTATUS(status);
  return -1;
}

/* ---- arena ---- */

static void arena_many_small(void **state) {
  spoke__arena_t a;
  unsigned char *p[1000];
  (void)state;

  spoke__arena_init(&a);
  assert_null(a.chunks);
  /* Sizes 1..24 cycling: enough for several chunks. Each block is filled
   * with its own byte; overlapping blocks would clobber each other. */
  for (int i = 0; i < 1000; i++) {
    size_t n = (size_t)(i % 24) + 1;
    p[i] = spoke__arena_alloc(&a, n);
    assert_non_null(p[i]);
    memset(p[i], i & 0xff, n);
  }
  for (int i = 0; i < 1000; i++) {
    size_t n = (size_t)(i % 24) + 1;
    for (size_t j = 0; j < n; j++)
      assert_int_equal(p[i][j], i & 0xff);
  }
  assert_non_null(a.chunks);
  spoke__arena_free(&a);
  assert_null(a.chunks);
  assert_null(a.cur);
  assert_int_equal(a.left, 0);
}

static void arena_alignment(void **state) {
  spoke__arena_t a;
  static const size_t sizes[] = {1, 3, 15, 16, 17, 31, 100, 2047, 2048,
                                 2049, 5000, 7, 1};
  (void)state;

  spoke__arena_init(&a);
  for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
    void *p = spoke__arena_alloc(&a, sizes[i]);
    assert_non_null(p);
    if ((uintptr_t)p % 16 != 0)
      fail_msg("alloc(%zu) = %p is not 16-byte aligned", sizes[i], p);
    memset(p, 0xab, sizes[i]);
  }
  /* A long double (16-byte alignment on x86-64) fits in any block. */
  {
    long double *ld = spoke__arena_alloc(&a, sizeof(long double) * 3);
    assert_non_null(ld);
    ld[0] = 1.5L;
    ld[2] = 2.5L;
    assert_true(ld[0] + ld[2] == 4.0L);
  }
  spoke__arena_free(&a);
}

/* Lent storage is used first, aligned, and returned to after free. */
static void arena_lent_storage(void **state) {
  _Alignas(16) char storage[1 + 256];
  char *base = storage + 1; /* misaligned on purpose */
  spoke__arena_t a;
  char *p, *q, *r;
  (void)state;

  spoke__arena_init_with(&a, base, 256);
  p = spoke__arena_alloc(&a, 100);
  assert_non_null(p);
  assert_true(p >= base && p + 100 <= base + 256);
  assert_int_equal((uintptr_t)p % 16, 0);
  assert_null(a.chunks); /* nothing allocated from the heap */
  q = spoke__arena_alloc(&a, 100);
  assert_true(q >= p + 100 && q + 100 <= base + 256);
  /* Past the storage: a heap chunk. */
  r = spoke__arena_alloc(&a, 100);
  assert_non_null(r);
  assert_true(r < base || r >= base + 256);
  assert_non_null(a.chunks);
  memset(r, 'r', 100);
  /* Free gives the chunks back and rewinds to the storage. */
  spoke__arena_free(&a);
  assert_null(a.chunks);
  assert_ptr_equal(spoke__arena_alloc(&a, 8), p);
  spoke__arena_free(&a);
}

static void arena_large(void **state) {
  spoke__arena_t a;
  char *small1, *big, *small2, *huge;
  (void)state;

  spoke__arena_init(&a);
  small1 = spoke__arena_alloc(&a, 32);
  assert_non_null(small1);
  memset(small1, 's', 32);

  /* More than 2 KiB: a chunk of its own, the whole size usable. */
  big = spoke__arena_alloc(&a, 3000);
  assert_non_null(big);
  memset(big, 'b', 3000);
  huge = spoke__arena_alloc(&a, 1 << 20);
  assert_non_null(huge);
  memset(huge, 'h', 1 << 20);

  /* Small allocations go on in the first chunk, clear of the big ones. */
  small2 = spoke__arena_alloc(&a, 32);
  assert_non_null(small2);
  assert_ptr_equal(small2, small1 + 32);
  memset(small2, 't', 32);
  for (int i = 0; i < 32; i++)
    assert_int_equal(small1[i], 's');
  for (int i = 0; i < 3000; i++)
    assert_int_equal(big[i], 'b');
  assert_int_equal(huge[(1 << 20) - 1], 'h');
  spoke__arena_free(&a);

  /* A size that overflows when rounded up fails cleanly. */
  spoke__arena_init(&a);
  assert_null(spoke__arena_alloc(&a, SIZE_MAX - 3));
  spoke__arena_free(&a);
}

/* 0: alloc(SIZE) returned NULL; 10: it returned a block. */
static int child_arena_huge(void *arg) {
  spoke__arena_t a;
  void *p;
  spoke__arena_init(&a);
  p = spoke__arena_alloc(&a, *(size_t *)arg);
  return p == NULL ? 0 : 10;
}

static void arena_huge_fails(void **state) {
  /* Sizes that round up without overflowing but cannot be allocated,
   * including ones where the chunk header would push malloc's size past
   * SIZE_MAX (a plugin's spoke_request_alloc with an underflowed size).
   * Each must give NULL, not a block smaller than asked. */
  static const size_t sizes[] = {SIZE_MAX / 2, SIZE_MAX - 31, SIZE_MAX - 20};
  (void)state;
  for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
    size_t size = sizes[i];
    int rc = in_child(child_arena_huge, &size, 2);
    if (rc != 0)
      fail_msg("spoke__arena_alloc(%#zx) %s", size,
               rc == 10 ? "returned a block instead of NULL"
                        : "crashed or hung instead of returning NULL");
  }
}

static void arena_strndup(void **state) {
  spoke__arena_t a;
  char *s;
  (void)state;

  spoke__arena_init(&a);
  s = spoke__arena_strndup(&a, "hello world", 5);
  assert_string_equal(s, "hello");
  s = spoke__arena_strndup(&a, "abc", 0);
  assert_non_null(s);
  assert_string_equal(s, "");
  /* Bytes past N are not read; embedded bytes are copied as they are. */
  s = spoke__arena_strndup(&a, "a\0b", 3);
  assert_memory_equal(s, "a\0b\0", 4);
  {
    char big[5000];
    memset(big, 'z', sizeof(big));
    s = spoke__arena_strndup(&a, big, sizeof(big));
    assert_int_equal(strlen(s), sizeof(big));
  }
  spoke__arena_free(&a);
  /* Freeing twice, or freeing an unused arena, is harmless. */
  spoke__arena_free(&a);
}

/* ---- buf ---- */

static void buf_append(void **state) {
  spoke__buf_t b = {0};
  (void)state;

  assert_int_equal(spoke__buf_append(&b, "abc", 3), 0);
  assert_int_equal(b.len, 3);
  assert_true(b.cap >= 4);
  assert_string_equal(b.data, "abc");
  assert_int_equal(spoke__buf_append(&b, "de", 2), 0);
  assert_string_equal(b.data, "abcde");
  assert_int_equal(b.len, 5);

  /* Empty append on an empty buffer still gives a C string. */
  spoke__buf_free(&b);
  assert_null(b.data);
  assert_int_equal(spoke__buf_append(&b, NULL, 0), 0);
  assert_non_null(b.data);
  assert_string_equal(b.data, "");
  assert_int_equal(b.len, 0);

  /* Binary data with NULs, and growth over many doublings. */
  for (int i = 0; i < 10000; i++) {
    char c = (char)(i % 7);
    assert_int_equal(spoke__buf_append(&b, &c, 1), 0);
  }
  assert_int_equal(b.len, 10000);
  assert_true(b.cap > b.len);
  assert_int_equal(b.data[b.len], '\0');
  for (int i = 0; i < 10000; i++)
    assert_int_equal(b.data[i], i % 7);
  spoke__buf_free(&b);
  assert_int_equal(b.len, 0);
  assert_int_equal(b.cap, 0);
}

static void buf_appendf(void **state) {
  spoke__buf_t b = {0};
  char big[3000];
  (void)state;

  assert_int_equal(spoke__buf_appendf(&b, "%d-%s", 42, "x"), 0);
  assert_string_equal(b.data, "42-x");
  assert_int_equal(b.len, 4);
  assert_int_equal(spoke__buf_appendf(&b, "%s", ""), 0);
  assert_int_equal(b.len, 4);
  assert_int_equal(spoke__buf_appendf(&b, "[%5.1f]", 2.5), 0);
  assert_string_equal(b.data, "42-x[  2.5]");

  /* Longer than the buffer so far: grows to fit, exactly once. */
  memset(big, 'q', sizeof(big) - 1);
  big[sizeof(big) - 1] = '\0';
  assert_int_equal(spoke__buf_appendf(&b, "<%s>", big), 0);
  assert_int_equal(b.len, 11 + 2 + sizeof(big) - 1);
  assert_int_equal(b.data[11], '<');
  assert_int_equal(b.data[b.len - 1], '>');
  assert_int_equal(b.data[b.len], '\0');
  spoke__buf_free(&b);
}

/* The one growth rule for the core's arrays: doubling, keeping what is
 * there, refusing a size that would overflow without touching the array. */
static void array_grow(void **state) {
  int *a = NULL;
  size_t cap = 0;
  (void)state;
  for (size_t n = 0; n < 100; n++) {
    assert_int_equal(spoke__array_grow(&a, &cap, n, sizeof(*a)), 0);
    assert_true(cap > n);
    a[n] = (int)n;
  }
  for (size_t n = 0; n < 100; n++)
    assert_int_equal(a[n], (int)n);
  assert_int_equal(cap, 128);
  assert_int_equal(spoke__array_grow(&a, &cap, 99, sizeof(*a)), 0);
  assert_int_equal(cap, 128); /* room already: unchanged */
  assert_int_equal(spoke__array_grow(&a, &cap, SIZE_MAX / 2, sizeof(*a)),
                   SPOKE_ENOMEM);
  assert_int_equal(cap, 128);
  assert_int_equal(a[99], 99);
  free(a);
}

static void buf_reserve(void **state) {
  spoke__buf_t b = {0};
  char *before;
  size_t cap;
  (void)state;

  assert_int_equal(spoke__buf_reserve(&b, 100), 0);
  assert_true(b.cap >= 101); /* room for the NUL too */
  assert_int_equal(b.len, 0);
  before = b.data;
  cap = b.cap;
  /* Appending within the reservation does not move the data. */
  for (int i = 0; i < 100; i++)
    assert_int_equal(spoke__buf_append(&b, "x", 1), 0);
  assert_ptr_equal(b.data, before);
  assert_int_equal(b.cap, cap);
  assert_int_equal(b.len, 100);
  assert_int_equal(b.data[100], '\0');
  /* Reserving what is already there is a no-op. */
  assert_int_equal(spoke__buf_reserve(&b, 0), 0);
  assert_ptr_equal(b.data, before);
  /* An impossible size fails with ENOMEM, and the buffer is intact. */
  assert_int_equal(spoke__buf_reserve(&b, SIZE_MAX - 10), SPOKE_ENOMEM);
  assert_int_equal(b.len, 100);
  assert_ptr_equal(b.data, before);
  spoke__buf_free(&b);
}

/* 0: reserve(SIZE) gave ENOMEM; 10: it gave something else. */
static int child_buf_huge(void *arg) {
  spoke__buf_t b = {0};
  int rc;
  if (spoke__buf_append(&b, "abc", 3) != 0)
    return 11;
  rc = spoke__buf_reserve(&b, *(size_t *)arg);
  return rc == SPOKE_ENOMEM && b.len == 3 ? 0 : 10;
}

static void buf_reserve_huge(void **state) {
  /* Sizes past what doubling the capacity can reach without overflow
   * must fail with ENOMEM, not loop or wrap. */
  static const size_t sizes[] = {SIZE_MAX / 2, SIZE_MAX / 2 + 1000,
                                 SIZE_MAX - 100};
  (void)state;
  for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
    size_t size = sizes[i];
    int rc = in_child(child_buf_huge, &size, 1);
    if (rc != 0)
      fail_msg("spoke__buf_reserve(%#zx) %s", size,
               rc == 10 ? "did not return ENOMEM"
                        : "hung or crashed instead of returning ENOMEM");
  }
}

static void buf_reset(void **state) {
  spoke__buf_t b = {0};
  size_t cap;
  char *data;
  (void)state;

  spoke__buf_reset(&b); /* on a never-used buffer */
  assert_null(b.data);
  assert_int_equal(spoke__buf_append(&b, "hello", 5), 0);
  cap = b.cap;
  data = b.data;
  spoke__buf_reset(&b);
  assert_int_equal(b.len, 0);
  assert_int_equal(b.cap, cap);
  assert_ptr_equal(b.data, data);
  assert_string_equal(b.data, "");
  assert_int_equal(spoke__buf_append(&b, "hi", 2), 0);
  assert_string_equal(b.data, "hi");
  spoke__buf_free(&b);
}

/* ---- strutil ---- */

static void is_token(void **state) {
  static const char *good[] = {"GET", "X-Custom-Header", "a", "!#$%&'*+-.^_`|~",
                               "0123456789", "Content-Type"};
  static const char *bad[] = {"a b", "a:b", "a\tb", "a\r", "(x)", "a/b",
                              "x\"y", "a,b", "a;b", "a=b", "{}", "a@b",
                              "\x7f", "\x80", "h\xc3\xa9"};
  (void)state;
  for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++)
    if (!spoke__is_token(good[i], strlen(good[i])))
      fail_msg("\"%s\" should be a token", good[i]);
  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
    if (spoke__is_token(bad[i], strlen(bad[i])))
      fail_msg("\"%s\" should not be a token", bad[i]);
  assert_false(spoke__is_token("", 0));
  /* Only N bytes are looked at; an embedded NUL is not a token byte. */
  assert_true(spoke__is_token("GET /", 3));
  assert_false(spoke__is_token("A\0B", 3));
}

/* Decodes S into OUT (a copy); returns the new length or -1. */
static long decode(const char *s, int plus, char *out, size_t outlen) {
  size_t n = strlen(s);
  assert_true(n < outlen);
  memcpy(out, s, n + 1);
  return spoke__percent_decode(out, n, plus);
}

static void percent_decode(void **state) {
  char out[64];
  (void)state;

  assert_int_equal(decode("plain", 0, out, sizeof(out)), 5);
  assert_string_equal(out, "plain");
  assert_int_equal(decode("a%20b", 0, out, sizeof(out)), 3);
  assert_string_equal(out, "a b");
  assert_int_equal(decode("%41%62%2f%2F", 0, out, sizeof(out)), 4);
  assert_string_equal(out, "Ab//");
  assert_int_equal(decode("%e2%82%AC", 0, out, sizeof(out)), 3);
  assert_string_equal(out, "\xe2\x82\xac");
  assert_int_equal(decode("", 0, out, sizeof(out)), 0);

  /* '+' is a space only when asked (query strings), never in paths. */
  assert_int_equal(decode("a+b", 1, out, sizeof(out)), 3);
  assert_string_equal(out, "a b");
  assert_int_equal(decode("a+b", 0, out, sizeof(out)), 3);
  assert_string_equal(out, "a+b");
  assert_int_equal(decode("%2B+", 1, out, sizeof(out)), 2);
  assert_string_equal(out, "+ ");

  /* A decoded "%" is data, not the start of another escape. */
  assert_int_equal(decode("%2541", 0, out, sizeof(out)), 3);
  assert_string_equal(out, "%41");

  /* %00 decodes to a NUL byte inside the length. */
  assert_int_equal(decode("a%00b", 0, out, sizeof(out)), 3);
  assert_memory_equal(out, "a\0b", 3);

  /* Invalid escapes. */
  assert_int_equal(decode("%", 0, out, sizeof(out)), -1);
  assert_int_equal(decode("%4", 0, out, sizeof(out)), -1);
  assert_int_equal(decode("%zz", 0, out, sizeof(out)), -1);
  assert_int_equal(decode("%4g", 1, out, sizeof(out)), -1);
  assert_int_equal(decode("%g4", 1, out, sizeof(out)), -1);
  assert_int_equal(decode("abc%", 1, out, sizeof(out)), -1);
  assert_int_equal(decode("abc%2", 1, out, sizeof(out)), -1);
  assert_int_equal(decode("%%41", 0, out, sizeof(out)), -1);
  /* An escape exactly at the end is fine. */
  assert_int_equal(decode("abc%21", 0, out, sizeof(out)), 4);
  assert_string_equal(out, "abc!");

  /* Only N bytes are decoded: an escape cut by N is invalid. */
  {
    char s[] = "ab%41";
    assert_int_equal(spoke__percent_decode(s, 4, 0), -1);
    memcpy(s, "ab%41", 6);
    assert_int_equal(spoke__percent_decode(s, 2, 0), 2);
    assert_memory_equal(s, "ab%41", 5);
  }
}

static void strcaseeq(void **state) {
  (void)state;
  assert_true(spoke__strcaseeq("Content-Length", "content-length"));
  assert_true(spoke__strcaseeq("", ""));
  assert_false(spoke__strcaseeq("Content-Length", "Content-Lengt"));
  assert_false(spoke__strcaseeq("a", "b"));
}

/* ---- status ---- */

static void status_reasons(void **state) {
  (void)state;
  assert_string_equal(spoke__status_reason(200), "OK");
  assert_string_equal(spoke__status_reason(201), "Created");
  assert_string_equal(spoke__status_reason(204), "No Content");
  assert_string_equal(spoke__status_reason(304), "Not Modified");
  assert_string_equal(spoke__status_reason(400), "Bad Request");
  assert_string_equal(spoke__status_reason(404), "Not Found");
  assert_string_equal(spoke__status_reason(405), "Method Not Allowed");
  assert_string_equal(spoke__status_reason(413), "Content Too Large");
  assert_string_equal(spoke__status_reason(431),
                      "Request Header Fields Too Large");
  assert_string_equal(spoke__status_reason(500), "Internal Server Error");
  assert_string_equal(spoke__status_reason(503), "Service Unavailable");
  assert_string_equal(spoke__status_reason(418), "Unknown");
  assert_string_equal(spoke__status_reason(599), "Unknown");
  assert_string_equal(spoke__status_reason(0), "Unknown");
  assert_string_equal(spoke__status_reason(-1), "Unknown");
  /* Every status maps to some non-empty reason. */
  for (int s = 100; s < 600; s++) {
    const char *r = spoke__status_reason(s);
    assert_non_null(r);
    assert_true(r[0] != '\0');
  }
}

/* ---- errors (spoke.h) ---- */

static void error_names(void **state) {
  (void)state;
  assert_string_equal(spoke_err_name(0), "OK");
  assert_string_equal(spoke_err_name(SPOKE_EINVAL), "SPOKE_EINVAL");
  assert_string_equal(spoke_err_name(SPOKE_EHANDLER), "SPOKE_EHANDLER");
  assert_string_equal(spoke_err_name(-999), "SPOKE_EUNKNOWN");
  assert_string_equal(spoke_strerror(SPOKE_ECONFLICT), "route already taken");
  assert_string_equal(spoke_strerror(12345), "unknown error");
  /* Every code from -1 down to the last has its own name. */
  for (int e = -1; e > SPOKE__ERR_MIN; e--)
    assert_string_not_equal(spoke_err_name(e), "SPOKE_EUNKNOWN");
  assert_string_equal(spoke_err_name(SPOKE__ERR_MIN), "SPOKE_EUNKNOWN");
}

int main(void) {
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(array_grow),
    cmocka_unit_test(arena_many_small),
    cmocka_unit_test(arena_alignment),
    cmocka_unit_test(arena_lent_storage),
    cmocka_unit_test(arena_large),
    cmocka_unit_test(arena_huge_fails),
    cmocka_unit_test(arena_strndup),
    cmocka_unit_test(buf_append),
    cmocka_unit_test(buf_appendf),
    cmocka_unit_test(buf_reserve),
    cmocka_unit_test(buf_reserve_huge),
    cmocka_unit_test(buf_reset),
    cmocka_unit_test(is_token),
    cmocka_unit_test(percent_decode),
    cmocka_unit_test(strcaseeq),
    cmocka_unit_test(status_reasons),
    cmocka_unit_test(error_names),
  };
  return cmocka_run_group_tests_name("util", tests, NULL, NULL);
}
