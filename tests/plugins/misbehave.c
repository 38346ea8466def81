/* misbehave.c: a fixture plugin whose routes each make one plugin mistake
 * or use one SDK feature, for the integration tests.
 *
 *   GET /mis/nocomplete     SYNC, returns 0 without completing: 500
 *   GET /mis/twice          ASYNC, sends "first", then sends "second"; the
 *                           second call must return SPOKE_EALREADY (logged)
 *   GET /mis/error          ASYNC, returns SPOKE_EHANDLER uncompleted: 500
 *   GET /mis/thread?ms=N    ASYNC, a detached thread sleeps N ms (default
 *                           50) and sends "from thread"
 *   GET /mis/stream         SYNC, streams "one\n" "two\n" "three\n"
 *   GET /mis/stream-async   ASYNC, the same chunks from a detached thread
 *   GET /mis/abort          ASYNC, completes only when the client leaves;
 *                           the abort callback bumps a counter and sends
 *                           (the server discards that response)
 *   GET /mis/aborts         ASYNC, the abort counter: "N\n"
 *   GET /mis/badheader      ASYNC, tries a header value with CRLF in it;
 *                           200 with spoke_err_name() of that call
 *   GET /mis/params/:id/<rest>
 *                           ASYNC, "id=<id> rest=<rest>", <rest> being the
 *                           trailing wildcard (route param "*")
 *   GET /mis/query?a=X      ASYNC, "a=<X>" ("(null)" when a is absent)
 *   GET /mis/path/<rest>    ASYNC, the body is spoke_request_path(): the
 *                           path as the server normalized it
 *   GET /mis/after-end      ASYNC, sends "done", then calls
 *                           spoke_response_write(), which must return
 *                           SPOKE_EALREADY (logged either way)
 *   GET /mis/nobody?code=N  ASYNC, status N (default 204) and a body the
 *                           core must drop (no content for 204 and 304)
 *   GET /mis/badstatus?code=N
 *                           ASYNC, calls spoke_response_status(req, N)
 *                           (default 42), which must fail for N outside
 *                           200..599; 200 with spoke_err_name() of it
 *   GET /mis/big?kb=N       ASYNC, a detached thread streams N KiB
 *                           (default 1024) of 'x' in 16 KiB chunks, then
 *                           ends; it stops early when a write fails (the
 *                           client left) and waits and retries on
 *                           SPOKE_EBUSY
 *   GET /mis/timer-thread   ASYNC, a detached thread calls
 *                           spoke_timer_start(), which must refuse
 *                           (SPOKE_ETHREAD: loop thread only); 200 with
 *                           spoke_err_name() of that call
 *   GET /mis/log?msg=X      ASYNC, logs "mis/log: X" at info level and
 *                           sends "ok" (a marker in the server's log)
 *
 * Threading: a request handed to a thread belongs to that thread from then
 * on; the handler returns without touching it again. The abort counter is
 * atomic because abort callbacks run on every loop.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <spoke.h>

static atomic_ulong aborts;

static int send_text(spoke_request_t *req, const char *text) {
  spoke_response_header(req, "Content-Type", "text/plain");
  return spoke_response_send(req, text, strlen(text));
}

static void sleep_ms(unsigned long ms) {
  struct timespec ts = { (time_t)(ms / 1000), (long)(ms % 1000) * 1000000L };

  while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
    ;
}

/* Starts FN(ARG) on a detached thread. 0 or SPOKE_EHANDLER. */
static int spawn(void *(*fn)(void *), void *arg) {
  pthread_t t;
  pthread_attr_t attr;
  int rc;

  if (pthread_attr_init(&attr) != 0)
    return SPOKE_EHANDLER;
  pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
  rc = pthread_create(&t, &attr, fn, arg);
  pthread_attr_destroy(&attr);
  return rc == 0 ? 0 : SPOKE_EHANDLER;
}

static int mis_nocomplete(spoke_request_t *req) {
  (void)req;
  return 0;
}

/* Breaks the rule that a completed request is not touched again, on
 * purpose: the host must answer SPOKE_EALREADY, not crash. The request is
 * still alive here because its async handler has not returned yet. */
static int mis_twice(spoke_request_t *req) {
  int rc;

  send_text(req, "first");
  rc = spoke_response_send(req, "second", 6);
  if (rc == SPOKE_EALREADY)
    spoke_log(SPOKE_LOG_INFO, "mis/twice: second send returned %s",
              spoke_err_name(rc));
  else
    spoke_log(SPOKE_LOG_ERROR,
              "mis/twice: second send returned %s, expected SPOKE_EALREADY",
              spoke_err_name(rc));
  return 0;
}

