/* send.c: a file's response, once the file is open: 412, 304, 416, or
 * a 200 or 206 with its bytes (headers and status pages: reply.c).
 *
 * A 304 carries the ETag and Last-Modified (and Vary with gzip_static).
 *
 * The bytes: the plugin never reads them. A 200 or 206 (a range is an
 * offset and a length) hands the open fd to the server with
 * spoke_response_file (SDK 1.5), which declares Content-Length and has
 * the kernel copy the file to the socket (sendfile) from the request's
 * loop as the client drains it. The handler returns at once, so a
 * download of any size, to a client of any speed, holds no worker and no
 * buffer: --workers bounds the opens and stats running at once, not the
 * transfers. HEAD goes the same way (the server sends the headers and
 * closes the fd at once). A file that shrinks after it was opened ends
 * the response short: the server closes the connection, since the
 * length was declared, so the client cannot take it for complete.
 *
 * Ownership: static_respond_file takes the fd it is given, whatever
 * happens: the server's from spoke_response_file on, else closed here.
 *
 * A host older than SDK 1.5 has no spoke_response_file: the file is then
 * read and sent by the plugin (readsend.c), the way it was before.
 */
#define _GNU_SOURCE /* st_mtim */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "internal.h"

/* Everything after the file is open: validators, range, headers, body.
 * *GIVEN is set once the server has taken F->fd. */
static int respond(spoke_request_t *req, const static_file_t *f, int vary,
                   int *given) {
  char content_range[96] = "";
  uint64_t size = (uint64_t)f->sb.st_size, first = 0, last, count;
  time_t mtime = f->sb.st_mtim.tv_sec;
  int head = strcmp(spoke_request_method(req), "HEAD") == 0;
  int status = 200, rc;
  const char *range;

  if (!static_preconditions_hold(req, f->etag, mtime))
    return static_reply_status(req, 412);
  if (static_not_modified(req, f->etag, mtime)) {
    spoke_response_status(req, 304);
    spoke_response_header(req, "ETag", f->etag);
    spoke_response_header(req, "Last-Modified", f->modified);
    if (vary)
      spoke_response_header(req, "Vary", "Accept-Encoding");
    return spoke_response_send(req, NULL, 0);
  }

  last = size == 0 ? 0 : size - 1;
  range = head ? NULL : spoke_request_header(req, "Range");
  if (range != NULL && static_if_range_holds(req, f->etag, mtime)) {
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

  if (!SPOKE_HOST_HAS(response_file)) /* older host: read and send */
    return static_read_and_send(req, f, status, content_range, vary, first,
                                count);
  static_file_headers(req, f, status, content_range, vary);
  rc = spoke_response_file(req, f->fd, first, count);
  /* The server owns the fd whatever it answered, but for SPOKE_ENOTSUP,
   * which only a host without the member gives (checked above). */
  *given = rc != SPOKE_ENOTSUP;
  return rc;
}

int static_respond_file(spoke_request_t *req, const static_file_t *f,
                        int vary) {
  int given = 0;
  int rc = respond(req, f, vary, &given);
  if (!given) /* a 304, 412 or 416, or read and sent here */
    close(f->fd);
  return rc;
}
