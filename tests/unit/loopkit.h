/* loopkit.h: a real I/O loop on the test's own thread, and plain socket
 * clients on 127.0.0.1, for the unit tests of the request path's lower
 * files (test_timeouts, test_write, test_dispatch, test_pool).
 *
 * lk_start builds a snapshot over one hand-made instance of a static
 * descriptor (no .so, as in test_snapshot.c), a listening socket on
 * 127.0.0.1:0 and a loop over both (spoke__loop_init), and makes the
 * test's thread that loop's thread (spoke__loop_set_current). No loop
 * thread runs: LK_RUN_UNTIL drives the loop one non-blocking iteration
 * at a time, after a poll on its backend descriptor of at most
 * LK_POLL_MS, until a condition holds, and fails the test after
 * LK_ITERS iterations. Nothing here sleeps to synchronize.
 *
 * lk_stop closes what the test left (clients, the loop's connections),
 * drains the loop as its thread would (mailbox drain message, then the
 * same clean-up as loop.c's loop_main) and checks that every request
 * created was freed and that no handle was left open.
 *
 * Everything is static inline: each test includes this header (after
 * cmocka.h, whose assertions it uses) and nothing else needs linking.
 */
#ifndef SPOKE_TEST_LOOPKIT_H
#define SPOKE_TEST_LOOPKIT_H

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include "ctl/ctl.h"
#include "http/http.h"

#define LK_ITERS 1000  /* loop iterations a wait may take */
#define LK_POLL_MS 10  /* longest block per iteration */

typedef struct lk_client_s {
  int fd;
  spoke__conn_t *conn;  /* the loop's side, right after lk_connect */
  spoke__buf_t in;      /* every byte received so far */
  size_t nreads;        /* recv calls that returned bytes */
  int eof;              /* the server closed (recv returned 0) */
  int err;              /* errno of a failed recv, e.g. ECONNRESET */
} lk_client_t;

#define LK_MAX_CLIENTS 16

typedef struct lk_s {
  spoke__config_t cfg;       /* the test fills it before lk_start */
  spoke__shared_t shared;
  spoke__loop_t loop;
  int port;
  long live_before;          /* spoke__request_live_count() at start */
  int started;
  void *user;                /* the test's (a table row's index ...) */
  /* Kept here, not on a test's stack, so that lk_stop can close what a
   * failed test left open. */
  lk_client_t clients[LK_MAX_CLIENTS];
  size_t nclients;
} lk_t;

/* A descriptor over ROUTES (an array), as SPOKE_PLUGIN would write it. */
#define LK_PLUGIN(var, plugin_name, table)                             \
  static const spoke_host_t *var##_host;                               \
  static const spoke_plugin_t var = {                                  \
    .abi_major = SPOKE_ABI_MAJOR,                                      \
    .abi_minor = SPOKE_ABI_MINOR,                                      \
    .struct_size = sizeof(spoke_plugin_t),                             \
    .host = &var##_host,                                               \
    .name = plugin_name,                                               \
    .version = "1",                                                    \
    .routes = table,                                                   \
    .nroutes = sizeof(table) / sizeof(table[0]),                       \
  }

/* Hand-made instances have no dl handle to close: the last reference
 * (the snapshot's, or a request's pin) frees them here. */
static inline void lk_reaper(spoke__instance_t *inst) {
  free(inst->name);
  free(inst->quarantined); /* a test may have marked it */
  free(inst);
}

/* A fresh kit with the built-in defaults; the test adjusts k->cfg. */
static inline lk_t *lk_new(void) {
  lk_t *k = calloc(1, sizeof(*k));
  if (k == NULL)
    return NULL;
  spoke__config_defaults(&k->cfg);
  k->cfg.access_log = NULL;
  signal(SIGPIPE, SIG_IGN); /* a write to a closed peer is an error */
  return k;
}

static inline int lk_listen(int *port) {
  struct sockaddr_in sa;
  socklen_t len = sizeof(sa);
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0)
    return -1;
  memset(&sa, 0, sizeof(sa));
  sa.sin_family = AF_INET;
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0 ||
      listen(fd, 64) != 0 ||
      getsockname(fd, (struct sockaddr *)&sa, &len) != 0) {
    close(fd);
    return -1;
  }
  *port = ntohs(sa.sin_port);
  return fd;
}

