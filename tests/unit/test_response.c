/* test_response.c: response head serialization and the checks on what a
 * plugin sets (core/response.c).
 *
 * Requests are built by hand (calloc, then the fields a parsed request
 * would have). Nothing here reaches a loop: only the paths of
 * response.c that return before bytes are posted are exercised.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "http/http.h"

static spoke_request_t *req_new(int http_minor, int keep_alive) {
  spoke_request_t *req = calloc(1, sizeof(*req));
  assert_non_null(req);
  req->status = 200;
  req->http_major = 1;
  req->http_minor = (uint8_t)http_minor;
  req->keep_alive = (uint8_t)keep_alive;
  req->method = "GET";
  req->path = "/";
  atomic_init(&req->completed, 0);
  return req;
}

static void req_free(spoke_request_t *req) {
  spoke__buf_free(&req->resp_headers);
  free(req);
}

/* Checks that D is an IMF-fixdate ("Sun, 06 Nov 1994 08:49:37 GMT")
 * within a few seconds of now. */
static void assert_http_date(const char *d) {
  struct tm tm;
  const char *end;
  time_t t, now = time(NULL);

  assert_int_equal(strlen(d), 29);
  assert_string_equal(d + 25, " GMT");
  assert_int_equal(d[3], ',');
  memset(&tm, 0, sizeof(tm));
  end = strptime(d, "%a, %d %b %Y %H:%M:%S GMT", &tm);
  if (end == NULL || *end != '\0')
    fail_msg("\"%s\" is not an HTTP date", d);
  t = timegm(&tm);
  if (t < now - 5 || t > now + 5)
    fail_msg("\"%s\" is not now", d);
}

/* Serializes REQ's head for BODY_LEN and checks its status line and Date
 * line; returns the rest (other headers and the blank line), malloc'd. */
static char *head(spoke_request_t *req, long long body_len,
                  const char *status_line) {
  spoke__buf_t b = {0};
  char *p, *eol, date[64], *rest;
  size_t slen = strlen(status_line);

  assert_int_equal(spoke__response_head(req, &b, body_len), 0);
  assert_non_null(b.data);
  assert_int_equal(strlen(b.data), b.len);
  if (strncmp(b.data, status_line, slen) != 0 ||
      strncmp(b.data + slen, "\r\n", 2) != 0)
    fail_msg("status line of \"%s\", want \"%s\"", b.data, status_line);
  p = b.data + slen + 2;
  assert_true(strncmp(p, "Date: ", 6) == 0);
  eol = strstr(p, "\r\n");
  assert_non_null(eol);
  assert_true((size_t)(eol - p - 6) < sizeof(date));
  snprintf(date, sizeof(date), "%.*s", (int)(eol - p - 6), p + 6);
  assert_http_date(date);
  /* The head ends with the one blank line. */
  assert_true(b.len >= 4);
  assert_string_equal(b.data + b.len - 4, "\r\n\r\n");
  rest = strdup(eol + 2);
  assert_non_null(rest);
  spoke__buf_free(&b);
  return rest;
}

#define ASSERT_HEAD(req, body_len, status_line, want_rest)   \
  do {                                                       \
    char *rest_ = head((req), (body_len), (status_line));    \
    if (strcmp(rest_, (want_rest)) != 0) {                   \
      fail_msg("headers after Date:\n%s\nwant:\n%s", rest_, \
               (want_rest));                                 \
    }                                                        \
    free(rest_);                                             \
  } while (0)

/* ---- spoke__http_date ---- */

static void http_date(void **state) {
  const char *a, *b;
  (void)state;
  a = spoke__http_date();
  assert_non_null(a);
  assert_http_date(a);
  b = spoke__http_date();
  assert_string_equal(a, b);
}

/* ---- spoke__response_head ---- */

