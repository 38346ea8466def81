/* fetch.c: calling another HTTP server from an async route, with libcurl
 * driven by the request's own libuv loop: the C form of
 *
 *   async with httpx.AsyncClient() as client:
 *       r = await client.get(url)
 *
 *   GET /fetch[?QUERY]  ->  the upstream's status and body
 *
 * The upstream is `url` in the config file's [plugin fetch] section
 * (default http://127.0.0.1:8080/hello); a query string on /fetch is
 * appended to it ("?ms=5" -> url?ms=5, or url&ms=5 when url has a query).
 * Other keys: timeout_ms (whole transfer, default 5000), max_bytes (body
 * kept in memory, default 1 MiB), max_transfers (at once per loop,
 * default 256). Answers: the upstream's status (and Content-Type) with its
 * body; 502 when the upstream cannot be reached, breaks the exchange or
 * sends more than max_bytes; 504 past timeout_ms; 503 with Retry-After
 * past max_transfers.
 *
 * How the loop drives curl. Each I/O loop gets one CURLM multi handle in
 * loop_init (SDK 1.4), closed in loop_fini; a transfer is one CURL easy
 * handle added to the multi handle of the request's loop. curl never
 * waits itself: it tells us what to wait for through two callbacks, and we
 * tell it what happened with curl_multi_socket_action():
 *
 *   CURLMOPT_SOCKETFUNCTION  "watch socket S for IN/OUT", or "REMOVE":
 *                            one uv_poll_t per curl socket, started,
 *                            changed or closed accordingly;
 *   CURLMOPT_TIMERFUNCTION   "call me back in N ms" (-1: never): one
 *                            uv_timer_t per loop;
 *   a poll or the timer fires -> curl_multi_socket_action() -> then
 *   curl_multi_info_read() lists the transfers that finished, and each
 *   finished one completes its request.
 *
 * Nothing here blocks the loop: no curl_easy_perform(). The default URL
 * is an IP address; a host name would be resolved by libcurl's threaded
 * resolver off the loop, but cancelling a transfer in the middle of such
 * a lookup waits for getaddrinfo() to return, so prefer addresses (or a
 * libcurl built with c-ares) for upstreams that must never stall a loop.
 *
 * Threads. Everything below runs on one loop's thread: the handler
 * (SPOKE_ASYNC), the libuv callbacks, the abort callback, loop_init and
 * loop_fini. A fetch_loop_t and what hangs off it belong to that loop's
 * thread alone, so nothing is locked. The only state shared by loops is
 * fetch_conf_t, written by init before any loop sees it and then only
 * read. curl_global_init is not thread-safe: init and fini run on the
 * control thread, once per loaded version (libcurl counts the calls).
 *
 * Invariants.
 *  - A uv_poll_t is stopped and closed (CURL_POLL_REMOVE, or loop_fini)
 *    before curl closes its descriptor; it is freed in its close callback.
 *  - A transfer is in its loop's list exactly while its easy handle is in
 *    the multi handle; it leaves both before its request is completed,
 *    whether it finished, failed or the client went away.
 *  - curl is never re-entered from its own callbacks: socket_action runs
 *    only from libuv callbacks, remove_handle only outside curl.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>
#include <uv.h>

#include <spoke.h>

#define DEFAULT_URL "http://127.0.0.1:8080/hello"
#define DEFAULT_TIMEOUT_MS 5000UL
#define DEFAULT_MAX_BYTES (1024UL * 1024UL)
#define DEFAULT_MAX_TRANSFERS 256UL

/* The configuration: written by init, read by every loop. */
typedef struct fetch_conf_s {
  const char *url;          /* borrowed from spoke_config() */
  unsigned long timeout_ms;
  unsigned long max_bytes;
  unsigned long max_transfers;
} fetch_conf_t;

typedef struct fetch_socket_s fetch_socket_t;
typedef struct fetch_transfer_s fetch_transfer_t;

/* One per I/O loop; that loop's thread only. Freed in its timer's close
 * callback, the last thing loop_fini starts. */