/* The loop, serving DESC's routes (NULL: none). */
static inline void lk_start(lk_t *k, const spoke_plugin_t *desc) {
  spoke__instance_t *inst = NULL;
  spoke__snapshot_t *snap;
  int fd;

  spoke__instance_set_reaper(lk_reaper);
  if (desc != NULL) {
    inst = calloc(1, sizeof(*inst));
    assert_non_null(inst);
    inst->desc = desc;
    inst->name = strdup(desc->name);
    inst->version = (char *)"1";
    inst->generation = 1;
    atomic_init(&inst->refs, 1);
  }
  snap = spoke__snapshot_build(1, &inst, inst ? 1 : 0, NULL, NULL);
  assert_non_null(snap);
  assert_int_equal(snap->ninst, inst ? 1 : 0);
  if (inst != NULL)
    spoke__instance_unref(inst); /* the snapshot keeps it */
  fd = lk_listen(&k->port);
  assert_true(fd >= 0);
  k->shared.cfg = &k->cfg;
  k->live_before = spoke__request_live_count();
  assert_int_equal(spoke__loop_init(&k->loop, &k->shared, 0, fd, snap), 0);
  spoke__loop_set_current(&k->loop);
  k->started = 1;
}

/* One loop iteration: wait (at most LK_POLL_MS, less when a timer is
 * due) for the loop's descriptor, then run what is ready, no blocking. */
static inline void lk_step(lk_t *k) {
  struct pollfd p = {.fd = uv_backend_fd(&k->loop.uv), .events = POLLIN};
  int t = uv_backend_timeout(&k->loop.uv);
  if (t < 0 || t > LK_POLL_MS)
    t = LK_POLL_MS;
  poll(&p, 1, t);
  uv_run(&k->loop.uv, UV_RUN_NOWAIT);
}

