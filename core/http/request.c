/* request.c: the request object's lifetime and the SDK's accessors.
 *
 * Created by the connection when a request starts, on the loop thread.
 * Freed there too, when the last of its holds is released (http.h's
 * spoke__hold_t: the connection, the handler, the response still owed,
 * the plugin's completion, a callback on the stack, a queued write, a
 * timer). Every hold goes through spoke__request_hold/release, which
 * assert the rule: an exclusive hold is not taken twice, no hold is
 * released that was not taken, a request is freed exactly once; a
 * process-wide count of live requests lets shutdown check that none
 * leaked (ctl/server.c). Freeing unpins the plugin instance
 * the request was dispatched into, which may let a retired version go,
 * and puts the request in its loop's pool: the next request on that
 * loop reuses it, buffers and all, so the steady state allocates
 * nothing. A draining loop pools nothing; the pool is freed when the
 * loop ends (spoke__request_pool_free).
 *
 * The accessors read fields that are immutable once the request is
 * dispatched, so a plugin may call them from whichever thread handles
 * the request. Strings they return live in the request's arena.
 */
#include <assert.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http/http.h"

/* Requests created and not yet freed, every loop together. */
static atomic_long live_count;

/* Buffers a pooled request keeps; a larger one is freed, so one big
 * response does not pin its memory in the pool. */
#define KEEP_BUF 4096

static void buf_trim(spoke__buf_t *b) {
  if (b->cap > KEEP_BUF)
    spoke__buf_free(b);
  else
    spoke__buf_reset(b);
}

/* From the pool, cleared but for its kept buffers, or from malloc. */
static spoke_request_t *request_alloc(spoke__loop_t *loop) {
  spoke_request_t *req = loop->free_reqs;
  spoke__buf_t body, resp_headers, wire;
  if (req == NULL)
    return calloc(1, sizeof(*req));
  loop->free_reqs = req->next_free;
  loop->nfree_reqs--;
  body = req->body;
  resp_headers = req->resp_headers;
  wire = req->wire;
  memset(req, 0, offsetof(spoke_request_t, arena_storage));
  req->body = body;
  req->resp_headers = resp_headers;
  req->wire = wire;
  return req;
}

spoke_request_t *spoke__request_new(spoke__loop_t *loop, spoke__conn_t *conn) {
  spoke_request_t *req = request_alloc(loop);
  if (req == NULL)
    return NULL;
  req->loop = loop;
  req->conn = conn;
  req->t_start = uv_hrtime();
  if (conn != NULL && conn->peer[0] != '\0')
    memcpy(req->peer, conn->peer, sizeof(req->peer));
  spoke__arena_init_with(&req->arena, req->arena_storage,
                         sizeof(req->arena_storage));
  req->status = 200;
  req->query = "";
  req->holds[SPOKE__HOLD_CONN] = 1;
  req->holds[SPOKE__HOLD_UNCOMPLETED] = 1;
  req->nholds = 2;
  atomic_init(&req->completed, 0);
  atomic_init(&req->aborted, 0);
  atomic_init(&req->in_mailbox, 0);
  atomic_init(&req->plugin_owes, 0);
  atomic_init(&req->queued, 0);
  atomic_init(&req->resp_started, 0);
  atomic_init(&req->waiting, 0);
  atomic_init(&req->abort_cb, NULL);
  loop->live_requests++;
  atomic_fetch_add_explicit(&live_count, 1, memory_order_relaxed);
  return req;
}

static void request_destroy(spoke_request_t *req) {
  spoke__buf_free(&req->body);
  spoke__buf_free(&req->resp_headers);
  spoke__buf_free(&req->wire);
  free(req);
}

static void orphan_unlink(spoke_request_t *req);

/* The last hold went (spoke__request_release): loop thread. */
static void request_free(spoke_request_t *req) {
  spoke__loop_t *loop = req->loop;
  assert(!req->pooled); /* freed twice: a hold was dropped too early */
  if (req->orphaned)
    orphan_unlink(req);
  if (req->inst != NULL) /* its version may go: once off our stack */
    spoke__request_unpin(req);
  spoke__arena_free(&req->arena);
  if (loop->nfree_reqs < SPOKE__REQ_POOL_MAX && !loop->draining) {
    buf_trim(&req->body);
    buf_trim(&req->resp_headers);
    buf_trim(&req->wire);
    req->pooled = 1;
    req->next_free = loop->free_reqs;
    loop->free_reqs = req;
    loop->nfree_reqs++;
  } else {
    request_destroy(req);
  }
  loop->live_requests--;
  atomic_fetch_sub_explicit(&live_count, 1, memory_order_relaxed);
  spoke__loop_maybe_finish(loop);
}

