/* test_rollout.c: the pure parts of `spoke rollout` (core/cli/rollout.h).
 *
 * - promread: samples out of Prometheus text, comments, blanks, broken
 *   lines and timestamps passed over; label values by name, unescaped,
 *   in any order; a value too long for its buffer is an error.
 * - rollstat: one reading of /metrics for a plugin (serving per build,
 *   worker processes, 1 when absent, requests and 5xx over its routes,
 *   buckets added up by the bounds the text has, crashes at a version by
 *   signal); the delta of two readings, a counter that went down
 *   counting 0; the p99 from histogram deltas, +Inf above every bound,
 *   exactly 99% reaching a bucket; build ids as the core computes them.
 * - rollargs: --to lists, repeated, from @FILE with comments, IPv6 in
 *   brackets, every mistake refused with a reason; the options and their
 *   ranges; the token file's first line, trimmed, never empty.
 * - rolljson: the entry for our file in a PUT/DELETE answer, anywhere in
 *   "changed", with escapes decoded; no entry; text that is not JSON.
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "cli/rollout.h"
#include "plugin/plugin.h"

/* ---- promread ---- */

static int next(const char **p, const char *text, spoke__prom_line_t *l) {
  return spoke__prom_next(p, text + strlen(text), l);
}

static void prom_lines(void **state) {
  const char *text = "# HELP a An a.\n"
                     "# TYPE a counter\n"
                     "\n"
                     "a 1\n"
                     "broken\n"
                     "b{x=\"1\"} 2.5 1700000000000\n"
                     "c{x=\"}\",y=\"2\"}\t+Inf\r\n"
                     "{x=\"1\"} 3\n"
                     "d{x=\"1\" 4\n"
                     "e{} -7";
  const char *p = text;
  spoke__prom_line_t l;
  (void)state;

  assert_int_equal(next(&p, text, &l), 1);
  assert_true(spoke__prom_is(&l, "a"));
  assert_false(spoke__prom_is(&l, "ab"));
  assert_null(l.labels);
  assert_true(l.value == 1);
  assert_int_equal(next(&p, text, &l), 1);
  assert_true(spoke__prom_is(&l, "b"));
  assert_true(l.value == 2.5);
  assert_int_equal(next(&p, text, &l), 1);
  assert_true(spoke__prom_is(&l, "c"));
  assert_true(isinf(l.value) && l.value > 0);
  assert_int_equal(l.labels_len, strlen("x=\"}\",y=\"2\""));
  assert_int_equal(next(&p, text, &l), 1);
  assert_true(spoke__prom_is(&l, "e"));
  assert_true(l.value == -7);
  assert_int_equal(next(&p, text, &l), 0);
  assert_int_equal(next(&p, text, &l), 0);
}

static void prom_labels(void **state) {
  const char *text =
      "m{route=\"GET /a \\\"q\\\" \\\\ \\n\",plugin=\"hello\", le=\"0.5\"} 1\n";
  const char *p = text;
  spoke__prom_line_t l;
  char v[64], tiny[4];
  (void)state;

  assert_int_equal(next(&p, text, &l), 1);
  assert_int_equal(spoke__prom_label(&l, "plugin", v, sizeof(v)), 1);
  assert_string_equal(v, "hello");
  assert_int_equal(spoke__prom_label(&l, "route", v, sizeof(v)), 1);
  assert_string_equal(v, "GET /a \"q\" \\ \n");
  assert_int_equal(spoke__prom_label(&l, "le", v, sizeof(v)), 1);
  assert_string_equal(v, "0.5");
  assert_int_equal(spoke__prom_label(&l, "plug", v, sizeof(v)), 0);
  assert_int_equal(spoke__prom_label(&l, "version", v, sizeof(v)), 0);
  assert_string_equal(v, "");
  assert_int_equal(spoke__prom_label(&l, "plugin", tiny, sizeof(tiny)),
                   SPOKE_EINVAL);
  assert_string_equal(tiny, "");
  /* exactly fitting */
  assert_int_equal(spoke__prom_label(&l, "le", tiny, sizeof(tiny)), 1);
  assert_string_equal(tiny, "0.5");
}

