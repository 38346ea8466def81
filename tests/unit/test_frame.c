/* test_frame.c: the line rules checked on raw bytes after llhttp
 * (core/http/frame.c, spoke__frame_reset / spoke__frame_scan).
 *
 * One table of requests as the connection hands them to the scanner:
 * heads must end their lines in CRLF only (no bare CR, no bare LF) and
 * carry no obs-fold; Content-Length bodies are skipped whatever their
 * bytes; chunk data is skipped by its size and must be followed by CRLF;
 * chunk-size lines and trailers follow the head's rules; chunk extensions
 * stop at 16 KiB per body (a test of its own: they do not fit the table).
 * A case may hold up to three pipelined requests: like conn.c, the harness
 * rewinds the scanner at each request's end, so the next head is checked
 * afresh.
 *
 * Reads can split anywhere, so every case is also fed in two and in three
 * calls at every pair of byte boundaries, and byte by byte, and must give
 * the same answer each way.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "http/http.h"

typedef struct {
  spoke__body_kind_t kind; /* as on_headers_complete records it */
  uint64_t length;         /* Content-Length, for SPOKE__BODY_LENGTH */
  const char *bytes;       /* this request's bytes as llhttp consumed them */
  size_t len;
} frame_req_t;

typedef struct {
  const char *name;
  frame_req_t req[3]; /* pipelined requests; unused ones have bytes NULL */
  int want;           /* 0, or -1 for a violation */
} frame_case_t;

/* sizeof, not strlen: some cases carry NUL bytes. */
#define RAW(s) (s), sizeof(s) - 1
#define NONE(s) {SPOKE__BODY_NONE, 0, RAW(s)}
#define LENGTH(n, s) {SPOKE__BODY_LENGTH, (n), RAW(s)}
#define CHUNKED(s) {SPOKE__BODY_CHUNKED, 0, RAW(s)}

#define GET "GET /hello HTTP/1.1\r\nHost: a\r\n"
#define HDRS "GET /echo/headers HTTP/1.1\r\nHost: a\r\n"
#define POST(n)                                                             \
  "POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: " #n "\r\n\r\n"
#define TE                                                                  \
  "POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"

