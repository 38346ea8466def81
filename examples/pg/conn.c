/* conn.c: one libpq connection, driven by the I/O loop instead of waited
 * for.
 *
 * libpq's asynchronous API never blocks (given a non-blocking socket);
 * instead it says what it needs next, and we wait for that on the loop
 * with a uv_poll_t on PQsocket():
 *
 *   connecting  PQconnectStartParams(), then PQconnectPoll() each time
 *               the socket is ready for what the last call asked
 *               (PGRES_POLLING_WRITING / _READING), until _OK or _FAILED.
 *   querying    PQsendQueryParams() queues the query; PQflush() sends
 *               what fits (1: more to send, so also watch for writable).
 *               When readable: PQconsumeInput() reads what arrived, and
 *               PQgetResult() is called while !PQisBusy() (so it will
 *               not block) until it returns NULL: the query is over.
 *   idle        still watched for readable: a server that goes away
 *               (shutdown, reset) is noticed now, not by the next query.
 *
 * Invariants:
 * - Everything here runs on the owning loop's thread.
 * - A connection has at most one uv_poll_t, made for the fd libpq has
 *   now. libpq may switch sockets while connecting (another address,
 *   a retry without SSL), so every step compares PQsocket() with the
 *   fd of the poll and replaces a stale poll.
 * - The poll is closed before PQfinish() closes its fd. uv_close() of
 *   a uv_poll_t removes the fd from the loop's epoll set at once (only
 *   the memory waits for the close callback), so closing the poll and
 *   then calling PQfinish() is safe; the other order would leave the
 *   loop watching a closed fd number that the next socket may reuse.
 * - A function that returns an error never calls its callback.
 * - A lost connection is DOWN at once: PQfinish()ed, never reused.
 * - A call out to the pool (a query's callback, the connect and idle
 *   notices) is the last thing a step does: the pool may hand the same
 *   connection its next job from inside that call (on_result ->
 *   pg_pool_put -> another job's pg_conn_query), so nothing here reads
 *   or writes the connection after it.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pg.h"

/* How long a connection attempt may take; libpq's connect_timeout is
 * only honoured by its blocking calls. */
#define CONNECT_TIMEOUT_MS 10000

static void on_poll(uv_poll_t *p, int status, int events);

static void on_poll_closed(uv_handle_t *h) {
  pg_loop_t *l = h->data;

  free(h);
  l->handle_closed(l);
}

static void on_timer_closed(uv_handle_t *h) {
  pg_loop_t *l = h->data;

  l->handle_closed(l);
}

static void unwatch(pg_conn_t *c) {
  if (c->poll == NULL)
    return;
  c->poll->data = c->loop; /* the close callback needs only the pool */
  uv_close((uv_handle_t *)c->poll, on_poll_closed);
  c->poll = NULL;
}

/* Waits on the loop for EVENTS on libpq's current socket. */
static int watch(pg_conn_t *c, int events) {
  int fd = PQsocket(c->pq);

  if (fd < 0)
    return -1;
  if (c->poll != NULL && c->poll_fd != fd)
    unwatch(c); /* libpq moved to another socket */
  if (c->poll == NULL) {
    uv_poll_t *p = malloc(sizeof(*p));
    if (p == NULL)
      return -1;
    if (uv_poll_init(c->loop->uv, p, fd) != 0) {
      free(p); /* a failed init leaves no handle behind */
      return -1;
    }
    p->data = c;
    c->poll = p;
    c->poll_fd = fd;
    c->loop->handles++;
  }
  return uv_poll_start(c->poll, events, on_poll);
}

void pg_conn_drop(pg_conn_t *c) {
  unwatch(c); /* first: see the invariants */
  uv_timer_stop(&c->deadline);
  if (c->res != NULL)
    PQclear(c->res);
  if (c->pq != NULL)
    PQfinish(c->pq);
  c->res = NULL;
  c->pq = NULL;
  c->cb = NULL;
  c->arg = NULL;
  c->state = PG_CONN_DOWN;
}

