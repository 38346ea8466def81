/* bigstream.c: a fixture plugin that streams from the loop thread with
 * back-pressure (spoke_response_pending + spoke_response_on_drain, SDK
 * 1.3), for tests/integration/test_backpressure.py.
 *
 *   GET /bigstream?mb=N     ASYNC, streams N MiB (default 1, at most 1024)
 *                           from the loop in 64 KiB chunks; byte i of the
 *                           body is i % 251. It writes while less than
 *                           2 MiB is pending, then asks for a drain
 *                           callback and goes on from there. On a host
 *                           without on_drain (SPOKE_ENOTSUP) it writes on
 *                           regardless: the whole body lands in the
 *                           server's memory at once, which is the bug
 *                           on_drain fixes.
 *   GET /bigstream/codes    ASYNC, the contract's refusals: on_drain with
 *                           a NULL callback, then a callback registered
 *                           twice (the second replaces the first), which
 *                           runs from the loop at once since nothing is
 *                           pending; it asks from another thread
 *                           (SPOKE_ETHREAD) and answers with every code.
 *   GET /bigstream/late     ASYNC, sends "ok", then calls on_drain on the
 *                           completed request (SPOKE_EALREADY, kept for
 *                           /bigstream/stats).
 *   GET /bigstream/stats    ASYNC, "waits=N drains=N late=N aborts=N
 *                           replaced=N after_end=CODE\n": drain callbacks
 *                           registered by streams, drain callbacks run,
 *                           drain callbacks that found their client gone
 *                           (must be 0), abort callbacks, replaced
 *                           callbacks that ran anyway (must be 0), and
 *                           the code of the last /bigstream/late.
 *
 * The pattern, in pump(): write while pending is below what you are
 * willing to buffer; past it, register pump itself as the drain callback
 * and return to the loop. The abort callback, not the drain callback,
 * runs when the client leaves, and completes the request.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <spoke.h>

#define CHUNK (64 * 1024)
#define BUFFER_MAX (2 * 1024 * 1024) /* pending bytes we let queue */
#define PERIOD 251                   /* byte i of a body is i % PERIOD */

static atomic_ulong waits, drains, late, aborts, replaced;
static atomic_int after_end = 1; /* 1: /bigstream/late not run yet */

typedef struct stream_s {
  unsigned long long off, total;
  int no_drain;                      /* the host lacks on_drain */
  unsigned char buf[CHUNK];
} stream_t;

static void pump(spoke_request_t *req);

static void fill(stream_t *st, size_t n) {
  unsigned v = (unsigned)(st->off % PERIOD);
  for (size_t i = 0; i < n; i++) {
    st->buf[i] = (unsigned char)v;
    if (++v == PERIOD)
      v = 0;
  }
}

static void drained(spoke_request_t *req) {
  atomic_fetch_add(&drains, 1);
  if (spoke_request_aborted(req))
    atomic_fetch_add(&late, 1); /* the contract says never */
  pump(req);
}

/* Writes until the body is out (then ends) or too much is pending (then
 * waits for a drain callback). Loop thread: the handler, then drained. */
static void pump(spoke_request_t *req) {
  stream_t *st = spoke_request_data(req);

  while (st->off < st->total) {
    size_t n = st->total - st->off < CHUNK ? (size_t)(st->total - st->off)
                                           : CHUNK;
    if (spoke_request_aborted(req))
      return; /* on_gone completes it */
    if (!st->no_drain && spoke_response_pending(req) >= BUFFER_MAX) {
      int rc = spoke_response_on_drain(req, drained);
      if (rc == 0) {
        atomic_fetch_add(&waits, 1);
        return; /* drained() goes on */
      }
      if (rc != SPOKE_ENOTSUP) {
        spoke_log(SPOKE_LOG_ERROR, "on_drain: %s", spoke_err_name(rc));
        spoke_response_end(req);
        return;
      }
      st->no_drain = 1; /* an older host: no back-pressure from the loop */
    }
    fill(st, n);
    if (spoke_response_write(req, st->buf, n) != 0)
      return; /* the client left: on_gone completes it */
    st->off += n;
  }
  spoke_response_end(req);
}

