/* parse.c: llhttp's callbacks, filling the request a connection reads.
 *
 * Loop thread only. llhttp's data callbacks may fire several times per
 * token (a token can straddle two reads), so the URL, header names and
 * values accumulate in the connection's buffers and are copied into the
 * request's arena when complete. Each callback enforces its limit with
 * the status users expect (414 request line, 431 header block or count,
 * 413 body) by setting conn->err_status and failing; conn.c answers it.
 * Header names must be tokens and values free of control bytes whatever
 * llhttp accepts (head.c's validator); an HTTP/1.1 request needs one
 * valid Host (authority.c) and an HTTP/1.0 one no Transfer-Encoding (RFC
 * 9112 §3.2, §6.1), else 400; the request target is split into
 * path and query and the path normalized (base/path.c) before routing
 * (a fragment, or an absolute-form target whose scheme is not http(s) or
 * whose authority is empty or invalid, is 400).
 * on_message_complete pauses the parser after each request, so pipelined
 * requests wait their turn (conn.c resumes it).
 */
#include <string.h>
#include <strings.h>

#include "http/http.h"

static llhttp_settings_t settings;
static uv_once_t settings_once = UV_ONCE_INIT;

static spoke__conn_t *conn_of(llhttp_t *p) { return p->data; }

static const spoke__config_t *cfg_of(const spoke__conn_t *conn) {
  return conn->loop->shared->cfg;
}

/* Counts header-block bytes; past --max-header fails with 431. */
static int head_grow(spoke__conn_t *conn, size_t len) {
  conn->head_bytes += len;
  if (conn->head_bytes > cfg_of(conn)->max_header) {
    conn->err_status = 431;
    return -1;
  }
  return 0;
}

static int on_message_begin(llhttp_t *p) {
  spoke__conn_t *conn = conn_of(p);
  if (conn->req == NULL) {
    conn->req = spoke__request_new(conn->loop, conn);
    if (conn->req == NULL) {
      conn->err_status = 503;
      return -1;
    }
  }
  spoke__buf_reset(&conn->url);
  spoke__buf_reset(&conn->field);
  spoke__buf_reset(&conn->value);
  conn->head_bytes = 0;
  conn->trailers = 0;
  conn->head_done = 0;
  conn->hosts = 0;
  conn->bad_host = 0;
  spoke__conn_phase(conn, SPOKE__PHASE_HEAD);
  return 0;
}

static int on_url(llhttp_t *p, const char *at, size_t len) {
  spoke__conn_t *conn = conn_of(p);
  if (conn->url.len + len > cfg_of(conn)->max_request_line) {
    conn->err_status = 414;
    return -1;
  }
  /* RFC 9112 §3.2: no request-target form has a fragment (a client
   * strips it); llhttp lets "#..." through, spoke refuses it. */
  if (memchr(at, '#', len) != NULL) {
    conn->err_status = 400;
    return -1;
  }
  return spoke__buf_append(&conn->url, at, len) == 0 ? 0 : -1;
}

static int on_header_field(llhttp_t *p, const char *at, size_t len) {
  spoke__conn_t *conn = conn_of(p);
  if (head_grow(conn, len) != 0)
    return -1;
  return spoke__buf_append(&conn->field, at, len) == 0 ? 0 : -1;
}

static int on_header_value(llhttp_t *p, const char *at, size_t len) {
  spoke__conn_t *conn = conn_of(p);
  if (head_grow(conn, len) != 0)
    return -1;
  return spoke__buf_append(&conn->value, at, len) == 0 ? 0 : -1;
}

/* Every header name must be a token (no whitespace before the colon) and
 * every value free of control bytes but HTAB, whatever llhttp says. */
static int on_header_field_complete(llhttp_t *p) {
  spoke__conn_t *conn = conn_of(p);
  if (!spoke__is_token(conn->field.data ? conn->field.data : "",
                       conn->field.len)) {
    conn->err_status = 400;
    return -1;
  }
  return 0;
}

/* NAME[0..n) is "Host", in any case (a byte | 0x20 is a given
 * lower-case letter only when it is that letter, in either case). */
static int is_host(const char *name, size_t n) {
  return n == 4 && (name[0] | 0x20) == 'h' && (name[1] | 0x20) == 'o' &&
         (name[2] | 0x20) == 's' && (name[3] | 0x20) == 't';
}

