/* test_timeouts.c: a connection's deadlines (core/http/conn_life.c) and
 * the loop's sweep that acts on them (core/http/timeouts.c), on a real
 * loop and real sockets (loopkit.h).
 *
 * - Each phase sets the deadline its setting implies, and none when the
 *   setting is 0 (table: phase -> config field); a body's deadline is the
 *   earlier of its two clocks, the second moved by the bytes read.
 * - The sweep, with tiny timeouts: closes a connection that never sends
 *   a request, and an idle keep-alive one, silently; answers 408 to a
 *   head or a body that does not arrive in time (table); answers 504 to
 *   an async handler that never responds and runs its abort callback;
 *   resets a client that reads nothing once --send-timeout passes.
 *
 * Only one timeout at a time is tiny, the others a minute, so each case
 * can only end the way its own deadline says. Nothing measures time:
 * the loop runs until the outcome, bounded by loopkit's iteration count.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "loopkit.h"

#define TINY 40       /* ms: the timeout a case is about */
#define LONG 60000    /* ms: every other timeout */
#define BIG_BODY (8u << 20)

/* ---- the plugin ---- */

static int ok_handler(spoke_request_t *req) {
  return spoke__response_send(req, "ok", 2);
}

/* Never responds; the test completes it after the 504. */
static spoke_request_t *late_req;
static int late_aborts;
static int late_aborted_flag;

static void late_abort(spoke_request_t *req) {
  late_aborts++;
  late_aborted_flag = spoke__request_aborted(req);
}

static int late_handler(spoke_request_t *req) {
  late_req = req;
  spoke__request_on_abort(req, late_abort);
  return 0;
}

static char *big_body;

static int big_handler(spoke_request_t *req) {
  return spoke__response_send(req, big_body, BIG_BODY);
}

static const spoke_route_t routes[] = {
  {"*", "/ok", SPOKE_ASYNC, ok_handler},
  {"GET", "/late", SPOKE_ASYNC, late_handler},
  {"GET", "/big", SPOKE_ASYNC, big_handler},
};
LK_PLUGIN(plugin, "timeouts", routes);

static void all_long(spoke__config_t *cfg) {
  cfg->header_timeout_ms = LONG;
  cfg->keepalive_timeout_ms = LONG;
  cfg->body_timeout_ms = LONG;
  cfg->body_deadline_ms = LONG;
  cfg->body_min_rate = 1000;
  cfg->send_timeout_ms = LONG;
  cfg->handler_timeout_ms = LONG;
}

static int setup(void **state) {
  lk_t *k = lk_new();
  if (k == NULL)
    return -1;
  k->user = *state; /* a table row's index */
  all_long(&k->cfg);
  late_req = NULL;
  late_aborts = 0;
  late_aborted_flag = 0;
  *state = k;
  return 0;
}

static int teardown(void **state) {
  lk_t *k = *state;
  lk_stop(k);
  lk_free(k);
  return 0;
}

/* ---- phase -> deadline ---- */

#define NO_FIELD ((size_t)-1)
#define FIELD(f) offsetof(spoke__config_t, f)

static const struct {
  const char *name;
  spoke__phase_t phase;
  size_t field;      /* its setting in spoke__config_t, or NO_FIELD */
  int fixed;         /* NO_FIELD: 1 if a deadline applies anyway */
} phase_cases[] = {
  {"new", SPOKE__PHASE_NEW, FIELD(header_timeout_ms), 0},
  {"head", SPOKE__PHASE_HEAD, FIELD(header_timeout_ms), 0},
  {"idle", SPOKE__PHASE_IDLE, FIELD(keepalive_timeout_ms), 0},
  {"body", SPOKE__PHASE_BODY, FIELD(body_timeout_ms), 0},
  {"handler", SPOKE__PHASE_HANDLER, FIELD(handler_timeout_ms), 0},
  {"busy", SPOKE__PHASE_BUSY, NO_FIELD, 0},
  {"linger", SPOKE__PHASE_LINGER, NO_FIELD, 1},
};

