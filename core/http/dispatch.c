/* dispatch.c: from a parsed request to its handler.
 *
 * On the loop thread: look the path up in the loop's current snapshot,
 * pin the instance that owns the route (the request holds a reference
 * until it is freed, so that version's code stays mapped), then run the
 * handler. Nothing of the snapshot is kept: a reload may free it while
 * the request still waits for a worker. Async handlers run right here.
 * Sync handlers go to the worker pool (pool.c); at most --max-queue of
 * them may wait for a worker, past that the client gets 503 with
 * Retry-After instead of unbounded latency.
 *
 * A version with per-loop hooks (SDK 1.4) is counted in its slot for
 * this loop, so that its loop_fini waits for its last request here
 * (loophooks.c); where its loop_init failed, its routes answer 503.
 *
 * After a handler: a sync handler that did not complete gets 500; any
 * handler that returned an error without completing gets 500. Either is
 * logged once with the plugin's name.
 *
 * A quarantined version (plugin.h: loaded, but none of its code may run)
 * keeps its routes so that its requests are answered, not 404: the core
 * answers each 503 with Retry-After and a line naming the plugin and the
 * reason, right here, sync and async routes alike. The request is pinned
 * and counted like any routed one, but takes no HANDLER or PLUGIN hold
 * and never reaches the pool or the handler: it completes at once, as a
 * 404 does.
 */
#include <string.h>

#include "http/http.h"

static void handler_failed(spoke_request_t *req, int rc) {
  if (atomic_load(&req->completed))
    return;
  if (rc < 0)
    spoke__error("plugin %s: %s %s: handler returned %s (%s); answering 500",
                 req->inst->name, req->method, req->path, spoke_err_name(rc),
                 spoke_strerror(rc));
  else
    spoke__error("plugin %s: %s %s: sync handler returned without "
                 "completing the request; answering 500",
                 req->inst->name, req->method, req->path);
  spoke__response_simple(req, 500, NULL);
}

/* A sync handler returned: its done_msg, run on the request's loop. */
static void sync_done(spoke__msg_t *msg) {
  spoke_request_t *req = SPOKE__CONTAINER_OF(msg, spoke_request_t, done_msg);
  /* The hold goes only after the 500: answering may write at once and
   * would otherwise free the request under our feet. */
  if (!atomic_load(&req->completed))
    handler_failed(req, req->handler_rc);
  spoke__request_release(req, SPOKE__HOLD_HANDLER);
}

/* Every worker busy and the queue full (pool.c's admission) is a 503. */
static void run_sync(spoke_request_t *req) {
  req->mode = SPOKE_SYNC;
  if (spoke__pool_admit(req->loop->shared) != 0) {
    spoke__response_simple(req, 503, "Retry-After: 1\r\n");
    return;
  }
  spoke__request_hold(req, SPOKE__HOLD_HANDLER);
  req->done_msg.run = sync_done;
  spoke__pool_submit(req);
}

/* An async request is the plugin's until it completes it, even if the
 * core answers first (504): the PLUGIN hold keeps it valid till then. */
static void run_async(spoke_request_t *req) {
  spoke__call_save_t save;
  int rc;
  req->mode = SPOKE_ASYNC;
  atomic_store(&req->plugin_owes, 1);
  spoke__request_hold(req, SPOKE__HOLD_HANDLER);
  spoke__request_hold(req, SPOKE__HOLD_PLUGIN);
  if (req->conn != NULL) /* the deadline for its first byte starts */
    spoke__conn_phase(req->conn, SPOKE__PHASE_HANDLER);
  spoke__call_enter(&save, req->inst, "handler", req->route_index);
  rc = req->handler(req);
  spoke__call_leave(&save);
  if (rc < 0 && !atomic_load(&req->completed)) {
    /* Returning an error gives the request up: no completion follows. */
    atomic_store(&req->plugin_owes, 0);
    spoke__request_release(req, SPOKE__HOLD_PLUGIN);
    handler_failed(req, rc);
  }
  spoke__request_release(req, SPOKE__HOLD_HANDLER); /* after the 500 */
}

/* The answer for a route of a quarantined version: nothing of the
 * plugin runs, not even its handler's first instruction. */
static void answer_quarantined(spoke_request_t *req) {
  const spoke__instance_t *inst = req->inst;
  char body[512];
  int n = snprintf(body, sizeof(body), "503 plugin %s %s is quarantined: %s\n",
                   inst->name, inst->version, inst->quarantined);
  if (n < 0)
    n = 0;
  if ((size_t)n >= sizeof(body)) { /* a long reason: cut, still a line */
    n = (int)sizeof(body) - 1;
    body[n - 1] = '\n';
  }
  spoke__response_text(req, 503, "Retry-After: 10\r\n", body, (size_t)n);
}

/* The version's loop_init failed on this loop (loophooks.c): its routes
 * answer 503 here, without running its code. */
static void answer_loop_failed(spoke_request_t *req,
                               const spoke__instance_t *inst) {
  char body[256];
  int n = snprintf(body, sizeof(body),
                   "503 plugin %s %s could not start on this loop\n",
                   inst->name, inst->version);
  if (n < 0 || (size_t)n >= sizeof(body))
    n = 0;
  spoke__response_text(req, 503, "Retry-After: 10\r\n", body, (size_t)n);
}

void spoke__dispatch(spoke_request_t *req) {
  spoke__match_t m;
  spoke__snapshot_t *snap = req->loop->snap;
  spoke__match_result_t r;

  r = spoke__router_match(&snap->router, req->method, req->path,
                          req->path_len, &m);
  if (r == SPOKE__MATCH_NOT_FOUND) {
    spoke__response_simple(req, 404, NULL);
    return;
  }
  if (r == SPOKE__MATCH_METHOD_NOT_ALLOWED) {
    char allow[160];
    snprintf(allow, sizeof(allow), "Allow: %s\r\n", m.allow);
    spoke__response_simple(req, 405, allow);
    return;
  }
  if (m.route->inst->perloop != NULL) { /* SDK 1.4 loop hooks */
    spoke__perloop_t *slot = &m.route->inst->perloop[req->loop->id];
    if (slot->phase != SPOKE__PERLOOP_RUNNING) {
      answer_loop_failed(req, m.route->inst);
      return;
    }
    slot->requests++; /* loophooks.c counts it out at unpin */
  }
  req->handler = m.route->handler;
  req->inst = m.route->inst;
  req->route_index = m.route->index;
  req->routed = 1;
  spoke__stat_add(&req->loop->stats.in_flight, 1);
  spoke__instance_pin(req->inst);
  req->nparams = m.nparams;
  memcpy(req->params, m.params, m.nparams * sizeof(m.params[0]));
  if (req->inst->quarantined != NULL)
    answer_quarantined(req);
  else if (m.route->mode == SPOKE_SYNC)
    run_sync(req);
  else
    run_async(req);
}