static int on_header_value_complete(llhttp_t *p) {
  spoke__conn_t *conn = conn_of(p);
  int rc;
  if (!spoke__header_value_ok(conn->value.data, conn->value.len)) {
    conn->err_status = 400;
    return -1;
  }
  if (conn->req->nheaders + conn->trailers >= cfg_of(conn)->max_headers) {
    conn->err_status = 431;
    return -1;
  }
  if (conn->head_done) {
    /* A trailer field (after a chunked body): checked and counted like a
     * header, never merged into the header section (RFC 9110 §6.5.1), so
     * a plugin cannot mistake what came after the body for what came
     * before it. */
    conn->trailers++;
    spoke__buf_reset(&conn->field);
    spoke__buf_reset(&conn->value);
    return 0;
  }
  /* Host is judged as it arrives (RFC 9112 §3.2), not by a second pass
   * over the header list: on_headers_complete reads the two counts. */
  if (is_host(conn->field.data, conn->field.len)) {
    conn->hosts++;
    conn->bad_host |= !spoke__host_value_ok(conn->value.data
                                                ? conn->value.data : "",
                                            conn->value.len);
  }
  rc = spoke__request_add_header(conn->req, conn->field.data ? conn->field.data : "",
                                     conn->field.len,
                                     conn->value.data ? conn->value.data : "",
                                     conn->value.len);
  spoke__buf_reset(&conn->field);
  spoke__buf_reset(&conn->value);
  return rc == 0 ? 0 : -1;
}

/* The length of an absolute-form target's "scheme://" when the scheme
 * is http or https, in any case (RFC 9110 §4.2.3); else 0. */
static size_t http_scheme_len(const char *url, size_t len) {
  if (len >= 7 && strncasecmp(url, "http://", 7) == 0)
    return 7;
  if (len >= 8 && strncasecmp(url, "https://", 8) == 0)
    return 8;
  return 0;
}

/* Splits the request target into path and query and normalizes the path
 * (path.c). Absolute-form targets ("http://host/p?q") are reduced to their
 * path; their authority must be a valid, non-empty host (RFC 9110 §4.2.1:
 * an http URI with an empty host is invalid; userinfo is refused, as in
 * Host). Any other target that is not a path ("*", "host:443",
 * "ftp://x/") fails. */
static int set_target(spoke_request_t *req, const char *url, size_t len) {
  const char *q, *start = url;
  char *path;
  size_t plen, slen = http_scheme_len(url, len);

  if (slen > 0) {
    const char *auth = url + slen, *end = url + len, *a = auth;
    while (a < end && *a != '/' && *a != '?')
      a++;
    if (a == auth || !spoke__host_value_ok(auth, (size_t)(a - auth)))
      return -1;
    start = a < end && *a == '/' ? a : NULL; /* NULL: no path, "/" */
  }
  req->url = spoke__arena_strndup(&req->arena, url, len);
  if (req->url == NULL)
    return -1;
  if (start == NULL) {
    const char *quest = memchr(url, '?', len);
    req->path = "/";
    req->path_len = 1;
    req->query = quest ? spoke__arena_strndup(&req->arena, quest + 1,
                                              (size_t)(url + len - quest - 1))
                       : "";
    return req->query ? 0 : -1;
  }
  len -= (size_t)(start - url);
  q = memchr(start, '?', len);
  plen = q ? (size_t)(q - start) : len;
  if (q != NULL) {
    req->query = spoke__arena_strndup(&req->arena, q + 1, len - plen - 1);
    if (req->query == NULL)
      return -1;
  }
  path = spoke__arena_strndup(&req->arena, start, plen);
  if (path == NULL || spoke__path_normalize(path, plen, &req->path_len) != 0)
    return -1;
  req->path = path;
  return 0;
}

/* Every Transfer-Encoding field lists "chunked" and nothing else. */
static int codings_ok(const spoke_request_t *req) {
  const char *name, *v;
  for (size_t i = 0; spoke__request_header_at(req, i, &name, &v) == 0; i++) {
    if (!spoke__strcaseeq(name, "Transfer-Encoding"))
      continue;
    while (*v != '\0') {
      const char *end = strchr(v, ',');
      size_t n = end ? (size_t)(end - v) : strlen(v);
      size_t a = 0, b = n;
      while (a < b && (v[a] == ' ' || v[a] == '\t'))
        a++;
      while (b > a && (v[b - 1] == ' ' || v[b - 1] == '\t'))
        b--;
      if (b - a != 7 || strncasecmp(v + a, "chunked", 7) != 0)
        return 0;
      v += end ? n + 1 : n;
    }
  }
  return 1;
}

