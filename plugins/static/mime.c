/* mime.c: the Content-Type of a served file, from its extension.
 *
 * A fixed table, matched case-insensitively on what follows the last '.'
 * of the name ("x.tar.GZ" is "GZ"; ".profile" has no extension). Text
 * types say charset=utf-8; anything unknown is application/octet-stream,
 * never a guess from the contents: the responses carry
 * X-Content-Type-Options: nosniff (send.c), so a browser takes the type
 * given here.
 */
#define _GNU_SOURCE /* the same feature set as the plugin's other files */
#include <string.h>
#include <strings.h>

#include "internal.h"

static const struct {
  const char *ext;
  const char *type;
} types[] = {
  { "html", "text/html; charset=utf-8" },
  { "htm", "text/html; charset=utf-8" },
  { "css", "text/css; charset=utf-8" },
  { "js", "text/javascript; charset=utf-8" },
  { "mjs", "text/javascript; charset=utf-8" },
  { "json", "application/json" },
  { "txt", "text/plain; charset=utf-8" },
  { "xml", "application/xml" },
  { "svg", "image/svg+xml" },
  { "png", "image/png" },
  { "jpg", "image/jpeg" },
  { "jpeg", "image/jpeg" },
  { "gif", "image/gif" },
  { "webp", "image/webp" },
  { "ico", "image/x-icon" },
  { "wasm", "application/wasm" },
  { "pdf", "application/pdf" },
  { "woff", "font/woff" },
  { "woff2", "font/woff2" },
  { "mp4", "video/mp4" },
  { "webm", "video/webm" },
  { "mp3", "audio/mpeg" },
  { "csv", "text/csv; charset=utf-8" },
  { "md", "text/markdown; charset=utf-8" },
};

/* By the extension of NAME, case-insensitively; ".profile" has none. */
const char *static_content_type(const char *name) {
  const char *dot = strrchr(name, '.');
  if (dot != NULL && dot != name)
    for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++)
      if (strcasecmp(dot + 1, types[i].ext) == 0)
        return types[i].type;
  return "application/octet-stream";
}