static uint64_t *cfg_field(spoke__config_t *cfg, size_t off) {
  return (uint64_t *)(void *)((char *)cfg + off);
}

/* A started loop's new connection, its phases set by hand: the loop does
 * not run, so its time stands. */
static spoke__conn_t *new_conn(lk_t *k) {
  spoke__conn_t *conn;
  lk_start(k, &plugin);
  conn = lk_connect(k, 0)->conn;
  assert_int_equal(conn->phase, SPOKE__PHASE_NEW);
  return conn;
}

static void phase_sets_its_deadline(void **state) {
  lk_t *k = *state;
  spoke__conn_t *conn = new_conn(k);
  uint64_t now;


  /* Every setting different, so a phase reading another's shows. */
  k->cfg.header_timeout_ms = 1001;
  k->cfg.keepalive_timeout_ms = 2002;
  k->cfg.body_timeout_ms = 3003;
  k->cfg.handler_timeout_ms = 4004;
  k->cfg.send_timeout_ms = 5005;
  k->cfg.body_deadline_ms = 0; /* the body's second clock: its own test */
  now = uv_now(&k->loop.uv); /* the loop does not run: time stands */
  for (size_t i = 0; i < sizeof(phase_cases) / sizeof(phase_cases[0]); i++) {
    size_t f = phase_cases[i].field;
    print_message("phase %s\n", phase_cases[i].name);
    spoke__conn_phase(conn, phase_cases[i].phase);
    assert_int_equal(conn->phase, phase_cases[i].phase);
    if (f != NO_FIELD)
      assert_int_equal(conn->deadline, now + *cfg_field(&k->cfg, f));
    else if (phase_cases[i].fixed)
      assert_true(conn->deadline > now);
    else
      assert_int_equal(conn->deadline, 0);
  }

  /* A setting of 0 means no deadline; other phases are unaffected. */
  for (size_t i = 0; i < sizeof(phase_cases) / sizeof(phase_cases[0]); i++) {
    size_t f = phase_cases[i].field;
    uint64_t saved;
    if (f == NO_FIELD)
      continue;
    print_message("phase %s, setting 0\n", phase_cases[i].name);
    saved = *cfg_field(&k->cfg, f);
    *cfg_field(&k->cfg, f) = 0;
    spoke__conn_phase(conn, phase_cases[i].phase);
    assert_int_equal(conn->deadline, 0);
    spoke__conn_phase(conn, SPOKE__PHASE_LINGER);
    assert_true(conn->deadline > now);
    *cfg_field(&k->cfg, f) = saved;
  }

  /* Nothing queued on the socket: no send deadline. */
  conn->send_deadline = 12345;
  spoke__conn_send_progress(conn);
  assert_int_equal(conn->send_deadline, 0);

  spoke__conn_phase(conn, SPOKE__PHASE_NEW);
  all_long(&k->cfg);
}

/* The body's two clocks: --body-timeout from the last bytes, and
 * --body-deadline from the head plus a second per --body-min-rate bytes
 * read; the earlier one is the deadline, and either alone when the other
 * is 0. */