void spoke__request_unpin(spoke_request_t *req) {
  spoke__instance_t *inst = req->inst;
  if (inst == NULL) /* never routed, or unpinned already */
    return;
  /* Release: a plugin thread that reads NULL (spoke__request_inst) also
   * sees plugin_name, written before. It may be unloaded from here on. */
  __atomic_store_n(&req->inst, NULL, __ATOMIC_RELEASE);
  spoke__instance_unpinned(inst);
  if (inst->perloop != NULL) /* its loop_fini may be due (loophooks.c) */
    spoke__loophooks_unpinned(req->loop, inst);
  spoke__loop_defer_unref(req->loop, inst);
}

void spoke__request_orphan(spoke_request_t *req) {
  spoke__loop_t *loop = req->loop;
  if (req->inst != NULL) /* its name outlives the pin, for the logs */
    snprintf(req->plugin_name, sizeof(req->plugin_name), "%s",
             req->inst->name);
  spoke__request_unpin(req);
  if (req->orphaned)
    return;
  req->orphaned = 1;
  req->orphan_prev = NULL;
  req->orphan_next = loop->orphans;
  if (loop->orphans != NULL)
    loop->orphans->orphan_prev = req;
  loop->orphans = req;
  loop->norphans++;
  spoke__stat_add(&loop->stats.abandoned, 1);
}

void spoke__request_orphan_if_idle(spoke_request_t *req,
                                   spoke__hold_t ending) {
  unsigned pending = req->holds[SPOKE__HOLD_HANDLER] +
                     req->holds[SPOKE__HOLD_TIMER] +
                     req->holds[SPOKE__HOLD_OFFLOAD];
  if (ending != SPOKE__HOLD_KINDS)
    pending--; /* the caller's, about to go */
  if (atomic_load(&req->completed) && atomic_load(&req->aborted) &&
      spoke__request_held(req, SPOKE__HOLD_PLUGIN) && pending == 0)
    spoke__request_orphan(req);
}

static void orphan_unlink(spoke_request_t *req) {
  spoke__loop_t *loop = req->loop;
  if (req->orphan_prev != NULL)
    req->orphan_prev->orphan_next = req->orphan_next;
  else
    loop->orphans = req->orphan_next;
  if (req->orphan_next != NULL)
    req->orphan_next->orphan_prev = req->orphan_prev;
  req->orphaned = 0;
  loop->norphans--;
  spoke__stat_sub(&loop->stats.abandoned, 1);
}

void spoke__request_orphans_free(spoke__loop_t *loop) {
  spoke_request_t *req = loop->orphans, *next;
  for (; req != NULL; req = next) {
    next = req->orphan_next;
    if (spoke__request_held(req, SPOKE__HOLD_PLUGIN))
      spoke__request_release(req, SPOKE__HOLD_PLUGIN); /* may free it */
  }
}

void spoke__request_hold(spoke_request_t *req, spoke__hold_t why) {
  assert(!req->pooled && req->nholds > 0); /* a freed request */
  assert(why >= SPOKE__HOLD_STACK || req->holds[why] == 0); /* exclusive */
  req->holds[why]++;
  req->nholds++;
}

void spoke__request_release(spoke_request_t *req, spoke__hold_t why) {
  assert(!req->pooled && req->holds[why] > 0); /* released twice */
  req->holds[why]--;
  if (--req->nholds == 0)
    request_free(req);
}

int spoke__request_held(const spoke_request_t *req, spoke__hold_t why) {
  return req->holds[why] > 0;
}

long spoke__request_live_count(void) {
  return atomic_load_explicit(&live_count, memory_order_relaxed);
}

void spoke__request_pool_free(spoke__loop_t *loop) {
  while (loop->free_reqs != NULL) {
    spoke_request_t *req = loop->free_reqs;
    loop->free_reqs = req->next_free;
    request_destroy(req);
  }
  loop->nfree_reqs = 0;
}

void spoke__request_abort(spoke_request_t *req) {
  spoke_abort_cb cb;
  if (atomic_exchange(&req->aborted, 1))
    return; /* told once */
  spoke__request_wake_writers(req); /* a writer waiting for room gives up */
  req->drain_cb = NULL; /* the abort callback runs instead; one already
                           posted finds none (drain_run) */
  cb = atomic_load(&req->abort_cb);
  if (cb != NULL) {
    spoke__call_save_t save;
    spoke__request_hold(req, SPOKE__HOLD_STACK);
    spoke__call_enter(&save, req->inst, "abort callback", req->route_index);
    cb(req);
    spoke__call_leave(&save);
    spoke__request_release(req, SPOKE__HOLD_STACK);
  }
}

