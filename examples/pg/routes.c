/* routes.c: the async routes, one request's path through the pool.
 *
 *   handler      parses, finds its loop's pool (spoke_loop_state) and
 *                asks it for a connection; returns at once
 *   on_conn      a connection came (now, or later from the wait queue)
 *   run          the query, preceded once per loop by creating the
 *                table /pg/query uses (CREATE TABLE IF NOT EXISTS under
 *                an advisory lock: concurrent creators would collide)
 *   on_result    the answer: the connection goes back to the pool first,
 *                then the request is completed
 *
 * Parameters are sent apart from the SQL text (PQsendQueryParams: $1,
 * $2), never pasted into it, so a value with quotes is just a value.
 *
 * The client going away. A request still waiting in the queue leaves
 * it and is completed at once (on_abort). A request whose query already
 * runs lets it run to its end (at most 60 s: ms is clamped) and is
 * completed then; the connection returns to the pool as after any
 * query. Cancelling would need PQcancel(), which blocks (a new
 * connection), for little gain here.
 *
 * Invariants: all of this runs on the request's loop thread. A job
 * lives in the request's memory, so once the request is completed the
 * job is gone: every path puts the connection back (and leaves the
 * queue) before completing, and nothing points to the job afterwards.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pg.h"

#define MAX_KEY 256
#define MAX_VALUE 65536

static const char SCHEMA_SQL[] =
    "SELECT pg_advisory_xact_lock(7463520); "
    "CREATE TABLE IF NOT EXISTS spoke_pg_kv "
    "(key text PRIMARY KEY, value text NOT NULL)";
static const char GET_SQL[] =
    "SELECT key, value FROM spoke_pg_kv WHERE key = $1";
static const char PUT_SQL[] =
    "INSERT INTO spoke_pg_kv (key, value) VALUES ($1, $2) "
    "ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value "
    "RETURNING key, value";

typedef enum { JOB_SLEEP, JOB_GET, JOB_PUT } job_kind_t;

typedef struct {
  pg_wait_t wait;        /* first: the pool hands back this pointer */
  spoke_request_t *req;
  pg_loop_t *loop;
  job_kind_t kind;
  int queued;            /* in the pool's wait queue */
  unsigned long ms;      /* JOB_SLEEP */
  char seconds[32];
  const char *params[2]; /* text parameters $1, $2 */
} job_t;

/* A failed statement: 400 for bad data (SQLSTATE class 22, such as a
 * value that is not UTF-8), else 500; the message says which. */
static void reply_sql_error(spoke_request_t *req, const PGresult *res) {
  const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
  const char *msg = PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY);
  int bad_data = state != NULL && strncmp(state, "22", 2) == 0;

  pg_reply_error(req, bad_data ? 400 : 500, msg != NULL ? msg : "error");
}

static void reply_row(spoke_request_t *req, const PGresult *res) {
  pg_json_t j = { 0 };
  int found = PQntuples(res) > 0;

  pg_json_lit(&j, "{\"key\":");
  if (found) {
    pg_json_str(&j, PQgetvalue(res, 0, 0));
    pg_json_lit(&j, ",\"value\":");
    pg_json_str(&j, PQgetvalue(res, 0, 1));
  } else {
    pg_json_str(&j, spoke_request_query_param(req, "key"));
    pg_json_lit(&j, ",\"value\":null");
  }
  pg_json_lit(&j, "}");
  pg_json_reply(req, found ? 200 : 404, &j);
}

/* ---- one request's steps ---- */

static void on_result(pg_conn_t *c, PGresult *res, void *arg) {
  job_t *job = arg;
  spoke_request_t *req = job->req;

  pg_pool_put(job->loop, c); /* first: the next waiter can have it now */
  if (res == NULL)
    pg_reply_error(req, 503, "lost the database connection");
  else if (PQresultStatus(res) != PGRES_TUPLES_OK)
    reply_sql_error(req, res);
  else if (job->kind == JOB_SLEEP)
    pg_reply_slept(req, job->ms, "async");
  else
    reply_row(req, res);
  if (res != NULL)
    PQclear(res);
}

static void send_query(job_t *job, pg_conn_t *c, const char *sql, int n,
                       pg_result_cb cb) {
  if (pg_conn_query(c, sql, n, job->params, cb, job) != 0) {
    pg_pool_put(job->loop, c);
    pg_reply_error(job->req, 503, "lost the database connection");
  }
}

