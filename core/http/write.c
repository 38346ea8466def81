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
 * - Otherwise try_send sends what the socket takes now (send(2) with
 *   uv_try_write's rule: nothing while earlier writes are queued, so
 *   order holds); no write request, no callback, no epoll change.
 * - What the socket does not take is queued with uv_write; the out lives
 *   until its write callback, which libuv runs before the handle's close
 *   callback, so the connection outlives it.
 *
 * An out with a request accounts its bytes in the request's `queued`
 * (back-pressure, response.c) and holds the request (a WRITE hold) while its
 * write is queued. Corked bytes and the remainder written at uncork
 * belong to no request any more: they are the connection's.
 *
 * A file body (SPOKE__OUT_FILE, spoke_response_file) follows its head's
 * bytes, which go with MSG_MORE so that the file's first bytes share
 * their segment (a small file is one packet, as nginx's tcp_nopush
 * gives): once every write before it is done, sendfile(2) moves the file
 * from the page cache to the socket, as much as the socket takes, and a
 * uv_poll_t waits for room for the rest. libuv allows one watcher per
 * descriptor, so the poll watches a dup of the socket (epoll keys on the
 * descriptor number as well as the file), made only the first time the
 * socket fills: a small file costs one sendfile and nothing else. No
 * thread waits and no buffer fills, however slow the client: memory
 * does not grow with file size.
 * Outs that arrive meanwhile (pipelined answers) wait behind the file, in
 * order, and a shutdown asked for meanwhile (conn.c's finish) waits for
 * them all (after_file). A connection that closes drops the file, closes
 * it, and drops what waited behind it. One connection sends at most
 * FILE_TURN bytes per loop turn, then waits for the poll, so a fast
 * client on a cached file cannot hold its loop.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <unistd.h>

#include "http/http.h"

/* Past this many corked bytes the cork is written out mid-parse: many
 * large pipelined responses must not pile up in memory. */
#define CORK_MAX (64 * 1024)

/* Most bytes one sendfile call is asked for, and one connection sends
 * per loop turn before it yields to the others. */
#define FILE_SLICE ((size_t)4 << 20)
#define FILE_TURN ((uint64_t)16 << 20)

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
  if ((out->flags & SPOKE__OUT_FILE) && out->file_fd >= 0) {
    close(out->file_fd); /* never sent: the client left, or an error */
    out->file_fd = -1;
  }
  if (!(out->flags & SPOKE__OUT_EMBEDDED))
    free(out);
}

static void file_pump(spoke__conn_t *conn);
static void file_writable(uv_poll_t *p, int status, int events);
static void file_abort(spoke__conn_t *conn);

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
  if (conn->file != NULL && !conn->closing && conn->tcp.write_queue_size == 0)
    file_pump(conn); /* the bytes before the file are out */
  if (req != NULL) {
    spoke__request_release(req, SPOKE__HOLD_WRITE);
  }
}

/* What the socket takes of LEN bytes now: a count, UV_EAGAIN, or a
 * negative libuv error. uv_try_write's rule (nothing while earlier
 * writes are queued, so order holds), with send(2) so that MORE
 * (MSG_MORE: a file body follows at once) can hold the bytes back to
 * leave in one segment with the file's first bytes. */
static int try_send(spoke__conn_t *conn, const char *data, size_t len,
                    int more) {
  uv_os_fd_t fd;
  ssize_t n;
  if (conn->tcp.write_queue_size != 0)
    return UV_EAGAIN;
  if (uv_fileno((uv_handle_t *)&conn->tcp, &fd) != 0)
    return UV_EBADF;
  do
    n = send(fd, data, len, MSG_NOSIGNAL | MSG_DONTWAIT | more);
  while (n < 0 && errno == EINTR);
  if (n >= 0)
    return (int)n;
  return errno == EAGAIN || errno == EWOULDBLOCK
             ? UV_EAGAIN
             : uv_translate_sys_error(errno);
}

/* Writes OUT's bytes now as far as the socket takes them and queues the
 * rest (MORE: as try_send's). 0, or a negative libuv error after which
 * the connection is closed; OUT is taken over either way. */
