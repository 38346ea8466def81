/* test_write.c: the write path (core/http/write.c) as conn.c and
 * response.c drive it, on a real loop and real sockets (loopkit.h).
 *
 * - Pipelined requests sent in one send() are answered in order, and
 *   the responses the loop makes while parsing them leave corked, in one
 *   write: the server socket sends one data segment (TCP_INFO's
 *   tcpi_data_segs_out; TCP_NODELAY is on, so a second write would be a
 *   second segment). Table of batches.
 * - A response larger than the socket buffers is queued: the request
 *   keeps a WRITE hold until its bytes are written, and every byte
 *   arrives, in order.
 * - A client that closes mid-write: the request is freed all the same.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <netinet/tcp.h>

#include "loopkit.h"

#define BIG_BODY (4u << 20)
#define SMALL_BUF 65536 /* the client's SO_RCVBUF, the server's SO_SNDBUF */

/* ---- the plugin ---- */

static int a_handler(spoke_request_t *req) {
  return spoke__response_send(req, "alpha", 5);
}

static int b_handler(spoke_request_t *req) {
  spoke__response_header(req, "X-B", "1");
  return spoke__response_send(req, "beta-beta", 9);
}

static char *big_body;
static spoke_request_t *big_req;   /* the last /big request */
static int big_held_after_send;    /* WRITE hold right after send */
static size_t big_queued_after_send;

static int big_handler(spoke_request_t *req) {
  int rc = spoke__response_send(req, big_body, BIG_BODY);
  big_req = req;
  big_held_after_send = spoke__request_held(req, SPOKE__HOLD_WRITE);
  big_queued_after_send = atomic_load(&req->queued);
  return rc;
}

static const spoke_route_t routes[] = {
  {"GET", "/a", SPOKE_ASYNC, a_handler},
  {"GET", "/b", SPOKE_ASYNC, b_handler},
  {"GET", "/big", SPOKE_ASYNC, big_handler},
};
LK_PLUGIN(plugin, "write", routes);

static int setup(void **state) {
  lk_t *k = lk_new();
  if (k == NULL)
    return -1;
  k->user = *state;
  big_req = NULL;
  big_held_after_send = 0;
  big_queued_after_send = 0;
  *state = k;
  return 0;
}

static int teardown(void **state) {
  lk_t *k = *state;
  lk_stop(k);
  lk_free(k);
  return 0;
}

/* glibc's struct tcp_info stops at tcpi_total_retrans; the kernel's
 * (linux/tcp.h, which clashes with uv.h's netinet/tcp.h) goes on, append
 * only, with these (Linux 4.6 and later). */
struct tcp_info_more {
  struct tcp_info base;
  uint64_t pacing_rate, max_pacing_rate, bytes_acked, bytes_received;
  uint32_t segs_out, segs_in, notsent_bytes, min_rtt;
  uint32_t data_segs_in, data_segs_out;
};

/* Data segments the server's side of C has sent so far. */
static uint32_t segs_out(lk_client_t *c) {
  struct tcp_info_more ti;
  socklen_t len = sizeof(ti);
  uv_os_fd_t fd;
  assert_int_equal(uv_fileno((uv_handle_t *)&c->conn->tcp, &fd), 0);
  memset(&ti, 0, sizeof(ti));
  assert_int_equal(getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &len), 0);
  assert_true(len >= offsetof(struct tcp_info_more, data_segs_out) +
                         sizeof(ti.data_segs_out));
  return ti.data_segs_out;
}

/* ---- pipelining and corking ---- */

#define GET(p) "GET " p " HTTP/1.1\r\nHost: t\r\n\r\n"

static const struct {
  const char *name;
  const char *send;          /* one send() */
  size_t n;
  int status[4];
  const char *body[4];
  unsigned heads;            /* bit j: the j-th request is a HEAD */
} batches[] = {
  {"two GETs", GET("/a") GET("/b"), 2, {200, 200}, {"alpha", "beta-beta"}, 0},
  {"reversed", GET("/b") GET("/a"), 2, {200, 200}, {"beta-beta", "alpha"}, 0},
  {"a 404 between", GET("/a") GET("/nope") GET("/b"), 3, {200, 404, 200},
   {"alpha", "404 Not Found\n", "beta-beta"}, 0},
  {"a 405 and a HEAD", "HEAD /b HTTP/1.1\r\nHost: t\r\n\r\n"
   "POST /a HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\n\r\n" GET("/a"),
   3, {200, 405, 200}, {"", "405 Method Not Allowed\n", "alpha"}, 1},
};

static void pipelined_in_order_one_write(void **state) {
  lk_t *k = *state;
  size_t i = (size_t)(uintptr_t)k->user;
  lk_client_t *c;
  lk_resp_t r[4];
  uint32_t before;
  size_t total = 0;

  print_message("batch: %s\n", batches[i].name);
  lk_start(k, &plugin);
  c = lk_connect(k, 0);
  before = segs_out(c);
  lk_send_str(c, batches[i].send);
  LK_RUN_UNTIL(k, lk_pump(c) &&
                     lk_responses_heads(c->in.data, c->in.len, r, 4,
                                        batches[i].heads) >= batches[i].n);
  for (size_t j = 0; j < batches[i].n; j++) {
    size_t blen = strlen(batches[i].body[j]);
    print_message("response %zu\n", j);
    assert_int_equal(r[j].status, batches[i].status[j]);
    assert_int_equal(r[j].body_len, blen);
    assert_memory_equal(r[j].body, batches[i].body[j], blen);
    total += r[j].head_len + r[j].body_len;
  }
  assert_int_equal(c->in.len, total);
  /* HEAD /b got GET's headers (its Content-Length, no body). */
  if (batches[i].heads & 1) {
    char v[16];
    assert_true(lk_header(&r[0], "X-B", v, sizeof(v)));
    assert_true(lk_header(&r[0], "Content-Length", v, sizeof(v)));
    assert_string_equal(v, "9");
  }
  /* Everything the parse produced went out with one write. */
  assert_int_equal(segs_out(c) - before, 1);
}