static void send_main(job_t *job, pg_conn_t *c) {
  switch (job->kind) {
    case JOB_SLEEP: send_query(job, c, PG_SLEEP_SQL, 1, on_result); break;
    case JOB_GET: send_query(job, c, GET_SQL, 1, on_result); break;
    case JOB_PUT: send_query(job, c, PUT_SQL, 2, on_result); break;
  }
}

static void on_schema(pg_conn_t *c, PGresult *res, void *arg) {
  job_t *job = arg;

  if (res == NULL || PQresultStatus(res) != PGRES_COMMAND_OK) {
    pg_pool_put(job->loop, c);
    if (res == NULL)
      pg_reply_error(job->req, 503, "lost the database connection");
    else
      reply_sql_error(job->req, res);
    if (res != NULL)
      PQclear(res);
    return;
  }
  PQclear(res);
  job->loop->schema_ready = 1;
  send_main(job, c);
}

static void run(job_t *job, pg_conn_t *c) {
  if (job->kind != JOB_SLEEP && !job->loop->schema_ready)
    send_query(job, c, SCHEMA_SQL, 0, on_schema);
  else
    send_main(job, c);
}

/* The pool's answer to a queued request. */
static void on_conn(pg_wait_t *w, pg_conn_t *c) {
  job_t *job = (job_t *)w;

  job->queued = 0;
  if (c == NULL)
    pg_reply_error(job->req, 503, "database unavailable");
  else
    run(job, c);
}

static void on_abort(spoke_request_t *req) {
  job_t *job = spoke_request_data(req);

  if (job->queued) {
    pg_pool_cancel(job->loop, &job->wait);
    job->queued = 0;
    pg_reply_error(req, 503, "client gone"); /* discarded */
  }
  /* else a query runs: on_result completes the request. */
}

static int start(spoke_request_t *req, job_t *job) {
  pg_conn_t *c;
  int rc;

  job->req = req;
  job->loop = spoke_loop_state(req);
  if (job->loop == NULL)
    return pg_reply_error(req, 503, "no pool on this loop (spoke older "
                          "than SDK 1.4?)");
  spoke_request_set_data(req, job);
  if (spoke_request_on_abort(req, on_abort) == SPOKE_ECANCELED)
    return pg_reply_error(req, 503, "client gone");
  job->wait.cb = on_conn;
  rc = pg_pool_get(job->loop, &job->wait, &c);
  if (rc == 0)
    run(job, c);
  else if (rc == 1)
    job->queued = 1;
  else if (rc == SPOKE_EBUSY)
    return pg_reply_error(req, 503, "too many requests wait for the "
                          "database");
  else
    return pg_reply_error(req, 503, "database unavailable");
  return 0;
}

/* ---- handlers ---- */

int pg_route_async(spoke_request_t *req) {
  job_t *job = spoke_request_alloc(req, sizeof(*job));

  if (job == NULL)
    return SPOKE_ENOMEM;
  memset(job, 0, sizeof(*job));
  if (pg_parse_ms(req, &job->ms) != 0)
    return pg_reply_error(req, 400, "ms must be a number of milliseconds");
  job->kind = JOB_SLEEP;
  pg_seconds(job->seconds, sizeof(job->seconds), job->ms);
  job->params[0] = job->seconds;
  return start(req, job);
}

int pg_route_query(spoke_request_t *req) {
  job_t *job = spoke_request_alloc(req, sizeof(*job));
  const char *key = spoke_request_query_param(req, "key");

  if (job == NULL)
    return SPOKE_ENOMEM;
  memset(job, 0, sizeof(*job));
  if (key == NULL || key[0] == '\0' || strlen(key) > MAX_KEY)
    return pg_reply_error(req, 400, "key must be 1 to 256 bytes");
  job->params[0] = key;
  job->kind = JOB_GET;
  if (strcmp(spoke_request_method(req), "POST") == 0) {
    size_t len;
    const char *body = spoke_request_body(req, &len);
    char *value;
    if (len > MAX_VALUE)
      return pg_reply_error(req, 413, "the value is over 64 KiB");
    if (memchr(body, '\0', len) != NULL)
      return pg_reply_error(req, 400, "the value holds a NUL byte");
    value = spoke_request_alloc(req, len + 1); /* libpq wants a C string */
    if (value == NULL)
      return SPOKE_ENOMEM;
    memcpy(value, body, len);
    value[len] = '\0';
    job->params[1] = value;
    job->kind = JOB_PUT;
  }
  return start(req, job);
}