typedef struct fetch_loop_s {
  uv_loop_t *uv;
  const fetch_conf_t *conf;
  CURLM *multi;
  uv_timer_t timer;              /* curl's timeout */
  fetch_socket_t *sockets;       /* watched curl sockets */
  fetch_transfer_t *transfers;   /* transfers in the multi handle */
  unsigned long ntransfers;
} fetch_loop_t;

/* A curl socket being watched. */
struct fetch_socket_s {
  uv_poll_t poll;                /* poll.data: this */
  curl_socket_t fd;
  fetch_loop_t *fl;
  fetch_socket_t *prev, *next;
};

/* One upstream GET for one request. */
struct fetch_transfer_s {
  CURL *easy;
  spoke_request_t *req;
  fetch_loop_t *fl;
  char *body;                    /* malloc'd; what the upstream sent */
  size_t len, cap;
  int too_big;                   /* body passed max_bytes: 502 */
  fetch_transfer_t *prev, *next;
  char error[CURL_ERROR_SIZE];
};

/* ---- small helpers ----------------------------------------------------- */

#define LIST_PUSH(head, x)                                                   \
  do {                                                                       \
    (x)->prev = NULL;                                                        \
    (x)->next = (head);                                                      \
    if ((head) != NULL)                                                      \
      (head)->prev = (x);                                                    \
    (head) = (x);                                                            \
  } while (0)

#define LIST_UNLINK(head, x)                                                 \
  do {                                                                       \
    if ((x)->prev != NULL)                                                   \
      (x)->prev->next = (x)->next;                                           \
    else                                                                     \
      (head) = (x)->next;                                                    \
    if ((x)->next != NULL)                                                   \
      (x)->next->prev = (x)->prev;                                           \
  } while (0)

static int reply(spoke_request_t *req, int status, const char *text) {
  spoke_response_status(req, status);
  spoke_response_header(req, "Content-Type", "text/plain");
  return spoke_response_send(req, text, strlen(text));
}

/* ---- curl's sockets on libuv -------------------------------------------- */

static void check_finished(fetch_loop_t *fl);

static void socket_closed(uv_handle_t *h) {
  free(h->data);
}

/* Stops watching S now (its fd may be closed right after) and frees it
 * once libuv is done with it. */
static void socket_close(fetch_socket_t *s) {
  LIST_UNLINK(s->fl->sockets, s);
  curl_multi_assign(s->fl->multi, s->fd, NULL);
  uv_close((uv_handle_t *)&s->poll, socket_closed);
}

/* libuv: curl's socket is readable, writable, or in error. */
static void socket_ready(uv_poll_t *p, int status, int events) {
  fetch_socket_t *s = p->data;
  fetch_loop_t *fl = s->fl;
  int flags = 0, running;

  if (status < 0)
    flags = CURL_CSELECT_ERR;
  if (events & UV_READABLE)
    flags |= CURL_CSELECT_IN;
  if (events & UV_WRITABLE)
    flags |= CURL_CSELECT_OUT;
  /* This may close S (CURL_POLL_REMOVE): use only FL afterwards. */
  curl_multi_socket_action(fl->multi, s->fd, flags, &running);
  check_finished(fl);
}

/* CURLMOPT_SOCKETFUNCTION: what curl wants watched on FD. */
static int socket_want(CURL *easy, curl_socket_t fd, int what, void *arg,
                       void *socketp) {
  fetch_loop_t *fl = arg;
  fetch_socket_t *s = socketp;
  int events = 0;
  (void)easy;

  if (what == CURL_POLL_REMOVE) {
    if (s != NULL)
      socket_close(s);
    return 0;
  }
  if (s == NULL) {
    s = calloc(1, sizeof(*s));
    if (s == NULL)
      return -1; /* curl fails the transfer */
    if (uv_poll_init_socket(fl->uv, &s->poll, fd) != 0) {
      free(s);
      return -1;
    }
    s->poll.data = s;
    s->fd = fd;
    s->fl = fl;
    LIST_PUSH(fl->sockets, s);
    curl_multi_assign(fl->multi, fd, s);
  }
  if (what == CURL_POLL_IN || what == CURL_POLL_INOUT)
    events |= UV_READABLE;
  if (what == CURL_POLL_OUT || what == CURL_POLL_INOUT)
    events |= UV_WRITABLE;
  return uv_poll_start(&s->poll, events, socket_ready) == 0 ? 0 : -1;
}

