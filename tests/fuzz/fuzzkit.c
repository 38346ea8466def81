/* fuzzkit.c: a plugin only the connection fuzzer loads. The shipped
 * examples all answer at once from the loop with a whole body; these
 * routes reach the other response paths so that the fuzzer's inputs
 * drive them too. Every route finishes within a few milliseconds whatever
 * the request says, so no input can make an execution slow.
 *
 *   GET  /fz/sync            SYNC: "sync\n" from a pool thread
 *   GET  /fz/stream          SYNC: three chunks, streamed (chunked, or
 *                            close-delimited for HTTP/1.0)
 *   POST /fz/stream          ASYNC: the request body streamed back in
 *                            pieces of at most 7 bytes
 *   GET  /fz/later           ASYNC: a 1 ms timer, then "later\n"
 *   GET  /fz/thread          ASYNC: completed from a thread of the plugin
 *                            (through the loop's mailbox)
 *   GET  /fz/status?code=N   ASYNC: status N when the SDK takes it (else
 *                            200), body "x" (none for 204 and 304)
 *   GET  /fz/none            SYNC: returns without completing: 500
 *   GET  /fz/fail            ASYNC: returns an error uncompleted: 500
 *   GET  /fz/close           ASYNC: asks for Connection: close
 *   *    /fz/any             ASYNC: the method name back
 *   GET  /fz/p/:id/(rest)    ASYNC: "id=<id> rest=<rest>"
 *   *    /fz/target/(rest)   ASYNC: "fz-target\npath=<path>\nquery=<query>\n",
 *                            the path as normalized and the raw query, which
 *                            fuzz_conn checks (target_check)
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <spoke.h>

static int text(spoke_request_t *req, const char *s) {
  spoke_response_header(req, "Content-Type", "text/plain");
  return spoke_response_send(req, s, strlen(s));
}

static int fz_sync(spoke_request_t *req) { return text(req, "sync\n"); }

static int fz_stream(spoke_request_t *req) {
  static const char *const parts[] = { "one\n", "", "two\n", "three\n" };
  spoke_response_header(req, "Content-Type", "text/plain");
  for (size_t i = 0; i < sizeof(parts) / sizeof(parts[0]); i++)
    if (spoke_response_write(req, parts[i], strlen(parts[i])) != 0)
      break;
  return spoke_response_end(req);
}

static int fz_stream_body(spoke_request_t *req) {
  size_t len, off;
  const char *body = spoke_request_body(req, &len);
  spoke_response_header(req, "Content-Type", "application/octet-stream");
  for (off = 0; off < len; off += 7) {
    size_t n = len - off < 7 ? len - off : 7;
    if (spoke_response_write(req, body + off, n) != 0)
      break;
  }
  return spoke_response_end(req);
}

static void later_done(spoke_request_t *req) { text(req, "later\n"); }

static int fz_later(spoke_request_t *req) {
  return spoke_timer_start(req, 1, later_done);
}

static void *thread_main(void *arg) {
  text(arg, "thread\n");
  return NULL;
}

static int fz_thread(spoke_request_t *req) {
  pthread_t t;
  pthread_attr_t attr;
  int rc;
  if (pthread_attr_init(&attr) != 0)
    return SPOKE_EHANDLER;
  pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
  rc = pthread_create(&t, &attr, thread_main, req);
  pthread_attr_destroy(&attr);
  return rc == 0 ? 0 : SPOKE_EHANDLER;
}

static int fz_status(spoke_request_t *req) {
  const char *s = spoke_request_query_param(req, "code");
  if (s != NULL)
    spoke_response_status(req, atoi(s));
  return text(req, "x");
}

static int fz_none(spoke_request_t *req) {
  (void)req;
  return 0;
}

static int fz_fail(spoke_request_t *req) {
  (void)req;
  return SPOKE_EHANDLER;
}

static int fz_close(spoke_request_t *req) {
  spoke_response_header(req, "Connection", "close");
  return text(req, "bye\n");
}

static int fz_any(spoke_request_t *req) {
  return text(req, spoke_request_method(req));
}

static int fz_params(spoke_request_t *req) {
  const char *id = spoke_request_param(req, "id");
  const char *rest = spoke_request_param(req, "*");
  size_t n = strlen(id ? id : "") + strlen(rest ? rest : "") + 16;
  char *out = spoke_request_alloc(req, n);
  if (out == NULL)
    return SPOKE_ENOMEM;
  snprintf(out, n, "id=%s rest=%s", id ? id : "", rest ? rest : "");
  return spoke_response_send(req, out, strlen(out));
}

static int fz_target(spoke_request_t *req) {
  const char *path = spoke_request_path(req), *query = spoke_request_query(req);
  size_t n = strlen(path) + strlen(query) + 32;
  char *out = spoke_request_alloc(req, n);
  if (out == NULL)
    return SPOKE_ENOMEM;
  snprintf(out, n, "fz-target\npath=%s\nquery=%s\n", path, query);
  return spoke_response_send(req, out, strlen(out));
}

static const spoke_route_t routes[] = {
  { "GET", "/fz/sync", SPOKE_SYNC, fz_sync },
  { "GET", "/fz/stream", SPOKE_SYNC, fz_stream },
  { "POST", "/fz/stream", SPOKE_ASYNC, fz_stream_body },
  { "GET", "/fz/later", SPOKE_ASYNC, fz_later },
  { "GET", "/fz/thread", SPOKE_ASYNC, fz_thread },
  { "GET", "/fz/status", SPOKE_ASYNC, fz_status },
  { "GET", "/fz/none", SPOKE_SYNC, fz_none },
  { "GET", "/fz/fail", SPOKE_ASYNC, fz_fail },
  { "GET", "/fz/close", SPOKE_ASYNC, fz_close },
  { "*", "/fz/any", SPOKE_ASYNC, fz_any },
  { "GET", "/fz/p/:id/*", SPOKE_ASYNC, fz_params },
  { "*", "/fz/target/*", SPOKE_ASYNC, fz_target },
};

SPOKE_PLUGIN(.name = "fuzzkit", .version = "1.0.0", SPOKE_ROUTES(routes));