static const frame_case_t cases[] = {
  /* ---- heads: CRLF only ---- */
  {"CRLF head", {NONE(GET "\r\n")}, 0},
  {"CRLF head, trailing whitespace and empty values",
   {NONE(HDRS "X-A: b  \t\r\nX-B:c\r\nX-Empty:\r\n\r\n")}, 0},
  {"blank lines before the request line",
   {NONE("\r\n\r\n" GET "\r\n")}, 0},
  {"only blank lines so far (llhttp and limits judge)",
   {NONE("\r\n\r\n\r\n\r\n\r\n")}, 0},
  {"head not complete yet", {NONE(GET "X-A: 1")}, 0},
  {"a lone CR at the end of the bytes so far is undecided",
   {NONE(GET "\r")}, 0},
  {"SP first on the request line is llhttp's to refuse, not a fold",
   {NONE(" " GET "\r\n")}, 0},
  {"bare LF everywhere",
   {NONE("GET /hello HTTP/1.1\nHost: a\n\n")}, -1},
  {"bare LF ends the request line",
   {NONE("GET /hello HTTP/1.1\nHost: a\r\n\r\n")}, -1},
  {"bare LF ends one header",
   {NONE("GET /hello HTTP/1.1\r\nHost: a\nX-A: b\r\n\r\n")}, -1},
  {"bare LF ends the head", {NONE(GET "\n")}, -1},
  {"bare LF before the request line", {NONE("\nGET /hello HTTP/1.1\r\n")}, -1},
  {"bare CR inside the request line",
   {NONE("GET /hello HTTP/1.1\rHost: a\r\n\r\n")}, -1},
  {"bare CR between two headers",
   {NONE("GET /hello HTTP/1.1\r\nX-A: b\rX-B: c\r\nHost: a\r\n\r\n")}, -1},
  {"bare CR hides Transfer-Encoding",
   {NONE(GET "X-A: 1\rTransfer-Encoding: chunked\r\n\r\n")}, -1},
  {"bare CR doubled at the end of a header",
   {NONE("GET /hello HTTP/1.1\r\nHost: a\r\r\n\r\n")}, -1},
  {"bare CR before the final CRLF", {NONE(GET "\r\r\n")}, -1},
  {"bare CR then a second request line",
   {NONE(GET "\rXGET /hello HTTP/1.1\r\nHost: a\r\n\r\n")}, -1},
  {"bare CR as a blank line before the request line",
   {NONE("\r\r\n" GET "\r\n")}, -1},
  {"obs-fold after a value", {NONE(HDRS "X-A: b\r\n c\r\n\r\n")}, -1},
  {"obs-fold after an empty value", {NONE(HDRS "X-A:\r\n c\r\n\r\n")}, -1},
  {"obs-fold with a tab", {NONE(HDRS "X-A: b\r\n\tc\r\n\r\n")}, -1},
  {"obs-fold of whitespace only", {NONE(HDRS "X-A: \r\n\t\r\n\r\n")}, -1},
  {"obs-fold as the first header line",
   {NONE("GET /hello HTTP/1.1\r\n Host: a\r\n\r\n")}, -1},
  {"obs-fold after blank lines and a request line",
   {NONE("\r\n" GET "X-A: b\r\n  c\r\n\r\n")}, -1},
  {"obs-fold in Transfer-Encoding",
   {LENGTH(5, "POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding:\r\n"
              " chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n")},
   -1},
  {"obs-fold in Content-Length",
   {LENGTH(3, "POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n"
              " 0\r\n\r\nabc")},
   -1},

  /* ---- Content-Length bodies: skipped whatever their bytes ---- */
  {"body of bare CR, bare LF, NUL and high bytes",
   {LENGTH(8, POST(8) "\0\1\r\n\xff\x7f\x80\n")}, 0},
  {"body starting with SP is no obs-fold", {LENGTH(5, POST(5) " a\r\nb")}, 0},
  {"body that looks like a broken head",
   {LENGTH(12, POST(12) "X: a\n b\r\r\n\n\r")}, 0},
  {"body not complete yet", {LENGTH(10, POST(10) "ab\nc\r")}, 0},
  {"bare LF in the head of a request with a body",
   {LENGTH(3, "POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 3\n\r\nabc")},
   -1},
  {"body then a CRLF request",
   {LENGTH(3, POST(3) "a\nb"), NONE(GET "\r\n")}, 0},
  {"body then a request with a bare LF",
   {LENGTH(3, POST(3) "a\nb"), NONE("GET /hello HTTP/1.1\nHost: a\r\n\r\n")},
   -1},
  {"body then a request with a bare CR",
   {LENGTH(2, POST(2) "\r\r"), NONE(GET "\rX: 1\r\n\r\n")}, -1},
  {"body then a request with obs-fold",
   {LENGTH(1, POST(1) "\n"), NONE(HDRS "X-A: b\r\n c\r\n\r\n")}, -1},
  {"GET, HEAD, POST pipelined",
   {NONE(GET "\r\n"), NONE("HEAD /hello HTTP/1.1\r\nHost: a\r\n\r\n"),
    LENGTH(3, POST(3) "abc")},
   0},
  {"Content-Length 0 request then a bare LF request",
   {NONE(POST(0)), NONE("GET /hello HTTP/1.1\r\nHost: a\n\r\n")}, -1},
  {"two bodies with bare LF, then a folded head",
   {LENGTH(2, POST(2) "\n\n"), LENGTH(2, POST(2) "\r\r"),
    NONE(GET "X: 1\r\n\tX: 2\r\n\r\n")},
   -1},

  /* ---- chunked bodies ---- */
  {"chunked, CRLF throughout",
   {CHUNKED(TE "5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n")}, 0},
  {"chunk data with CR, LF and CRLF skipped by size",
   {CHUNKED(TE "5\r\na\r\nb\n\r\n3\r\n\r\r\n\r\n0\r\n\r\n")}, 0},
  {"chunk data that looks like the last chunk",
   {CHUNKED(TE "5\r\n0\r\n\r\n\r\n0\r\n\r\n")}, 0},
  {"chunk data of binary bytes",
   {CHUNKED(TE "4\r\n\0\n\xff\r\r\n0\r\n\r\n")}, 0},
  {"chunk extensions and trailers",
   {CHUNKED("POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n"
            "Trailer: X-T\r\n\r\n5;name=value\r\nhello\r\nA;a;b=\"q\"\r\n"
            "0123456789\r\n0;last\r\nX-T: 1\r\nX-U: two\r\n\r\n")},
   0},
  {"uppercase hex, leading zeros",
   {CHUNKED(TE "000A\r\n0123456789\r\n00\r\n\r\n")}, 0},
  {"many leading zeros are no overflow",
   {CHUNKED(TE "00000000000000000000003\r\nabc\r\n0\r\n\r\n")}, 0},
  {"fifteen hex digits fit", {CHUNKED(TE "fffffffffffffff\r\nabc")}, 0},
  {"chunked not complete yet", {CHUNKED(TE "10\r\nabc")}, 0},
  {"chunked then a CRLF request",
   {CHUNKED(TE "1\r\na\r\n0\r\n\r\n"), NONE("GET /counter HTTP/1.1\r\n"
                                            "Host: a\r\n\r\n")},
   0},
  {"chunked HEAD then a GET",
   {CHUNKED("HEAD /hello HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked"
            "\r\n\r\n3\r\nabc\r\n0\r\n\r\n"),
    NONE(GET "\r\n")},
   0},
  {"chunked then a request with a bare CR",
   {CHUNKED(TE "1\r\n\n\r\n0\r\n\r\n"), NONE(GET "X: a\rb\r\n\r\n")}, -1},
  {"bare LF ends a chunk size", {CHUNKED(TE "3\nabc\r\n0\r\n\r\n")}, -1},
  {"bare CR ends a chunk size", {CHUNKED(TE "3\rabc\r\n0\r\n\r\n")}, -1},
  {"bare CR in a chunk extension",
   {CHUNKED(TE "3;a=b\rc\r\nabc\r\n0\r\n\r\n")}, -1},
  {"bare LF in a chunk extension",
   {CHUNKED(TE "3;a=b\nc\r\nabc\r\n0\r\n\r\n")}, -1},
  {"bare LF in the last chunk's extension",
   {CHUNKED(TE "3\r\nabc\r\n0;x\n\r\n")}, -1},
  {"chunked with LF only", {CHUNKED(TE "3\nabc\n0\n\n")}, -1},
  {"chunk data longer than its size",
   {CHUNKED(TE "3\r\nabcdef\r\n0\r\n\r\n")}, -1},
  {"chunk data without its CRLF", {CHUNKED(TE "3\r\nabcXX0\r\n\r\n")}, -1},
  {"chunk data then a bare LF", {CHUNKED(TE "3\r\nabc\n0\r\n\r\n")}, -1},
  {"chunk data then a bare CR", {CHUNKED(TE "3\r\nabc\r0\r\n\r\n")}, -1},
  {"chunk data then LF CR", {CHUNKED(TE "3\r\nabc\n\r0\r\n\r\n")}, -1},
  {"chunk data then LF LF", {CHUNKED(TE "3\r\nabc\n\n0\r\n\r\n")}, -1},
  {"chunk data one byte long, then LF",
   {CHUNKED(TE "3\r\nabcd\n0\r\n\r\n")}, -1},
  {"chunk size that overflows",
   {CHUNKED(TE "fffffffffffffffff\r\nabc\r\n0\r\n\r\n")}, -1},
  {"bare LF ends the last chunk", {CHUNKED(TE "3\r\nabc\r\n0\n\r\n")}, -1},
  {"bare LF ends the trailers",
   {CHUNKED(TE "3\r\nabc\r\n0\r\n\n\rGET")}, -1},
  {"bare CR before the end of the trailers",
   {CHUNKED(TE "3\r\nabc\r\n0\r\n\r\r\n")}, -1},
  {"bare LF ends a trailer",
   {CHUNKED(TE "3\r\nabc\r\n0\r\nX-T: a\n\r\n")}, -1},
  {"bare CR inside a trailer",
   {CHUNKED(TE "3\r\nabc\r\n0\r\nX-T: a\rb\r\n\r\n")}, -1},
  {"trailer with obs-fold",
   {CHUNKED(TE "3\r\nabc\r\n0\r\nX-T: a\r\n b\r\n\r\n")}, -1},
  {"trailer with a tab obs-fold",
   {CHUNKED(TE "3\r\nabc\r\n0\r\nX-T: a\r\n\tb\r\n\r\n")}, -1},
  {"trailer section starting with SP",
   {CHUNKED(TE "3\r\nabc\r\n0\r\n X-T: a\r\n\r\n")}, -1},
};

