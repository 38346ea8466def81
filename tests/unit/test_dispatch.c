/* test_dispatch.c: from a parsed request to its handler and back
 * (core/http/dispatch.c, with pool.c running the sync handlers), on a
 * real loop and real sockets (loopkit.h), over a snapshot of one
 * hand-made instance.
 *
 * - A table of requests and the status each gets: unknown path 404;
 *   known path, wrong method 405 with the right Allow; async and sync
 *   handlers that answer; an async handler that returns an error without
 *   completing 500 (but not once it completed); a sync handler that
 *   returns without completing, or with an error, 500. A sync handler
 *   runs off the loop thread. After each, the request is freed and the
 *   instance unpinned.
 * - Sync admission: with every worker blocked and the queue full, the
 *   next sync request gets 503 with Retry-After; the blocked ones finish
 *   once released, and admission opens again.
 * - A quarantined instance: every route, sync or async, GET or HEAD, is
 *   answered 503 with Retry-After: 10 and a line naming the plugin and
 *   the reason, without running a handler; a wrong method is still 405;
 *   every hold and the pin are given back, no sync slot is taken.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "loopkit.h"

#define WORKERS 2
#define MAX_QUEUE 1

/* ---- the plugin ---- */

/* Where the last handler ran: 1 on the loop thread, 0 elsewhere, -1 no
 * handler ran. */
static atomic_int ran_on_loop = -1;

static void ran(spoke_request_t *req) {
  atomic_store(&ran_on_loop, spoke__loop_is_current(req->loop));
}

static int async_ok(spoke_request_t *req) {
  ran(req);
  return spoke__response_send(req, "async", 5);
}

static int sync_ok(spoke_request_t *req) {
  ran(req);
  return spoke__response_send(req, "sync", 4);
}

static int async_err(spoke_request_t *req) {
  ran(req);
  return SPOKE_EINVAL;
}

static int async_err_after(spoke_request_t *req) {
  ran(req);
  spoke__response_send(req, "done", 4);
  return SPOKE_EINVAL;
}

static int sync_none(spoke_request_t *req) {
  ran(req);
  return 0;
}

static int sync_err(spoke_request_t *req) {
  ran(req);
  return SPOKE_EINVAL;
}

/* Blocks its worker until the test releases it. */
static uv_mutex_t block_mu;
static uv_cond_t block_cv;
static int block_entered, block_released, block_gave_up;

static int sync_block(spoke_request_t *req) {
  uv_mutex_lock(&block_mu);
  block_entered++;
  uv_cond_broadcast(&block_cv);
  while (!block_released)
    if (uv_cond_timedwait(&block_cv, &block_mu, 20 * 1000000000ULL) != 0) {
      block_gave_up = 1; /* the test failed to release: do not hang */
      break;
    }
  uv_mutex_unlock(&block_mu);
  return spoke__response_send(req, "unblocked", 9);
}

static const spoke_route_t routes[] = {
  {"GET", "/async", SPOKE_ASYNC, async_ok},
  {"GET", "/sync", SPOKE_SYNC, sync_ok},
  {"GET", "/items", SPOKE_ASYNC, async_ok},
  {"POST", "/items", SPOKE_SYNC, sync_ok},
  {"POST", "/submit", SPOKE_ASYNC, async_ok},
  {"GET", "/async-err", SPOKE_ASYNC, async_err},
  {"GET", "/async-err-after", SPOKE_ASYNC, async_err_after},
  {"GET", "/sync-none", SPOKE_SYNC, sync_none},
  {"GET", "/sync-err", SPOKE_SYNC, sync_err},
  {"GET", "/block", SPOKE_SYNC, sync_block},
};
LK_PLUGIN(plugin, "dispatch", routes);

static int group_setup(void **state) {
  (void)state;
  uv_mutex_init(&block_mu);
  uv_cond_init(&block_cv);
  return spoke__pool_start(WORKERS) == 0 ? 0 : -1;
}

static int group_teardown(void **state) {
  (void)state;
  spoke__pool_stop();
  uv_cond_destroy(&block_cv);
  uv_mutex_destroy(&block_mu);
  return 0;
}

