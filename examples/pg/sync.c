/* sync.c: the counter-example, /pg/sync: the same query, blocking; and
 * /pg/offload, the blocking call handed to the workers by an async
 * handler (spoke_offload, SDK 1.4).
 *
 * A SPOKE_SYNC handler runs on a worker-pool thread, where it may
 * block, so it can call libpq the plain way: PQexecParams() sends the
 * query and waits for the answer. It is simple, and right for a library
 * that has no non-blocking API. The price: the worker is held for the
 * whole query, so at most --workers queries run at once and the rest
 * queue behind them (compare /pg/async, where one loop thread keeps as
 * many queries in flight as its pool has connections).
 *
 * /pg/offload is the shape for an async handler that needs one blocking
 * step: spoke_offload() runs it on a worker and calls back on the loop.
 * It is bounded by the workers just the same; its use is a blocking
 * library inside an otherwise async flow.
 *
 * Connections: one mutex-guarded list of idle PGconn, shared by every
 * worker. A worker takes one (or connects, blocking, when the list is
 * empty) and puts it back after its query; as at most --workers
 * handlers run at once, the list never holds more. Why not one
 * connection per worker thread (thread-local)? The threads are the
 * server's, not the plugin's: a thread-local connection could not be
 * closed by fini (it runs on the control thread), and a key destructor
 * would run at thread exit, possibly after a reload unmapped this code.
 * A list the version owns is closed by its own fini.
 *
 * A connection whose query failed because the server went away is
 * PQfinish()ed instead of put back; the next request connects anew.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

#include "pg.h"


void pg_sync_init(pg_sync_pool_t *s) {
  pthread_mutex_init(&s->lock, NULL);
  s->idle = NULL;
  s->nidle = s->cap = 0;
  s->down = 0;
}

void pg_sync_fini(pg_sync_pool_t *s) {
  for (size_t i = 0; i < s->nidle; i++)
    PQfinish(s->idle[i]);
  free(s->idle);
  pthread_mutex_destroy(&s->lock);
}

/* An idle connection, or a new one (blocking); NULL on failure. */
static PGconn *sync_get(pg_plugin_t *p) {
  pg_sync_pool_t *s = &p->sync;
  PGconn *c = NULL;
  const char *keys[4], *values[4];
  int ok, was_down;

  pthread_mutex_lock(&s->lock);
  if (s->nidle > 0)
    c = s->idle[--s->nidle];
  pthread_mutex_unlock(&s->lock);
  if (c != NULL)
    return c;
  pg_conn_params(p, keys, values);
  c = PQconnectdbParams(keys, values, 1);
  ok = c != NULL && PQstatus(c) == CONNECTION_OK;
  /* One warning per outage, not one per request. */
  pthread_mutex_lock(&s->lock);
  was_down = s->down;
  s->down = !ok;
  pthread_mutex_unlock(&s->lock);
  if (!ok && !was_down)
    spoke_log(SPOKE_LOG_WARN, "sync: cannot connect to the database: %s",
              c != NULL ? PQerrorMessage(c) : "out of memory");
  else if (ok && was_down)
    spoke_log(SPOKE_LOG_INFO, "sync: database reachable again");
  if (!ok) {
    PQfinish(c);
    return NULL;
  }
  PQsetNoticeReceiver(c, pg_notice, NULL);
  return c;
}

static void sync_put(pg_plugin_t *p, PGconn *c) {
  pg_sync_pool_t *s = &p->sync;

  if (PQstatus(c) != CONNECTION_OK) {
    PQfinish(c);
    return;
  }
  pthread_mutex_lock(&s->lock);
  if (s->nidle == s->cap) {
    size_t cap = s->cap ? 2 * s->cap : 16;
    PGconn **idle = realloc(s->idle, cap * sizeof(*idle));
    if (idle == NULL) {
      pthread_mutex_unlock(&s->lock);
      PQfinish(c);
      return;
    }
    s->idle = idle;
    s->cap = cap;
  }
  s->idle[s->nidle++] = c;
  pthread_mutex_unlock(&s->lock);
}

/* SELECT pg_sleep on a blocking connection: waits, holding the thread.
 * 0, or -1 when the database is unavailable. */
static int blocking_sleep(pg_plugin_t *p, unsigned long ms) {
  char seconds[32];
  const char *params[1] = { seconds };
  PGconn *c = sync_get(p);
  PGresult *res;
  int ok;

  if (c == NULL)
    return -1;
  pg_seconds(seconds, sizeof(seconds), ms);
  res = PQexecParams(c, PG_SLEEP_SQL, 1, NULL, params, NULL, NULL, 0);
  ok = PQresultStatus(res) == PGRES_TUPLES_OK;
  PQclear(res);
  if (!ok) {
    /* The session may be unusable (the server went away): drop it. */
    spoke_log(SPOKE_LOG_DEBUG, "pg_sleep failed: %s", PQerrorMessage(c));
    PQfinish(c);
    return -1;
  }
  sync_put(p, c);
  return 0;
}

/* SPOKE_SYNC: on a worker thread, blocking is allowed. */
int pg_route_sync(spoke_request_t *req) {
  unsigned long ms;

  if (pg_parse_ms(req, &ms) != 0)
    return pg_reply_error(req, 400, "ms must be a number of milliseconds");
  if (blocking_sleep(spoke_plugin_state(req), ms) != 0)
    return pg_reply_error(req, 503, "database unavailable");
  return pg_reply_slept(req, ms, "sync");
}

/* ---- the same blocking call from an async handler: spoke_offload ---- */

typedef struct {
  pg_plugin_t *plugin;
  unsigned long ms;
  int failed;
} offload_t;

/* On a worker thread: may block; must not touch the request. */
static void offload_work(void *arg) {
  offload_t *o = arg;

  o->failed = blocking_sleep(o->plugin, o->ms) != 0;
}

/* Back on the request's loop thread. STATUS is SPOKE_ECANCELED when the
 * client left meanwhile: complete all the same (it is discarded). */
static void offload_done(spoke_request_t *req, void *arg, int status) {
  offload_t *o = arg; /* request memory: nothing to free */

  (void)status;
  if (o->failed)
    pg_reply_error(req, 503, "database unavailable");
  else
    pg_reply_slept(req, o->ms, "offload");
}

/* SPOKE_ASYNC: the loop thread must not block, so the blocking call is
 * handed to the worker pool and the answer comes back to the loop. */
int pg_route_offload(spoke_request_t *req) {
  offload_t *o = spoke_request_alloc(req, sizeof(*o));
  int rc;

  if (o == NULL)
    return SPOKE_ENOMEM;
  if (pg_parse_ms(req, &o->ms) != 0)
    return pg_reply_error(req, 400, "ms must be a number of milliseconds");
  o->plugin = spoke_plugin_state(req);
  o->failed = 0;
  rc = spoke_offload(req, offload_work, o, offload_done);
  if (rc == SPOKE_EBUSY)
    return pg_reply_error(req, 503, "the worker pool is full");
  if (rc != 0)
    return pg_reply_error(req, 503, spoke_strerror(rc));
  return 0;
}