static void body_deadline_moves_with_the_rate(void **state) {
  lk_t *k = *state;
  spoke__conn_t *conn = new_conn(k);
  uint64_t now = uv_now(&k->loop.uv);

  k->cfg.body_timeout_ms = 10000;
  k->cfg.body_deadline_ms = 6006;
  k->cfg.body_min_rate = 1000;
  spoke__conn_phase(conn, SPOKE__PHASE_BODY);
  assert_int_equal(conn->deadline, now + 6006);
  spoke__conn_body_progress(conn, 2000); /* two seconds' worth */
  assert_int_equal(conn->deadline, now + 8006);
  spoke__conn_body_progress(conn, 5000); /* past the gap's end now */
  assert_int_equal(conn->deadline, now + 10000);
  k->cfg.body_min_rate = 0; /* no extension */
  spoke__conn_body_progress(conn, 1);
  assert_int_equal(conn->deadline, now + 6006);
  k->cfg.body_deadline_ms = 0; /* the gap alone */
  spoke__conn_body_progress(conn, 1);
  assert_int_equal(conn->deadline, now + 10000);
  k->cfg.body_timeout_ms = 0; /* neither */
  spoke__conn_body_progress(conn, 1);
  assert_int_equal(conn->deadline, 0);
  k->cfg.body_deadline_ms = 6006; /* the total alone, from the start */
  k->cfg.body_min_rate = 1000;
  spoke__conn_phase(conn, SPOKE__PHASE_BODY);
  spoke__conn_body_progress(conn, 500);
  assert_int_equal(conn->deadline, now + 6506);
  spoke__conn_phase(conn, SPOKE__PHASE_NEW);
  all_long(&k->cfg);
}

/* ---- the sweep: phases that expire ---- */

static const struct {
  const char *name;
  size_t tiny;           /* the one timeout set to TINY */
  const char *send;      /* what the client sends, then nothing */
  int statuses[2];       /* the responses it gets, 0-terminated */
  int closed;            /* the server closes the connection outright
                            (a 408 lingers till the client goes) */
} expire_cases[] = {
  {"no request: closed silently", FIELD(header_timeout_ms), "", {0}, 1},
  {"idle keep-alive: closed silently", FIELD(keepalive_timeout_ms),
   "GET /ok HTTP/1.1\r\nHost: t\r\n\r\n", {200, 0}, 1},
  {"head not complete: 408", FIELD(header_timeout_ms),
   "GET /ok HTTP/1.1\r\nHost: t\r\n", {408, 0}, 0},
  {"head line not complete: 408", FIELD(header_timeout_ms), "GET /o",
   {408, 0}, 0},
  {"body not complete: 408", FIELD(body_timeout_ms),
   "POST /ok HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\n\r\nabc",
   {408, 0}, 0},
  {"body past its deadline: 408", FIELD(body_deadline_ms),
   "POST /ok HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\n\r\nabc",
   {408, 0}, 0},
};

static void phase_expires(void **state) {
  lk_t *k = *state;
  size_t i = (size_t)(uintptr_t)k->user;
  lk_client_t *c;
  lk_resp_t r[2];
  size_t n = 0, total = 0;

  print_message("case: %s\n", expire_cases[i].name);
  *cfg_field(&k->cfg, expire_cases[i].tiny) = TINY;
  lk_start(k, &plugin);
  c = lk_connect(k, 0);
  lk_send_str(c, expire_cases[i].send);

  while (expire_cases[i].statuses[n] != 0)
    n++;
  lk_wait_end(k, c);
  assert_int_equal(c->err, 0); /* an orderly end, no reset */
  assert_int_equal(lk_responses(c->in.data, c->in.len, r, 2), n);
  for (size_t j = 0; j < n; j++) {
    char conn_hdr[32];
    assert_int_equal(r[j].status, expire_cases[i].statuses[j]);
    total += r[j].head_len + r[j].body_len;
    if (r[j].status == 408) {
      assert_memory_equal(r[j].head, "HTTP/1.1 408", 12);
      assert_true(lk_header(&r[j], "Connection", conn_hdr, sizeof(conn_hdr)));
      assert_string_equal(conn_hdr, "close");
    }
  }
  assert_int_equal(c->in.len, total); /* nothing else: silent */
  if (expire_cases[i].closed)
    LK_RUN_UNTIL(k, k->loop.nconns == 0);
}

/* ---- 504 ---- */