static int setup(void **state) {
  lk_t *k = lk_new();
  if (k == NULL)
    return -1;
  k->user = *state;
  k->cfg.workers = WORKERS;
  k->cfg.max_queue = MAX_QUEUE;
  *state = k;
  return 0;
}

static int teardown(void **state) {
  lk_t *k = *state;
  /* A test that failed midway leaves workers blocked: let them go. */
  uv_mutex_lock(&block_mu);
  block_released = 1;
  uv_cond_broadcast(&block_cv);
  uv_mutex_unlock(&block_mu);
  lk_stop(k);
  lk_free(k);
  return 0;
}

static long inst_refs(lk_t *k) {
  return atomic_load(&k->loop.snap->inst[0]->refs);
}

/* ---- requests -> status ---- */

static const struct {
  const char *name;
  const char *request;
  int status;
  const char *body;
  const char *header, *value; /* one header the response must carry */
  int on_loop;                 /* where the handler ran (ran_on_loop) */
} cases[] = {
  {"unknown path: 404", "GET /nope HTTP/1.1\r\nHost: t\r\n\r\n", 404,
   "404 Not Found\n", NULL, NULL, -1},
  {"wrong method: 405, Allow", "DELETE /items HTTP/1.1\r\nHost: t\r\n\r\n",
   405, "405 Method Not Allowed\n", "Allow", "GET, HEAD, POST", -1},
  {"wrong method, one allowed: 405", "GET /submit HTTP/1.1\r\nHost: t\r\n\r\n",
   405, NULL, "Allow", "POST", -1},
  {"async handler answers", "GET /async HTTP/1.1\r\nHost: t\r\n\r\n", 200,
   "async", NULL, NULL, 1},
  {"sync handler answers", "GET /sync HTTP/1.1\r\nHost: t\r\n\r\n", 200,
   "sync", NULL, NULL, 0},
  {"same path, other method, other mode",
   "POST /items HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\n\r\n", 200,
   "sync", NULL, NULL, 0},
  {"async error, not completed: 500",
   "GET /async-err HTTP/1.1\r\nHost: t\r\n\r\n", 500,
   "500 Internal Server Error\n", NULL, NULL, 1},
  {"async error after completing: its response",
   "GET /async-err-after HTTP/1.1\r\nHost: t\r\n\r\n", 200, "done", NULL,
   NULL, 1},
  {"sync returns without completing: 500",
   "GET /sync-none HTTP/1.1\r\nHost: t\r\n\r\n", 500,
   "500 Internal Server Error\n", NULL, NULL, 0},
  {"sync error, not completed: 500",
   "GET /sync-err HTTP/1.1\r\nHost: t\r\n\r\n", 500,
   "500 Internal Server Error\n", NULL, NULL, 0},
};

static void request_gets_status(void **state) {
  lk_t *k = *state;
  size_t i = (size_t)(uintptr_t)k->user;
  lk_client_t *c;
  lk_resp_t r[2];
  long refs;

  print_message("case: %s\n", cases[i].name);
  lk_start(k, &plugin);
  refs = inst_refs(k);
  atomic_store(&ran_on_loop, -1);
  c = lk_connect(k, 0);
  lk_send_str(c, cases[i].request);
  lk_wait_responses(k, c, r, 1);
  assert_int_equal(r[0].status, cases[i].status);
  if (cases[i].body != NULL) {
    assert_int_equal(r[0].body_len, strlen(cases[i].body));
    assert_memory_equal(r[0].body, cases[i].body, r[0].body_len);
  }
  if (cases[i].header != NULL) {
    char v[128];
    assert_true(lk_header(&r[0], cases[i].header, v, sizeof(v)));
    assert_string_equal(v, cases[i].value);
  }
  /* Async on the loop, sync on a worker, none for a 404 or 405. */
  assert_int_equal(atomic_load(&ran_on_loop), cases[i].on_loop);

  /* Nothing more comes, and the request lets go of all it held. */
  LK_RUN_UNTIL(k, k->loop.live_requests == 0);
  /* The pin goes back once the loop is between callbacks (mailbox.c's
   * settle, before the next poll). */
  LK_RUN_UNTIL(k, inst_refs(k) == refs);
  assert_int_equal(atomic_load(&k->loop.snap->inst[0]->requests), 0);
  assert_int_equal(atomic_load(&k->loop.stats.in_flight), 0);
  assert_int_equal(atomic_load(&k->shared.sync_admitted), 0);
  /* The connection stays usable. */
  lk_send_str(c, "GET /async HTTP/1.1\r\nHost: t\r\n\r\n");
  lk_wait_responses(k, c, r, 2);
  assert_int_equal(r[1].status, 200);
  assert_memory_equal(r[1].body, "async", 5);
}