/* ---- rollstat ---- */

#define B "0123456789abcdef"
#define OLD "fedcba9876543210"

static const char metrics[] =
    "# HELP spoke_worker_processes Worker processes.\n"
    "spoke_worker_processes 3\n"
    "spoke_plugin_serving{plugin=\"hello\",version=\"2.0.0\",build=\"" B
    "\"} 2\n"
    "spoke_plugin_serving{plugin=\"hello\",version=\"1.0.0\",build=\"" OLD
    "\"} 1\n"
    "spoke_plugin_serving{plugin=\"other\",version=\"2.0.0\",build=\"" B
    "\"} 3\n"
    "spoke_requests_total{plugin=\"hello\",route=\"GET /a\",class=\"2xx\"} 90\n"
    "spoke_requests_total{plugin=\"hello\",route=\"GET /a\",class=\"5xx\"} 4\n"
    "spoke_requests_total{plugin=\"hello\",route=\"GET /b\",class=\"4xx\"} 5\n"
    "spoke_requests_total{plugin=\"hello\",route=\"GET /b\",class=\"5xx\"} 1\n"
    "spoke_requests_total{plugin=\"other\",route=\"GET /o\",class=\"5xx\"} 50\n"
    "spoke_route_duration_seconds_bucket{plugin=\"hello\",route=\"GET /a\","
    "le=\"0.001\"} 50\n"
    "spoke_route_duration_seconds_bucket{plugin=\"hello\",route=\"GET /a\","
    "le=\"0.01\"} 90\n"
    "spoke_route_duration_seconds_bucket{plugin=\"hello\",route=\"GET /a\","
    "le=\"+Inf\"} 94\n"
    "spoke_route_duration_seconds_bucket{plugin=\"hello\",route=\"GET /b\","
    "le=\"0.001\"} 6\n"
    "spoke_route_duration_seconds_bucket{plugin=\"hello\",route=\"GET /b\","
    "le=\"0.01\"} 6\n"
    "spoke_route_duration_seconds_bucket{plugin=\"hello\",route=\"GET /b\","
    "le=\"+Inf\"} 6\n"
    "spoke_route_duration_seconds_sum{plugin=\"hello\",route=\"GET /b\"} 0.1\n"
    "spoke_route_duration_seconds_count{plugin=\"hello\",route=\"GET /b\"} 6\n"
    "spoke_route_duration_seconds_bucket{plugin=\"other\",route=\"GET /o\","
    "le=\"0.5\"} 7\n"
    "spoke_plugin_crashes_total{plugin=\"hello\",version=\"2.0.0\","
    "signal=\"SIGSEGV\"} 2\n"
    "spoke_plugin_crashes_total{plugin=\"hello\",version=\"2.0.0\","
    "signal=\"stall\"} 1\n"
    "spoke_plugin_crashes_total{plugin=\"hello\",version=\"1.0.0\","
    "signal=\"SIGSEGV\"} 9\n";

