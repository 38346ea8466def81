/* timeouts.c: every deadline of every connection on a loop.
 *
 * A connection is always in one phase (http.h), and the phase says which
 * deadline applies: waiting for a first request or between requests
 * (closed silently), reading a head (408: the clock starts at the head's
 * first byte and does not restart, so a byte a second does not keep it
 * alive), reading a body (408: --body-timeout restarted by each read,
 * and a total deadline that only a steady --body-min-rate moves,
 * conn_life.c), waiting for an
 * async handler to start its response (504). Apart from the phase, a
 * response the client does not read is cut when writes make no progress
 * for --send-timeout, with a reset: a plain close would leave megabytes
 * queued in the kernel for a client that never reads them. A connection
 * that closes after its last response lingers (reads and discards) for
 * at most LINGER_MS.
 *
 * Deadlines are plain numbers on the connection; one uv_timer per loop
 * sweeps them, at a quarter of the shortest timeout (10 ms to 1 s), so
 * the request path never touches a timer heap. Setting a phase and its
 * deadline is conn_life.c's; the sweep here acts on what expired, so it
 * sits above the connection (it may answer 408 or 504). The sweep timer
 * is closed with the loop's last handles (mailbox.c). Loop thread only.
 */
#include "http/http.h"

/* The async handler has had its time: 504, and the plugin is told as if
 * the client had left (abort callback), so it can stop and complete; the
 * request stays the plugin's until it does (the completion is then
 * discarded) and its version drains after that. */
static void handler_late(spoke__conn_t *conn) {
  spoke_request_t *req = conn->req;
  spoke__conn_phase(conn, SPOKE__PHASE_BUSY);
  if (req == NULL || req->mode != SPOKE_ASYNC ||
      atomic_load(&req->resp_started) ||
      atomic_load(&req->completed))
    return;
  spoke__warn("plugin %s: %s %s: no response within %llu ms; answering 504",
              req->inst ? req->inst->name : "?", req->method, req->path,
              (unsigned long long)conn->loop->shared->cfg->handler_timeout_ms);
  spoke__request_hold(req, SPOKE__HOLD_STACK); /* the 504 may free it */
  /* Corked: the 504 leaves once all below is done, so a client that has
   * it sees /status and /metrics already telling the same story. */
  spoke__conn_cork(conn);
  spoke__response_simple(req, 504, NULL);
  spoke__request_abort(req);
  /* The plugin was told; unless the core still holds a callback of its
   * for this request (its handler, a spoke timer, an offload), its
   * version need not stay loaded for a completion that may never come. */
  spoke__request_orphan_if_idle(req, SPOKE__HOLD_KINDS);
  spoke__request_release(req, SPOKE__HOLD_STACK);
  spoke__conn_uncork(conn);
}

static void expire(spoke__conn_t *conn) {
  switch (conn->phase) {
    case SPOKE__PHASE_IDLE:
      if (spoke__conn_sending(conn)) { /* idle, but a response is still
                                          leaving (a file to a slow
                                          reader): --send-timeout rules */
        spoke__conn_phase(conn, SPOKE__PHASE_IDLE);
        break;
      }
      spoke__conn_close(conn);
      break;
    case SPOKE__PHASE_NEW:
    case SPOKE__PHASE_LINGER:
      spoke__conn_close(conn);
      break;
    case SPOKE__PHASE_HEAD:
    case SPOKE__PHASE_BODY:
      spoke__debug("closing a connection: %s not received in time",
                   conn->phase == SPOKE__PHASE_HEAD ? "request head" : "body");
      spoke__conn_fail(conn, 408);
      break;
    case SPOKE__PHASE_HANDLER:
      handler_late(conn);
      break;
    default:
      conn->deadline = 0;
      break;
  }
}

static void sweep(uv_timer_t *t) {
  spoke__loop_t *loop = t->data;
  uint64_t now = uv_now(&loop->uv);
  spoke__conn_t *conn, *next;

  for (conn = loop->conns; conn != NULL; conn = next) {
    next = conn->next; /* closing only unlinks in the close callback */
    if (conn->closing)
      continue;
    if (conn->send_deadline != 0 && now >= conn->send_deadline) {
      spoke__debug("resetting a connection: the client reads nothing");
      spoke__conn_reset(conn);
    } else if (conn->deadline != 0 && now >= conn->deadline) {
      expire(conn);
    }
  }
}

void spoke__timeouts_start(spoke__loop_t *loop) {
  const spoke__config_t *cfg = loop->shared->cfg;
  uint64_t all[] = {cfg->header_timeout_ms, cfg->keepalive_timeout_ms,
                    cfg->body_timeout_ms, cfg->body_deadline_ms,
                    cfg->send_timeout_ms, cfg->handler_timeout_ms};
  uint64_t shortest = 0, tick;
  for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++)
    if (all[i] != 0 && (shortest == 0 || all[i] < shortest))
      shortest = all[i];
  tick = shortest / 4;
  if (tick < 10)
    tick = 10;
  if (tick > 1000)
    tick = 1000;
  uv_timer_init(&loop->uv, &loop->sweep);
  loop->sweep.data = loop;
  uv_timer_start(&loop->sweep, sweep, tick, tick);
  uv_unref((uv_handle_t *)&loop->sweep); /* never keeps a drained loop up */
}
