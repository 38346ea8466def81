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
};

SPOKE_PLUGIN(.name = "misbehave", .version = "1", SPOKE_ROUTES(routes));