static void head_whole(void **state) {
  spoke_request_t *req = req_new(1, 1);
  (void)state;
  ASSERT_HEAD(req, 13, "HTTP/1.1 200 OK", "Content-Length: 13\r\n\r\n");
  ASSERT_HEAD(req, 0, "HTTP/1.1 200 OK", "Content-Length: 0\r\n\r\n");
  req->status = 404;
  ASSERT_HEAD(req, 10, "HTTP/1.1 404 Not Found",
              "Content-Length: 10\r\n\r\n");
  req->status = 599;
  ASSERT_HEAD(req, 1, "HTTP/1.1 599 Unknown", "Content-Length: 1\r\n\r\n");
  req_free(req);
}

static void head_appends_to_buffer(void **state) {
  spoke_request_t *req = req_new(1, 1);
  spoke__buf_t b = {0};
  (void)state;
  assert_int_equal(spoke__buf_append(&b, "prefix|", 7), 0);
  assert_int_equal(spoke__response_head(req, &b, 2), 0);
  assert_true(strncmp(b.data, "prefix|HTTP/1.1 200 OK\r\n", 24) == 0);
  spoke__buf_free(&b);
  req_free(req);
}

static void head_plugin_headers(void **state) {
  spoke_request_t *req = req_new(1, 1);
  (void)state;
  assert_int_equal(spoke__response_header(req, "Content-Type", "text/plain"),
                   0);
  assert_int_equal(spoke__response_header(req, "X-Two", "2"), 0);
  req->status = 201;
  ASSERT_HEAD(req, 5, "HTTP/1.1 201 Created",
              "Content-Type: text/plain\r\nX-Two: 2\r\n"
              "Content-Length: 5\r\n\r\n");
  req_free(req);
}

static void head_streamed_http11(void **state) {
  spoke_request_t *req = req_new(1, 1);
  (void)state;
  ASSERT_HEAD(req, -1, "HTTP/1.1 200 OK",
              "Transfer-Encoding: chunked\r\n\r\n");
  req_free(req);
}

static void head_streamed_http10(void **state) {
  spoke_request_t *req = req_new(0, 1);
  (void)state;
  /* No chunked encoding in 1.0: the end of the body is the close. */
  ASSERT_HEAD(req, -1, "HTTP/1.1 200 OK", "Connection: close\r\n\r\n");
  req->keep_alive = 0;
  ASSERT_HEAD(req, -1, "HTTP/1.1 200 OK", "Connection: close\r\n\r\n");
  req_free(req);
}

static void head_connection(void **state) {
  spoke_request_t *req = req_new(1, 0);
  (void)state;
  /* HTTP/1.1 client that sent Connection: close. */
  ASSERT_HEAD(req, 5, "HTTP/1.1 200 OK",
              "Content-Length: 5\r\nConnection: close\r\n\r\n");
  ASSERT_HEAD(req, -1, "HTTP/1.1 200 OK",
              "Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n");
  req_free(req);

  /* HTTP/1.0 with keep-alive: say so, or the client will not reuse. */
  req = req_new(0, 1);
  ASSERT_HEAD(req, 5, "HTTP/1.1 200 OK",
              "Content-Length: 5\r\nConnection: keep-alive\r\n\r\n");
  req->keep_alive = 0;
  ASSERT_HEAD(req, 5, "HTTP/1.1 200 OK",
              "Content-Length: 5\r\nConnection: close\r\n\r\n");
  req_free(req);

  /* The plugin asked for close. */
  req = req_new(1, 1);
  assert_int_equal(spoke__response_header(req, "Connection", "close"), 0);
  ASSERT_HEAD(req, 2, "HTTP/1.1 200 OK",
              "Content-Length: 2\r\nConnection: close\r\n\r\n");
  req_free(req);
}

static void head_no_body_statuses(void **state) {
  spoke_request_t *req = req_new(1, 1);
  (void)state;
  req->status = 204;
  ASSERT_HEAD(req, 0, "HTTP/1.1 204 No Content", "\r\n");
  ASSERT_HEAD(req, -1, "HTTP/1.1 204 No Content", "\r\n");
  req->status = 304;
  ASSERT_HEAD(req, 0, "HTTP/1.1 304 Not Modified", "\r\n");
  ASSERT_HEAD(req, -1, "HTTP/1.1 304 Not Modified", "\r\n");
  /* Any other status has a length, even an unnamed one. */
  req->status = 299;
  ASSERT_HEAD(req, 0, "HTTP/1.1 299 Unknown", "Content-Length: 0\r\n\r\n");
  req_free(req);
}