static void handler_timeout_answers_504(void **state) {
  lk_t *k = *state;
  lk_client_t *c;
  lk_resp_t r[2];

  k->cfg.handler_timeout_ms = TINY;
  lk_start(k, &plugin);
  c = lk_connect(k, 0);
  lk_send_str(c, "GET /late HTTP/1.1\r\nHost: t\r\n\r\n");
  lk_wait_responses(k, c, r, 1);
  assert_memory_equal(r[0].head, "HTTP/1.1 504", 12);
  assert_non_null(late_req);
  /* The plugin was told as if the client had left, once. */
  assert_int_equal(late_aborts, 1);
  assert_int_equal(late_aborted_flag, 1);
  /* The request is still the plugin's: it owes a completion. */
  assert_int_equal(k->loop.live_requests, 1);
  assert_true(spoke__request_held(late_req, SPOKE__HOLD_PLUGIN));

  /* Its late completion is accepted and discarded; that frees it. */
  assert_int_equal(spoke__response_send(late_req, "late", 4), SPOKE_EALREADY);
  LK_RUN_UNTIL(k, k->loop.live_requests == 0);
  assert_int_equal(late_aborts, 1);

  /* The connection goes on; nothing of the late body came before the
   * next response. */
  lk_send_str(c, "GET /ok HTTP/1.1\r\nHost: t\r\n\r\n");
  lk_wait_responses(k, c, r, 2);
  assert_int_equal(r[1].status, 200);
  assert_memory_equal(r[1].body, "ok", 2);
  assert_int_equal(c->in.len,
                   r[0].head_len + r[0].body_len + r[1].head_len + 2);
}

/* ---- --send-timeout ---- */

static void send_timeout_resets(void **state) {
  lk_t *k = *state;
  lk_client_t *c;
  uv_os_fd_t fd;
  int small = 16384;

  k->cfg.send_timeout_ms = TINY;
  lk_start(k, &plugin);
  c = lk_connect(k, small);
  assert_int_equal(uv_fileno((uv_handle_t *)&c->conn->tcp, &fd), 0);
  assert_int_equal(setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &small,
                              sizeof(small)), 0);
  lk_send_str(c, "GET /big HTTP/1.1\r\nHost: t\r\n\r\n");

  /* The client reads nothing: the sweep cuts it off. */
  LK_RUN_UNTIL(k, k->loop.nconns == 0);
  assert_int_equal(k->loop.live_requests, 0);

  /* What got through is followed by a reset, not an orderly end. */
  lk_wait_end(k, c);
  assert_int_equal(c->eof, 0);
  assert_int_equal(c->err, ECONNRESET);
  assert_true(c->in.len < BIG_BODY);
  assert_memory_equal(c->in.data, "HTTP/1.1 200", 12);
}

int main(void) {
  struct CMUnitTest tests[3 + sizeof(expire_cases) / sizeof(expire_cases[0]) +
                          1];
  size_t n = 0;
  int rc;

  big_body = malloc(BIG_BODY);
  if (big_body == NULL)
    return 1;
  memset(big_body, 'x', BIG_BODY);

  tests[n++] = (struct CMUnitTest)cmocka_unit_test_setup_teardown(
      phase_sets_its_deadline, setup, teardown);
  tests[n++] = (struct CMUnitTest)cmocka_unit_test_setup_teardown(
      body_deadline_moves_with_the_rate, setup, teardown);
  for (size_t i = 0; i < sizeof(expire_cases) / sizeof(expire_cases[0]); i++) {
    tests[n] = (struct CMUnitTest)cmocka_unit_test_setup_teardown(
        phase_expires, setup, teardown);
    tests[n].name = expire_cases[i].name;
    tests[n].initial_state = (void *)(uintptr_t)i;
    n++;
  }
  tests[n++] = (struct CMUnitTest)cmocka_unit_test_setup_teardown(
      handler_timeout_answers_504, setup, teardown);
  tests[n++] = (struct CMUnitTest)cmocka_unit_test_setup_teardown(
      send_timeout_resets, setup, teardown);
  rc = _cmocka_run_group_tests("timeouts", tests, n, NULL, NULL);
  free(big_body);
  return rc;
}
