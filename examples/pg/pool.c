/* pool.c: the connections of one I/O loop, and the requests waiting for
 * one.
 *
 * Each loop has its own pool (made in loop_init, closed in loop_fini),
 * so nothing here is shared between threads and nothing is locked: a
 * libuv handle belongs to one loop, and so does a connection driven by
 * one.
 *
 * Connections are opened lazily, one per waiting request, up to the pool
 * size: a loop that never serves /pg/ never connects. A request takes
 * an idle connection at once; else it waits in a FIFO queue, for a
 * connection being opened for it or for a busy one to come back. At
 * most `queue` requests may wait for busy ones: past that the request
 * is answered 503 with Retry-After (back-pressure) instead of piling up
 * memory and latency.
 *
 * A connection that breaks is dropped (conn.c) and its slot reconnects
 * when a request needs it. After a failed attempt no new one starts for
 * a back-off (100 ms doubling to 5 s, reset by a success); meanwhile a
 * request that nothing can serve (no idle connection, none lent out
 * that could come back, none connecting) is answered 503 at once: the
 * loop neither blocks nor keeps requests waiting for a database that is
 * down.
 *
 * Invariants (loop thread only):
 * - idle[] holds exactly the IDLE connections nobody has been lent;
 * - lent counts connections handed out and not yet put back;
 * - a waiter is in the queue, or its callback has run, or it was
 *   cancelled: never two of these;
 * - a waiter stays queued only while a connection may still come to it
 *   (lent > 0 or connecting > 0); otherwise it is told NULL.
 */
#include <stdlib.h>

#include "pg.h"

#define BACKOFF_MIN_MS 100
#define BACKOFF_MAX_MS 5000

static void pg_pool_on_connected(pg_loop_t *l, pg_conn_t *c);
static void pg_pool_on_connect_failed(pg_loop_t *l, pg_conn_t *c,
                                      const char *why);
static void pg_pool_on_idle_lost(pg_loop_t *l, pg_conn_t *c);
static void pg_pool_handle_closed(pg_loop_t *l);

pg_loop_t *pg_pool_new(uv_loop_t *uv, const pg_plugin_t *p) {
  pg_loop_t *l = calloc(1, sizeof(*l));

  if (l == NULL)
    return NULL;
  l->uv = uv;
  l->on_connected = pg_pool_on_connected;
  l->on_connect_failed = pg_pool_on_connect_failed;
  l->on_idle_lost = pg_pool_on_idle_lost;
  l->handle_closed = pg_pool_handle_closed;
  l->plugin = p;
  l->nconns = p->pool_size;
  l->conns = calloc(l->nconns, sizeof(*l->conns));
  l->idle = calloc(l->nconns, sizeof(*l->idle));
  if (l->conns == NULL || l->idle == NULL) {
    free(l->conns);
    free(l->idle);
    free(l);
    return NULL;
  }
  for (size_t i = 0; i < l->nconns; i++)
    pg_conn_init(&l->conns[i], l);
  return l;
}

/* ---- the wait queue ---- */

static void enqueue(pg_loop_t *l, pg_wait_t *w) {
  w->next = NULL;
  w->prev = l->tail;
  if (l->tail != NULL)
    l->tail->next = w;
  else
    l->head = w;
  l->tail = w;
  l->nwaiting++;
}

static void unlink_waiter(pg_loop_t *l, pg_wait_t *w) {
  if (w->prev != NULL)
    w->prev->next = w->next;
  else
    l->head = w->next;
  if (w->next != NULL)
    w->next->prev = w->prev;
  else
    l->tail = w->prev;
  w->next = w->prev = NULL;
  l->nwaiting--;
}

void pg_pool_cancel(pg_loop_t *l, pg_wait_t *w) {
  unlink_waiter(l, w);
}

/* ---- handing out ---- */

/* C is IDLE and nobody's: the oldest waiter gets it, else the stack. The
 * waiter is unlinked before its callback, which may call back in here. */
static void offer(pg_loop_t *l, pg_conn_t *c) {
  pg_wait_t *w = l->head;

  if (w == NULL) {
    l->idle[l->nidle++] = c;
    return;
  }
  unlink_waiter(l, w);
  l->lent++;
  w->cb(w, c);
}

/* Tells every waiter "unavailable" when no connection can come to it. */
static void fail_hopeless(pg_loop_t *l) {
  while (l->head != NULL && l->connecting == 0 && l->lent == 0) {
    pg_wait_t *w = l->head;
    unlink_waiter(l, w);
    w->cb(w, NULL);
  }
}

