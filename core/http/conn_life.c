/* conn_life.c: a connection's phase, its deadlines, and its end.
 *
 * A connection is always in one phase (http.h), and the phase says which
 * deadline applies: waiting for a first request or between requests
 * (closed silently), reading a head (408: the clock starts at the head's
 * first byte and does not restart, so a byte a second does not keep it
 * alive), reading a body (408, restarted by each read), waiting for an
 * async handler to start its response (504). Apart from the phase, a
 * response the client does not read is cut when writes make no progress
 * for --send-timeout. Here the deadlines are set; timeouts.c's sweep acts
 * on them.
 *
 * Closing is immediate (errors, EOF, a drain, an expired deadline): the
 * request being read is dropped, one in flight is detached (its plugin
 * told through its abort callback). The connection is freed in its
 * close callback, which libuv runs after every write callback, so a
 * queued write never outlives its connection; the loop may end after it.
 *
 * This is the bottom of the connection: the write path, responses and
 * the reader above all close through here. Loop thread only.
 */
#include <stdlib.h>
#include <sys/socket.h>

#include "http/http.h"

/* How long a closing connection reads and discards (nginx: 5 s). */
#define LINGER_MS 5000

static uint64_t phase_timeout(const spoke__config_t *cfg,
                              spoke__phase_t phase) {
  switch (phase) {
    case SPOKE__PHASE_NEW:
    case SPOKE__PHASE_HEAD: return cfg->header_timeout_ms;
    case SPOKE__PHASE_IDLE: return cfg->keepalive_timeout_ms;
    case SPOKE__PHASE_HANDLER: return cfg->handler_timeout_ms;
    case SPOKE__PHASE_LINGER: return LINGER_MS;
    default: return 0;
  }
}

/* The body's deadline: --body-timeout after the last bytes, and no later
 * than --body-deadline after the head plus one second for every
 * --body-min-rate bytes read since. A client that keeps the minimum rate
 * stays ahead of the second clock however long its body; one that
 * trickles below it meets the deadline, some 60 s in by default. */
static void body_deadline(spoke__conn_t *conn, uint64_t now) {
  const spoke__config_t *cfg = conn->loop->shared->cfg;
  uint64_t gap = 0, total = 0; /* 0: that clock is off */
  if (cfg->body_timeout_ms > 0)
    gap = now + cfg->body_timeout_ms;
  if (cfg->body_deadline_ms > 0) {
    total = conn->body_start + cfg->body_deadline_ms;
    if (cfg->body_min_rate > 0)
      total += conn->body_seen * 1000 / cfg->body_min_rate;
  }
  /* the earlier of the two that are on */
  conn->deadline = gap == 0 || (total != 0 && total < gap) ? total : gap;
}

void spoke__conn_phase(spoke__conn_t *conn, spoke__phase_t phase) {
  uint64_t t;
  conn->phase = phase;
  if (phase == SPOKE__PHASE_BODY) {
    conn->body_start = uv_now(&conn->loop->uv);
    conn->body_seen = 0;
    body_deadline(conn, conn->body_start);
    return;
  }
  t = phase_timeout(conn->loop->shared->cfg, phase);
  conn->deadline = t ? uv_now(&conn->loop->uv) + t : 0;
}

void spoke__conn_body_progress(spoke__conn_t *conn, size_t len) {
  conn->body_seen += len;
  if (conn->phase == SPOKE__PHASE_BODY)
    body_deadline(conn, uv_now(&conn->loop->uv));
}

void spoke__conn_send_progress(spoke__conn_t *conn) {
  uint64_t t = conn->loop->shared->cfg->send_timeout_ms;
  if (t == 0 || !spoke__conn_sending(conn))
    conn->send_deadline = 0;
  else
    conn->send_deadline = uv_now(&conn->loop->uv) + t;
}

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
  if (conn->file != NULL) /* a file body, and what waited behind it */
    conn->file->abort(conn);
  if (req != NULL) {
    if (!conn->req_dispatched) {
      /* Never reached a plugin: nobody else will complete it (the
       * connection's own hold keeps it alive through this). */
      atomic_store(&req->completed, 1);
      spoke__request_release(req, SPOKE__HOLD_UNCOMPLETED);
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