static int write_now(spoke__conn_t *conn, spoke__out_t *out, int more) {
  uv_buf_t buf;
  int n = try_send(conn, out->data, out->len, more);
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

/* Writes the corked bytes, leaving the cork in place (MORE: as
 * try_send's). */
static int cork_flush(spoke__conn_t *conn, int more) {
  spoke__buf_t *cb = &conn->loop->cork_buf;
  spoke__out_t *out;
  int n;

  if (cb->len == 0)
    return 0;
  n = try_send(conn, cb->data, cb->len, more);
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
  return out != NULL ? write_now(conn, out, more) : 0;
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
    cork_flush(conn, 0);
  else
    spoke__buf_reset(&conn->loop->cork_buf);
}

/* ---- a file body ---- */

static void file_poll_closed(uv_handle_t *h) {
  spoke__sendfile_t *f = h->data;
  close(f->sock);
  free(f);
}

/* The transfer ends (done, or the connection closes): its file closed,
 * its request let go, its poll and socket copy closed. */
static void file_release(spoke__conn_t *conn) {
  spoke__sendfile_t *f = conn->file;
  conn->file = NULL;
  f->conn = NULL;
  close(f->fd);
  if (f->req != NULL)
    spoke__request_release(f->req, SPOKE__HOLD_WRITE);
  if (f->sock >= 0)
    uv_close((uv_handle_t *)&f->poll, file_poll_closed);
  else
    free(f); /* sent at once: no poll was ever needed */
}

/* The socket is full: watch a dup of it for room. 0 or a libuv error. */
static int file_watch(spoke__sendfile_t *f) {
  int rc;
  if (f->sock < 0) {
    if ((f->sock = dup(f->out)) < 0)
      return UV_EMFILE;
    if ((rc = uv_poll_init(&f->conn->loop->uv, &f->poll, f->sock)) != 0) {
      close(f->sock);
      f->sock = -1;
      return rc;
    }
    f->poll.data = f;
  }
  if (!f->polling && (rc = uv_poll_start(&f->poll, UV_WRITABLE,
                                         file_writable)) != 0)
    return rc;
  f->polling = 1;
  return 0;
}

/* The outs that waited behind a file, in order, until another file
 * starts; then what was deferred until all of them were out. */
static void flush_behind(spoke__conn_t *conn) {
  while (conn->file == NULL && conn->behind_head != NULL && !conn->closing) {
    spoke__out_t *out = conn->behind_head;
    spoke_request_t *req = out->req;
    conn->behind_head = (spoke__out_t *)out->msg.next;
    if (conn->behind_head == NULL)
      conn->behind_tail = NULL;
    spoke__conn_send(conn, out);
    if (req != NULL)
      spoke__request_release(req, SPOKE__HOLD_WRITE);
  }
  /* A send above that closed the connection, with no file on it any
   * more, left the rest here: conn_close drops only a file's queue
   * (through the file's abort), so drop it here, holds and all. */
  if (conn->closing && conn->file == NULL)
    file_abort(conn);
  if (conn->file == NULL && conn->behind_head == NULL &&
      conn->after_file != NULL && !conn->closing) {
    void (*after)(spoke__conn_t *) = conn->after_file;
    conn->after_file = NULL;
    after(conn);
  }
}

/* The connection closes: the file and what waited behind it go. */
static void file_abort(spoke__conn_t *conn) {
  spoke__out_t *out, *next;
  if (conn->file != NULL)
    file_release(conn);
  for (out = conn->behind_head; out != NULL; out = next) {
    spoke_request_t *req = out->req;
    next = (spoke__out_t *)out->msg.next;
    out_done(out, out->len);
    if (req != NULL)
      spoke__request_release(req, SPOKE__HOLD_WRITE);
  }
  conn->behind_head = conn->behind_tail = NULL;
  conn->after_file = NULL;
}

static void file_writable(uv_poll_t *p, int status, int events) {
  spoke__sendfile_t *f = p->data;
  spoke__conn_t *conn = f->conn;
  (void)events;
  if (conn == NULL || conn->file != f || conn->closing)
    return; /* released: its close is on the way */
  if (status < 0) {
    spoke__conn_close(conn);
    return;
  }
  file_pump(conn);
}

/* Sends what the socket takes now; then waits for room, or ends. */
static void file_pump(spoke__conn_t *conn) {
  spoke__sendfile_t *f = conn->file;
  uint64_t turn = 0;

  if (conn->tcp.write_queue_size > 0)
    return; /* its head is not out yet: write_cb comes back */
  while (f->left > 0) {
    size_t want = f->left < FILE_SLICE ? (size_t)f->left : FILE_SLICE;
    off_t off = (off_t)f->off;
    ssize_t n = sendfile(f->out, f->fd, &off, want);
    if (n > 0) {
      f->off += (uint64_t)n;
      f->left -= (uint64_t)n;
      turn += (uint64_t)n;
      if (turn < FILE_TURN)
        continue; /* else enough for one turn: the others' go */
    } else if (n < 0 && errno == EINTR) {
      continue;
    }
    if (n > 0 || (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))) {
      if (file_watch(f) != 0) {
        spoke__conn_close(conn);
        return;
      }
      spoke__conn_send_progress(conn);
      return;
    }
    /* 0: the file is shorter than the length already promised; or an
     * error. The body cannot be finished: the client must see it cut. */
    spoke__debug("closing a connection: its file body failed after %llu "
                 "bytes (%s)", (unsigned long long)f->off,
                 n == 0 ? "the file ended early" : strerror(errno));
    spoke__conn_close(conn);
    return;
  }
  file_release(conn); /* its uv_close stops the poll */
  spoke__conn_send_progress(conn);
  flush_behind(conn);
}

