/* ownwork.c: a plugin whose own libuv work outlives its requests, built
 * twice (ownwork_v1.so with -DVERSION=1, ownwork_v2.so with -DVERSION=2),
 * both named "ownwork", for the tests of SDK 1.3's spoke_plugin_hold():
 * a reload must not unmap code that will still run.
 *
 *   GET /own/timer?ms=N   "ownV\n" at once; then a uv_timer_t of the
 *                         plugin's own fires N ms later (default 300) on
 *                         the request's loop and counts itself
 *   GET /own/tcp?port=P   connects a uv_tcp_t of its own to 127.0.0.1:P,
 *                         sends "ping\n", and from its read callback
 *                         answers "ownV tcp REPLY" with the first line
 *                         back, closes the handle and then goes on
 *                         running its own code for 20 ms
 *   GET /own/never        never completes, not even when told the core
 *                         answered for it (a plugin bug the handler
 *                         timeout must contain)
 *   GET /own/count        "fired F closed C\n": this version's timers
 *                         fired and handles closed so far
 *
 * Both take a hold before they start a handle and release it from the
 * handle's close callback, the last code of theirs libuv will run; that
 * is the whole rule. Without it the first shape crashed a server 2 s after
 * a reload (the timer callback's code was gone), the second inside the
 * close path. Threads: every handler and callback runs on the request's
 * loop thread; the counters are atomics because a plugin's handlers run
 * on every loop.
 */
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <uv.h>

#include <spoke.h>

#ifndef VERSION
#error "build with -DVERSION=N (1, 2, ...)"
#endif

#define STR_(x) #x
#define STR(x) STR_(x)

static atomic_ulong fired, closed;

static unsigned long query_num(spoke_request_t *req, const char *name,
                               unsigned long dflt, unsigned long max) {
  const char *s = spoke_request_query_param(req, name);
  unsigned long v;
  char *end;
  if (s == NULL || *s < '0' || *s > '9')
    return dflt;
  v = strtoul(s, &end, 10);
  return *end != '\0' ? dflt : v > max ? max : v;
}

static int answer(spoke_request_t *req, int status, const char *text) {
  spoke_response_status(req, status);
  spoke_response_header(req, "Content-Type", "text/plain");
  return spoke_response_send(req, text, strlen(text));
}

/* ---- a timer of our own ---- */

static void timer_closed(uv_handle_t *h) {
  free(h);
  atomic_fetch_add(&closed, 1);
  spoke_plugin_release(); /* the last of our code libuv runs for it */
}

static void timer_fired(uv_timer_t *t) {
  atomic_fetch_add(&fired, 1);
  uv_close((uv_handle_t *)t, timer_closed);
}

static int own_timer(spoke_request_t *req) {
  unsigned long ms = query_num(req, "ms", 300, 60000);
  uv_timer_t *t = malloc(sizeof(*t));
  if (t == NULL)
    return SPOKE_ENOMEM;
  if (spoke_plugin_hold() != 0) {
    free(t);
    return answer(req, 503, "no plugin hold on this host\n");
  }
  uv_timer_init(spoke_request_loop(req), t);
  uv_timer_start(t, timer_fired, ms, 0);
  return answer(req, 200, "own" STR(VERSION) "\n");
}

/* ---- a TCP connection of our own ---- */

typedef struct link_s {
  uv_tcp_t tcp;
  uv_connect_t connect;
  uv_write_t write;
  spoke_request_t *req; /* NULL once answered */
  char buf[256];
  size_t len;
} link_t;

static void link_closed(uv_handle_t *h) {
  free(h->data);
  atomic_fetch_add(&closed, 1);
  spoke_plugin_release();
}

static void link_answer(link_t *l, int status, const char *text) {
  if (l->req != NULL)
    answer(l->req, status, text);
  l->req = NULL;
  if (!uv_is_closing((uv_handle_t *)&l->tcp))
    uv_close((uv_handle_t *)&l->tcp, link_closed);
}

static void link_alloc(uv_handle_t *h, size_t size, uv_buf_t *buf) {
  link_t *l = h->data;
  (void)size;
  *buf = uv_buf_init(l->buf + l->len, (unsigned)(sizeof(l->buf) - 1 - l->len));
}

static void link_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf) {
  link_t *l = s->data;
  char *nl, text[320];
  uint64_t until;
  (void)buf;
  if (n < 0) {
    link_answer(l, 502, "backend closed\n");
    return;
  }
  l->len += (size_t)n;
  l->buf[l->len] = '\0';
  nl = strchr(l->buf, '\n');
  if (nl == NULL && l->len < sizeof(l->buf) - 1)
    return;
  if (nl != NULL)
    *nl = '\0';
  snprintf(text, sizeof(text), "own" STR(VERSION) " tcp %s\n", l->buf);
  link_answer(l, 200, text);
  /* Still our code, after the request is complete and the handle is
   * closing: the version must stay mapped through this. */
  until = uv_hrtime() + 20 * 1000000ull;
  while (uv_hrtime() < until)
    ;
}

static void link_wrote(uv_write_t *w, int status) {
  link_t *l = w->data;
  if (status < 0)
    link_answer(l, 502, "backend write failed\n");
}

static void link_connected(uv_connect_t *c, int status) {
  static char ping[] = "ping\n";
  link_t *l = c->data;
  uv_buf_t b = uv_buf_init(ping, sizeof(ping) - 1);
  if (status < 0) {
    link_answer(l, 502, "backend refused\n");
    return;
  }
  l->write.data = l;
  if (uv_write(&l->write, (uv_stream_t *)&l->tcp, &b, 1, link_wrote) != 0 ||
      uv_read_start((uv_stream_t *)&l->tcp, link_alloc, link_read) != 0)
    link_answer(l, 502, "backend i/o failed\n");
}

static int own_tcp(spoke_request_t *req) {
  unsigned long port = query_num(req, "port", 0, 65535);
  struct sockaddr_in sa;
  link_t *l;
  if (port == 0)
    return answer(req, 400, "port=P wanted\n");
  l = calloc(1, sizeof(*l));
  if (l == NULL)
    return SPOKE_ENOMEM;
  if (spoke_plugin_hold() != 0) {
    free(l);
    return answer(req, 503, "no plugin hold on this host\n");
  }
  l->req = req;
  l->tcp.data = l;
  l->connect.data = l;
  uv_tcp_init(spoke_request_loop(req), &l->tcp);
  uv_ip4_addr("127.0.0.1", (int)port, &sa);
  if (uv_tcp_connect(&l->connect, &l->tcp, (const struct sockaddr *)&sa,
                     link_connected) != 0)
    link_answer(l, 502, "cannot connect\n");
  return 0;
}

static int own_never(spoke_request_t *req) {
  (void)req;
  return 0;
}

static int own_count(spoke_request_t *req) {
  char text[96];
  snprintf(text, sizeof(text), "fired %lu closed %lu\n",
           atomic_load(&fired), atomic_load(&closed));
  return answer(req, 200, text);
}

static const spoke_route_t routes[] = {
  { "GET", "/own/timer", SPOKE_ASYNC, own_timer },
  { "GET", "/own/tcp", SPOKE_ASYNC, own_tcp },
  { "GET", "/own/never", SPOKE_ASYNC, own_never },
  { "GET", "/own/count", SPOKE_ASYNC, own_count },
};

SPOKE_PLUGIN(.name = "ownwork", .version = STR(VERSION),
             SPOKE_ROUTES(routes));