/* libuv: curl's timeout is due. */
static void timer_fired(uv_timer_t *t) {
  fetch_loop_t *fl = t->data;
  int running;

  curl_multi_socket_action(fl->multi, CURL_SOCKET_TIMEOUT, 0, &running);
  check_finished(fl);
}

/* CURLMOPT_TIMERFUNCTION: call curl back in MS ms, or never (-1). Even
 * for 0 the call comes from the loop, never from here (curl forbids
 * re-entering it from its own callback). */
static int timer_want(CURLM *multi, long ms, void *arg) {
  fetch_loop_t *fl = arg;
  (void)multi;

  if (ms < 0)
    uv_timer_stop(&fl->timer);
  else
    uv_timer_start(&fl->timer, timer_fired, (uint64_t)ms, 0);
  return 0;
}

/* ---- transfers --------------------------------------------------------- */

/* CURLOPT_WRITEFUNCTION: a piece of the upstream's body. Returning less
 * than was given fails the transfer (CURLE_WRITE_ERROR). */
static size_t body_piece(char *data, size_t size, size_t n, void *arg) {
  fetch_transfer_t *t = arg;
  size_t len = size * n;
  size_t max = t->fl->conf->max_bytes;

  if (len > max - t->len) {
    t->too_big = 1;
    return 0;
  }
  if (t->len + len > t->cap) {
    size_t cap = t->cap ? t->cap : 16384;
    char *p;
    while (cap < t->len + len)
      cap *= 2;
    if (cap > max)
      cap = max;
    if ((p = realloc(t->body, cap)) == NULL)
      return 0;
    t->body = p;
    t->cap = cap;
  }
  memcpy(t->body + t->len, data, len);
  t->len += len;
  return len;
}

/* Takes T out of curl and out of its loop: after this only its request
 * and body remain, and the caller completes the one and frees the other. */
static void transfer_detach(fetch_transfer_t *t) {
  fetch_loop_t *fl = t->fl;

  curl_multi_remove_handle(fl->multi, t->easy);
  curl_easy_cleanup(t->easy);
  LIST_UNLINK(fl->transfers, t);
  fl->ntransfers--;
  spoke_request_set_data(t->req, NULL);
}

/* A transfer ended with RESULT: answer its request. */
static void transfer_done(fetch_transfer_t *t, CURLcode result) {
  spoke_request_t *req = t->req;
  long code = 0;
  const char *type = NULL;
  char *body = t->body;
  size_t len = t->len;

  curl_easy_getinfo(t->easy, CURLINFO_RESPONSE_CODE, &code);
  curl_easy_getinfo(t->easy, CURLINFO_CONTENT_TYPE, &type);
  if (result == CURLE_OK && code >= 200 && code <= 599) {
    spoke_response_status(req, (int)code);
    /* TYPE belongs to the easy handle: set it before the cleanup. */
    if (type != NULL)
      spoke_response_header(req, "Content-Type", type);
    transfer_detach(t);
    spoke_response_send(req, body, len);
  } else {
    const char *why = t->too_big ? "upstream response too large"
                      : t->error[0] ? t->error
                                    : curl_easy_strerror(result);
    int status = result == CURLE_OPERATION_TIMEDOUT ? 504 : 502;
    char text[CURL_ERROR_SIZE + 32];

    snprintf(text, sizeof(text), "fetch: %s\n", why);
    spoke_log(SPOKE_LOG_DEBUG, "GET upstream: %s", why);
    transfer_detach(t);
    reply(req, status, text);
  }
  free(body); /* spoke_response_send copied it */
}