/* A connection attempt failed: no new one before the back-off ends. */
static void back_off(pg_loop_t *l, const char *why) {
  /* One warning per outage, not one per attempt. */
  if (l->backoff_ms == 0)
    spoke_log(SPOKE_LOG_WARN, "cannot connect to the database (retrying "
              "with back-off): %s", why);
  l->backoff_ms = l->backoff_ms == 0 ? BACKOFF_MIN_MS : 2 * l->backoff_ms;
  if (l->backoff_ms > BACKOFF_MAX_MS)
    l->backoff_ms = BACKOFF_MAX_MS;
  l->retry_at = uv_now(l->uv) + l->backoff_ms;
}

/* Starts connecting DOWN slots for waiters nothing is coming to yet,
 * unless a back-off is running. */
static void grow(pg_loop_t *l) {
  for (size_t i = 0; i < l->nconns && l->connecting < l->nwaiting; i++) {
    pg_conn_t *c = &l->conns[i];
    char why[256];
    int rc;
    if (c->state != PG_CONN_DOWN)
      continue;
    if (uv_now(l->uv) < l->retry_at)
      return;
    snprintf(why, sizeof(why), "out of memory");
    rc = pg_conn_connect(c, why, sizeof(why));
    if (rc != 0) {
      back_off(l, why); /* callers then fail_hopeless */
      return;
    }
    l->connecting++;
  }
}

int pg_pool_get(pg_loop_t *l, pg_wait_t *w, pg_conn_t **c) {
  if (l->nidle > 0) {
    *c = l->idle[--l->nidle];
    l->lent++;
    return 0;
  }
  enqueue(l, w);
  grow(l);
  /* The queue bound counts the requests no new connection is on its
   * way to: those wait for a busy one to come back. */
  if (l->nwaiting > l->connecting + l->plugin->queue_max) {
    unlink_waiter(l, w);
    return SPOKE_EBUSY;
  }
  if (l->connecting == 0 && l->lent == 0) {
    unlink_waiter(l, w); /* nothing will come: say so now */
    return SPOKE_EIO;
  }
  return 1;
}

void pg_pool_put(pg_loop_t *l, pg_conn_t *c) {
  l->lent--;
  if (c->state == PG_CONN_IDLE) {
    offer(l, c);
    return;
  }
  pg_conn_drop(c); /* lost (already DOWN), or given back mid-way */
  grow(l);
  fail_hopeless(l);
}

/* ---- what conn.c reports ---- */

static void pg_pool_on_connected(pg_loop_t *l, pg_conn_t *c) {
  l->connecting--;
  if (l->backoff_ms != 0)
    spoke_log(SPOKE_LOG_INFO, "database reachable again");
  l->backoff_ms = 0;
  l->retry_at = 0;
  offer(l, c);
}

static void pg_pool_on_connect_failed(pg_loop_t *l, pg_conn_t *c, const char *why) {
  (void)c;
  l->connecting--;
  back_off(l, why);
  fail_hopeless(l);
}

static void pg_pool_on_idle_lost(pg_loop_t *l, pg_conn_t *c) {
  for (size_t i = 0; i < l->nidle; i++) {
    if (l->idle[i] == c) {
      l->idle[i] = l->idle[--l->nidle];
      break;
    }
  }
  spoke_log(SPOKE_LOG_DEBUG, "an idle connection was lost: %s",
            PQerrorMessage(c->pq));
  pg_conn_drop(c); /* its slot reconnects when a request needs it */
}

/* ---- closing (loop_fini) ---- */

static void pg_pool_handle_closed(pg_loop_t *l) {
  if (--l->handles > 0 || !l->closing)
    return;
  free(l->idle);
  free(l->conns);
  free(l);
}

void pg_pool_close(pg_loop_t *l) {
  l->closing = 1;
  /* loop_fini comes after this version's last request on the loop, so
   * nobody waits and nothing is lent; fail any waiter all the same. */
  while (l->head != NULL) {
    pg_wait_t *w = l->head;
    unlink_waiter(l, w);
    w->cb(w, NULL);
  }
  l->nidle = 0;
  for (size_t i = 0; i < l->nconns; i++)
    pg_conn_close(&l->conns[i]);
  /* The last close callback frees L (pg_pool_handle_closed). */
}