void spoke__request_detach(spoke_request_t *req) {
  spoke__request_hold(req, SPOKE__HOLD_STACK);
  req->conn = NULL;
  spoke__request_release(req, SPOKE__HOLD_CONN);
  if (!atomic_load(&req->completed))
    spoke__request_abort(req);
  spoke__request_release(req, SPOKE__HOLD_STACK);
}

/* ---- the response's queued bytes (back-pressure, response.c) ---- */

void spoke__request_wake_writers(spoke_request_t *req) {
  if (atomic_load(&req->waiting) == 0)
    return;
  uv_mutex_lock(&req->loop->mu);
  uv_cond_broadcast(&req->loop->drained);
  uv_mutex_unlock(&req->loop->mu);
}

/* Drain callbacks (SDK 1.3): back-pressure for a plugin streaming from
 * the loop thread, which cannot wait like a writer elsewhere. The
 * callback is never run from where the queue goes down: dequeued runs
 * inside the write path (write.c's write_now, often within the plugin's
 * own spoke_response_write, before the out it is writing has had its
 * unsent rest queued; or a write callback), and a callback writing from
 * there would recurse into the write path and could send its bytes ahead
 * of that rest. The request's own drain_msg is posted to its loop's
 * mailbox instead and runs from the doorbell, with only libuv below it,
 * on a later turn of the loop (so other connections get theirs between
 * two rounds of a stream). Posting from the loop thread costs a lock and
 * at most one eventfd write per round of half a MiB or more.
 *
 * Holds: a DRAIN hold while drain_msg is posted (the message lives in
 * the request); the PLUGIN hold does not cover it, since the plugin may
 * complete (or its handler fail) while the message waits, and the last
 * out's delivery lets the request go. A STACK hold while the callback
 * runs. A callback merely registered needs no hold: it is a field, and
 * a request freed with one (completed or aborted: it can no longer run)
 * is cleared when reused. */
static void drain_run(spoke__msg_t *msg);

static void drain_post(spoke_request_t *req) {
  req->drain_posted = 1;
  req->drain_msg.run = drain_run;
  spoke__request_hold(req, SPOKE__HOLD_DRAIN);
  spoke__loop_post(req->loop, &req->drain_msg);
}

static void drain_run(spoke__msg_t *msg) {
  spoke_request_t *req = SPOKE__CONTAINER_OF(msg, spoke_request_t, drain_msg);
  spoke_drain_cb cb = req->drain_cb;
  req->drain_posted = 0;
  spoke__request_hold(req, SPOKE__HOLD_STACK);
  spoke__request_release(req, SPOKE__HOLD_DRAIN);
  if (atomic_load(&req->aborted) || atomic_load(&req->completed)) {
    req->drain_cb = NULL; /* dropped: gone, or nothing more to write */
  } else if (cb != NULL &&
             atomic_load(&req->queued) <= SPOKE__STREAM_LOW_WATER) {
    spoke__call_save_t save;
    req->drain_cb = NULL; /* once; it may register again */
    spoke__call_enter(&save, req->inst, "drain callback", req->route_index);
    cb(req);
    spoke__call_leave(&save);
  }
  /* else more was queued since it was posted: it stays registered and
   * the next dequeue to the low-water mark posts it again. */
  spoke__request_release(req, SPOKE__HOLD_STACK);
}

void spoke__request_on_drain(spoke_request_t *req, spoke_drain_cb cb) {
  req->drain_cb = cb;
  if (!req->drain_posted &&
      atomic_load(&req->queued) <= SPOKE__STREAM_LOW_WATER)
    drain_post(req); /* drained already: at once, from the loop */
}

void spoke__request_dequeued(spoke_request_t *req, size_t len) {
  size_t before = atomic_fetch_sub(&req->queued, len);
  size_t after = before - len;
  if (before > SPOKE__STREAM_LOW_WATER && after <= SPOKE__STREAM_LOW_WATER)
    spoke__request_wake_writers(req);
  if (req->drain_cb != NULL && !req->drain_posted &&
      after <= SPOKE__STREAM_LOW_WATER)
    drain_post(req);
}