static void stats_read(void **state) {
  spoke__roll_stats_t s;
  (void)state;

  spoke__roll_stats_read(metrics, strlen(metrics), "hello", "2.0.0", B, &s);
  assert_true(s.workers == 3);
  assert_true(s.serving_build == 2);
  assert_true(s.serving_any == 3);
  assert_string_equal(s.top_build, B);
  assert_string_equal(s.top_version, "2.0.0");
  assert_true(s.top_n == 2);
  assert_true(s.requests == 100);
  assert_true(s.err5xx == 5);
  assert_int_equal(s.nbuckets, 3);
  assert_true(s.le[0] == 0.001 && s.count[0] == 56);
  assert_true(s.le[1] == 0.01 && s.count[1] == 96);
  assert_true(isinf(s.le[2]) && s.count[2] == 100);
  assert_int_equal(s.nsignals, 2);
  assert_string_equal(s.signal[0], "SIGSEGV");
  assert_true(s.crashes[0] == 2);
  assert_string_equal(s.signal[1], "stall");
  assert_true(s.crashes[1] == 1);

  /* The old build's view: another build, another version. */
  spoke__roll_stats_read(metrics, strlen(metrics), "hello", "1.0.0", OLD, &s);
  assert_true(s.serving_build == 1);
  assert_int_equal(s.nsignals, 1);
  assert_true(s.crashes[0] == 9);

  /* Another plugin's build is not ours; without spoke_worker_processes
   * there is one process. */
  spoke__roll_stats_read("", 0, "hello", "1", B, &s);
  assert_true(s.workers == 1 && s.serving_any == 0);
  {
    const char *other = "spoke_plugin_serving{plugin=\"x\",version=\"1\","
                        "build=\"" B "\"} 1\n";
    spoke__roll_stats_read(other, strlen(other), "hello", "1", B, &s);
  }
  assert_true(s.workers == 1);
  assert_true(s.serving_build == 0 && s.serving_any == 0);
  assert_string_equal(s.top_build, "");
  assert_int_equal(s.nbuckets, 0);
}

static void stats_bounds_from_text(void **state) {
  /* Bounds as the text has them, in any order, kept ascending. */
  const char *text =
      "h_bucket 1\n"
      "spoke_route_duration_seconds_bucket{le=\"+Inf\",plugin=\"p\"} 10\n"
      "spoke_route_duration_seconds_bucket{le=\"0.3\",plugin=\"p\"} 9\n"
      "spoke_route_duration_seconds_bucket{le=\"0.1\",plugin=\"p\"} 4\n"
      "spoke_route_duration_seconds_bucket{le=\"7\",plugin=\"p\"} 10\n"
      "spoke_route_duration_seconds_bucket{le=\"nope\",plugin=\"p\"} 10\n";
  spoke__roll_stats_t s;
  (void)state;
  spoke__roll_stats_read(text, strlen(text), "p", "", B, &s);
  assert_int_equal(s.nbuckets, 4);
  assert_true(s.le[0] == 0.1 && s.count[0] == 4);
  assert_true(s.le[1] == 0.3 && s.count[1] == 9);
  assert_true(s.le[2] == 7 && s.count[2] == 10);
  assert_true(isinf(s.le[3]));
}

static void p99(void **state) {
  double le[] = {0.001, 0.01, 0.1, INFINITY};
  double c1[] = {0, 0, 0, 0};
  double c2[] = {98, 99, 100, 100};  /* exactly 99% at 0.01 */
  double c3[] = {99, 99, 99, 100};   /* 99 of 100 by the first */
  double c4[] = {50, 90, 98, 100};   /* the last 2% only in +Inf */
  double c5[] = {990, 990, 999, 1000}; /* 99.9% at 0.1 */
  double c6[] = {0, 0, 0, 1};        /* one slow request */
  double c7[] = {197, 198, 200, 200}; /* 198/200 = 99% */
  (void)state;

  assert_true(isnan(spoke__roll_p99(le, c1, 4)));
  assert_true(isnan(spoke__roll_p99(le, c1, 0)));
  assert_true(spoke__roll_p99(le, c2, 4) == 0.01);
  assert_true(spoke__roll_p99(le, c3, 4) == 0.001);
  assert_true(isinf(spoke__roll_p99(le, c4, 4)));
  assert_true(spoke__roll_p99(le, c5, 4) == 0.001);
  assert_true(isinf(spoke__roll_p99(le, c6, 4)));
  assert_true(spoke__roll_p99(le, c7, 4) == 0.01);
}