/* ---- connecting ---- */

static void connect_failed(pg_conn_t *c, const char *why) {
  char msg[256];

  /* Copy the message: PQfinish frees it. */
  snprintf(msg, sizeof(msg), "%s", why);
  pg_conn_drop(c);
  c->loop->on_connect_failed(c->loop, c, msg);
}

static void on_deadline(uv_timer_t *t) {
  pg_conn_t *c = t->data;

  if (c->state == PG_CONN_CONNECTING)
    connect_failed(c, "connection attempt timed out");
}

static void connect_step(pg_conn_t *c) {
  int rc;

  switch (PQconnectPoll(c->pq)) {
    case PGRES_POLLING_READING:
      rc = watch(c, UV_READABLE);
      break;
    case PGRES_POLLING_WRITING:
      rc = watch(c, UV_WRITABLE);
      break;
    case PGRES_POLLING_OK:
      uv_timer_stop(&c->deadline);
      c->state = PG_CONN_IDLE;
      if (watch(c, UV_READABLE) != 0) {
        connect_failed(c, "cannot watch the socket");
        return;
      }
      c->loop->on_connected(c->loop, c);
      return;
    default: /* PGRES_POLLING_FAILED */
      connect_failed(c, PQerrorMessage(c->pq));
      return;
  }
  if (rc != 0)
    connect_failed(c, "cannot watch the socket");
}

void pg_conn_init(pg_conn_t *c, pg_loop_t *l) {
  memset(c, 0, sizeof(*c));
  c->loop = l;
  c->state = PG_CONN_DOWN;
  c->poll_fd = -1;
  uv_timer_init(l->uv, &c->deadline);
  c->deadline.data = c;
  l->handles++;
}

int pg_conn_connect(pg_conn_t *c, char *why, size_t n) {
  const char *keys[4], *values[4];

  pg_conn_params(c->loop->plugin, keys, values);
  /* Returns at once: no socket is waited for. (A host NAME is resolved
   * here with a blocking getaddrinfo(): give the loop an address or a
   * unix socket directory, or resolve it yourself into hostaddr.) */
  c->pq = PQconnectStartParams(keys, values, 1);
  if (c->pq == NULL)
    return SPOKE_ENOMEM;
  if (PQstatus(c->pq) == CONNECTION_BAD || PQsetnonblocking(c->pq, 1) != 0) {
    /* libpq's own words ("... No such file or directory ..."), one line */
    snprintf(why, n, "%s", PQerrorMessage(c->pq));
    why[strcspn(why, "\n")] = '\0';
    pg_conn_drop(c);
    return SPOKE_EIO;
  }
  PQsetNoticeReceiver(c->pq, pg_notice, NULL);
  c->state = PG_CONN_CONNECTING;
  /* libpq's rule: before the first PQconnectPoll, wait for writable. */
  if (watch(c, UV_WRITABLE) != 0) {
    snprintf(why, n, "cannot watch its socket");
    pg_conn_drop(c);
    return SPOKE_EIO;
  }
  uv_timer_start(&c->deadline, on_deadline, CONNECT_TIMEOUT_MS, 0);
  return 0;
}

/* ---- querying ---- */

/* Errors that mean the session is gone: connection exceptions (08xxx)
 * and the server shutting down or restarting (57P01..57P03). */
static int session_gone(const PGresult *res) {
  const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);

  if (PQresultStatus(res) != PGRES_FATAL_ERROR || state == NULL)
    return 0;
  return strncmp(state, "08", 2) == 0 || strncmp(state, "57P", 3) == 0;
}

