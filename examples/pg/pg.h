/* pg.h: what the files of the pg example plugin share.
 *
 *   pg.c      the descriptor, init/fini, loop_init/loop_fini, config
 *   routes.c  the async routes (/pg/async, /pg/query)
 *   sync.c    the blocking counter-example (/pg/sync), its pool, and
 *             the same call offloaded from an async handler
 *   pool.c    the per-loop pool: idle connections, the bounded wait
 *             queue, reconnecting with a back-off
 *   conn.c    one non-blocking libpq connection driven by a uv_poll_t
 *   params.c  libpq's keywords for a connection, and its notices
 *   reply.c   JSON replies and ?ms=N, shared by the routes
 *
 * Calls go down that list, never up (tools/check_layers.py refuses a
 * circle): conn.c reports to its pool through the function pointers
 * pool.c puts in pg_loop_t, not by name.
 *
 * Ownership and threads, in one place:
 *
 *   pg_plugin_t  one per loaded version; init makes it, fini frees it.
 *                Read-only after init (any thread), except .sync, which
 *                carries its own mutex.
 *   pg_loop_t    one per I/O loop per version; loop_init makes it,
 *                loop_fini closes it, the last close callback of its
 *                libuv handles frees it. Loop thread only: nothing in
 *                it is locked, and nothing else points into it.
 *   pg_conn_t    lives in its pg_loop_t's array; loop thread only.
 *   pg_wait_t    lives in a request's memory (spoke_request_alloc);
 *                linked into the pool's queue only while it waits.
 */
#ifndef PG_H
#define PG_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include <libpq-fe.h>
#include <uv.h>

#include <spoke.h>

typedef struct pg_loop_s pg_loop_t;
typedef struct pg_conn_s pg_conn_t;
typedef struct pg_wait_s pg_wait_t;

/* ---- the version's state (pg.c, sync.c) ---- */

/* Blocking connections for SPOKE_SYNC handlers; see sync.c. */
typedef struct {
  pthread_mutex_t lock; /* guards the members below */
  PGconn **idle;        /* connections no worker is using */
  size_t nidle, cap;
  int down;             /* the last connection attempt failed */
} pg_sync_pool_t;

typedef struct {
  const char *conninfo; /* config `conninfo`; "" means libpq's PG* env */
  size_t pool_size;     /* async connections per loop (config `pool`) */
  size_t queue_max;     /* requests allowed to wait per loop (`queue`) */
  char app_name[64];    /* application_name of every connection */
  pg_sync_pool_t sync;
} pg_plugin_t;

/* params.c. libpq's connection keywords for this plugin: conninfo
 * expanded first, then application_name (which wins). */
void pg_conn_params(const pg_plugin_t *p, const char *keys[4],
                    const char *values[4]);

/* libpq's notices ("relation already exists, skipping") go to the
 * server's log at debug level instead of libpq's stderr. */
void pg_notice(void *arg, const PGresult *res);

/* ---- one async connection (conn.c) ---- */

typedef enum {
  PG_CONN_DOWN,       /* no PGconn; may be (re)connected */
  PG_CONN_CONNECTING, /* PQconnectPoll in progress */
  PG_CONN_IDLE,       /* connected, in the pool or just handed out */
  PG_CONN_BUSY        /* a query is running */
} pg_conn_state_t;

/* The end of a query, on the loop thread. RES is the first error result
 * or else the last result (the callee PQclear()s it); NULL when the
 * connection was lost, which leaves it PG_CONN_DOWN. */
typedef void (*pg_result_cb)(pg_conn_t *c, PGresult *res, void *arg);

struct pg_conn_s {
  pg_loop_t *loop;       /* the pool that owns it */
  pg_conn_state_t state;
  PGconn *pq;            /* NULL when DOWN */
  uv_poll_t *poll;       /* watches PQsocket(pq); NULL when none. Freed
                            in its close callback, so it is its own
                            allocation: libpq may change sockets */
  int poll_fd;           /* the fd .poll was made for */
  uv_timer_t deadline;   /* bounds a connection attempt */
  pg_result_cb cb;       /* BUSY: who gets the result ... */
  void *arg;
  PGresult *res;         /* ... and what is kept of it so far */
};

/* Readies C (its timer) on L's loop. Counts one handle in L. */
void pg_conn_init(pg_conn_t *c, pg_loop_t *l);
/* DOWN -> CONNECTING, without waiting. The outcome comes later through
 * the loop's on_connected or on_connect_failed. 0, or a negative code
 * (C stays DOWN, no callback) with the reason in WHY (N bytes). */
int pg_conn_connect(pg_conn_t *c, char *why, size_t n);
/* IDLE -> BUSY: sends SQL with N text PARAMS. N == 0 sends it as a
 * simple query, which may hold several statements. CB runs once, later.
 * 0, or a negative code (no callback; C is DOWN if it was lost). */