static void head_for_head_requests(void **state) {
  spoke_request_t *req = req_new(1, 1);
  (void)state;
  req->is_head = 1;
  /* A HEAD response carries the length GET's body would have. */
  ASSERT_HEAD(req, 13, "HTTP/1.1 200 OK", "Content-Length: 13\r\n\r\n");
  req_free(req);
  /* Streamed HEAD on 1.0: no body, so no need to close. */
  req = req_new(0, 1);
  req->is_head = 1;
  ASSERT_HEAD(req, -1, "HTTP/1.1 200 OK", "Connection: keep-alive\r\n\r\n");
  req_free(req);
}

/* ---- spoke__response_header ---- */

static void header_appends(void **state) {
  spoke_request_t *req = req_new(1, 1);
  (void)state;
  assert_int_equal(spoke__response_header(req, "X-A", "1"), 0);
  assert_int_equal(spoke__response_header(req, "Set-Cookie", "a=b; Path=/"),
                   0);
  assert_int_equal(spoke__response_header(req, "X-Tab", "a\tb"), 0);
  assert_int_equal(spoke__response_header(req, "X-Empty", ""), 0);
  assert_int_equal(spoke__response_header(req, "X-Utf8", "caf\xc3\xa9"), 0);
  assert_int_equal(spoke__response_header(req, "X-A", "2"), 0);
  assert_string_equal(req->resp_headers.data,
                      "X-A: 1\r\nSet-Cookie: a=b; Path=/\r\nX-Tab: a\tb\r\n"
                      "X-Empty: \r\nX-Utf8: caf\xc3\xa9\r\nX-A: 2\r\n");
  assert_int_equal(req->resp_close, 0);
  req_free(req);
}

static void header_refused(void **state) {
  static const char *bad_values[] = {"a\rb", "a\nb", "x\r\nInjected: 1",
                                     "\r\n", "a\x01", "a\x7f", "\x1b[0m"};
  static const char *bad_names[] = {"", "Bad Name", "X:Y", "X\r\nY",
                                    "caf\xc3\xa9", "(x)", "a/b"};
  static const char *server_owned[] = {
      "Content-Length", "content-length", "Transfer-Encoding",
      "TRANSFER-ENCODING", "Date", "date"};
  spoke_request_t *req = req_new(1, 1);
  (void)state;

  for (size_t i = 0; i < sizeof(bad_values) / sizeof(bad_values[0]); i++)
    if (spoke__response_header(req, "X-V", bad_values[i]) != SPOKE_EINVAL)
      fail_msg("value %zu was accepted", i);
  for (size_t i = 0; i < sizeof(bad_names) / sizeof(bad_names[0]); i++)
    if (spoke__response_header(req, bad_names[i], "v") != SPOKE_EINVAL)
      fail_msg("name \"%s\" was accepted", bad_names[i]);
  for (size_t i = 0; i < sizeof(server_owned) / sizeof(server_owned[0]); i++)
    if (spoke__response_header(req, server_owned[i], "1") != SPOKE_EINVAL)
      fail_msg("%s was accepted", server_owned[i]);
  assert_int_equal(spoke__response_header(req, NULL, "v"), SPOKE_EINVAL);
  assert_int_equal(spoke__response_header(req, "X", NULL), SPOKE_EINVAL);
  /* Connection: only "close" is the plugin's to say. */
  assert_int_equal(spoke__response_header(req, "Connection", "keep-alive"),
                   SPOKE_EINVAL);
  assert_int_equal(req->resp_close, 0);

  /* Nothing refused reached the header lines. */
  assert_int_equal(req->resp_headers.len, 0);
  req_free(req);
}

static void header_connection_close(void **state) {
  spoke_request_t *req = req_new(1, 1);
  (void)state;
  assert_int_equal(spoke__response_header(req, "connection", "Close"), 0);
  assert_int_equal(req->resp_close, 1);
  /* Not copied: the head writes Connection itself, once. */
  assert_int_equal(req->resp_headers.len, 0);
  req_free(req);
}