/* ---- a response larger than the socket buffers ---- */

static unsigned char pattern(size_t i) {
  return (unsigned char)('a' + (i * 7 + i / 4093) % 26);
}

/* A client with small buffers on both sides asks for /big. */
static lk_client_t *ask_big(lk_t *k) {
  lk_client_t *c = lk_connect(k, SMALL_BUF);
  uv_os_fd_t fd;
  int small = SMALL_BUF;
  assert_int_equal(uv_fileno((uv_handle_t *)&c->conn->tcp, &fd), 0);
  assert_int_equal(setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &small,
                              sizeof(small)), 0);
  lk_send_str(c, GET("/big"));
  LK_RUN_UNTIL(k, big_req != NULL);
  return c;
}

static void large_response_is_queued(void **state) {
  lk_t *k = *state;
  lk_client_t *c;
  lk_resp_t r[1];
  char cl[32];

  lk_start(k, &plugin);
  c = ask_big(k);
  /* The socket took part of it; the rest is queued, and its bytes are
   * accounted to the request, which holds on for them. */
  assert_true(big_held_after_send);
  assert_true(big_queued_after_send > 0);
  assert_true(big_queued_after_send < BIG_BODY);
  lk_step(k); /* the handler has returned; the client reads nothing */
  assert_int_equal(k->loop.live_requests, 1);
  assert_true(spoke__request_held(big_req, SPOKE__HOLD_WRITE));
  /* Only the writes keep it: the response is complete, the connection
   * and the handler have let go. */
  assert_false(spoke__request_held(big_req, SPOKE__HOLD_CONN));
  assert_false(spoke__request_held(big_req, SPOKE__HOLD_HANDLER));
  assert_false(spoke__request_held(big_req, SPOKE__HOLD_UNCOMPLETED));
  assert_int_equal(big_req->nholds, big_req->holds[SPOKE__HOLD_WRITE]);

  /* The client reads: every byte, in order; then the request goes. */
  lk_wait_responses(k, c, r, 1);
  assert_int_equal(r[0].status, 200);
  assert_true(lk_header(&r[0], "Content-Length", cl, sizeof(cl)));
  assert_int_equal(strtoull(cl, NULL, 10), BIG_BODY);
  assert_int_equal(r[0].body_len, BIG_BODY);
  for (size_t i = 0; i < BIG_BODY; i++)
    if ((unsigned char)r[0].body[i] != pattern(i))
      fail_msg("body byte %zu: %02x, want %02x", i,
               (unsigned char)r[0].body[i], pattern(i));
  assert_true(c->nreads > 1);
  LK_RUN_UNTIL(k, k->loop.live_requests == 0);
  assert_int_equal(spoke__request_live_count(), k->live_before);

  /* The connection is still good for another request. */
  lk_send_str(c, GET("/a"));
  LK_RUN_UNTIL(k, lk_count(c) == 2);
}

static void client_closes_mid_write(void **state) {
  lk_t *k = *state;
  lk_client_t *c;

  lk_start(k, &plugin);
  c = ask_big(k);
  assert_true(big_held_after_send);
  lk_step(k);
  lk_pump(c); /* some of it */
  assert_true(c->in.len > 0);
  assert_int_equal(k->loop.live_requests, 1);
  lk_client_close(c); /* with bytes unread: a reset */

  LK_RUN_UNTIL(k, k->loop.nconns == 0 && k->loop.live_requests == 0);
  assert_int_equal(spoke__request_live_count(), k->live_before);
  assert_int_equal(atomic_load(&k->shared.open_conns), 0);
}

int main(void) {
  struct CMUnitTest tests[sizeof(batches) / sizeof(batches[0]) + 2];
  size_t n = 0;
  int rc;

  big_body = malloc(BIG_BODY);
  if (big_body == NULL)
    return 1;
  for (size_t i = 0; i < BIG_BODY; i++)
    big_body[i] = (char)pattern(i);

  for (size_t i = 0; i < sizeof(batches) / sizeof(batches[0]); i++) {
    tests[n] = (struct CMUnitTest)cmocka_unit_test_setup_teardown(
        pipelined_in_order_one_write, setup, teardown);
    tests[n].name = batches[i].name;
    tests[n].initial_state = (void *)(uintptr_t)i;
    n++;
  }
  tests[n++] = (struct CMUnitTest)cmocka_unit_test_setup_teardown(
      large_response_is_queued, setup, teardown);
  tests[n++] = (struct CMUnitTest)cmocka_unit_test_setup_teardown(
      client_closes_mid_write, setup, teardown);
  rc = _cmocka_run_group_tests("write", tests, n, NULL, NULL);
  free(big_body);
  return rc;
}
