/* test_promsum.c: summing Prometheus text documents (core/ctl/promsum.c),
 * as a master sums its workers' /metrics.
 *
 * - The same series in two documents sum into one line; a series only in
 *   the second goes last in its family, before the next family.
 * - Families keep the order they first appear in, each with one HELP and
 *   one TYPE line (the first seen).
 * - Histogram buckets, _sum and _count sum and stay under their family;
 *   le="+Inf" is part of a series, not a value.
 * - Label values with spaces and escaped quotes are the series, byte for
 *   byte.
 * - Values: 0.25 + 0.5 is 0.75, integers print without a decimal point,
 *   +Inf, -Inf and NaN as Prometheus spells them.
 * - Samples before any HELP/TYPE are a family of their own; blank lines
 *   and other comments are dropped; a last line without "\n" counts.
 * - A malformed line is SPOKE_EINVAL and leaves OUT as it was; no
 *   documents give empty OUT; thousands of series sum in order.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "ctl/ctl.h"

int spoke__prom_sum(const char *const *docs, const size_t *lens, size_t n,
                    spoke__buf_t *out);

/* Sums the N strings DOCS into *OUT (freed first); the return code. */
static int sum(const char *const *docs, size_t n, spoke__buf_t *out) {
  size_t lens[8];
  assert_true(n <= 8);
  for (size_t i = 0; i < n; i++)
    lens[i] = strlen(docs[i]);
  spoke__buf_free(out);
  return spoke__prom_sum(docs, lens, n, out);
}

static void expect_sum(const char *const *docs, size_t n, const char *want) {
  spoke__buf_t out = {0};
  assert_int_equal(sum(docs, n, &out), 0);
  assert_non_null(out.data);
  assert_string_equal(out.data, want);
  assert_int_equal(out.len, strlen(want));
  spoke__buf_free(&out);
}

static void same_series_sum(void **state) {
  const char *docs[] = {
      "# HELP spoke_requests_total Requests.\n"
      "# TYPE spoke_requests_total counter\n"
      "spoke_requests_total{plugin=\"hello\",route=\"GET /\",class=\"2xx\"} 3\n"
      "spoke_requests_total{plugin=\"core\",route=\"\",class=\"4xx\"} 1\n",
      "# HELP spoke_requests_total Requests.\n"
      "# TYPE spoke_requests_total counter\n"
      "spoke_requests_total{plugin=\"hello\",route=\"GET /\",class=\"2xx\"} 4\n"
      "spoke_requests_total{plugin=\"core\",route=\"\",class=\"4xx\"} 2\n"};
  (void)state;
  expect_sum(docs, 2,
             "# HELP spoke_requests_total Requests.\n"
             "# TYPE spoke_requests_total counter\n"
             "spoke_requests_total{plugin=\"hello\",route=\"GET /\","
             "class=\"2xx\"} 7\n"
             "spoke_requests_total{plugin=\"core\",route=\"\","
             "class=\"4xx\"} 3\n");
}

static void new_series_joins_family(void **state) {
  const char *docs[] = {"# HELP a_total A.\n"
                        "# TYPE a_total counter\n"
                        "a_total{x=\"1\"} 1\n"
                        "# HELP b B.\n"
                        "# TYPE b gauge\n"
                        "b 5\n",
                        "# HELP a_total A.\n"
                        "# TYPE a_total counter\n"
                        "a_total{x=\"2\"} 10\n"
                        "a_total{x=\"1\"} 1\n"
                        "# HELP b B.\n"
                        "# TYPE b gauge\n"
                        "b 6\n"};
  (void)state;
  expect_sum(docs, 2,
             "# HELP a_total A.\n"
             "# TYPE a_total counter\n"
             "a_total{x=\"1\"} 2\n"
             "a_total{x=\"2\"} 10\n"
             "# HELP b B.\n"
             "# TYPE b gauge\n"
             "b 11\n");
}