/* ---- sync admission: 503 ---- */

static int entered(void) {
  int n;
  uv_mutex_lock(&block_mu);
  n = block_entered;
  uv_mutex_unlock(&block_mu);
  return n;
}

static void sync_queue_full_503(void **state) {
  lk_t *k = *state;
  lk_client_t *c[WORKERS + MAX_QUEUE], *extra, *after;
  lk_resp_t r[1];
  char v[32];

  uv_mutex_lock(&block_mu);
  block_entered = block_released = block_gave_up = 0;
  uv_mutex_unlock(&block_mu);
  lk_start(k, &plugin);

  /* Every worker blocked, and the queue full. */
  for (size_t i = 0; i < WORKERS + MAX_QUEUE; i++) {
    c[i] = lk_connect(k, 0);
    lk_send_str(c[i], "GET /block HTTP/1.1\r\nHost: t\r\n\r\n");
  }
  LK_RUN_UNTIL(k, entered() == WORKERS &&
                      atomic_load(&k->shared.sync_admitted) ==
                          WORKERS + MAX_QUEUE);
  assert_int_equal(atomic_load(&k->shared.sync_waiting), MAX_QUEUE);

  /* One more: turned away at once, and counted. */
  extra = lk_connect(k, 0);
  lk_send_str(extra, "GET /block HTTP/1.1\r\nHost: t\r\n\r\n");
  lk_wait_responses(k, extra, r, 1);
  assert_int_equal(r[0].status, 503);
  assert_true(lk_header(&r[0], "Retry-After", v, sizeof(v)));
  assert_string_equal(v, "1");
  assert_int_equal(atomic_load(&k->shared.sync_rejected), 1);
  assert_int_equal(atomic_load(&k->shared.sync_admitted),
                   WORKERS + MAX_QUEUE);
  assert_int_equal(entered(), WORKERS); /* the 503 ran no handler */

  /* Released, every admitted request is answered. */
  uv_mutex_lock(&block_mu);
  block_released = 1;
  uv_cond_broadcast(&block_cv);
  uv_mutex_unlock(&block_mu);
  for (size_t i = 0; i < WORKERS + MAX_QUEUE; i++) {
    lk_wait_responses(k, c[i], r, 1);
    assert_int_equal(r[0].status, 200);
    assert_memory_equal(r[0].body, "unblocked", 9);
  }
  assert_int_equal(entered(), WORKERS + MAX_QUEUE);
  LK_RUN_UNTIL(k, atomic_load(&k->shared.sync_admitted) == 0 &&
                      k->loop.live_requests == 0);
  assert_int_equal(atomic_load(&k->shared.sync_waiting), 0);

  /* Admission is open again. */
  after = lk_connect(k, 0);
  lk_send_str(after, "GET /sync HTTP/1.1\r\nHost: t\r\n\r\n");
  lk_wait_responses(k, after, r, 1);
  assert_int_equal(r[0].status, 200);
  assert_int_equal(atomic_load(&k->shared.sync_rejected), 1);
  uv_mutex_lock(&block_mu);
  assert_int_equal(block_gave_up, 0);
  uv_mutex_unlock(&block_mu);
}

/* ---- a quarantined instance: 503, no handler ---- */

