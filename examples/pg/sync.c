/* sync.c: the counter-example, /pg/sync: the same query, blocking.
 *
 * A SPOKE_SYNC handler runs on a worker-pool thread, where it may
 * block, so it can call libpq the plain way: PQexecParams() sends the
 * query and waits for the answer. It is simple, and right for a library
 * that has no non-blocking API. The price: the worker is held for the
 * whole query, so at most --workers queries run at once and the rest
 * queue behind them (compare /pg/async, where one loop thread keeps as
 * many queries in flight as its pool has connections).
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

#define DEFAULT_MS 1000UL
#define MAX_MS 60000UL

int pg_parse_ms(spoke_request_t *req, unsigned long *ms) {
  const char *s = spoke_request_query_param(req, "ms");
  char *end;

  if (s == NULL) {
    *ms = DEFAULT_MS;
    return 0;
  }
  /* strtoul alone would take " 5", "+5" and "-5" (as a huge value). */
  if (*s < '0' || *s > '9')
    return -1;
  errno = 0;
  *ms = strtoul(s, &end, 10);
  if (*end != '\0')
    return -1;
  if (errno == ERANGE || *ms > MAX_MS)
    *ms = MAX_MS;
  return 0;
}

void pg_seconds(char *buf, size_t size, unsigned long ms) {
  snprintf(buf, size, "%lu.%03lu", ms / 1000, ms % 1000);
}

void pg_sync_init(pg_sync_pool_t *s) {
  pthread_mutex_init(&s->lock, NULL);
  s->idle = NULL;
  s->nidle = s->cap = 0;
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

  pthread_mutex_lock(&s->lock);
  if (s->nidle > 0)
    c = s->idle[--s->nidle];
  pthread_mutex_unlock(&s->lock);
  if (c != NULL)
    return c;
  pg_conn_params(p, keys, values);
  c = PQconnectdbParams(keys, values, 1);
  if (c != NULL && PQstatus(c) != CONNECTION_OK) {
    spoke_log(SPOKE_LOG_WARN, "cannot connect to the database: %s",
              PQerrorMessage(c));
    PQfinish(c);
    c = NULL;
  }
  if (c != NULL)
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

/* SPOKE_SYNC: on a worker thread, blocking is allowed. */
int pg_route_sync(spoke_request_t *req) {
  pg_plugin_t *p = spoke_plugin_state(req);
  unsigned long ms;
  char seconds[32], body[64];
  const char *params[1] = { seconds };
  PGconn *c;
  PGresult *res;
  int ok, n;

  if (pg_parse_ms(req, &ms) != 0)
    return pg_reply_error(req, 400, "ms must be a number of milliseconds");
  c = sync_get(p);
  if (c == NULL)
    return pg_reply_error(req, 503, "database unavailable");
  pg_seconds(seconds, sizeof(seconds), ms);
  res = PQexecParams(c, "SELECT pg_sleep($1)", 1, NULL, params, NULL, NULL,
                     0); /* waits here, holding this worker */
  ok = PQresultStatus(res) == PGRES_TUPLES_OK;
  PQclear(res);
  if (!ok && PQstatus(c) == CONNECTION_OK) {
    /* A failure the session survived is still worth a look. */
    spoke_log(SPOKE_LOG_WARN, "pg_sleep failed: %s", PQerrorMessage(c));
  }
  if (!ok) {
    /* The session may be unusable (the server went away): do not keep
     * it. A 503 tells the client to try again. */
    PQfinish(c);
    return pg_reply_error(req, 503, "database unavailable");
  }
  sync_put(p, c);
  n = snprintf(body, sizeof(body), "{\"slept_ms\":%lu,\"mode\":\"sync\"}", ms);
  spoke_response_header(req, "Content-Type", "application/json");
  return spoke_response_send(req, body, (size_t)n);
}