static void family_order_one_help(void **state) {
  const char *docs[] = {"# HELP a A first.\n# TYPE a gauge\na 1\n"
                        "# HELP b B.\n# TYPE b gauge\nb 2\n",
                        "# HELP c C.\n# TYPE c counter\nc 3\n"
                        "# HELP a A second.\n# TYPE a gauge\na 1\n",
                        "# TYPE b gauge\nb 2\n"
                        "# HELP d D.\nd 4\n"};
  (void)state;
  expect_sum(docs, 3,
             "# HELP a A first.\n# TYPE a gauge\na 2\n"
             "# HELP b B.\n# TYPE b gauge\nb 4\n"
             "# HELP c C.\n# TYPE c counter\nc 3\n"
             "# HELP d D.\nd 4\n");
}

static void histogram_sums(void **state) {
  const char *one =
      "# HELP lat_seconds Latency.\n"
      "# TYPE lat_seconds histogram\n"
      "lat_seconds_bucket{le=\"0.001\"} 1\n"
      "lat_seconds_bucket{le=\"0.01\"} 3\n"
      "lat_seconds_bucket{le=\"+Inf\"} 4\n"
      "lat_seconds_sum 0.250000\n"
      "lat_seconds_count 4\n"
      "# HELP up Up.\n# TYPE up gauge\nup 1\n";
  const char *two =
      "# HELP up Up.\n# TYPE up gauge\nup 1\n"
      "# HELP lat_seconds Latency.\n"
      "# TYPE lat_seconds histogram\n"
      "lat_seconds_bucket{le=\"0.001\"} 0\n"
      "lat_seconds_bucket{le=\"0.01\"} 2\n"
      "lat_seconds_bucket{le=\"+Inf\"} 5\n"
      "lat_seconds_sum 0.500000\n"
      "lat_seconds_count 5\n";
  const char *docs[] = {one, two};
  (void)state;
  expect_sum(docs, 2,
             "# HELP lat_seconds Latency.\n"
             "# TYPE lat_seconds histogram\n"
             "lat_seconds_bucket{le=\"0.001\"} 1\n"
             "lat_seconds_bucket{le=\"0.01\"} 5\n"
             "lat_seconds_bucket{le=\"+Inf\"} 9\n"
             "lat_seconds_sum 0.75\n"
             "lat_seconds_count 9\n"
             "# HELP up Up.\n# TYPE up gauge\nup 2\n");
}

static void labels_with_spaces_and_quotes(void **state) {
  const char *docs[] = {
      "# TYPE r counter\n"
      "r{route=\"GET /a b\",q=\"say \\\"hi\\\" \\\\ \\n\"} 2\n"
      "r{route=\"GET /a b\",q=\"say \\\"hi\\\"\"} 1\n",
      "r{route=\"GET /a b\",q=\"say \\\"hi\\\" \\\\ \\n\"} 3\n"
      "r{route=\"GET /a  b\",q=\"say \\\"hi\\\"\"} 1\n"};
  (void)state;
  expect_sum(docs, 2,
             "# TYPE r counter\n"
             "r{route=\"GET /a b\",q=\"say \\\"hi\\\" \\\\ \\n\"} 5\n"
             "r{route=\"GET /a b\",q=\"say \\\"hi\\\"\"} 1\n"
             "r{route=\"GET /a  b\",q=\"say \\\"hi\\\"\"} 1\n");
}

static void values(void **state) {
  const char *docs[] = {"f 0.25\ni 3\nbig 4503599627370496\nx 1e20\n"
                        "inf +Inf\nninf 1\nnan NaN\nneg -1.5\nt 0.1\n",
                        "f 0.5\ni 4\nbig 4503599627370496\nx 1e20\n"
                        "inf 1\nninf -Inf\nnan 2\nneg 1.5\nt 0.2\n"};
  (void)state;
  expect_sum(docs, 2,
             "f 0.75\ni 7\nbig 9007199254740992\nx 2e+20\n"
             "inf +Inf\nninf -Inf\nnan NaN\nneg 0\n"
             "t 0.30000000000000004\n");
}