/* The cases' requests, back to back, and where each one ends. */
typedef struct {
  char buf[512];
  size_t end[3];
  size_t nreq;
  size_t len;
} stream_t;

static void stream_of(const frame_case_t *c, stream_t *s) {
  s->len = s->nreq = 0;
  for (size_t r = 0; r < 3 && c->req[r].bytes != NULL; r++) {
    if (s->len + c->req[r].len > sizeof(s->buf))
      fail_msg("%s: case too long", c->name);
    memcpy(s->buf + s->len, c->req[r].bytes, c->req[r].len);
    s->len += c->req[r].len;
    s->end[s->nreq++] = s->len;
  }
}

/* Feeds S in reads that end at CUTS[0..ncuts) (increasing, inside the
 * stream) and at its end. Like conn.c, a read is handed to the scanner
 * only up to the current request's end; the scanner is rewound there and
 * the rest of the read goes to the next request. */
static int feed(const frame_case_t *c, const stream_t *s, const size_t *cuts,
                size_t ncuts) {
  spoke__frame_scan_t sc;
  size_t pos = 0, r = 0;
  spoke__frame_reset(&sc);
  for (size_t k = 0; k <= ncuts; k++) {
    size_t stop = k < ncuts ? cuts[k] : s->len;
    while (pos < stop) {
      size_t n = (stop < s->end[r] ? stop : s->end[r]) - pos;
      if (spoke__frame_scan(&sc, c->req[r].kind, c->req[r].length,
                            s->buf + pos, n) != 0)
        return -1;
      pos += n;
      if (pos == s->end[r]) {
        spoke__frame_reset(&sc);
        r++;
      }
    }
  }
  return 0;
}

