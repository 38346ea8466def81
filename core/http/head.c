/* head.c: the one writer of response heads, and the one check of a
 * header value.
 *
 * Every response spoke sends, a plugin's (response.c), the core's own
 * answers (404, 408, 503 ...), a refusal at --max-conns (conn.c) and
 * the admin listener's (ctl/admin.c), gets its status line and framing
 * headers here, so the rules live in one place:
 *
 * - a status line "HTTP/1.1 NNN Reason", then Date (RFC 9110 6.6.1:
 *   an origin server with a clock sends it);
 * - the caller's header lines as given (each "Name: value\r\n");
 * - Content-Length for a whole body, Transfer-Encoding: chunked for a
 *   streamed one to an HTTP/1.1 client (an HTTP/1.0 client gets neither
 *   and the connection closes to end the body); none of them for a
 *   status that has no body (1xx, 204, 304);
 * - Connection: close when the connection ends after this response,
 *   Connection: keep-alive to an HTTP/1.0 client whose connection stays.
 *
 * The head is built with memcpy into a buffer reserved once, no printf
 * (this is on every request's path). Any thread; no state but the
 * thread-local Date text.
 */
#include <string.h>

#include "http/http.h"

const char *spoke__http_date(void) {
  static _Thread_local spoke__timebuf_t tb = {-1, ""};
  return spoke__time_now(&tb, "%a, %d %b %Y %H:%M:%S GMT");
}

int spoke__status_has_body(int status) {
  return !(status < 200 || status == 204 || status == 304);
}

int spoke__header_value_ok(const char *v, size_t n) {
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)v[i];
    if ((c < 0x20 && c != '\t') || c == 0x7f)
      return 0; /* no CR or LF: no header injection, no smuggling */
  }
  return 1;
}

static char *put(char *p, const char *s, size_t n) {
  memcpy(p, s, n);
  return p + n;
}

#define PUT_LIT(p, lit) put((p), (lit), sizeof(lit) - 1)

char *spoke__put_num(char *p, unsigned long long v, unsigned base) {
  char tmp[24];
  size_t n = 0;
  do {
    tmp[n++] = "0123456789abcdef"[v % base];
    v /= base;
  } while (v != 0);
  while (n > 0)
    *p++ = tmp[--n];
  return p;
}

/* Bytes of a head beyond the reason, the date and the caller's headers,
 * at most: "HTTP/1.1 NNN \r\n" 15, "Date: \r\n" 8, "Content-Length: "
 * with 20 digits 38, "Transfer-Encoding: chunked\r\n" 28, "Connection:
 * keep-alive\r\n" 24, the blank line 2. */
#define HEAD_FIXED_MAX 160

int spoke__head_write(spoke__buf_t *out, const spoke__head_t *h) {
  const char *reason = spoke__status_reason(h->status);
  const char *date = spoke__http_date();
  size_t rlen = strlen(reason), dlen = strlen(date);
  char *p;
  int rc;

  if (h->status < 100 || h->status > 999)
    return SPOKE_EINVAL;
  rc = spoke__buf_reserve(out, HEAD_FIXED_MAX + rlen + dlen + h->headers_len);
  if (rc != 0)
    return rc;
  p = out->data + out->len;
  p = PUT_LIT(p, "HTTP/1.1 ");
  p = spoke__put_num(p, (unsigned)h->status, 10);
  *p++ = ' ';
  p = put(p, reason, rlen);
  p = PUT_LIT(p, "\r\nDate: ");
  p = put(p, date, dlen);
  p = PUT_LIT(p, "\r\n");
  if (h->headers_len)
    p = put(p, h->headers, h->headers_len);
  if (spoke__status_has_body(h->status)) {
    if (h->body_len >= 0) {
      p = PUT_LIT(p, "Content-Length: ");
      p = spoke__put_num(p, (unsigned long long)h->body_len, 10);
      p = PUT_LIT(p, "\r\n");
    } else if (h->http_minor >= 1) {
      p = PUT_LIT(p, "Transfer-Encoding: chunked\r\n");
    }
  }
  if (h->close)
    p = PUT_LIT(p, "Connection: close\r\n");
  else if (h->http_minor == 0)
    p = PUT_LIT(p, "Connection: keep-alive\r\n");
  p = PUT_LIT(p, "\r\n");
  out->len = (size_t)(p - out->data);
  out->data[out->len] = '\0';
  return 0;
}