static void send_100_continue(spoke__conn_t *conn) {
  static const char line[] = "HTTP/1.1 100 Continue\r\n\r\n";
  spoke__out_t *out = spoke__out_new(sizeof(line) - 1);
  if (out == NULL)
    return;
  memcpy(out->data, line, out->len);
  spoke__conn_send(conn, out); /* behind any response already corked */
}

static int on_headers_complete(llhttp_t *p) {
  spoke__conn_t *conn = conn_of(p);
  spoke_request_t *req = conn->req;
  size_t max_body = conn->loop->shared->cfg->max_body;
  const char *expect;

  conn->head_done = 1; /* header fields from here on are trailers */
  req->method = llhttp_method_name((llhttp_method_t)p->method);
  req->http_major = p->http_major;
  req->http_minor = p->http_minor;
  req->is_head = p->method == HTTP_HEAD;
  if (p->http_major != 1) { /* HTTP/0.9 (no version), HTTP/2.0, ... */
    conn->err_status = 505;
    return -1;
  }
  /* RFC 9112 §6.1: Transfer-Encoding in an HTTP/1.0 request is faulty
   * framing (a proxy in front that reads it the HTTP/1.0 way sees another
   * message boundary): 400, and the connection closes. And chunked is the
   * only transfer coding spoke decodes; a body in any other would reach
   * the plugin still encoded (llhttp checks only that chunked comes
   * last): 501. */
  if ((p->flags & F_TRANSFER_ENCODING) &&
      (p->http_minor == 0 || !codings_ok(req))) {
    conn->err_status = p->http_minor == 0 ? 400 : 501;
    return -1;
  }
  /* RFC 9112 §3.2: exactly one Host field, with a valid value, in an
   * HTTP/1.1 request; at most one in an HTTP/1.0 one. */
  if (conn->hosts > 1 || conn->bad_host ||
      (conn->hosts == 0 && p->http_minor != 0)) {
    conn->err_status = 400;
    return -1;
  }
  if (set_target(req, conn->url.data ? conn->url.data : "", conn->url.len) != 0) {
    conn->err_status = 400;
    return -1;
  }
  if ((p->flags & F_CONTENT_LENGTH) && p->content_length > max_body) {
    conn->err_status = 413;
    return -1;
  }
  expect = (p->flags & F_CHUNKED) || p->content_length > 0
               ? spoke__request_header(req, "Expect")
               : NULL; /* no body, nothing to continue with */
  if (expect != NULL && req->http_minor >= 1 &&
      spoke__strcaseeq(expect, "100-continue"))
    send_100_continue(conn);
  conn->body_kind = (p->flags & F_CHUNKED) ? SPOKE__BODY_CHUNKED
                    : p->content_length > 0 ? SPOKE__BODY_LENGTH
                                            : SPOKE__BODY_NONE;
  conn->body_length = p->content_length;
  if (conn->body_kind != SPOKE__BODY_NONE)
    spoke__conn_phase(conn, SPOKE__PHASE_BODY);
  return 0;
}

static int on_body(llhttp_t *p, const char *at, size_t len) {
  spoke__conn_t *conn = conn_of(p);
  spoke_request_t *req = conn->req;
  if (req->body.len + len > conn->loop->shared->cfg->max_body) {
    conn->err_status = 413;
    return -1;
  }
  spoke__conn_body_progress(conn, len); /* the body's clocks move */
  return spoke__buf_append(&req->body, at, len) == 0 ? 0 : -1;
}

static int on_message_complete(llhttp_t *p) {
  spoke__conn_t *conn = conn_of(p);
  /* No protocol upgrades (WebSocket, h2c, CONNECT tunnels): the request
   * is answered as plain HTTP and is the connection's last; nothing after
   * it on this connection is HTTP any more. */
  if (p->upgrade)
    conn->close_after = 1;
  conn->req->keep_alive = llhttp_should_keep_alive(p) && !conn->close_after;
  return HPE_PAUSED;
}

static void settings_init(void) {
  llhttp_settings_init(&settings);
  settings.on_message_begin = on_message_begin;
  settings.on_url = on_url;
  settings.on_header_field = on_header_field;
  settings.on_header_value = on_header_value;
  settings.on_header_field_complete = on_header_field_complete;
  settings.on_header_value_complete = on_header_value_complete;
  settings.on_headers_complete = on_headers_complete;
  settings.on_body = on_body;
  settings.on_message_complete = on_message_complete;
}

const llhttp_settings_t *spoke__parse_settings(void) {
  uv_once(&settings_once, settings_init);
  return &settings;
}