static void report(const frame_case_t *c, const char *how, int got) {
  print_error("frame case \"%s\": %s gave %d, want %d\n", c->name, how, got,
              c->want);
}

/* Runs one case every way; returns how many ways gave the wrong answer
 * (each reported, the first few in full). */
static size_t run_case(const frame_case_t *c) {
  stream_t s;
  size_t cuts[512], bad = 0;
  char how[64];
  int got;

  stream_of(c, &s);
  if ((got = feed(c, &s, NULL, 0)) != c->want) {
    report(c, "one read", got);
    bad++;
  }
  for (size_t i = 1; i < s.len; i++) {
    cuts[0] = i;
    if ((got = feed(c, &s, cuts, 1)) != c->want && bad++ < 3) {
      snprintf(how, sizeof(how), "reads split at %zu", i);
      report(c, how, got);
    }
    for (size_t j = i + 1; j < s.len; j++) {
      cuts[1] = j;
      if ((got = feed(c, &s, cuts, 2)) != c->want && bad++ < 3) {
        snprintf(how, sizeof(how), "reads split at %zu and %zu", i, j);
        report(c, how, got);
      }
    }
  }
  for (size_t i = 1; i < s.len; i++)
    cuts[i - 1] = i;
  if (s.len > 1 && (got = feed(c, &s, cuts, s.len - 1)) != c->want) {
    report(c, "byte by byte", got);
    bad++;
  }
  return bad;
}

static void frame_table(void **state) {
  size_t failed = 0;
  (void)state;
  for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
    failed += run_case(&cases[i]) != 0;
  if (failed)
    fail_msg("%zu of %zu frame cases wrong", failed,
             sizeof(cases) / sizeof(cases[0]));
}

/* The table's premise: every case's bytes are what it says (no request
 * left empty, no case so long the harness truncates it). */
static void frame_table_well_formed(void **state) {
  (void)state;
  for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    const frame_case_t *c = &cases[i];
    assert_non_null(c->req[0].bytes);
    assert_true(c->want == 0 || c->want == -1);
    for (size_t r = 0; r < 3 && c->req[r].bytes != NULL; r++) {
      assert_true(c->req[r].len > 0);
      assert_true(c->req[r].kind != SPOKE__BODY_LENGTH ||
                  c->req[r].length > 0); /* conn.c: CL 0 is no body */
    }
  }
}

/* Reset rewinds a scanner stopped anywhere: mid-line, after a CR, inside
 * a body or a chunk, and after a violation. */
