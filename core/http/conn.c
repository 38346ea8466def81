/* conn.c: one client connection: read, parse with llhttp, hand each
 * request to dispatch, one at a time, in order.
 *
 * Loop thread only. Bytes read go into rbuf; [rpos, rlen) are read but
 * not parsed yet. on_message_complete returns HPE_PAUSED, so llhttp
 * stops right after each request; the request is dispatched and the
 * bytes of any pipelined requests wait in rbuf until the response's last
 * bytes are queued (spoke__conn_response_done), then parsing resumes
 * from llhttp_get_error_pos. llhttp runs strict (no lenient flags).
 *
 * llhttp's data callbacks may fire several times per token (a token can
 * straddle two reads), so URL, header names and values accumulate in
 * buffers and are copied into the request's arena when complete.
 *
 * Reading goes on while a request is in flight, so that a client that
 * leaves is noticed (the request is detached and its plugin told); it
 * stops only when rbuf is full of unparsed pipelined bytes.
 *
 * Buffers: a read lands in the loop's shared buffer (64 KiB); after the
 * read callback parsed what it could, unparsed bytes (pipelined behind a
 * request in flight) move to a buffer of the connection's own, which is
 * freed once parsed. An idle connection holds no read buffer. While the
 * loop parses a connection's bytes the connection is corked (write.c):
 * the responses its requests get on the spot go out in one write.
 *
 * Closing: spoke__conn_close is immediate (errors, EOF, drain of an idle
 * connection); a response that ends the connection (Connection: close,
 * HTTP/1.0, a 4xx from the parser) shuts down after its bytes are
 * written. The conn is freed in its close callback, after every write
 * callback has run.
 */
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "http/http.h"

#define RBUF_SIZE (16 * 1024)        /* a connection's own, at least */
#define LOOP_RBUF_SIZE (64 * 1024)   /* the loop's shared one */

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
  spoke__conn_phase(conn, SPOKE__PHASE_HEAD);
  return 0;
}

static int on_url(llhttp_t *p, const char *at, size_t len) {
  spoke__conn_t *conn = conn_of(p);
  if (conn->url.len + len > cfg_of(conn)->max_request_line) {
    conn->err_status = 414;
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

static int value_ok(const char *v, size_t n) {
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)v[i];
    if ((c < 0x20 && c != '\t') || c == 0x7f)
      return 0;
  }
  return 1;
}

static int on_header_value_complete(llhttp_t *p) {
  spoke__conn_t *conn = conn_of(p);
  int rc;
  if (!value_ok(conn->value.data, conn->value.len)) {
    conn->err_status = 400;
    return -1;
  }
  if (conn->req->nheaders >= cfg_of(conn)->max_headers) {
    conn->err_status = 431;
    return -1;
  }
  rc = spoke__request_add_header(conn->req, conn->field.data ? conn->field.data : "",
                                     conn->field.len,
                                     conn->value.data ? conn->value.data : "",
                                     conn->value.len);
  spoke__buf_reset(&conn->field);
  spoke__buf_reset(&conn->value);
  return rc == 0 ? 0 : -1;
}

/* Splits the request target into path and query and normalizes the path
 * (path.c). Absolute-form targets ("http://host/p?q") are reduced to their
 * path; any other target that is not a path ("*", "host:443") fails. */