static void header_after_start(void **state) {
  spoke_request_t *req = req_new(1, 1);
  (void)state;
  req->resp_started = 1;
  assert_int_equal(spoke__response_header(req, "X-A", "1"), SPOKE_ESTATE);
  req->resp_started = 0;
  atomic_store(&req->completed, 1);
  assert_int_equal(spoke__response_header(req, "X-A", "1"), SPOKE_ESTATE);
  assert_int_equal(req->resp_headers.len, 0);
  req_free(req);
}

/* ---- spoke__response_status ---- */

static void status_range(void **state) {
  spoke_request_t *req = req_new(1, 1);
  (void)state;
  assert_int_equal(spoke__response_status(req, 200), 0);
  assert_int_equal(req->status, 200);
  assert_int_equal(spoke__response_status(req, 599), 0);
  assert_int_equal(req->status, 599);
  assert_int_equal(spoke__response_status(req, 404), 0);
  assert_int_equal(req->status, 404);
  assert_int_equal(spoke__response_status(req, 199), SPOKE_EINVAL);
  assert_int_equal(spoke__response_status(req, 100), SPOKE_EINVAL);
  assert_int_equal(spoke__response_status(req, 600), SPOKE_EINVAL);
  assert_int_equal(spoke__response_status(req, 0), SPOKE_EINVAL);
  assert_int_equal(spoke__response_status(req, -200), SPOKE_EINVAL);
  assert_int_equal(req->status, 404);

  req->resp_started = 1;
  assert_int_equal(spoke__response_status(req, 500), SPOKE_ESTATE);
  req->resp_started = 0;
  atomic_store(&req->completed, 1);
  assert_int_equal(spoke__response_status(req, 500), SPOKE_ESTATE);
  assert_int_equal(req->status, 404);
  req_free(req);
}

/* ---- completion guards (return before anything is posted) ---- */

static void completion_guards(void **state) {
  spoke_request_t *req = req_new(1, 1);
  (void)state;

  assert_int_equal(spoke__response_send(req, NULL, 5), SPOKE_EINVAL);
  assert_int_equal(spoke__response_write(req, NULL, 5), SPOKE_EINVAL);
  /* Streaming has started: send is the wrong call. */
  req->resp_started = 1;
  assert_int_equal(spoke__response_send(req, "x", 1), SPOKE_ESTATE);
  assert_int_equal(atomic_load(&req->completed), 0);

  /* Completed already: every completion is refused. */
  atomic_store(&req->completed, 1);
  assert_int_equal(spoke__response_send(req, "x", 1), SPOKE_EALREADY);
  assert_int_equal(spoke__response_write(req, "x", 1), SPOKE_EALREADY);
  assert_int_equal(spoke__response_end(req), SPOKE_EALREADY);
  assert_int_equal(spoke__response_simple(req, 500, NULL), SPOKE_EALREADY);
  req->resp_started = 0;
  assert_int_equal(spoke__response_send(req, "x", 1), SPOKE_EALREADY);
  assert_int_equal(spoke__response_end(req), SPOKE_EALREADY);
  req_free(req);
}

int main(void) {
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(http_date),
    cmocka_unit_test(head_whole),
    cmocka_unit_test(head_appends_to_buffer),
    cmocka_unit_test(head_plugin_headers),
    cmocka_unit_test(head_streamed_http11),
    cmocka_unit_test(head_streamed_http10),
    cmocka_unit_test(head_connection),
    cmocka_unit_test(head_no_body_statuses),
    cmocka_unit_test(head_for_head_requests),
    cmocka_unit_test(header_appends),
    cmocka_unit_test(header_refused),
    cmocka_unit_test(header_connection_close),
    cmocka_unit_test(header_after_start),
    cmocka_unit_test(status_range),
    cmocka_unit_test(completion_guards),
  };
  return cmocka_run_group_tests_name("response", tests, NULL, NULL);
}
