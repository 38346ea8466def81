/* write.c: a connection's output: corking, writing at once, queueing.
 *
 * Loop thread only. Every byte the server sends on a connection goes
 * through spoke__conn_send, in the order the responses are delivered:
 *
 * - Corked (the loop is parsing this connection's bytes, conn.c): the
 *   bytes are appended to the loop's cork buffer and the out is given
 *   back at once; spoke__conn_uncork writes everything the parse
 *   produced with one write when the parse stops. Pipelined requests
 *   answered on the loop thus cost one write(2) per batch.
 * - Otherwise uv_try_write sends what the socket takes now (uv_try_write
 *   refuses while earlier writes are queued, so order holds); no write
 *   request, no callback, no epoll change.
 * - What the socket does not take is queued with uv_write; the out lives
 *   until its write callback, which libuv runs before the handle's close
 *   callback, so the connection outlives it.
 *
 * An out with a request accounts its bytes in the request's `queued`
 * (back-pressure, response.c) and holds the request (a WRITE hold) while its
 * write is queued. Corked bytes and the remainder written at uncork
 * belong to no request any more: they are the connection's.
 */
#include <stdlib.h>
#include <string.h>

#include "http/http.h"

/* Past this many corked bytes the cork is written out mid-parse: many
 * large pipelined responses must not pile up in memory. */
#define CORK_MAX (64 * 1024)

spoke__out_t *spoke__out_new(size_t len) {
  spoke__out_t *out;
  if (len > SIZE_MAX - sizeof(*out))
    return NULL;
  out = malloc(sizeof(*out) + len);
  if (out == NULL)
    return NULL;
  memset(out, 0, sizeof(*out));
  out->data = (char *)(out + 1);
  out->len = len;
  return out;
}

void spoke__out_release(spoke__out_t *out) {
  if (!(out->flags & SPOKE__OUT_EMBEDDED))
    free(out);
}

/* OUT's bytes are no longer queued: sent, copied or dropped. */
static void out_done(spoke__out_t *out, size_t len) {
  if (out->req != NULL)
    spoke__request_dequeued(out->req, len);
  spoke__out_release(out);
}

static void write_cb(uv_write_t *wr, int status) {
  spoke__out_t *out = wr->data;
  spoke_request_t *req = out->req;
  spoke__conn_t *conn = (spoke__conn_t *)wr->handle;
  out_done(out, out->len);
  if (status < 0 && status != UV_ECANCELED)
    spoke__conn_close(conn);
  else if (!conn->closing)
    spoke__conn_send_progress(conn);
  if (req != NULL) {
    spoke__request_release(req, SPOKE__HOLD_WRITE);
  }
}

/* Writes OUT's bytes now as far as the socket takes them and queues the
 * rest. 0, or a negative libuv error after which the connection is
 * closed; OUT is taken over either way. */
static int write_now(spoke__conn_t *conn, spoke__out_t *out) {
  uv_buf_t buf = uv_buf_init(out->data, (unsigned)out->len);
  int n = uv_try_write((uv_stream_t *)&conn->tcp, &buf, 1);
  if (n < 0 && n != UV_EAGAIN) {
    out_done(out, out->len);
    spoke__conn_close(conn);
    return n;
  }
  if (n > 0) {
    if (out->req != NULL)
      spoke__request_dequeued(out->req, (size_t)n);
    out->data += n;
    out->len -= (size_t)n;
  }
  if (out->len == 0) {
    spoke__out_release(out);
    return 0;
  }
  buf = uv_buf_init(out->data, (unsigned)out->len);
  out->wr.data = out;
  n = uv_write(&out->wr, (uv_stream_t *)&conn->tcp, &buf, 1, write_cb);
  if (n != 0) {
    out_done(out, out->len);
    spoke__conn_close(conn);
    return n;
  }
  if (out->req != NULL)
    spoke__request_hold(out->req, SPOKE__HOLD_WRITE);
  if (conn->send_deadline == 0)
    spoke__conn_send_progress(conn);
  return 0;
}

/* Writes the corked bytes, leaving the cork in place. */
static int cork_flush(spoke__conn_t *conn) {
  spoke__buf_t *cb = &conn->loop->cork_buf;
  spoke__out_t *out;
  uv_buf_t buf;
  int n;

  if (cb->len == 0)
    return 0;
  buf = uv_buf_init(cb->data, (unsigned)cb->len);
  n = uv_try_write((uv_stream_t *)&conn->tcp, &buf, 1);
  if (n < 0 && n != UV_EAGAIN) {
    spoke__buf_reset(cb);
    spoke__conn_close(conn);
    return n;
  }
  if (n < 0)
    n = 0;
  out = (size_t)n < cb->len ? spoke__out_new(cb->len - (size_t)n) : NULL;
  if (out != NULL)
    memcpy(out->data, cb->data + n, out->len);
  n = (size_t)n < cb->len && out == NULL ? SPOKE_ENOMEM : 0;
  if (cb->cap > CORK_MAX)
    spoke__buf_free(cb);
  else
    spoke__buf_reset(cb);
  if (n != 0) {
    spoke__error("out of memory for a response; closing the connection");
    spoke__conn_close(conn);
    return n;
  }
  return out != NULL ? write_now(conn, out) : 0;
}

void spoke__conn_cork(spoke__conn_t *conn) {
  if (conn->loop->cork == NULL)
    conn->loop->cork = conn;
}

void spoke__conn_uncork(spoke__conn_t *conn) {
  if (conn->loop->cork != conn)
    return;
  conn->loop->cork = NULL;
  if (!conn->closing)
    cork_flush(conn);
  else
    spoke__buf_reset(&conn->loop->cork_buf);
}

int spoke__conn_send(spoke__conn_t *conn, spoke__out_t *out) {
  spoke__buf_t *cb = &conn->loop->cork_buf;
  int rc;

  if (conn->closing || out->len == 0) {
    out_done(out, out->len);
    return conn->closing ? UV_ECANCELED : 0;
  }
  if (conn->loop->cork != conn)
    return write_now(conn, out);
  if (cb->len + out->len > CORK_MAX && (rc = cork_flush(conn)) != 0) {
    out_done(out, out->len);
    return rc;
  }
  if (out->len > CORK_MAX)
    return write_now(conn, out); /* the cork is empty: order holds */
  rc = spoke__buf_append(cb, out->data, out->len);
  out_done(out, out->len);
  if (rc != 0) {
    spoke__error("out of memory for a response; closing the connection");
    spoke__conn_close(conn);
  }
  return rc;
}
