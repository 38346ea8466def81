/* files.c: a fixture for SDK 1.5's file bodies and declared lengths, for
 * test_sendfile.py.
 *
 *   GET /file/send?path=P[&off=O][&len=L][&status=S]   SPOKE_SYNC
 *       opens P and answers it with spoke_response_file(req, fd, O, L)
 *       (L defaults to the rest of the file; S sets the status first);
 *       404 if P cannot be opened
 *   GET /file/async?path=P                              SPOKE_ASYNC
 *       the same from the loop thread (opening a file on the loop is
 *       fine for a test, not for a plugin: see plugins/static/)
 *   GET /file/bad                                       SPOKE_ASYNC
 *       a negative descriptor, then a directory: answers the two error
 *       names, "SPOKE_EINVAL SPOKE_EINVAL"
 *   GET /file/twice?path=P                              SPOKE_SYNC
 *       the file, then spoke_response_send: logs its error name
 *   GET /file/length?n=N&declared=D[&past=1]            SPOKE_SYNC
 *       spoke_response_length(D), then N bytes of 'x' in 1000-byte
 *       writes, then end; with past=1 one more write of 1 byte after
 *       the N, whose error name is logged ("files: write past: ...")
 *
 * Threads: every handler touches only its own request.
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <spoke.h>

static unsigned long long query_num(spoke_request_t *req, const char *name,
                                    unsigned long long dflt) {
  const char *s = spoke_request_query_param(req, name);
  return s != NULL && *s >= '0' && *s <= '9' ? strtoull(s, NULL, 10) : dflt;
}

static int answer(spoke_request_t *req, int status, const char *text) {
  spoke_response_status(req, status);
  spoke_response_header(req, "Content-Type", "text/plain");
  return spoke_response_send(req, text, strlen(text));
}

static int send_path(spoke_request_t *req) {
  const char *path = spoke_request_query_param(req, "path");
  struct stat st;
  unsigned long long off, len;
  int fd = path != NULL ? open(path, O_RDONLY | O_CLOEXEC) : -1;
  if (fd < 0 || fstat(fd, &st) != 0) {
    if (fd >= 0)
      close(fd);
    return answer(req, 404, "no such file\n");
  }
  off = query_num(req, "off", 0);
  len = query_num(req, "len",
                  (unsigned long long)st.st_size > off
                      ? (unsigned long long)st.st_size - off
                      : 0);
  spoke_response_status(req, (int)query_num(req, "status", 200));
  spoke_response_header(req, "Content-Type", "application/octet-stream");
  return spoke_response_file(req, fd, off, len);
}

static int bad_handler(spoke_request_t *req) {
  char text[64];
  int a = spoke_response_file(req, -1, 0, 1);
  int fd = open("/", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  int b = spoke_response_file(req, fd, 0, 1); /* takes fd even so */
  snprintf(text, sizeof(text), "%s %s", spoke_err_name(a), spoke_err_name(b));
  return answer(req, 200, text);
}

static int twice_handler(spoke_request_t *req) {
  int rc = send_path(req);
  int again = spoke_response_send(req, "again", 5);
  spoke_log(SPOKE_LOG_INFO, "files: second completion: %s",
            spoke_err_name(again));
  return rc;
}

static int length_handler(spoke_request_t *req) {
  static const char xs[1000] = {[0 ... 999] = 'x'};
  unsigned long long n = query_num(req, "n", 0);
  int rc = spoke_response_length(req, query_num(req, "declared", n));
  if (rc != 0)
    return rc;
  spoke_response_header(req, "Content-Type", "text/plain");
  while (n > 0 && rc == 0) {
    size_t k = n < sizeof(xs) ? (size_t)n : sizeof(xs);
    rc = spoke_response_write(req, xs, k);
    n -= k;
  }
  if (rc == 0 && query_num(req, "past", 0)) {
    int past = spoke_response_write(req, "y", 1);
    spoke_log(SPOKE_LOG_INFO, "files: write past: %s", spoke_err_name(past));
  }
  return spoke_response_end(req);
}

static const spoke_route_t routes[] = {
    {"GET", "/file/send", SPOKE_SYNC, send_path},
    {"GET", "/file/async", SPOKE_ASYNC, send_path},
    {"GET", "/file/bad", SPOKE_ASYNC, bad_handler},
    {"GET", "/file/twice", SPOKE_SYNC, twice_handler},
    {"GET", "/file/length", SPOKE_SYNC, length_handler},
};

SPOKE_PLUGIN(.name = "files", .version = "1.0.0", SPOKE_ROUTES(routes));