static int mis_error(spoke_request_t *req) {
  (void)req;
  return SPOKE_EHANDLER;
}

typedef struct {
  spoke_request_t *req;
  unsigned long ms;
} thread_job_t;

static void *thread_main(void *arg) {
  thread_job_t *job = arg;

  sleep_ms(job->ms);
  /* job lives in the request's arena: read it before completing. */
  send_text(job->req, "from thread");
  return NULL;
}

static int mis_thread(spoke_request_t *req) {
  const char *s = spoke_request_query_param(req, "ms");
  thread_job_t *job = spoke_request_alloc(req, sizeof(*job));

  if (job == NULL)
    return SPOKE_ENOMEM;
  job->req = req;
  job->ms = s != NULL ? strtoul(s, NULL, 10) : 50;
  if (job->ms > 60000)
    job->ms = 60000;
  return spawn(thread_main, job);
}

static int stream_chunks(spoke_request_t *req) {
  static const char *const chunks[] = { "one\n", "two\n", "three\n" };
  int rc;

  spoke_response_header(req, "Content-Type", "text/plain");
  for (size_t i = 0; i < sizeof(chunks) / sizeof(chunks[0]); i++) {
    rc = spoke_response_write(req, chunks[i], strlen(chunks[i]));
    if (rc != 0) {
      spoke_response_end(req); /* complete it anyway */
      return rc;
    }
  }
  return spoke_response_end(req);
}

static int mis_stream(spoke_request_t *req) {
  return stream_chunks(req);
}

static void *stream_main(void *arg) {
  stream_chunks(arg);
  return NULL;
}

static int mis_stream_async(spoke_request_t *req) {
  return spawn(stream_main, req);
}

static void on_abort(spoke_request_t *req) {
  atomic_fetch_add(&aborts, 1);
  send_text(req, "aborted"); /* accepted and discarded */
}

static int mis_abort(spoke_request_t *req) {
  return spoke_request_on_abort(req, on_abort);
}

static int mis_aborts(spoke_request_t *req) {
  char body[32];

  snprintf(body, sizeof(body), "%lu\n", atomic_load(&aborts));
  return send_text(req, body);
}

static int mis_badheader(spoke_request_t *req) {
  int rc = spoke_response_header(req, "X-Bad", "a\r\nInjected: 1");

  return send_text(req, spoke_err_name(rc));
}

static const char *or_null(const char *s) {
  return s != NULL ? s : "(null)";
}

static int mis_params(spoke_request_t *req) {
  const char *id = or_null(spoke_request_param(req, "id"));
  const char *rest = or_null(spoke_request_param(req, "*"));
  int len = snprintf(NULL, 0, "id=%s rest=%s", id, rest);
  char *body = spoke_request_alloc(req, (size_t)len + 1);

  if (body == NULL)
    return SPOKE_ENOMEM;
  snprintf(body, (size_t)len + 1, "id=%s rest=%s", id, rest);
  return send_text(req, body);
}

static int mis_query(spoke_request_t *req) {
  const char *a = or_null(spoke_request_query_param(req, "a"));
  char *body = spoke_request_alloc(req, strlen(a) + 3);

  if (body == NULL)
    return SPOKE_ENOMEM;
  snprintf(body, strlen(a) + 3, "a=%s", a);
  return send_text(req, body);
}

static int mis_path(spoke_request_t *req) {
  return send_text(req, spoke_request_path(req));
}

/* Like mis_twice, on purpose: the request is alive until the handler
 * returns, and a write after the end must be refused, not sent. */
static int mis_after_end(spoke_request_t *req) {
  int rc;

  send_text(req, "done");
  rc = spoke_response_write(req, "late", 4);
  if (rc == SPOKE_EALREADY)
    spoke_log(SPOKE_LOG_INFO, "mis/after-end: write after end returned %s",
              spoke_err_name(rc));
  else
    spoke_log(SPOKE_LOG_ERROR,
              "mis/after-end: write after end returned %s, expected "
              "SPOKE_EALREADY",
              spoke_err_name(rc));
  return 0;
}

static int mis_badstatus(spoke_request_t *req) {
  const char *s = spoke_request_query_param(req, "code");
  long code = s != NULL ? strtol(s, NULL, 10) : 42;
  int rc;

  if (code < -100000 || code > 100000)
    code = 100000; /* out of range either way, and fits an int */
  rc = spoke_response_status(req, (int)code);

  if (rc == 0)
    spoke_response_status(req, 200);
  return send_text(req, spoke_err_name(rc));
}