static void frame_reset_rewinds(void **state) {
  static const frame_req_t stops[] = {
    NONE("GET /hello HTTP/1.1\r\nHost"),
    NONE("GET /hello HTTP/1.1\r"),
    LENGTH(100, POST(100) "abc"),
    CHUNKED(TE "ff\r\nabc"),
    CHUNKED(TE "3\r\nabc\r"),
    CHUNKED(TE "0\r\nX-T: 1\r\n"),
    NONE("GET /hello HTTP/1.1\n"),
  };
  (void)state;
  for (size_t i = 0; i < sizeof(stops) / sizeof(stops[0]); i++) {
    spoke__frame_scan_t sc;
    spoke__frame_reset(&sc);
    (void)spoke__frame_scan(&sc, stops[i].kind, stops[i].length,
                            stops[i].bytes, stops[i].len);
    spoke__frame_reset(&sc);
    /* A fresh head: obs-fold is refused, CRLF passes. */
    assert_int_equal(spoke__frame_scan(&sc, SPOKE__BODY_NONE, 0,
                                       RAW(GET "\r\n")), 0);
    spoke__frame_reset(&sc);
    assert_int_equal(spoke__frame_scan(&sc, SPOKE__BODY_NONE, 0,
                                       RAW(GET " X: 1\r\n\r\n")), -1);
  }
}

/* Scans a chunked body whose size lines carry EXT extension bytes in
 * all, N chunks of one byte each, in reads of STEP bytes. */
static int scan_extensions(spoke__frame_scan_t *sc, size_t ext, size_t n,
                           size_t step) {
  static char buf[64 * 1024];
  size_t len = 0, per = ext / n;
  for (size_t k = 0; k < n; k++) {
    size_t e = k + 1 < n ? per : ext - per * (n - 1);
    buf[len++] = '1';
    memset(buf + len, 'x', e); /* "1xxxx": llhttp judges the syntax */
    len += e;
    memcpy(buf + len, "\r\na\r\n", 5);
    len += 5;
  }
  memcpy(buf + len, "0\r\n\r\n", 5);
  len += 5;
  for (size_t pos = 0; pos < len; pos += step)
    if (spoke__frame_scan(sc, SPOKE__BODY_CHUNKED, 0, buf + pos,
                          len - pos < step ? len - pos : step) != 0)
      return -1;
  return 0;
}

/* Chunk extensions are bounded per body, at 16 KiB, however they are
 * spread over chunks and reads; the count starts again with a request. */
static void chunk_extensions_are_bounded(void **state) {
  static const size_t steps[] = {1, 7, 4096, 64 * 1024};
  (void)state;
  for (size_t i = 0; i < sizeof(steps) / sizeof(steps[0]); i++) {
    spoke__frame_scan_t sc;
    spoke__frame_reset(&sc);
    assert_int_equal(spoke__frame_scan(&sc, SPOKE__BODY_CHUNKED, 0,
                                       RAW(TE)), 0);
    assert_int_equal(scan_extensions(&sc, 16 * 1024, 1, steps[i]), 0);
    spoke__frame_reset(&sc);
    assert_int_equal(spoke__frame_scan(&sc, SPOKE__BODY_CHUNKED, 0,
                                       RAW(TE)), 0);
    assert_int_equal(scan_extensions(&sc, 16 * 1024, 16, steps[i]), 0);
    spoke__frame_reset(&sc);
    assert_int_equal(spoke__frame_scan(&sc, SPOKE__BODY_CHUNKED, 0,
                                       RAW(TE)), 0);
    assert_int_equal(scan_extensions(&sc, 16 * 1024 + 1, 1, steps[i]), -1);
    spoke__frame_reset(&sc);
    assert_int_equal(spoke__frame_scan(&sc, SPOKE__BODY_CHUNKED, 0,
                                       RAW(TE)), 0);
    assert_int_equal(scan_extensions(&sc, 16 * 1024 + 1, 17, steps[i]), -1);
  }
}

int main(void) {
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(frame_table_well_formed),
    cmocka_unit_test(frame_table),
    cmocka_unit_test(frame_reset_rewinds),
    cmocka_unit_test(chunk_extensions_are_bounded),
  };
  return cmocka_run_group_tests_name("frame", tests, NULL, NULL);
}