/* OUT's bytes after everything before them: into the cork while the
 * connection is corked, else written now. MORE (MSG_MORE: a file body
 * follows at once) writes them now either way, corked bytes first, held
 * back to share a segment with what follows. Takes OUT over; 0, or a
 * negative libuv code after which the connection is closed. */
static int send_bytes(spoke__conn_t *conn, spoke__out_t *out, int more) {
  spoke__buf_t *cb = &conn->loop->cork_buf;
  int rc;

  if (conn->loop->cork != conn)
    return write_now(conn, out, more);
  if (cb->len + out->len > CORK_MAX && (rc = cork_flush(conn, 0)) != 0) {
    out_done(out, out->len);
    return rc;
  }
  if (out->len > CORK_MAX)
    return write_now(conn, out, more); /* the cork is empty: order holds */
  rc = spoke__buf_append(cb, out->data, out->len);
  out_done(out, out->len);
  if (rc != 0) {
    spoke__error("out of memory for a response; closing the connection");
    spoke__conn_close(conn);
    return rc;
  }
  return more ? cork_flush(conn, more) : 0;
}

/* OUT's bytes, then its file. Takes OUT over. */
static int send_file(spoke__conn_t *conn, spoke__out_t *out) {
  spoke__sendfile_t *f = calloc(1, sizeof(*f));
  uv_os_fd_t sock;
  int rc;

  if (f == NULL || uv_fileno((uv_handle_t *)&conn->tcp, &sock) != 0) {
    free(f);
    out_done(out, out->len);
    spoke__conn_close(conn);
    return UV_ENOMEM;
  }
  f->out = sock;
  f->sock = -1; /* the poll and its dup: only if the socket fills */
  f->conn = conn;
  f->abort = file_abort;
  f->fd = out->file_fd;
  out->file_fd = -1; /* the transfer's now */
  f->off = out->file_off;
  f->left = out->file_len;
  f->req = out->req;
  if (f->req != NULL)
    spoke__request_hold(f->req, SPOKE__HOLD_WRITE);
  out->flags &= ~(unsigned)SPOKE__OUT_FILE;
  conn->file = f; /* from here a close releases it (file_abort) */
  /* Corked answers before it, then its head (never empty), with
   * MSG_MORE, so that a small file leaves in the same segment as its
   * head (sendfile's last bytes push it): one packet, not two. A
   * failure closes the connection, and the file with it. */
  rc = send_bytes(conn, out, MSG_MORE);
  if (rc == 0 && conn->file == f)
    file_pump(conn);
  return rc;
}

int spoke__conn_send(spoke__conn_t *conn, spoke__out_t *out) {
  if (conn->closing || (out->len == 0 && !(out->flags & SPOKE__OUT_FILE))) {
    out_done(out, out->len);
    return conn->closing ? UV_ECANCELED : 0;
  }
  if (conn->file != NULL) { /* behind the file being sent */
    out->msg.next = NULL;
    if (conn->behind_tail != NULL)
      conn->behind_tail->msg.next = &out->msg;
    else
      conn->behind_head = out;
    conn->behind_tail = out;
    if (out->req != NULL)
      spoke__request_hold(out->req, SPOKE__HOLD_WRITE);
    return 0;
  }
  if (out->flags & SPOKE__OUT_FILE)
    return send_file(conn, out);
  return send_bytes(conn, out, 0);
}