/* A status that has no content (204, 304), and a body anyway: the core
 * must send neither the body nor a length. */
static int mis_nobody(spoke_request_t *req) {
  const char *s = spoke_request_query_param(req, "code");
  spoke_response_status(req, s != NULL ? (int)strtol(s, NULL, 10) : 204);
  spoke_response_header(req, "X-Nobody", "1");
  return spoke_response_send(req, "this must not be sent\n", 22);
}

#define BIG_CHUNK (16 * 1024)

typedef struct {
  spoke_request_t *req;
  unsigned long kb;
} big_job_t;

static void *big_main(void *arg) {
  /* job lives in the request's arena: read it before completing. */
  big_job_t *job = arg;
  spoke_request_t *req = job->req;
  unsigned long left = job->kb * 1024UL;
  char *data = malloc(BIG_CHUNK);
  int rc = 0;

  if (data == NULL) {
    spoke_response_end(req);
    return NULL;
  }
  memset(data, 'x', BIG_CHUNK);
  while (left > 0) {
    size_t n = left < BIG_CHUNK ? (size_t)left : BIG_CHUNK;

    if (spoke_request_aborted(req))
      break;
    rc = spoke_response_write(req, data, n);
    if (rc == SPOKE_EBUSY) {
      sleep_ms(5);
      continue;
    }
    if (rc != 0)
      break;
    left -= n;
  }
  free(data);
  spoke_response_end(req);
  return NULL;
}

static int mis_big(spoke_request_t *req) {
  const char *s = spoke_request_query_param(req, "kb");
  big_job_t *job = spoke_request_alloc(req, sizeof(*job));

  if (job == NULL)
    return SPOKE_ENOMEM;
  job->req = req;
  job->kb = s != NULL ? strtoul(s, NULL, 10) : 1024;
  if (job->kb > 1024UL * 1024UL)
    job->kb = 1024UL * 1024UL; /* 1 GiB at most */
  spoke_response_header(req, "Content-Type", "application/octet-stream");
  return spawn(big_main, job);
}

static void never_called(spoke_request_t *req) {
  send_text(req, "timer ran (it should have been refused)");
}

static void *timer_thread_main(void *arg) {
  spoke_request_t *req = arg;
  int rc = spoke_timer_start(req, 1, never_called);

  if (rc != 0) /* else never_called completes it */
    send_text(req, spoke_err_name(rc));
  return NULL;
}

static int mis_timer_thread(spoke_request_t *req) {
  return spawn(timer_thread_main, req);
}

static int mis_log(spoke_request_t *req) {
  spoke_log(SPOKE_LOG_INFO, "mis/log: %s",
            or_null(spoke_request_query_param(req, "msg")));
  return send_text(req, "ok");
}

static const spoke_route_t routes[] = {
  { "GET", "/mis/nocomplete", SPOKE_SYNC, mis_nocomplete },
  { "GET", "/mis/twice", SPOKE_ASYNC, mis_twice },
  { "GET", "/mis/error", SPOKE_ASYNC, mis_error },
  { "GET", "/mis/thread", SPOKE_ASYNC, mis_thread },
  { "GET", "/mis/stream", SPOKE_SYNC, mis_stream },
  { "GET", "/mis/stream-async", SPOKE_ASYNC, mis_stream_async },
  { "GET", "/mis/abort", SPOKE_ASYNC, mis_abort },
  { "GET", "/mis/aborts", SPOKE_ASYNC, mis_aborts },
  { "GET", "/mis/badheader", SPOKE_ASYNC, mis_badheader },
  { "GET", "/mis/params/:id/*", SPOKE_ASYNC, mis_params },
  { "GET", "/mis/query", SPOKE_ASYNC, mis_query },
  { "GET", "/mis/path/*", SPOKE_ASYNC, mis_path },
  { "GET", "/mis/after-end", SPOKE_ASYNC, mis_after_end },
  { "GET", "/mis/badstatus", SPOKE_ASYNC, mis_badstatus },
  { "GET", "/mis/big", SPOKE_ASYNC, mis_big },
  { "GET", "/mis/timer-thread", SPOKE_ASYNC, mis_timer_thread },
  { "GET", "/mis/log", SPOKE_ASYNC, mis_log },
  { "GET", "/mis/nobody", SPOKE_ASYNC, mis_nobody },
};

SPOKE_PLUGIN(.name = "misbehave", .version = "1", SPOKE_ROUTES(routes));
