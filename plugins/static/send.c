/* send.c: the response, once the request is understood.
 *
 * Status pages (301, 403, 404, 412, 416, 500) are a short text body,
 * "404 Not Found\n". A file's 200 or 206 carries Content-Type (mime.c),
 * ETag and Last-Modified (also on a 304), Accept-Ranges: bytes and
 * X-Content-Type-Options: nosniff. HEAD gets GET's headers and the server
 * drops the body; it never reads the file (and a Range is not looked at).
 *
 * Sizes: a body of up to WHOLE_MAX bytes is read whole and sent with
 * Content-Length. A larger one is streamed in CHUNK pieces, so memory per
 * request stays bounded; the SDK cannot declare a stream's length, so such
 * a response is chunked (close-delimited for HTTP/1.0). A streamed
 * response holds its worker until the client has read all but the last
 * MiB (the SDK's back-pressure), so --workers bounds concurrent large
 * downloads.
 *
 * Errors: nothing is set on the response before the first bytes are in
 * hand, so a read error before the first byte is a clean 500 with one
 * log line. After it the handler returns SPOKE_EIO and the server cuts
 * the response short, so the client cannot take it for complete.
 */
#define _GNU_SOURCE /* pread, st_mtim */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "internal.h"

#define WHOLE_MAX (1024 * 1024) /* larger bodies are streamed */
#define CHUNK (64 * 1024)       /* one streamed write */

static const char *reason(int status) {
  switch (status) {
    case 301: return "Moved Permanently";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 412: return "Precondition Failed";
    case 416: return "Range Not Satisfiable";
    default: return "Internal Server Error";
  }
}

/* A short text response, "404 Not Found\n". */
int static_reply_status(spoke_request_t *req, int status) {
  char body[64];
  int n = snprintf(body, sizeof(body), "%d %s\n", status, reason(status));
  spoke_response_status(req, status);
  spoke_response_header(req, "Content-Type", "text/plain; charset=utf-8");
  return spoke_response_send(req, body, (size_t)n);
}

/* "/dir" -> 301 to "/dir/", the query kept. */
int static_redirect_dir(spoke_request_t *req, const char *path) {
  const char *query = spoke_request_query(req);
  size_t n = strlen(path) + strlen(query) + 3;
  char *location = spoke_request_alloc(req, n);
  if (location == NULL)
    return SPOKE_ENOMEM;
  snprintf(location, n, "%s/%s%s", path, *query ? "?" : "", query);
  spoke_response_header(req, "Location", location);
  return static_reply_status(req, 301);
}

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

/* Everything after the file is open: validators, range, headers, body.
 * Nothing is set on the response before the first bytes are in hand, so
 * a read error can still be a clean 500. */
int static_respond_file(spoke_request_t *req, const static_file_t *f) {
  char etag[96], modified[64], content_range[96];
  uint64_t size = (uint64_t)f->sb.st_size, first = 0, last, count;
  time_t mtime = f->sb.st_mtim.tv_sec;
  int head = strcmp(spoke_request_method(req), "HEAD") == 0;
  int status = 200, rc;
  const char *range;
  size_t n;
  char *buf;

  static_make_etag(&f->sb, etag, sizeof(etag));
  static_http_date(mtime, modified, sizeof(modified));
  if (!static_preconditions_hold(req, etag, mtime))
    return static_reply_status(req, 412);
  if (static_not_modified(req, etag, mtime)) {
    spoke_response_status(req, 304);
    spoke_response_header(req, "ETag", etag);
    spoke_response_header(req, "Last-Modified", modified);
    return spoke_response_send(req, NULL, 0);
  }

  last = size == 0 ? 0 : size - 1;
  range = head ? NULL : spoke_request_header(req, "Range");
  if (range != NULL && static_if_range_holds(req, etag, mtime)) {
    switch (static_parse_range(range, size, &first, &last)) {
      case STATIC_RANGE_UNSATISFIABLE:
        snprintf(content_range, sizeof(content_range), "bytes */%" PRIu64,
                 size);
        spoke_response_header(req, "Content-Range", content_range);
        return static_reply_status(req, 416);
      case STATIC_RANGE_ONE:
        status = 206;
        snprintf(content_range, sizeof(content_range),
                 "bytes %" PRIu64 "-%" PRIu64 "/%" PRIu64, first, last, size);
        break;
      default:
        break;
    }
  }
  count = size == 0 ? 0 : last - first + 1;

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

  spoke_response_status(req, status);
  spoke_response_header(req, "Content-Type", static_content_type(f->name));
  spoke_response_header(req, "ETag", etag);
  spoke_response_header(req, "Last-Modified", modified);
  spoke_response_header(req, "Accept-Ranges", "bytes");
  spoke_response_header(req, "X-Content-Type-Options", "nosniff");
  if (status == 206)
    spoke_response_header(req, "Content-Range", content_range);

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