/* Completes every transfer curl reports finished. (The server runs
 * loop_fini on a later turn of the loop, never inside our own
 * spoke_response_send, so fl->multi stays valid through this loop; the
 * NULL test only guards a loop_fini that already ran.) */
static void check_finished(fetch_loop_t *fl) {
  CURLMsg *msg;
  int left;

  while (fl->multi != NULL &&
         (msg = curl_multi_info_read(fl->multi, &left)) != NULL) {
    char *t = NULL;
    if (msg->msg != CURLMSG_DONE)
      continue;
    curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, &t);
    transfer_done((fetch_transfer_t *)t, msg->data.result);
  }
}

/* The client went away (or the handler timeout answered 504): stop the
 * transfer now, which closes its upstream connection, and complete the
 * request; the server discards what we send. */
static void client_gone(spoke_request_t *req) {
  fetch_transfer_t *t = spoke_request_data(req);

  if (t == NULL)
    return; /* already finishing */
  transfer_detach(t);
  free(t->body);
  spoke_response_end(req);
}

/* "url" plus "?QUERY" (or "&QUERY"), in the request's memory. */
static const char *upstream_url(spoke_request_t *req, const char *url) {
  const char *query = spoke_request_query(req);
  size_t n;
  char *s;

  if (query[0] == '\0')
    return url;
  n = strlen(url) + 1 + strlen(query) + 1;
  if ((s = spoke_request_alloc(req, n)) == NULL)
    return NULL;
  snprintf(s, n, "%s%c%s", url, strchr(url, '?') ? '&' : '?', query);
  return s;
}

/* SPOKE_ASYNC: start the transfer on this loop and return; the loop's
 * callbacks complete the request. */
static int fetch(spoke_request_t *req) {
  fetch_loop_t *fl = spoke_loop_state(req);
  fetch_transfer_t *t;
  const char *url;

  if (fl == NULL) /* a host older than SDK 1.4 */
    return reply(req, 503, "fetch: needs spoke SDK 1.4 (loop_init)\n");
  if (fl->ntransfers >= fl->conf->max_transfers) {
    spoke_response_header(req, "Retry-After", "1");
    return reply(req, 503, "fetch: too many transfers\n");
  }
  url = upstream_url(req, fl->conf->url);
  t = spoke_request_alloc(req, sizeof(*t));
  if (url == NULL || t == NULL)
    return SPOKE_ENOMEM;
  memset(t, 0, sizeof(*t));
  t->req = req;
  t->fl = fl;
  if ((t->easy = curl_easy_init()) == NULL)
    return SPOKE_ENOMEM;
  curl_easy_setopt(t->easy, CURLOPT_URL, url);
  curl_easy_setopt(t->easy, CURLOPT_PRIVATE, t);
  curl_easy_setopt(t->easy, CURLOPT_WRITEFUNCTION, body_piece);
  curl_easy_setopt(t->easy, CURLOPT_WRITEDATA, t);
  curl_easy_setopt(t->easy, CURLOPT_ERRORBUFFER, t->error);
  curl_easy_setopt(t->easy, CURLOPT_TIMEOUT_MS, (long)fl->conf->timeout_ms);
  curl_easy_setopt(t->easy, CURLOPT_NOSIGNAL, 1L); /* threads: no SIGALRM */
  /* http(s) only: a file:// url would read the disk on the loop. */
  curl_easy_setopt(t->easy, CURLOPT_PROTOCOLS_STR, "http,https");
  if (curl_multi_add_handle(fl->multi, t->easy) != CURLM_OK) {
    curl_easy_cleanup(t->easy);
    return SPOKE_ENOMEM;
  }
  LIST_PUSH(fl->transfers, t);
  fl->ntransfers++;
  spoke_request_set_data(req, t);
  /* On the loop thread the abort callback cannot run before this returns;
   * if the client is already gone it will not run at all. */
  if (spoke_request_on_abort(req, client_gone) == SPOKE_ECANCELED)
    client_gone(req);
  /* curl asked for a 0 ms timer: the transfer starts on the loop's next
   * turn. */
  return 0;
}