static void delta(void **state) {
  spoke__roll_stats_t base, now;
  spoke__roll_delta_t d;
  (void)state;

  memset(&base, 0, sizeof(base));
  memset(&now, 0, sizeof(now));
  base.requests = 100, now.requests = 150;
  base.err5xx = 5, now.err5xx = 6;
  base.nbuckets = 2;
  base.le[0] = 0.005, base.count[0] = 90;
  base.le[1] = INFINITY, base.count[1] = 100;
  now.nbuckets = 3; /* a new bound, a new route: base 0 for it */
  now.le[0] = 0.005, now.count[0] = 139;
  now.le[1] = 0.25, now.count[1] = 149;
  now.le[2] = INFINITY, now.count[2] = 150;
  base.nsignals = 1;
  snprintf(base.signal[0], sizeof(base.signal[0]), "SIGSEGV");
  base.crashes[0] = 3;
  now.nsignals = 2;
  snprintf(now.signal[0], sizeof(now.signal[0]), "SIGSEGV");
  now.crashes[0] = 3;
  snprintf(now.signal[1], sizeof(now.signal[1]), "SIGBUS");
  now.crashes[1] = 2;

  spoke__roll_delta(&base, &now, &d);
  assert_true(d.requests == 50);
  assert_true(d.err5xx == 1);
  assert_true(d.top_ms == 250);
  /* deltas 49, 149, 50: 99% of 50 is first reached at 0.25 */
  assert_true(d.p99_ms == 250);
  assert_true(d.crashes == 2);
  assert_string_equal(d.crash_text, "SIGBUS x 2");

  /* Counters that went down (a worker restarted) count as 0. */
  now.requests = 10, now.err5xx = 0, now.count[0] = 1, now.count[1] = 1;
  now.count[2] = 1, now.crashes[0] = 1, now.crashes[1] = 0;
  spoke__roll_delta(&base, &now, &d);
  assert_true(d.requests == 0 && d.err5xx == 0 && d.crashes == 0);
  assert_true(isnan(d.p99_ms));
  assert_string_equal(d.crash_text, "");

  /* Both crash kinds listed. */
  now.crashes[0] = 5, now.crashes[1] = 1;
  spoke__roll_delta(&base, &now, &d);
  assert_string_equal(d.crash_text, "SIGSEGV x 2, SIGBUS x 1");
}

static void build_ids(void **state) {
  char a[17], b[17], path[64];
  unsigned char bytes[300000];
  int fd;
  (void)state;

  spoke__roll_build_of("", 0, a);
  assert_string_equal(a, "cbf29ce484222325");
  spoke__roll_build_of("a", 1, a);
  assert_string_equal(a, "af63dc4c8601ec8c");
  /* As the core hashes a file (in chunks): the same id. */
  for (size_t i = 0; i < sizeof(bytes); i++)
    bytes[i] = (unsigned char)(i * 7 + i / 251);
  snprintf(path, sizeof(path), "/tmp/spoke-test-roll-XXXXXX");
  fd = mkstemp(path);
  assert_true(fd >= 0);
  assert_int_equal(write(fd, bytes, sizeof(bytes)), (ssize_t)sizeof(bytes));
  close(fd);
  assert_int_equal(spoke__build_id_of_file(path, b), 0);
  unlink(path);
  spoke__roll_build_of(bytes, sizeof(bytes), a);
  assert_string_equal(a, b);
}

/* ---- rollargs ---- */

/* Writes TEXT to a fresh temporary file; its path goes to PATH. */
static void write_tmp(char *path, size_t cap, const char *text) {
  int fd;
  snprintf(path, cap, "/tmp/spoke-test-roll-XXXXXX");
  fd = mkstemp(path);
  assert_true(fd >= 0);
  assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
  close(fd);
}