int spoke__request_add_header(spoke_request_t *req, const char *name,
                              size_t nlen, const char *value, size_t vlen) {
  spoke__header_t *h;
  if (req->nheaders == req->headers_cap) {
    size_t cap = req->headers_cap ? req->headers_cap * 2 : 16;
    spoke__header_t *p = spoke__arena_alloc(&req->arena, cap * sizeof(*p));
    if (p == NULL)
      return SPOKE_ENOMEM;
    if (req->nheaders)
      memcpy(p, req->headers, req->nheaders * sizeof(*p));
    req->headers = p;
    req->headers_cap = cap;
  }
  /* Optional whitespace around the value is not part of it. */
  while (vlen > 0 && (value[vlen - 1] == ' ' || value[vlen - 1] == '\t'))
    vlen--;
  while (vlen > 0 && (value[0] == ' ' || value[0] == '\t')) {
    value++;
    vlen--;
  }
  h = &req->headers[req->nheaders];
  h->name = spoke__arena_strndup(&req->arena, name, nlen);
  h->value = spoke__arena_strndup(&req->arena, value, vlen);
  if (h->name == NULL || h->value == NULL)
    return SPOKE_ENOMEM;
  req->nheaders++;
  return 0;
}

/* ---- SDK accessors ---- */

const char *spoke__request_method(const spoke_request_t *req) {
  return req->method;
}

const char *spoke__request_path(const spoke_request_t *req) {
  return req->path;
}

const char *spoke__request_query(const spoke_request_t *req) {
  return req->query;
}

const char *spoke__request_query_param(spoke_request_t *req,
                                       const char *name) {
  size_t nlen = strlen(name);
  const char *p = req->query;
  while (p != NULL && *p != '\0') {
    const char *amp = strchr(p, '&');
    size_t plen = amp ? (size_t)(amp - p) : strlen(p);
    const char *eq = memchr(p, '=', plen);
    size_t klen = eq ? (size_t)(eq - p) : plen;
    char *key = spoke__arena_strndup(&req->arena, p, klen);
    long kl = key ? spoke__percent_decode(key, klen, 1) : -1;
    if (kl >= 0 && (size_t)kl == nlen && memcmp(key, name, nlen) == 0) {
      const char *v = eq ? eq + 1 : p + plen;
      size_t vlen = eq ? plen - klen - 1 : 0;
      char *val = spoke__arena_strndup(&req->arena, v, vlen);
      if (val == NULL || spoke__percent_decode(val, vlen, 1) < 0)
        return NULL;
      return val;
    }
    p = amp ? amp + 1 : NULL;
  }
  return NULL;
}

const char *spoke__request_header(const spoke_request_t *req,
                                  const char *name) {
  for (size_t i = 0; i < req->nheaders; i++)
    if (spoke__strcaseeq(req->headers[i].name, name))
      return req->headers[i].value;
  return NULL;
}

size_t spoke__request_header_count(const spoke_request_t *req) {
  return req->nheaders;
}

int spoke__request_header_at(const spoke_request_t *req, size_t i,
                             const char **name, const char **value) {
  if (i >= req->nheaders)
    return SPOKE_EINVAL;
  if (name)
    *name = req->headers[i].name;
  if (value)
    *value = req->headers[i].value;
  return 0;
}

const char *spoke__request_param(const spoke_request_t *req,
                                 const char *name) {
  size_t nlen = strlen(name);
  for (size_t i = 0; i < req->nparams; i++) {
    const spoke__param_t *p = &req->params[i];
    if (p->name_len == nlen && memcmp(p->name, name, nlen) == 0) {
      /* The arena is the handling thread's; params are decoded on demand. */
      spoke_request_t *r = (spoke_request_t *)req;
      char *v = spoke__arena_strndup(&r->arena, req->path + p->off, p->len);
      if (v == NULL || spoke__percent_decode(v, p->len, 0) < 0)
        return NULL;
      return v;
    }
  }
  return NULL;
}

const void *spoke__request_body(const spoke_request_t *req, size_t *len) {
  if (len)
    *len = req->body.len;
  return req->body.data ? req->body.data : "";
}

struct uv_loop_s *spoke__request_loop(const spoke_request_t *req) {
  return &req->loop->uv;
}

void *spoke__request_alloc(spoke_request_t *req, size_t size) {
  return spoke__arena_alloc(&req->arena, size);
}

void spoke__request_set_data(spoke_request_t *req, void *data) {
  req->user_data = data;
}

void *spoke__request_data(const spoke_request_t *req) {
  return req->user_data;
}

int spoke__request_aborted(const spoke_request_t *req) {
  return atomic_load(&((spoke_request_t *)req)->aborted);
}

int spoke__request_on_abort(spoke_request_t *req, spoke_abort_cb cb) {
  atomic_store(&req->abort_cb, cb);
  return atomic_load(&req->aborted) ? SPOKE_ECANCELED : 0;
}