static void on_gone(spoke_request_t *req) {
  atomic_fetch_add(&aborts, 1);
  spoke_response_end(req); /* discarded by the server */
}

static int bigstream(spoke_request_t *req) {
  const char *s = spoke_request_query_param(req, "mb");
  unsigned long mb = s != NULL ? strtoul(s, NULL, 10) : 1;
  stream_t *st = spoke_request_alloc(req, sizeof(*st));

  if (st == NULL)
    return SPOKE_ENOMEM;
  if (mb > 1024)
    mb = 1024;
  st->off = 0;
  st->total = (unsigned long long)mb * 1024 * 1024;
  st->no_drain = 0;
  spoke_request_set_data(req, st);
  if (spoke_request_on_abort(req, on_gone) != 0)
    return spoke_response_end(req); /* gone already */
  spoke_response_header(req, "Content-Type", "application/octet-stream");
  pump(req);
  return 0;
}

/* ---- the contract's edges ---- */

typedef struct codes_s {
  spoke_request_t *req;
  int null_cb, first, second;
} codes_t;

static void never_run(spoke_request_t *req) {
  (void)req;
  atomic_fetch_add(&replaced, 1);
}

static void *codes_thread(void *arg) {
  codes_t *c = arg;
  char text[160];
  int off_loop = spoke_response_on_drain(c->req, never_run);

  snprintf(text, sizeof(text), "null=%s first=%s second=%s thread=%s\n",
           spoke_err_name(c->null_cb), spoke_err_name(c->first),
           spoke_err_name(c->second), spoke_err_name(off_loop));
  spoke_response_header(c->req, "Content-Type", "text/plain");
  spoke_response_send(c->req, text, strlen(text));
  return NULL;
}

static void codes_drained(spoke_request_t *req) {
  pthread_t t;
  atomic_fetch_add(&drains, 1);
  if (pthread_create(&t, NULL, codes_thread, spoke_request_data(req)) != 0) {
    spoke_response_send(req, "no thread\n", 10);
    return;
  }
  pthread_detach(t);
}

static int codes(spoke_request_t *req) {
  codes_t *c = spoke_request_alloc(req, sizeof(*c));
  if (c == NULL)
    return SPOKE_ENOMEM;
  c->req = req;
  spoke_request_set_data(req, c);
  c->null_cb = spoke_response_on_drain(req, NULL);
  c->first = spoke_response_on_drain(req, never_run);
  c->second = spoke_response_on_drain(req, codes_drained);
  if (c->second != 0)
    return c->second;
  return 0;
}

static int late_route(spoke_request_t *req) {
  int rc = spoke_response_send(req, "ok\n", 3);
  atomic_store(&after_end, spoke_response_on_drain(req, never_run));
  return rc;
}

static int stats(spoke_request_t *req) {
  char text[200];
  int ae = atomic_load(&after_end);
  snprintf(text, sizeof(text),
           "waits=%lu drains=%lu late=%lu aborts=%lu replaced=%lu "
           "after_end=%s\n",
           atomic_load(&waits), atomic_load(&drains), atomic_load(&late), atomic_load(&aborts),
           atomic_load(&replaced), ae == 1 ? "-" : spoke_err_name(ae));
  spoke_response_header(req, "Content-Type", "text/plain");
  return spoke_response_send(req, text, strlen(text));
}

static const spoke_route_t routes[] = {
  { "GET", "/bigstream", SPOKE_ASYNC, bigstream },
  { "GET", "/bigstream/codes", SPOKE_ASYNC, codes },
  { "GET", "/bigstream/late", SPOKE_ASYNC, late_route },
  { "GET", "/bigstream/stats", SPOKE_ASYNC, stats },
};

SPOKE_PLUGIN(.name = "bigstream", .version = "1", SPOKE_ROUTES(routes));