static void addresses(void **state) {
  spoke__roll_addr_t a;
  static const char *const bad[] = {
      "",           "1.2.3.4",      "1.2.3.4:",    ":80",
      "1.2.3.4:0",  "1.2.3.4:65536", "1.2.3.4:8x", "::1:80",
      "[::1]",      "[::1]80",      "[zz]:80",     "[]:80",
      "a b:80",     "h:123456",     "[::1]:",      "h:-1",
  };
  (void)state;

  assert_int_equal(spoke__roll_parse_addr("127.0.0.1:9001", 14, &a), 0);
  assert_string_equal(a.host, "127.0.0.1");
  assert_string_equal(a.port, "9001");
  assert_string_equal(a.text, "127.0.0.1:9001");
  assert_int_equal(spoke__roll_parse_addr("[::1]:65535", 11, &a), 0);
  assert_string_equal(a.host, "::1");
  assert_string_equal(a.port, "65535");
  assert_string_equal(a.text, "[::1]:65535");
  assert_int_equal(spoke__roll_parse_addr("localhost:1xyz", 11, &a), 0);
  assert_string_equal(a.host, "localhost");
  assert_string_equal(a.port, "1");
  assert_int_equal(spoke__roll_parse_addr("h:007", 5, &a), 0);
  assert_string_equal(a.port, "7");
  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
    assert_int_equal(spoke__roll_parse_addr(bad[i], strlen(bad[i]), &a),
                     SPOKE_EINVAL);
}

static void to_lists(void **state) {
  spoke__roll_opts_t o;
  char err[256], path[64], path2[64], at[80];
  (void)state;

  memset(&o, 0, sizeof(o));
  assert_int_equal(spoke__roll_add_to(&o, "10.0.0.1:1, 10.0.0.2:2", err,
                                      sizeof(err)), 0);
  write_tmp(path, sizeof(path),
            "# the row\n"
            "\n"
            "  10.0.0.3:3   # the third\n"
            "[::1]:4,10.0.0.5:5\r\n"
            "   \n"
            "10.0.0.6:6");
  snprintf(at, sizeof(at), "@%s", path);
  assert_int_equal(spoke__roll_add_to(&o, at, err, sizeof(err)), 0);
  assert_int_equal(o.nto, 6);
  assert_string_equal(o.to[0].text, "10.0.0.1:1");
  assert_string_equal(o.to[1].text, "10.0.0.2:2");
  assert_string_equal(o.to[2].text, "10.0.0.3:3");
  assert_string_equal(o.to[3].host, "::1");
  assert_string_equal(o.to[4].text, "10.0.0.5:5");
  assert_string_equal(o.to[5].text, "10.0.0.6:6");

  /* Given twice, across lists. */
  assert_int_equal(spoke__roll_add_to(&o, "10.0.0.9:9,10.0.0.2:2", err,
                                      sizeof(err)), SPOKE_EINVAL);
  assert_non_null(strstr(err, "10.0.0.2:2 is given twice"));
  assert_int_equal(spoke__roll_add_to(&o, "10.0.0.8:8,", err, sizeof(err)),
                   SPOKE_EINVAL);
  assert_int_equal(spoke__roll_add_to(&o, "10.0.0.7:7,,10.0.0.10:1", err,
                                      sizeof(err)), SPOKE_EINVAL);
  assert_int_equal(spoke__roll_add_to(&o, "::1:80", err, sizeof(err)),
                   SPOKE_EINVAL);
  assert_non_null(strstr(err, "brackets"));
  spoke__roll_opts_free(&o);

  /* A file: a bad line is named; an empty file; a missing one. */
  write_tmp(path2, sizeof(path2), "10.0.0.1:1\n10.0.0.2\n");
  snprintf(at, sizeof(at), "@%s", path2);
  assert_int_equal(spoke__roll_add_to(&o, at, err, sizeof(err)),
                   SPOKE_EINVAL);
  assert_non_null(strstr(err, "line 2"));
  spoke__roll_opts_free(&o);
  unlink(path2);
  write_tmp(path2, sizeof(path2), "# nobody\n\n");
  snprintf(at, sizeof(at), "@%s", path2);
  assert_int_equal(spoke__roll_add_to(&o, at, err, sizeof(err)),
                   SPOKE_EINVAL);
  assert_non_null(strstr(err, "no address"));
  unlink(path2);
  assert_int_equal(spoke__roll_add_to(&o, at, err, sizeof(err)),
                   SPOKE_EINVAL);
  assert_non_null(strstr(err, "cannot read"));
  spoke__roll_opts_free(&o);
  unlink(path);
}