/* Runs K's loop until COND holds; fails the test after LK_ITERS. */
#define LK_RUN_UNTIL(k, cond)                                          \
  do {                                                                 \
    int lk_i_;                                                         \
    for (lk_i_ = 0; lk_i_ < LK_ITERS && !(cond); lk_i_++)              \
      lk_step(k);                                                      \
    if (!(cond))                                                       \
      fail_msg("%s:%d: not reached after %d loop iterations: %s",      \
               __FILE__, __LINE__, LK_ITERS, #cond);                   \
  } while (0)

/* ---- clients ---- */

/* A client connected to K's loop (RCVBUF > 0: that receive buffer, set
 * before connecting), once the loop accepted it. */
static inline lk_client_t *lk_connect(lk_t *k, int rcvbuf) {
  struct sockaddr_in sa;
  size_t before = k->loop.nconns;
  lk_client_t *c;
  assert_true(k->nclients < LK_MAX_CLIENTS);
  c = &k->clients[k->nclients++];
  memset(c, 0, sizeof(*c));
  c->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  assert_true(c->fd >= 0);
  if (rcvbuf > 0)
    assert_int_equal(setsockopt(c->fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf,
                                sizeof(rcvbuf)), 0);
  memset(&sa, 0, sizeof(sa));
  sa.sin_family = AF_INET;
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  sa.sin_port = htons((uint16_t)k->port);
  /* The kernel completes the handshake from the backlog: no loop needed. */
  assert_int_equal(connect(c->fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
  assert_int_equal(fcntl(c->fd, F_SETFL, fcntl(c->fd, F_GETFL) | O_NONBLOCK),
                   0);
  LK_RUN_UNTIL(k, k->loop.nconns == before + 1);
  c->conn = k->loop.conns; /* accept puts the newest first */
  return c;
}

/* Sends all of DATA[0..len) (small: the socket takes it at once). */
static inline void lk_send(lk_client_t *c, const char *data, size_t len) {
  while (len > 0) {
    ssize_t n = send(c->fd, data, len, MSG_NOSIGNAL);
    assert_true(n > 0);
    data += n;
    len -= (size_t)n;
  }
}

static inline void lk_send_str(lk_client_t *c, const char *s) {
  lk_send(c, s, strlen(s));
}

/* Reads whatever C's socket holds now, without blocking. Returns 1 so
 * that it fits in an LK_RUN_UNTIL condition. */
static inline int lk_pump(lk_client_t *c) {
  char tmp[65536];
  while (!c->eof && !c->err) {
    ssize_t n = recv(c->fd, tmp, sizeof(tmp), 0);
    if (n > 0) {
      c->nreads++;
      assert_int_equal(spoke__buf_append(&c->in, tmp, (size_t)n), 0);
    } else if (n == 0) {
      c->eof = 1;
    } else if (errno == EAGAIN || errno == EWOULDBLOCK) {
      break;
    } else if (errno != EINTR) {
      c->err = errno;
    }
  }
  return 1;
}

static inline void lk_client_close(lk_client_t *c) {
  if (c->fd >= 0)
    close(c->fd);
  c->fd = -1;
  c->conn = NULL;
  spoke__buf_free(&c->in);
}

/* ---- reading responses ---- */

typedef struct lk_resp_s {
  int status;
  const char *head;     /* status line through the blank line */
  size_t head_len;
  const char *body;
  size_t body_len;
} lk_resp_t;

/* The value of header NAME in R's head, copied to OUT; 1 if present. */
static inline int lk_header(const lk_resp_t *r, const char *name, char *out,
                            size_t cap) {
  size_t nlen = strlen(name);
  const char *p = memchr(r->head, '\n', r->head_len);
  const char *end = r->head + r->head_len;
  while (p != NULL && p + 1 < end) {
    const char *line = p + 1;
    const char *eol = memchr(line, '\r', (size_t)(end - line));
    if (eol == NULL || eol == line)
      break;
    if ((size_t)(eol - line) > nlen + 1 && line[nlen] == ':' &&
        strncasecmp(line, name, nlen) == 0) {
      const char *v = line + nlen + 1;
      size_t vlen;
      while (v < eol && *v == ' ')
        v++;
      vlen = (size_t)(eol - v);
      if (vlen >= cap)
        vlen = cap - 1;
      memcpy(out, v, vlen);
      out[vlen] = '\0';
      return 1;
    }
    p = memchr(line, '\n', (size_t)(end - line));
  }
  return 0;
}

/* Splits DATA[0..len) into complete responses (each framed by its
 * Content-Length, but those whose bit is set in HEADS: answers to HEAD,
 * without a body), at most MAX into OUT; returns how many. */
static inline size_t lk_responses_heads(const char *data, size_t len,
                                        lk_resp_t *out, size_t max,
                                        unsigned heads) {
  size_t n = 0, off = 0;
  while (n < max && off < len) {
    const char *s = data + off;
    const char *e = memmem(s, len - off, "\r\n\r\n", 4);
    lk_resp_t r = {0};
    char cl[32];
    size_t blen = 0;
    if (e == NULL || len - off < 12 || memcmp(s, "HTTP/1.", 7) != 0)
      break;
    r.status = atoi(s + 9);
    r.head = s;
    r.head_len = (size_t)(e - s) + 4;
    if (!(heads & (1u << n)) &&
        lk_header(&r, "Content-Length", cl, sizeof(cl)))
      blen = strtoull(cl, NULL, 10);
    if (len - off - r.head_len < blen)
      break;
    r.body = s + r.head_len;
    r.body_len = blen;
    out[n++] = r;
    off += r.head_len + blen;
  }
  return n;
}

static inline size_t lk_responses(const char *data, size_t len,
                                  lk_resp_t *out, size_t max) {
  return lk_responses_heads(data, len, out, max, 0);
}

/* How many complete responses C has received. */
static inline size_t lk_count(lk_client_t *c) {
  lk_resp_t r[16];
  lk_pump(c);
  return lk_responses(c->in.data, c->in.len, r, 16);
}

/* Runs the loop until C holds N complete responses; copies them to R. */
static inline void lk_wait_responses(lk_t *k, lk_client_t *c, lk_resp_t *r,
                                     size_t n) {
  LK_RUN_UNTIL(k, lk_count(c) >= n);
  assert_int_equal(lk_responses(c->in.data, c->in.len, r, n), n);
}

/* Runs the loop until C's socket reports the end (EOF or an error). */
static inline void lk_wait_end(lk_t *k, lk_client_t *c) {
  LK_RUN_UNTIL(k, lk_pump(c) && (c->eof || c->err));
}

/* ---- the end ---- */

/* Clients are the test's to close; the loop then sees them go. Every
 * request must be freed by then. The loop is drained and closed as its
 * thread would at its end. */
static inline void lk_stop(lk_t *k) {
  spoke__loop_t *loop = &k->loop;
  if (!k->started)
    return;
  for (size_t i = 0; i < k->nclients; i++)
    lk_client_close(&k->clients[i]);
  LK_RUN_UNTIL(k, loop->nconns == 0 && loop->live_requests == 0);
  assert_int_equal(spoke__loop_drain(loop), 0);
  LK_RUN_UNTIL(k, loop->closed);
  uv_run(&loop->uv, UV_RUN_DEFAULT); /* the close callbacks */
  assert_int_equal(spoke__loop_end(loop), 0); /* no handle left open */
  spoke__loop_set_current(NULL);
  assert_int_equal(spoke__request_live_count(), k->live_before);
  assert_int_equal(atomic_load(&k->shared.open_conns), 0);
  k->started = 0;
}

static inline void lk_free(lk_t *k) {
  if (k == NULL)
    return;
  free(k);
}

#endif /* SPOKE_TEST_LOOPKIT_H */