int pg_conn_query(pg_conn_t *c, const char *sql, int n,
                  const char *const *params, pg_result_cb cb, void *arg);
/* Any state -> DOWN: stops watching the socket, then closes it. */
void pg_conn_drop(pg_conn_t *c);
/* For loop_fini: drops C and closes its timer. */
void pg_conn_close(pg_conn_t *c);

/* ---- the per-loop pool (pool.c) ---- */

/* A request waiting for a connection. CB gets it, or NULL when the
 * database cannot be reached now. */
struct pg_wait_s {
  void (*cb)(pg_wait_t *w, pg_conn_t *c);
  pg_wait_t *next, *prev;
};

struct pg_loop_s {
  uv_loop_t *uv;
  const pg_plugin_t *plugin;
  pg_conn_t *conns;         /* pool_size of them */
  size_t nconns;
  pg_conn_t **idle;         /* stack of IDLE connections nobody has */
  size_t nidle;
  size_t connecting;        /* connections in PG_CONN_CONNECTING */
  size_t lent;              /* connections handed out, not yet put back */
  pg_wait_t *head, *tail;   /* the wait queue, oldest first */
  size_t nwaiting;
  uint64_t retry_at;        /* uv_now() before which no connect starts */
  uint64_t backoff_ms;      /* the next back-off; 0 while all is well */
  int schema_ready;         /* the kv table is known to exist */
  size_t handles;           /* open libuv handles (timers and polls) */
  int closing;              /* loop_fini ran: free on the last close */
  /* How conn.c reports to the pool, set by pg_pool_new: */
  void (*on_connected)(pg_loop_t *l, pg_conn_t *c);
  void (*on_connect_failed)(pg_loop_t *l, pg_conn_t *c, const char *why);
  void (*on_idle_lost)(pg_loop_t *l, pg_conn_t *c); /* an IDLE one broke */
  void (*handle_closed)(pg_loop_t *l); /* one of its handles closed */
};

/* loop_init's part: NULL when out of memory. Opens no connection. */
pg_loop_t *pg_pool_new(uv_loop_t *uv, const pg_plugin_t *p);
/* loop_fini's part: closes every connection; L frees itself once the
 * last of its handles has closed. */
void pg_pool_close(pg_loop_t *l);

/* 0 and *C set: a connection, now. 1: W is queued and W->cb comes
 * later. SPOKE_EBUSY: the wait queue is full. SPOKE_EIO: the database
 * is unreachable and no connection is on its way. */
int pg_pool_get(pg_loop_t *l, pg_wait_t *w, pg_conn_t **c);
/* Gives back a connection pg_pool_get (or a wait callback) lent: an
 * IDLE one serves the next waiter, a DOWN one is reconnected later. */
void pg_pool_put(pg_loop_t *l, pg_conn_t *c);
/* A queued W leaves the queue (its client went away); no callback. */
void pg_pool_cancel(pg_loop_t *l, pg_wait_t *w);

/* ---- routes (routes.c, sync.c) ---- */

int pg_route_async(spoke_request_t *req);
int pg_route_query(spoke_request_t *req);
int pg_route_sync(spoke_request_t *req);
int pg_route_offload(spoke_request_t *req);

/* ---- reply.c ---- */

/* ?ms=N as milliseconds clamped to 0..60000 (1000 when absent). 0, or
 * -1 when N is not decimal digits. */
int pg_parse_ms(spoke_request_t *req, unsigned long *ms);
/* "1.500": MS as seconds, pg_sleep's argument. */
void pg_seconds(char *buf, size_t size, unsigned long ms);
/* The query behind every sleep route: $1 is pg_seconds' text. */
#define PG_SLEEP_SQL "SELECT pg_sleep($1)"
/* Answers 200 {"slept_ms":MS,"mode":MODE}. */
int pg_reply_slept(spoke_request_t *req, unsigned long ms, const char *mode);
/* Answers STATUS with {"error":MSG}; 503s add Retry-After: 1. */
int pg_reply_error(spoke_request_t *req, int status, const char *msg);

/* A JSON body being built; out of memory is remembered, not fatal. */
typedef struct {
  char *p;
  size_t len, cap;
  int failed;
} pg_json_t;
void pg_json_put(pg_json_t *j, const char *s, size_t n);
void pg_json_lit(pg_json_t *j, const char *s);
/* S as a JSON string (quotes, backslashes and controls escaped). */
void pg_json_str(pg_json_t *j, const char *s);
/* Sends J as STATUS (500 if building it ran out of memory) and frees
 * it; 503s add Retry-After: 1. */
int pg_json_reply(spoke_request_t *req, int status, pg_json_t *j);

/* sync.c */
void pg_sync_init(pg_sync_pool_t *s);
void pg_sync_fini(pg_sync_pool_t *s);

#endif /* PG_H */