#define ARGS(...) (sizeof((char *[]){__VA_ARGS__}) / sizeof(char *)), \
                  (char *[]){__VA_ARGS__}

static void options(void **state) {
  spoke__roll_opts_t o;
  char err[256];
  (void)state;

  assert_int_equal(spoke__roll_parse_args(&o, ARGS("rollout", "x.so", "--to",
                                          "1.1.1.1:1", "--token-file", "t"),
                                          err, sizeof(err)), 0);
  assert_string_equal(o.file, "x.so");
  assert_string_equal(o.token_file, "t");
  assert_int_equal(o.nto, 1);
  assert_true(o.bake_s == 30 && o.max_5xx_rate == 0.01);
  assert_true(o.max_p99_ms == 1000 && o.ready_s == 30 && !o.dry_run);
  spoke__roll_opts_free(&o);

  assert_int_equal(spoke__roll_parse_args(&o, ARGS("rollout", "--to=1.1.1.1:1",
                   "--bake=0", "--max-5xx-rate", "0", "--max-p99=250.5",
                   "--ready-timeout", "2", "--dry-run", "--to", "[::1]:2",
                   "--token-file=t", "y.so"), err, sizeof(err)), 0);
  assert_string_equal(o.file, "y.so");
  assert_int_equal(o.nto, 2);
  assert_true(o.bake_s == 0 && o.max_5xx_rate == 0);
  assert_true(o.max_p99_ms == 250.5 && o.ready_s == 2 && o.dry_run);
  spoke__roll_opts_free(&o);

  assert_int_equal(spoke__roll_parse_args(&o, ARGS("rollout", "x.so", "-h"),
                                          err, sizeof(err)), 1);
  spoke__roll_opts_free(&o);

#define REFUSED(needle, ...)                                                \
  do {                                                                      \
    assert_int_equal(spoke__roll_parse_args(&o, ARGS(__VA_ARGS__), err,     \
                                            sizeof(err)), SPOKE_EINVAL);    \
    assert_non_null(strstr(err, needle));                                   \
    spoke__roll_opts_free(&o);                                              \
  } while (0)
  REFUSED("no plugin file", "rollout", "--to", "1.1.1.1:1");
  REFUSED("no instance", "rollout", "x.so", "--token-file", "t");
  REFUSED("no --token-file", "rollout", "x.so", "--to", "1.1.1.1:1");
  REFUSED("one plugin file", "rollout", "x.so", "y.so");
  REFUSED("unknown option", "rollout", "x.so", "--bogus");
  REFUSED("missing value: --to", "rollout", "x.so", "--to");
  REFUSED("--bake wants", "rollout", "x.so", "--bake", "-1");
  REFUSED("--bake wants", "rollout", "x.so", "--bake", "10s");
  REFUSED("--max-5xx-rate wants", "rollout", "x.so", "--max-5xx-rate", "1.5");
  REFUSED("--max-p99 wants", "rollout", "x.so", "--max-p99", "0");
  REFUSED("--max-p99 wants", "rollout", "x.so", "--max-p99", "nan");
  REFUSED("--ready-timeout wants", "rollout", "x.so", "--ready-timeout=inf");
  REFUSED("not an admin address", "rollout", "x.so", "--to", "nohost");
#undef REFUSED
}

