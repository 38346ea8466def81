/* reply.c: what the plugin's responses say, but for the bytes.
 *
 * Status pages (301, 403, 404, 412, 416, 500) are a short text body,
 * "404 Not Found\n". A file's 200 or 206 carries Content-Type (mime.c),
 * ETag and Last-Modified, Accept-Ranges: bytes and X-Content-Type-Options:
 * nosniff (so a browser takes mime.c's type); a .gz sibling's (gzip.c)
 * also Content-Encoding, and with gzip_static on every file response
 * says Vary: Accept-Encoding. send.c and readsend.c both call here, and
 * this file calls neither.
 */
#define _GNU_SOURCE /* the same feature set as the plugin's other files */
#include <stdio.h>
#include <string.h>

#include "internal.h"

static const char *reason(int status) {
  switch (status) {
    case 301: return "Moved Permanently";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 412: return "Precondition Failed";
    case 416: return "Range Not Satisfiable";
    case 503: return "Service Unavailable";
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

/* Status and headers of a file's 200 or 206. */
void static_file_headers(spoke_request_t *req, const static_file_t *f,
                         int status, const char *content_range, int vary) {
  spoke_response_status(req, status);
  spoke_response_header(req, "Content-Type", f->type);
  if (f->encoding != NULL)
    spoke_response_header(req, "Content-Encoding", f->encoding);
  if (vary)
    spoke_response_header(req, "Vary", "Accept-Encoding");
  spoke_response_header(req, "ETag", f->etag);
  spoke_response_header(req, "Last-Modified", f->modified);
  spoke_response_header(req, "Accept-Ranges", "bytes");
  spoke_response_header(req, "X-Content-Type-Options", "nosniff");
  if (status == 206)
    spoke_response_header(req, "Content-Range", content_range);
}
