/* pg.c: PostgreSQL from spoke, awaited on the event loop.
 *
 *   GET  /pg/async?ms=N    SELECT pg_sleep(N/1000) on the loop  (ASYNC)
 *   GET  /pg/sync?ms=N     the same, blocking, on a worker      (SYNC)
 *   GET  /pg/offload?ms=N  the blocking call, handed to a worker
 *                          by an async handler (spoke_offload)  (ASYNC)
 *   POST /pg/query?key=K   stores the body as K's value         (ASYNC)
 *   GET  /pg/query?key=K   {"key":K,"value":V}, 404 if unset    (ASYNC)
 *
 * The sleeping routes answer {"slept_ms":N,"mode":"async"} (or "sync",
 * "offload"); N is clamped to 0..60000 and must be decimal digits (else
 * 400).
 *
 * Why async. A query is mostly waiting: for the network, for the
 * server. A SPOKE_SYNC handler waits on a worker thread, so --workers
 * bounds how many queries run at once, and a slow database soon has
 * every worker blocked (sync.c shows it). An async handler sends the
 * query, returns, and lets the I/O loop wake it when the answer's bytes
 * arrive: one loop thread keeps as many queries in flight as it has
 * connections, and goes on serving other routes meanwhile. libpq can be
 * driven that way: conn.c watches PQsocket() with a uv_poll_t and calls
 * libpq's non-blocking functions when the socket is ready.
 *
 * Per-loop resources (SDK 1.4). A connection driven by a loop's poll
 * belongs to that loop, so each loop gets its own pool (pool.c):
 * loop_init makes it on the loop's thread, without connecting (it must
 * not block); handlers find it with spoke_loop_state(req); loop_fini
 * closes it on the same thread once this version takes no more requests
 * there. No lock is needed, because no pool is shared.
 *
 * Threads, in short: init and fini run on the control thread; loop_init,
 * loop_fini, the async handlers and every libuv callback on a loop
 * thread (each pool touched only by its own); /pg/sync on worker
 * threads, whose connections sit in one mutex-guarded list. The
 * version's state below is written by init only, then read-only.
 *
 * Reload. A new version gets its own pools (loop_init runs for it on
 * every loop) while the old version finishes its requests; then the old
 * version's loop_fini closes its connections, and its fini closes its
 * sync connections. Every connection is named (application_name) after
 * its version and an init-time token, so pg_stat_activity tells versions
 * apart: `spoke-pg 1.0.0 <pid>.<token>`. No spoke_plugin_hold() is
 * needed: every libuv handle belongs to a pool, is closed in loop_fini
 * (whose close callbacks run before the code is unmapped), and no query
 * runs without a request, which keeps the version loaded by itself.
 *
 * Config ([plugin pg] in the server's config file):
 *   conninfo  a libpq connection string or URI; absent: libpq's
 *             environment (PGHOST, PGPORT, PGUSER, PGDATABASE, ...)
 *   pool      connections per loop (default 64; 1..1024)
 *   queue     requests that may wait for a connection, per loop
 *             (default 1024; 0..1000000; past it: 503)
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "pg.h"

#define VERSION "1.0.0"

/* Reads config KEY as a number in MIN..MAX into *V (DEF when absent).
 * -1 with a log line when it is not. */
static int config_size(const char *key, size_t def, size_t min, size_t max,
                       size_t *v) {
  const char *s = spoke_config(key);
  char *end;
  unsigned long long n;

  if (s == NULL) {
    *v = def;
    return 0;
  }
  errno = 0;
  n = strtoull(s, &end, 10);
  if (*s < '0' || *s > '9' || *end != '\0' || errno != 0 || n < min ||
      n > max) {
    spoke_log(SPOKE_LOG_ERROR, "%s = %s: want a number from %zu to %zu",
              key, s, min, max);
    return -1;
  }
  *v = (size_t)n;
  return 0;
}

/* A token that tells this loaded version's connections from others. */
static unsigned int make_token(void) {
  unsigned int t;

  if (getrandom(&t, sizeof(t), GRND_NONBLOCK) != (ssize_t)sizeof(t))
    t = (unsigned int)time(NULL) ^ (unsigned int)(uintptr_t)&t;
  return t;
}

static int pg_init(const spoke_host_t *host, void **state) {
  pg_plugin_t *p;
  const char *conninfo = spoke_config("conninfo");

  (void)host;
  if (!PQisthreadsafe()) {
    spoke_log(SPOKE_LOG_ERROR, "this libpq is not thread-safe");
    return SPOKE_EINIT;
  }
  p = calloc(1, sizeof(*p));
  if (p == NULL)
    return SPOKE_ENOMEM;
  p->conninfo = conninfo != NULL ? conninfo : "";
  if (config_size("pool", 64, 1, 1024, &p->pool_size) != 0 ||
      config_size("queue", 1024, 0, 1000000, &p->queue_max) != 0) {
    free(p);
    return SPOKE_EINVAL;
  }
  snprintf(p->app_name, sizeof(p->app_name), "spoke-pg %s %ld.%08x",
           VERSION, (long)getpid(), make_token());
  pg_sync_init(&p->sync);
  spoke_log(SPOKE_LOG_INFO, "%zu connections per loop, queue %zu, "
            "application_name '%s'", p->pool_size, p->queue_max, p->app_name);
  *state = p;
  return 0;
}

static void pg_fini(void *state) {
  pg_plugin_t *p = state;

  pg_sync_fini(&p->sync);
  free(p);
}

/* On each loop's thread, before its first request for this version. */
static int pg_loop_init(const spoke_host_t *host, uv_loop_t *loop,
                        void *state, void **loop_state) {
  pg_loop_t *l = pg_pool_new(loop, state);

  (void)host;
  if (l == NULL)
    return SPOKE_ENOMEM;
  *loop_state = l;
  return 0;
}

/* On each loop's thread, after its last request for this version. */
static void pg_loop_fini(uv_loop_t *loop, void *state, void *loop_state) {
  (void)loop;
  (void)state;
  pg_pool_close(loop_state);
}

static const spoke_route_t routes[] = {
  { "GET", "/pg/async", SPOKE_ASYNC, pg_route_async },
  { "GET", "/pg/sync", SPOKE_SYNC, pg_route_sync },
  { "GET", "/pg/offload", SPOKE_ASYNC, pg_route_offload },
  { "GET", "/pg/query", SPOKE_ASYNC, pg_route_query },
  { "POST", "/pg/query", SPOKE_ASYNC, pg_route_query },
};

SPOKE_PLUGIN(.name = "pg", .version = VERSION, SPOKE_ROUTES(routes),
             .init = pg_init, .fini = pg_fini, .loop_init = pg_loop_init,
             .loop_fini = pg_loop_fini);