/* ---- lifetime: per version (control thread), per loop (its thread) ----- */

/* Reads config KEY as a positive number into *out (DEF when absent). */
static int conf_number(const char *key, unsigned long def,
                       unsigned long *out) {
  const char *s = spoke_config(key);
  char *end;

  *out = def;
  if (s == NULL)
    return 0;
  errno = 0;
  *out = strtoul(s, &end, 10);
  if (s[0] < '0' || s[0] > '9' || *end != '\0' || errno != 0 || *out == 0) {
    spoke_log(SPOKE_LOG_ERROR, "[plugin fetch] %s = %s: want a positive "
              "number", key, s);
    return SPOKE_EINVAL;
  }
  return 0;
}

static int fetch_init(const spoke_host_t *host, void **state) {
  fetch_conf_t *conf;
  (void)host;

  if ((conf = calloc(1, sizeof(*conf))) == NULL)
    return SPOKE_ENOMEM;
  conf->url = spoke_config("url") ? spoke_config("url") : DEFAULT_URL;
  if (conf_number("timeout_ms", DEFAULT_TIMEOUT_MS, &conf->timeout_ms) ||
      conf_number("max_bytes", DEFAULT_MAX_BYTES, &conf->max_bytes) ||
      conf_number("max_transfers", DEFAULT_MAX_TRANSFERS,
                  &conf->max_transfers) ||
      curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
    free(conf);
    return SPOKE_EINIT;
  }
  *state = conf;
  return 0;
}

static void fetch_fini(void *state) {
  curl_global_cleanup();
  free(state);
}

static int fetch_loop_init(const spoke_host_t *host, struct uv_loop_s *loop,
                           void *state, void **loop_state) {
  fetch_loop_t *fl;
  (void)host;

  if ((fl = calloc(1, sizeof(*fl))) == NULL)
    return SPOKE_ENOMEM;
  fl->uv = loop;
  fl->conf = state;
  if ((fl->multi = curl_multi_init()) == NULL) {
    free(fl);
    return SPOKE_ENOMEM;
  }
  uv_timer_init(loop, &fl->timer); /* cannot fail */
  fl->timer.data = fl;
  curl_multi_setopt(fl->multi, CURLMOPT_SOCKETFUNCTION, socket_want);
  curl_multi_setopt(fl->multi, CURLMOPT_SOCKETDATA, fl);
  curl_multi_setopt(fl->multi, CURLMOPT_TIMERFUNCTION, timer_want);
  curl_multi_setopt(fl->multi, CURLMOPT_TIMERDATA, fl);
  *loop_state = fl;
  return 0;
}

static void loop_closed(uv_handle_t *h) {
  free(h->data);
}

/* The version takes no more requests on this loop and its last one there
 * has completed, so normally no transfer is left; any that is (a request
 * the server gave up on) is stopped and answered all the same. */
static void fetch_loop_fini(struct uv_loop_s *loop, void *state,
                            void *loop_state) {
  fetch_loop_t *fl = loop_state;
  (void)loop;
  (void)state;

  while (fl->transfers != NULL) {
    fetch_transfer_t *t = fl->transfers;
    spoke_request_t *req = t->req;
    transfer_detach(t);
    free(t->body);
    reply(req, 503, "fetch: shutting down\n");
  }
  /* Idle keep-alive connections are still open in curl's cache: stop
   * watching every socket before curl_multi_cleanup closes them. */
  while (fl->sockets != NULL)
    socket_close(fl->sockets);
  curl_multi_cleanup(fl->multi);
  fl->multi = NULL;
  uv_close((uv_handle_t *)&fl->timer, loop_closed);
}

static const spoke_route_t routes[] = {
  { "GET", "/fetch", SPOKE_ASYNC, fetch },
};

SPOKE_PLUGIN(.name = "fetch", .version = "1.0.0", SPOKE_ROUTES(routes),
             .init = fetch_init, .fini = fetch_fini,
             .loop_init = fetch_loop_init, .loop_fini = fetch_loop_fini);
