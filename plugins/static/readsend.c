/* readsend.c: a file's body read and sent by the plugin, for a host
 * older than SDK 1.5 (no spoke_response_file; send.c asks the host).
 *
 * This is how the plugin sent every file before SDK 1.5, kept so the
 * plugin still works on such a host:
 *
 * Sizes: a body of up to WHOLE_MAX bytes is read whole and sent with
 * Content-Length. A larger one is streamed in CHUNK pieces, so memory per
 * request stays bounded; such a host cannot declare a stream's length, so
 * the response is chunked (close-delimited for HTTP/1.0). A streamed
 * response holds its worker until the client has read all but the last
 * MiB (the SDK's back-pressure), so --workers bounds concurrent large
 * downloads. HEAD reads nothing: the server sends GET's headers and drops
 * the body.
 *
 * Errors: nothing is set on the response before the first bytes are in
 * hand, so a read error before the first byte is a clean 500 with one
 * log line. After it the handler returns SPOKE_EIO and the server cuts
 * the response short, so the client cannot take it for complete.
 *
 * The fd is the caller's: read here with pread, never closed.
 */
#define _GNU_SOURCE /* pread, GNU strerror_r */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "internal.h"

#define WHOLE_MAX (1024 * 1024) /* larger bodies are streamed */
#define CHUNK (64 * 1024)       /* one streamed write */

/* Reads exactly N bytes at OFF. -1 with errno (0: the file shrank). */
static int read_at(int fd, char *buf, size_t n, uint64_t off) {
  while (n > 0) {
    ssize_t got = pread(fd, buf, n, (off_t)off);
    if (got < 0 && errno == EINTR)
      continue;
    if (got <= 0) {
      if (got == 0)
        errno = 0;
      return -1;
    }
    buf += got;
    n -= (size_t)got;
    off += (uint64_t)got;
  }
  return 0;
}

/* Logs a read failure once, with the request and the reason. */
static void log_read_error(spoke_request_t *req, int err) {
  char buf[128];
  spoke_log(SPOKE_LOG_ERROR, "%s %s: read: %s", spoke_request_method(req),
            spoke_request_path(req),
            err == 0 ? "file shrank while being read"
                     : static_errstr(err, buf, sizeof(buf)));
}

int static_read_and_send(spoke_request_t *req, const static_file_t *f,
                         int status, const char *content_range, int vary,
                         uint64_t first, uint64_t count) {
  int head = strcmp(spoke_request_method(req), "HEAD") == 0;
  size_t n;
  char *buf;
  int rc;

  /* The body, or its first CHUNK when it is streamed. HEAD reads nothing:
   * the server sends GET's headers and drops the body, zeros included. */
  n = count <= WHOLE_MAX ? (size_t)count : head ? 0 : CHUNK;
  buf = head ? calloc(1, n + 1) : malloc(n + 1);
  if (buf == NULL)
    return SPOKE_ENOMEM;
  if (!head && read_at(f->fd, buf, n, first) != 0) {
    log_read_error(req, errno);
    free(buf);
    return static_reply_status(req, 500);
  }
  static_file_headers(req, f, status, content_range, vary);

  if (count <= WHOLE_MAX) {
    rc = spoke_response_send(req, buf, n);
    free(buf);
    return rc;
  }
  if (head) { /* the headers alone: an empty stream */
    free(buf);
    rc = spoke_response_write(req, NULL, 0);
    return rc != 0 ? rc : spoke_response_end(req);
  }
  for (;;) {
    rc = spoke_response_write(req, buf, n);
    first += n;
    count -= n;
    if (rc == SPOKE_ECANCELED || count == 0)
      break; /* done, or the client left: end quietly */
    if (rc != 0)
      break;
    n = count < CHUNK ? (size_t)count : CHUNK;
    if (read_at(f->fd, buf, n, first) != 0) {
      /* Mid-stream: no status left to change. The error makes the server
       * close the connection without the last chunk, so the client sees
       * a cut-short body rather than a complete one. */
      log_read_error(req, errno);
      rc = SPOKE_EIO;
      break;
    }
  }
  free(buf);
  if (rc != 0 && rc != SPOKE_ECANCELED)
    return rc;
  return spoke_response_end(req);
}