static int set_target(spoke_request_t *req, const char *url, size_t len) {
  const char *q, *start = url;
  char *path;
  size_t plen;

  if (len > 7 && (strncmp(url, "http://", 7) == 0 ||
                  strncmp(url, "https://", 8) == 0)) {
    const char *slash = memchr(url + 8, '/', len - 8);
    const char *quest = memchr(url + 8, '?', len - 8);
    if (slash == NULL || (quest != NULL && quest < slash))
      start = NULL; /* no path: "/" */
    else
      start = slash;
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

  req->method = llhttp_method_name((llhttp_method_t)p->method);
  req->http_major = p->http_major;
  req->http_minor = p->http_minor;
  req->is_head = p->method == HTTP_HEAD;
  if (p->http_major != 1) { /* HTTP/0.9 (no version), HTTP/2.0, ... */
    conn->err_status = 505;
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
  spoke__conn_phase(conn, SPOKE__PHASE_BODY); /* progress: clock restarts */
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

/* ---- closing ---- */

static void conn_closed(uv_handle_t *h) {
  spoke__conn_t *conn = (spoke__conn_t *)h;
  spoke__loop_t *loop = conn->loop;
  if (conn->prev)
    conn->prev->next = conn->next;
  else
    loop->conns = conn->next;
  if (conn->next)
    conn->next->prev = conn->prev;
  loop->nconns--;
  atomic_fetch_sub(&loop->shared->open_conns, 1);
  if (!conn->rbuf_shared)
    free(conn->rbuf);
  spoke__buf_free(&conn->url);
  spoke__buf_free(&conn->field);
  spoke__buf_free(&conn->value);
  free(conn);
  spoke__loop_maybe_finish(loop);
}

void spoke__conn_close(spoke__conn_t *conn) {
  spoke_request_t *req = conn->req;
  if (conn->closing)
    return;
  conn->closing = 1;
  conn->req = NULL;
  if (conn->loop->cork == conn) { /* corked bytes go nowhere now */
    conn->loop->cork = NULL;
    spoke__buf_reset(&conn->loop->cork_buf);
  }
  if (req != NULL) {
    if (!conn->req_dispatched) {
      /* Never reached a plugin: nobody else will complete it. */
      atomic_store(&req->completed, 1);
      req->holds &= ~(unsigned)SPOKE__REQ_UNCOMPLETED;
    }
    spoke__request_detach(req);
  }
  uv_close((uv_handle_t *)&conn->tcp, conn_closed);
}

void spoke__conn_reset(spoke__conn_t *conn) {
  uv_os_fd_t fd;
  struct linger lg = {1, 0};
  if (!conn->closing && uv_fileno((uv_handle_t *)&conn->tcp, &fd) == 0)
    setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
  spoke__conn_close(conn);
}

static void read_cb(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf);
static void alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *buf);

/* Our side is shut down and every byte written. Closing now, with
 * request bytes unread, would make the kernel answer with a reset that
 * destroys the responses still on their way; so read and discard until
 * the client closes too, or the linger deadline (timeouts.c). */
static void shutdown_done(uv_shutdown_t *sr, int status) {
  spoke__conn_t *conn = sr->data;
  free(sr);
  if (status != 0 || conn->closing) {
    spoke__conn_close(conn);
    return;
  }
  conn->lingering = 1;
  conn->rpos = conn->rlen = 0;
  spoke__conn_phase(conn, SPOKE__PHASE_LINGER);
  if (!conn->reading &&
      uv_read_start((uv_stream_t *)&conn->tcp, alloc_cb, read_cb) == 0)
    conn->reading = 1;
  if (!conn->reading)
    spoke__conn_close(conn);
}

/* Close once the queued writes are out. */
static void conn_finish(spoke__conn_t *conn) {
  uv_shutdown_t *sr;
  if (conn->closing)
    return;
  conn->close_after = 1;
  spoke__conn_uncork(conn); /* the last responses go before the FIN */
  if (conn->closing)
    return;
  sr = malloc(sizeof(*sr));
  if (sr != NULL) {
    sr->data = conn;
    if (uv_shutdown(sr, (uv_stream_t *)&conn->tcp, shutdown_done) == 0)
      return;
    free(sr);
  }
  spoke__conn_close(conn);
}

void spoke__conn_close_if_idle(spoke__conn_t *conn) {
  /* In flight, or already shutting down after its last response (idle
   * with close_after set): let it finish; its writes must not be cut. */
  if (conn->req_dispatched || conn->close_after) {
    conn->close_after = 1;
    return;
  }
  spoke__conn_close(conn);
}

/* ---- reading and parsing ---- */

static void alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
  spoke__conn_t *conn = (spoke__conn_t *)h;
  spoke__loop_t *loop = conn->loop;
  (void)suggested;
  if (conn->rbuf == NULL) {
    if (loop->rbuf == NULL)
      loop->rbuf = malloc(LOOP_RBUF_SIZE);
    conn->rbuf = loop->rbuf;
    conn->rcap = loop->rbuf ? LOOP_RBUF_SIZE : 0;
    conn->rpos = conn->rlen = 0;
    conn->rbuf_shared = loop->rbuf != NULL;
  }
  if (conn->rlen == conn->rcap && conn->rpos > 0) {
    memmove(conn->rbuf, conn->rbuf + conn->rpos, conn->rlen - conn->rpos);
    conn->rlen -= conn->rpos;
    conn->rpos = 0;
  }
  buf->base = conn->rbuf ? conn->rbuf + conn->rlen : NULL;
  buf->len = conn->rcap - conn->rlen;
}

/* The end of a read callback: the loop's buffer goes back to the loop;
 * unparsed bytes move into a buffer of the connection's own. */
static void release_shared(spoke__conn_t *conn) {
  size_t left = conn->rlen - conn->rpos;
  char *own = NULL;
  if (!conn->rbuf_shared)
    return;
  conn->rbuf_shared = 0;
  if (left > 0 && !conn->closing) {
    size_t cap = left > RBUF_SIZE ? left : RBUF_SIZE;
    own = malloc(cap);
    if (own == NULL) {
      spoke__conn_close(conn);
    } else {
      memcpy(own, conn->rbuf + conn->rpos, left);
      conn->rbuf = own;
      conn->rcap = cap;
      conn->rpos = 0;
      conn->rlen = left;
      return;
    }
  }
  conn->rbuf = NULL;
  conn->rcap = conn->rpos = conn->rlen = 0;
}

static void start_reading(spoke__conn_t *conn) {
  if (conn->reading || conn->closing)
    return;
  if (uv_read_start((uv_stream_t *)&conn->tcp, alloc_cb, read_cb) == 0)
    conn->reading = 1;
}

static void stop_reading(spoke__conn_t *conn) {
  if (!conn->reading)
    return;
  uv_read_stop((uv_stream_t *)&conn->tcp);
  conn->reading = 0;
}

static void parse_failed(spoke__conn_t *conn, llhttp_errno_t e) {
  int status = conn->err_status ? conn->err_status : 400;
  spoke__debug("closing connection after %d: %s (%s)", status,
               llhttp_errno_name(e), llhttp_get_error_reason(&conn->parser));
  spoke__conn_fail(conn, status);
}

void spoke__conn_fail(spoke__conn_t *conn, int status) {
  spoke_request_t *req = conn->req;
  if (conn->req_dispatched || conn->closing)
    return; /* a request is being answered: nothing to fail */
  spoke__conn_phase(conn, SPOKE__PHASE_BUSY);
  if (req == NULL) {
    req = conn->req = spoke__request_new(conn->loop, conn);
    if (req == NULL) {
      spoke__conn_close(conn);
      return;
    }
  }
  conn->close_after = 1;
  conn->req_dispatched = 1;
  req->keep_alive = 0;
  req->http_minor = 1;
  spoke__response_simple(req, status, NULL);
}

static void request_ready(spoke__conn_t *conn) {
  spoke_request_t *req = conn->req;
  conn->req_dispatched = 1;
  if (conn->loop->draining ||
      ++conn->nrequests >= cfg_of(conn)->max_requests)
    req->keep_alive = 0;
  spoke__conn_phase(conn, SPOKE__PHASE_BUSY);
  spoke__dispatch(req); /* may complete and free req before it returns */
}

void spoke__conn_advance(spoke__conn_t *conn) {
  int corked;
  if (conn->advancing || conn->closing)
    return;
  conn->advancing = 1;
  corked = conn->loop->cork == NULL;
  if (corked)
    spoke__conn_cork(conn);
  /* A connection that will close (an upgrade, a parse error, a drain)
   * reads no further request out of the bytes it still holds. */
  while (!conn->closing && !conn->close_after && !conn->req_dispatched &&
         conn->rpos < conn->rlen) {
    const char *data = conn->rbuf + conn->rpos;
    size_t len = conn->rlen - conn->rpos;
    llhttp_errno_t e = llhttp_execute(&conn->parser, data, len);
    size_t used = e == HPE_OK ? len
                  : e == HPE_PAUSED || e == HPE_PAUSED_UPGRADE
                      ? (size_t)(llhttp_get_error_pos(&conn->parser) - data)
                      : 0;
    /* Before anything is dispatched: the bytes llhttp took must keep the
     * line rules that llhttp 8.1.0 (or a non-strict build) does not. */
    if (used > 0 && spoke__frame_scan(&conn->scan, conn->body_kind,
                                      conn->body_length, data, used) != 0) {
      spoke__debug("closing connection after 400: a request line breaks "
                   "the CRLF-only, no obs-fold rules");
      spoke__conn_fail(conn, 400);
      break;
    }
    if (e == HPE_OK) {
      conn->rpos = conn->rlen;
    } else if (e == HPE_PAUSED || e == HPE_PAUSED_UPGRADE) {
      conn->rpos += used;
      spoke__frame_reset(&conn->scan); /* the next request starts here */
      conn->body_kind = SPOKE__BODY_NONE;
      if (e == HPE_PAUSED_UPGRADE || conn->req == NULL) {
        /* llhttp's word that what follows an upgrade is not HTTP; the
         * upgrade request itself was answered (on_message_complete). */
        conn->close_after = 1;
        if (conn->req == NULL)
          break;
        conn->req->keep_alive = 0;
        llhttp_resume_after_upgrade(&conn->parser);
      } else {
        llhttp_resume(&conn->parser);
      }
      request_ready(conn);
    } else {
      parse_failed(conn, e);
    }
  }
  if (conn->rpos == conn->rlen) {
    conn->rpos = conn->rlen = 0;
    if (!conn->rbuf_shared) { /* parsed all: idle connections hold none */
      free(conn->rbuf);
      conn->rbuf = NULL;
      conn->rcap = 0;
    }
  }
  conn->advancing = 0;
  if (corked)
    spoke__conn_uncork(conn);
  if (!conn->closing && (conn->rbuf == NULL || conn->rlen < conn->rcap))
    start_reading(conn);
}

static void read_cb(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf) {
  spoke__conn_t *conn = (spoke__conn_t *)s;
  (void)buf;
  if (conn->lingering) {
    conn->rpos = conn->rlen = 0; /* discarded */
    if (nread < 0 && nread != UV_ENOBUFS)
      spoke__conn_close(conn);
  } else if (nread > 0) {
    conn->rlen += (size_t)nread;
    spoke__conn_advance(conn);
  } else if (nread == UV_ENOBUFS) {
    stop_reading(conn);
  } else if (nread < 0) { /* EOF or error: the client is gone */
    spoke__conn_close(conn);
  }
  release_shared(conn);
  if (!conn->closing && conn->rbuf != NULL && conn->rlen == conn->rcap &&
      conn->rpos == 0)
    stop_reading(conn); /* full of pipelined bytes: wait for room */
}

void spoke__conn_response_done(spoke__conn_t *conn, int close) {
  spoke_request_t *req = conn->req;
  conn->req = NULL;
  conn->req_dispatched = 0;
  if (req != NULL) {
    req->conn = NULL;
    req->holds &= ~(unsigned)SPOKE__REQ_ON_CONN;
  }
  if (close || conn->close_after || conn->loop->draining) {
    spoke__conn_phase(conn, SPOKE__PHASE_BUSY);
    stop_reading(conn);
    conn_finish(conn);
    return;
  }
  spoke__conn_phase(conn, SPOKE__PHASE_IDLE);
  spoke__conn_advance(conn);
}

/* ---- accepting ---- */

/* The client's address as text, for the access log. */
static void peer_name(spoke__conn_t *conn) {
  struct sockaddr_storage sa;
  int len = sizeof(sa);
  if (uv_tcp_getpeername(&conn->tcp, (struct sockaddr *)&sa, &len) != 0)
    return;
  if (sa.ss_family == AF_INET6)
    uv_ip6_name((struct sockaddr_in6 *)&sa, conn->peer, sizeof(conn->peer));
  else
    uv_ip4_name((struct sockaddr_in *)&sa, conn->peer, sizeof(conn->peer));
}

/* Past --max-conns: a polite answer, then close. Logged once a second
 * at most: a flood must not become a flood of log lines. */
static void refuse_busy(spoke__conn_t *conn) {
  static _Thread_local uint64_t last_log;
  uint64_t now = uv_now(&conn->loop->uv);
  char busy[256];
  int n = snprintf(busy, sizeof(busy),
                   "HTTP/1.1 503 Service Unavailable\r\nDate: %s\r\n"
                   "Content-Type: text/plain\r\nContent-Length: 25\r\n"
                   "Retry-After: 1\r\nConnection: close\r\n\r\n"
                   "503 too many connections\n",
                   spoke__http_date());
  uv_buf_t buf = uv_buf_init(busy, (unsigned)n);
  if (now - last_log >= 1000 || last_log == 0) {
    spoke__warn("refusing connections: %zu open (--max-conns)",
                conn->loop->shared->cfg->max_conns);
    last_log = now;
  }
  uv_try_write((uv_stream_t *)&conn->tcp, &buf, 1);
  conn_finish(conn);
}

void spoke__conn_accept(spoke__loop_t *loop) {
  spoke__conn_t *conn;
  size_t open;

  uv_once(&settings_once, settings_init);
  conn = calloc(1, sizeof(*conn));
  if (conn == NULL)
    return;
  conn->loop = loop;
  uv_tcp_init(&loop->uv, &conn->tcp);
  conn->next = loop->conns;
  if (loop->conns)
    loop->conns->prev = conn;
  loop->conns = conn;
  loop->nconns++;
  open = atomic_fetch_add(&loop->shared->open_conns, 1) + 1;
  if (uv_accept((uv_stream_t *)&loop->listener, (uv_stream_t *)&conn->tcp) != 0 ||
      loop->draining) {
    spoke__conn_close(conn);
    return;
  }
  uv_tcp_nodelay(&conn->tcp, 1);
  if (spoke__accesslog_enabled())
    peer_name(conn);
  if (open > loop->shared->cfg->max_conns) {
    refuse_busy(conn);
    return;
  }
  spoke__conn_phase(conn, SPOKE__PHASE_NEW);
  llhttp_init(&conn->parser, HTTP_REQUEST, &settings);
  conn->parser.data = conn;
  spoke__frame_reset(&conn->scan);
  start_reading(conn);
}