static void untyped_blank_comments_no_newline(void **state) {
  const char *docs[] = {"loose{a=\"1\"} 1\n"
                        "\n"
                        "# a comment\n"
                        "#HELP not a help line\n"
                        "# HELP tight T.\n"
                        "tight 2",
                        "   \n"
                        "loose{a=\"1\"} 1\n"
                        "tight 3\n"
                        "# HELP tight T.\n"
                        "tight 5\n"};
  (void)state;
  /* In the second document "tight 3" comes before any HELP, so it is the
   * family "tight" by its own name: the same family. */
  expect_sum(docs, 2,
             "loose{a=\"1\"} 2\n"
             "# HELP tight T.\n"
             "tight 10\n");
}

static void malformed(void **state) {
  static const char *const bad[] = {
      "foo\n",                   /* no value */
      "foo bar\n",               /* not a number */
      "foo 1 1700000000000\n",   /* a timestamp */
      "foo  1\n",                /* two spaces */
      "foo{a=\"b\" 1\n",         /* unclosed labels */
      "foo{a=\"b} 1\n",          /* unclosed value */
      "foo{a=b} 1\n",            /* unquoted value */
      " foo 1\n",                /* leading space */
      "9foo 1\n",                /* not a name */
      "foo 1\r\n",               /* CRLF */
      "foo{a=\"b\"}x 1\n",       /* bytes after the labels */
  };
  spoke__buf_t out = {0};
  (void)state;
  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
    const char *docs[] = {"# HELP ok Ok.\nok 1\n", bad[i]};
    size_t lens[] = {strlen(docs[0]), strlen(docs[1])};
    spoke__buf_free(&out);
    assert_int_equal(spoke__buf_append(&out, "kept", 4), 0);
    assert_int_equal(spoke__prom_sum(docs, lens, 2, &out), SPOKE_EINVAL);
    assert_int_equal(out.len, 4);
    assert_string_equal(out.data, "kept");
  }
  spoke__buf_free(&out);
}

static void no_documents(void **state) {
  spoke__buf_t out = {0};
  size_t lens[1] = {0};
  const char *docs[1] = {NULL};
  (void)state;
  assert_int_equal(spoke__prom_sum(docs, lens, 0, &out), 0);
  assert_int_equal(out.len, 0);
  /* Empty documents too. */
  assert_int_equal(spoke__prom_sum(docs, lens, 1, &out), 0);
  assert_int_equal(out.len, 0);
  spoke__buf_free(&out);
}

/* Enough series to grow the index many times; order and sums kept. */
static void many_series(void **state) {
  enum { N = 5000 };
  spoke__buf_t a = {0}, b = {0}, want = {0}, out = {0};
  const char *docs[2];
  (void)state;
  assert_int_equal(spoke__buf_appendf(&a, "# TYPE m counter\n"), 0);
  assert_int_equal(spoke__buf_appendf(&b, "# TYPE m counter\n"), 0);
  assert_int_equal(spoke__buf_appendf(&want, "# TYPE m counter\n"), 0);
  for (int i = 0; i < N; i++)
    assert_int_equal(spoke__buf_appendf(&a, "m{i=\"%d\"} %d\n", i, i), 0);
  for (int i = N + N / 2 - 1; i >= 0; i--)
    assert_int_equal(spoke__buf_appendf(&b, "m{i=\"%d\"} 1\n", i), 0);
  for (int i = 0; i < N; i++)
    assert_int_equal(spoke__buf_appendf(&want, "m{i=\"%d\"} %d\n", i, i + 1),
                     0);
  for (int i = N + N / 2 - 1; i >= N; i--)
    assert_int_equal(spoke__buf_appendf(&want, "m{i=\"%d\"} 1\n", i), 0);
  docs[0] = a.data;
  docs[1] = b.data;
  assert_int_equal(sum(docs, 2, &out), 0);
  assert_string_equal(out.data, want.data);
  spoke__buf_free(&a);
  spoke__buf_free(&b);
  spoke__buf_free(&want);
  spoke__buf_free(&out);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(same_series_sum),
      cmocka_unit_test(new_series_joins_family),
      cmocka_unit_test(family_order_one_help),
      cmocka_unit_test(histogram_sums),
      cmocka_unit_test(labels_with_spaces_and_quotes),
      cmocka_unit_test(values),
      cmocka_unit_test(untyped_blank_comments_no_newline),
      cmocka_unit_test(malformed),
      cmocka_unit_test(no_documents),
      cmocka_unit_test(many_series),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