/* Hands the outcome to whoever sent the query. */
static void query_over(pg_conn_t *c, int lost) {
  pg_result_cb cb = c->cb;
  void *arg = c->arg;
  PGresult *res = c->res;

  c->cb = NULL;
  c->arg = NULL;
  c->res = NULL;
  if (!lost && (PQstatus(c->pq) != CONNECTION_OK ||
                (res != NULL && session_gone(res))))
    lost = 1;
  if (!lost && watch(c, UV_READABLE) != 0)
    lost = 1;
  if (lost) {
    if (res != NULL)
      PQclear(res);
    res = NULL;
    pg_conn_drop(c);
  } else {
    c->state = PG_CONN_IDLE;
  }
  cb(c, res, arg);
}

/* Keeps the first error, else the last result. */
static void keep(pg_conn_t *c, PGresult *r) {
  if (c->res != NULL && PQresultStatus(c->res) == PGRES_FATAL_ERROR) {
    PQclear(r);
    return;
  }
  if (c->res != NULL)
    PQclear(c->res);
  c->res = r;
}

static void query_step(pg_conn_t *c, int events) {
  int flushed;

  if ((events & UV_READABLE) && !PQconsumeInput(c->pq)) {
    query_over(c, 1);
    return;
  }
  /* libpq's rule: while PQflush says 1, wait for either direction, and
   * flush again after each. */
  flushed = PQflush(c->pq);
  if (flushed < 0) {
    query_over(c, 1);
    return;
  }
  while (!PQisBusy(c->pq)) {
    PGresult *r = PQgetResult(c->pq);
    if (r == NULL) {
      query_over(c, 0);
      return;
    }
    keep(c, r);
  }
  if (watch(c, flushed ? UV_READABLE | UV_WRITABLE : UV_READABLE) != 0)
    query_over(c, 1);
}

int pg_conn_query(pg_conn_t *c, const char *sql, int n,
                  const char *const *params, pg_result_cb cb, void *arg) {
  int sent;

  if (c->state != PG_CONN_IDLE)
    return SPOKE_EINVAL;
  sent = n == 0 ? PQsendQuery(c->pq, sql)
                : PQsendQueryParams(c->pq, sql, n, NULL, params, NULL, NULL,
                                    0);
  if (!sent) {
    if (PQstatus(c->pq) != CONNECTION_OK)
      pg_conn_drop(c);
    return SPOKE_EIO;
  }
  c->state = PG_CONN_BUSY;
  c->cb = cb;
  c->arg = arg;
  /* Send now what fits; query_step sends the rest when writable. */
  if (PQflush(c->pq) < 0 || watch(c, UV_READABLE | UV_WRITABLE) != 0) {
    pg_conn_drop(c);
    return SPOKE_EIO;
  }
  return 0;
}

/* ---- the loop's callback ---- */

static void idle_step(pg_conn_t *c) {
  PGnotify *n;

  /* Nothing is expected: EOF or an error here means the server is gone
   * (a fast shutdown first sends "terminating connection"). */
  if (!PQconsumeInput(c->pq) || PQstatus(c->pq) != CONNECTION_OK) {
    c->loop->on_idle_lost(c->loop, c);
    return;
  }
  while ((n = PQnotifies(c->pq)) != NULL)
    PQfreemem(n);
}

static void on_poll(uv_poll_t *p, int status, int events) {
  pg_conn_t *c = p->data;

  /* An error on the fd: let libpq find out what it is. */
  if (status < 0)
    events = UV_READABLE | UV_WRITABLE;
  switch (c->state) {
    case PG_CONN_CONNECTING:
      connect_step(c);
      break;
    case PG_CONN_BUSY:
      query_step(c, events);
      break;
    case PG_CONN_IDLE:
      if (events & UV_READABLE)
        idle_step(c);
      break;
    case PG_CONN_DOWN:
      break;
  }
}

void pg_conn_close(pg_conn_t *c) {
  pg_conn_drop(c);
  c->deadline.data = c->loop;
  uv_close((uv_handle_t *)&c->deadline, on_timer_closed);
}
