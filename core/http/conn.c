/* conn.c: one client connection: read, parse with llhttp, hand each
 * request to dispatch, one at a time, in order.
 *
 * Loop thread only. Bytes read go into rbuf; [rpos, rlen) are read but
 * not parsed yet. on_message_complete returns HPE_PAUSED, so llhttp
 * stops right after each request; the request is dispatched and the
 * bytes of any pipelined requests wait in rbuf until the response's last
 * bytes are queued (spoke__conn_deliver), then parsing resumes
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

static const spoke__config_t *cfg_of(const spoke__conn_t *conn) {
  return conn->loop->shared->cfg;
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
  if (conn->file != NULL) { /* the FIN goes after the file (write.c) */
    conn->after_file = conn_finish;
    return;
  }
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
  if (spoke__conn_sending(conn)) { /* a response still on its way out */
    conn_finish(conn);
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

/* 1 when the request at DATA has a well-formed request line whose method
 * llhttp does not know ("FOO /x HTTP/1.1", "get /x HTTP/1.1"): RFC 9110
 * §9.1 asks 501 for an unrecognized method; 400 stays for a line that is
 * not a request line at all. Only what this read holds is looked at. */
static int unknown_method(const char *data, size_t len) {
  const char *end = data + len, *sp1 = memchr(data, ' ', len), *sp2, *v;
  if (sp1 == NULL || sp1 == data ||
      !spoke__is_token(data, (size_t)(sp1 - data)))
    return 0;
  sp2 = memchr(sp1 + 1, ' ', (size_t)(end - sp1 - 1));
  if (sp2 == NULL || sp2 == sp1 + 1 ||
      memchr(sp1 + 1, '\r', (size_t)(sp2 - sp1 - 1)) != NULL)
    return 0;
  v = sp2 + 1;
  return end - v >= 9 && memcmp(v, "HTTP/", 5) == 0 && v[5] >= '0' &&
         v[5] <= '9' && v[6] == '.' && v[7] >= '0' && v[7] <= '9' &&
         v[8] == '\r';
}

static void parse_failed(spoke__conn_t *conn, llhttp_errno_t e,
                         const char *data, size_t len) {
  int status = conn->err_status ? conn->err_status : 400;
  if (e == HPE_INVALID_METHOD && unknown_method(data, len))
    status = 501;
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
      spoke__debug("closing connection after 400: the request breaks the "
                   "line rules (CRLF only, no obs-fold, bounded chunk "
                   "extensions)");
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
      parse_failed(conn, e, data, len);
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

/* The in-flight response ended (its last bytes are queued): let the
 * request go, and go on to the next one or close. */
static void response_done(spoke__conn_t *conn, int close) {
  spoke_request_t *req = conn->req;
  conn->req = NULL;
  conn->req_dispatched = 0;
  if (req != NULL) {
    req->conn = NULL;
    spoke__request_release(req, SPOKE__HOLD_CONN);
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

/* ---- answering ---- */

/* The loop's deliver callback (loop.c installs it; response.c calls it,
 * in place on the loop thread or through the mailbox): OUT's bytes go
 * out on the request's connection in order, or are dropped if the
 * client left. The last of a response counts it, logs it, lets the
 * request go and moves the connection on. */
void spoke__conn_deliver(spoke__msg_t *msg) {
  spoke__out_t *out = (spoke__out_t *)msg;
  spoke_request_t *req = out->req;
  spoke__conn_t *conn = req->conn;
  unsigned flags = out->flags;

  if (out->via_mailbox)
    atomic_fetch_sub(&req->in_mailbox, 1);
  if (flags & SPOKE__OUT_RELEASE) {
    /* The plugin completed after the core had answered for it. */
    spoke__out_release(out);
    spoke__request_release(req, SPOKE__HOLD_PLUGIN);
    return;
  }
  if (conn != NULL && out->len > 0) {
    if (spoke__conn_send(conn, out) == 0 &&
        conn->phase == SPOKE__PHASE_HANDLER)
      spoke__conn_phase(conn, SPOKE__PHASE_BUSY); /* response started */
  } else {
    /* The client left (or nothing to send): accepted and discarded. */
    spoke__request_dequeued(req, out->len);
    spoke__out_release(out);
  }
  if ((flags & (SPOKE__OUT_CLOSE | SPOKE__OUT_LAST)) == SPOKE__OUT_CLOSE &&
      req->conn != NULL) /* a piece was lost (out of memory): cut it off */
    spoke__conn_close(req->conn);
  if (flags & SPOKE__OUT_LAST) {
    spoke__request_hold(req, SPOKE__HOLD_STACK);
    spoke__stats_request_done(req);
    spoke__accesslog_request(req);
    spoke__request_release(req, SPOKE__HOLD_UNCOMPLETED);
    if (flags & SPOKE__OUT_PLUGIN) /* an async plugin paid what it owed */
      spoke__request_release(req, SPOKE__HOLD_PLUGIN);
    if (req->conn != NULL)
      response_done(req->conn, (flags & SPOKE__OUT_CLOSE) != 0);
    spoke__request_release(req, SPOKE__HOLD_STACK);
  }
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
  static const char headers[] = "Content-Type: text/plain\r\n"
                                "Retry-After: 1\r\n";
  static const char body[] = "503 too many connections\n";
  spoke__head_t h = {.status = 503, .headers = headers,
                     .headers_len = sizeof(headers) - 1,
                     .body_len = sizeof(body) - 1, .http_minor = 1,
                     .close = 1};
  uint64_t now = uv_now(&conn->loop->uv);
  spoke__buf_t b = {0};
  uv_buf_t buf;
  if (now - last_log >= 1000 || last_log == 0) {
    spoke__warn("refusing connections: %zu open (--max-conns)",
                conn->loop->shared->cfg->max_conns);
    last_log = now;
  }
  if (spoke__head_write(&b, &h) == 0 &&
      spoke__buf_append(&b, body, sizeof(body) - 1) == 0) {
    buf = uv_buf_init(b.data, (unsigned)b.len);
    uv_try_write((uv_stream_t *)&conn->tcp, &buf, 1);
  }
  spoke__buf_free(&b);
  conn_finish(conn);
}

void spoke__conn_accept(spoke__loop_t *loop) {
  spoke__conn_t *conn;
  size_t open;

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
  llhttp_init(&conn->parser, HTTP_REQUEST, spoke__parse_settings());
  conn->parser.data = conn;
  spoke__frame_reset(&conn->scan);
  start_reading(conn);
}