static void quarantined_routes_503(void **state) {
  static const char *const requests[] = {
    "GET /async HTTP/1.1\r\nHost: t\r\n\r\n",
    "GET /sync HTTP/1.1\r\nHost: t\r\n\r\n",
    "POST /items HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\n\r\n",
    "GET /async-err HTTP/1.1\r\nHost: t\r\n\r\n",
    "GET /block HTTP/1.1\r\nHost: t\r\n\r\n",
  };
  static const char want[] =
      "503 plugin dispatch 1 is quarantined: crashed 3 times in 60 s\n";
  lk_t *k = *state;
  spoke__instance_t *inst;
  lk_client_t *c;
  lk_resp_t r[8];
  size_t n = sizeof(requests) / sizeof(requests[0]);
  char v[64];
  long refs;

  uv_mutex_lock(&block_mu);
  block_entered = block_released = block_gave_up = 0;
  uv_mutex_unlock(&block_mu);
  lk_start(k, &plugin);
  inst = k->loop.snap->inst[0];
  inst->quarantined = strdup("crashed 3 times in 60 s");
  assert_non_null(inst->quarantined);
  refs = inst_refs(k);
  atomic_store(&ran_on_loop, -1);

  c = lk_connect(k, 0);
  for (size_t i = 0; i < n; i++) {
    lk_send_str(c, requests[i]);
    lk_wait_responses(k, c, r, i + 1);
    assert_int_equal(r[i].status, 503);
    assert_true(lk_header(&r[i], "Retry-After", v, sizeof(v)));
    assert_string_equal(v, "10");
    assert_true(lk_header(&r[i], "Content-Type", v, sizeof(v)));
    assert_true(strncmp(v, "text/plain", 10) == 0);
    assert_int_equal(r[i].body_len, strlen(want));
    assert_memory_equal(r[i].body, want, r[i].body_len);
  }
  /* HEAD: the same head, no body. */
  lk_send_str(c, "HEAD /async HTTP/1.1\r\nHost: t\r\n\r\n");
  LK_RUN_UNTIL(k, lk_pump(c) &&
                      lk_responses_heads(c->in.data, c->in.len, r, n + 1,
                                         1u << n) == n + 1);
  assert_int_equal(r[n].status, 503);
  assert_true(lk_header(&r[n], "Retry-After", v, sizeof(v)));
  /* The router still says 405 for a method no route takes. */
  lk_send_str(c, "DELETE /items HTTP/1.1\r\nHost: t\r\n\r\n");
  LK_RUN_UNTIL(k, lk_pump(c) &&
                      lk_responses_heads(c->in.data, c->in.len, r, n + 2,
                                         1u << n) == n + 2);
  assert_int_equal(r[n + 1].status, 405);

  /* None of the plugin ran, nowhere. */
  assert_int_equal(atomic_load(&ran_on_loop), -1);
  assert_int_equal(entered(), 0);
  /* Every hold and the pin given back; no sync slot taken or refused. */
  LK_RUN_UNTIL(k, k->loop.live_requests == 0);
  LK_RUN_UNTIL(k, inst_refs(k) == refs);
  assert_int_equal(atomic_load(&inst->requests), 0);
  assert_int_equal(atomic_load(&k->loop.stats.in_flight), 0);
  assert_int_equal(atomic_load(&k->shared.sync_admitted), 0);
  assert_int_equal(atomic_load(&k->shared.sync_waiting), 0);
  assert_int_equal(atomic_load(&k->shared.sync_rejected), 0);
  /* The connection stays usable (keep-alive after a 503). */
  assert_false(c->eof);
}

int main(void) {
  struct CMUnitTest tests[sizeof(cases) / sizeof(cases[0]) + 2];
  size_t n = 0;

  for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    tests[n] = (struct CMUnitTest)cmocka_unit_test_setup_teardown(
        request_gets_status, setup, teardown);
    tests[n].name = cases[i].name;
    tests[n].initial_state = (void *)(uintptr_t)i;
    n++;
  }
  tests[n++] = (struct CMUnitTest)cmocka_unit_test_setup_teardown(
      sync_queue_full_503, setup, teardown);
  tests[n++] = (struct CMUnitTest)cmocka_unit_test_setup_teardown(
      quarantined_routes_503, setup, teardown);
  return _cmocka_run_group_tests("dispatch", tests, n, group_setup,
                                 group_teardown);
}