static void token_file(void **state) {
  char path[64], tok[64], err[256];
  (void)state;

  write_tmp(path, sizeof(path), "s3cret \t\r\nsecond line\n");
  assert_int_equal(spoke__roll_read_token(path, tok, sizeof(tok), err,
                                          sizeof(err)), 0);
  assert_string_equal(tok, "s3cret");
  unlink(path);
  write_tmp(path, sizeof(path), "no-newline");
  assert_int_equal(spoke__roll_read_token(path, tok, sizeof(tok), err,
                                          sizeof(err)), 0);
  assert_string_equal(tok, "no-newline");
  unlink(path);
  write_tmp(path, sizeof(path), "  \nnot this\n");
  assert_int_equal(spoke__roll_read_token(path, tok, sizeof(tok), err,
                                          sizeof(err)), SPOKE_EINVAL);
  assert_non_null(strstr(err, "empty"));
  unlink(path);
  write_tmp(path, sizeof(path), "");
  assert_int_equal(spoke__roll_read_token(path, tok, sizeof(tok), err,
                                          sizeof(err)), SPOKE_EINVAL);
  unlink(path);
  write_tmp(path, sizeof(path), "a\tb\n");
  assert_int_equal(spoke__roll_read_token(path, tok, sizeof(tok), err,
                                          sizeof(err)), SPOKE_EINVAL);
  assert_non_null(strstr(err, "control"));
  unlink(path);
  write_tmp(path, sizeof(path),
            "0123456789012345678901234567890123456789012345678901234567890123"
            "456789\n");
  assert_int_equal(spoke__roll_read_token(path, tok, sizeof(tok), err,
                                          sizeof(err)), SPOKE_EINVAL);
  assert_non_null(strstr(err, "too long"));
  unlink(path);
  assert_int_equal(spoke__roll_read_token(path, tok, sizeof(tok), err,
                                          sizeof(err)), SPOKE_EINVAL);
}

/* ---- rolljson ---- */

static int change(const char *json, const char *file,
                  spoke__roll_change_t *c) {
  return spoke__roll_json_change(json, strlen(json), file, c);
}

static void json_entry(void **state) {
  spoke__roll_change_t c;
  (void)state;

  assert_int_equal(
      change("{\"generation\": 12, \"build\": \"a1b2c3d4e5f60718\", "
             "\"changed\": [{\"file\": \"hello.so\", \"change\": "
             "\"reloaded\", \"plugin\": \"hello\", \"version\": \"2.0.0\", "
             "\"generation\": 12}]}",
             "hello.so", &c),
      1);
  assert_string_equal(c.change, "reloaded");
  assert_string_equal(c.version, "2.0.0");
  assert_string_equal(c.error, "");

  /* Not the first entry; members in another order; other kinds of
   * values around it; escapes decoded. */
  assert_int_equal(
      change(" {\"x\": {\"changed\": [{\"file\": \"hello.so\"}]},\n"
             "  \"changed\": [ {\"file\": \"a.so\", \"change\": \"loaded\"},"
             " 7, null,\n"
             "  {\"error\": \"init failed: \\\"db\\\" \\\\ \\u00e9\\ud83d"
             "\\ude00\\/\\n\", \"n\": [1, -2.5e3, true, false, {}],"
             " \"change\": \"refused\", \"file\": \"hell\\u006f.so\"} ],"
             " \"tail\": \"\"}\r\n",
             "hello.so", &c),
      1);
  assert_string_equal(c.change, "refused");
  assert_string_equal(c.error,
                      "init failed: \"db\" \\ \xc3\xa9\xf0\x9f\x98\x80/\n");
  assert_string_equal(c.version, "");

  /* No entry for the file, or no "changed" at all. */
  assert_int_equal(change("{\"changed\": [{\"file\": \"a.so\", \"change\":"
                          " \"removed\"}]}", "hello.so", &c), 0);
  assert_int_equal(change("{\"changed\": []}", "hello.so", &c), 0);
  assert_int_equal(change("{}", "hello.so", &c), 0);
  assert_int_equal(change("{\"changed\": {\"file\": \"hello.so\"}}",
                          "hello.so", &c), 0);
  /* A lone surrogate becomes U+FFFD. */
  assert_int_equal(change("{\"changed\": [{\"file\": \"x.so\", \"error\": "
                          "\"\\ud800!\"}]}", "x.so", &c), 1);
  assert_string_equal(c.error, "\xef\xbf\xbd!");
}

/* A refusal with an error of PREFIX and 400 two-byte characters: the
 * error cut to fit, on a whole character. */
static void long_error(const char *prefix, size_t want_len) {
  spoke__buf_t j = {0};
  spoke__roll_change_t c;

  assert_int_equal(spoke__buf_appendf(&j, "{\"changed\": [{\"file\": "
                                          "\"x.so\", \"change\": \"refused\""
                                          ", \"error\": \"%s", prefix), 0);
  for (int i = 0; i < 400; i++)
    assert_int_equal(spoke__buf_append(&j, "\xc3\xa9", 2), 0);
  assert_int_equal(spoke__buf_appendf(&j, "\"}]}"), 0);
  assert_int_equal(spoke__roll_json_change(j.data, j.len, "x.so", &c), 1);
  assert_string_equal(c.change, "refused");
  assert_int_equal(strlen(c.error), want_len);
  assert_int_equal((unsigned char)c.error[want_len - 1], 0xa9);
  spoke__buf_free(&j);
}

static void json_long_error_cut(void **state) {
  (void)state;
  /* 511 bytes fit: "a" and 255 whole characters. */
  long_error("a", sizeof(((spoke__roll_change_t *)0)->error) - 1);
  /* "ab" and 254 characters, and the first byte of one more: dropped. */
  long_error("ab", sizeof(((spoke__roll_change_t *)0)->error) - 2);
}

static void json_malformed(void **state) {
  static const char *const bad[] = {
      "",
      "[]",
      "{\"changed\": [{\"file\": \"x.so\", \"change\": \"loaded\"}]",
      "{\"changed\": [{\"file\": \"x.so\", \"change\": \"loaded\"}]} x",
      "{\"changed\": [{\"file\": \"x.so\", \"change\": \"load",
      "{\"changed\": [{\"file\": \"x.so\" \"change\": \"loaded\"}]}",
      "{\"changed\": [{\"file\": \"x.so\", \"change\": \"lo\\qded\"}]}",
      "{\"changed\": [{\"file\": \"x.so\", \"error\": \"\\u12\"}]}",
      "{\"changed\": [{\"file\": \"x.so\", \"error\": \"a\nb\"}]}",
      "{\"a\": tru}",
      "{\"a\": -}",
      "{\"a\": 1,}",
      "{'a': 1}",
  };
  spoke__roll_change_t c;
  spoke__buf_t deep = {0};
  (void)state;

  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
    assert_int_equal(change(bad[i], "x.so", &c), SPOKE_EINVAL);
  /* Nesting: 30 deep is fine, 100 deep is refused. */
  assert_int_equal(spoke__buf_appendf(&deep, "{\"a\": "), 0);
  for (int i = 0; i < 30; i++)
    assert_int_equal(spoke__buf_append(&deep, "[", 1), 0);
  for (int i = 0; i < 30; i++)
    assert_int_equal(spoke__buf_append(&deep, "]", 1), 0);
  assert_int_equal(spoke__buf_append(&deep, "}", 1), 0);
  assert_int_equal(change(deep.data, "x.so", &c), 0);
  spoke__buf_reset(&deep);
  assert_int_equal(spoke__buf_appendf(&deep, "{\"a\": "), 0);
  for (int i = 0; i < 100; i++)
    assert_int_equal(spoke__buf_append(&deep, "[", 1), 0);
  for (int i = 0; i < 100; i++)
    assert_int_equal(spoke__buf_append(&deep, "]", 1), 0);
  assert_int_equal(spoke__buf_append(&deep, "}", 1), 0);
  assert_int_equal(change(deep.data, "x.so", &c), SPOKE_EINVAL);
  spoke__buf_free(&deep);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(prom_lines),
      cmocka_unit_test(prom_labels),
      cmocka_unit_test(stats_read),
      cmocka_unit_test(stats_bounds_from_text),
      cmocka_unit_test(p99),
      cmocka_unit_test(delta),
      cmocka_unit_test(build_ids),
      cmocka_unit_test(addresses),
      cmocka_unit_test(to_lists),
      cmocka_unit_test(options),
      cmocka_unit_test(token_file),
      cmocka_unit_test(json_entry),
      cmocka_unit_test(json_long_error_cut),
      cmocka_unit_test(json_malformed),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
