/* gzip.c: precompressed siblings (nginx's gzip_static), when
 * gzip_static = on.
 *
 * For a request that accepts gzip, FILE.gz beside FILE is served in its
 * place, with Content-Encoding: gzip, when it is a regular file found by
 * the same walk (resolve.c's rules, through the cache) and is not older
 * than FILE (an older .gz is a stale one: FILE is served). It is its own
 * representation: its own ETag (the .gz's inode, size and mtime), its own
 * Last-Modified and length, and a Range counts its bytes; so an If-Range
 * or If-None-Match from one representation never matches the other. The
 * Content-Type stays FILE's. FILE must exist: a lone .gz is only served
 * by its own name. A directory's index.html has no sibling looked for.
 *
 * With gzip_static on, every file response (200, 206, 304) says Vary:
 * Accept-Encoding, whether or not a sibling exists, so a cache never
 * hands one client's representation to another. Off (the default) there
 * is no lookup and no Vary.
 *
 * Cost: one more lookup per request that accepts gzip; a .gz that does
 * not exist is not cached (cache.c caches only what opens), so it is a
 * walk each time, as with nginx without open_file_cache_errors.
 */
#define _GNU_SOURCE /* the same feature set as the plugin's other files */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "internal.h"

/* The q of one Accept-Encoding member's parameters P (";q=0.5"), 1 when
 * it has none; 0 for "q=0", "q=0.0" and the like. */
static int q_nonzero(const char *p, const char *end) {
  while (p < end) {
    while (p < end && (*p == ';' || *p == ' ' || *p == '\t'))
      p++;
    if (end - p >= 2 && (p[0] == 'q' || p[0] == 'Q') && p[1] == '=') {
      for (p += 2; p < end && (*p == '0' || *p == '.'); p++)
        ;
      return p < end && *p >= '1' && *p <= '9';
    }
    while (p < end && *p != ';')
      p++;
  }
  return 1;
}

/* Whether Accept-Encoding (every such field) accepts gzip: "gzip" (or
 * "x-gzip") with a q above 0, else "*" with one. */
int static_accepts_gzip(spoke_request_t *req) {
  size_t count = spoke_request_header_count(req);
  int gzip = -1, star = -1;

  for (size_t i = 0; i < count; i++) {
    const char *name, *p;
    spoke_request_header_at(req, i, &name, &p);
    if (strcasecmp(name, "Accept-Encoding") != 0)
      continue;
    while (*p != '\0') {
      const char *tok, *tok_end, *end;
      while (*p == ' ' || *p == '\t' || *p == ',')
        p++;
      end = p + strcspn(p, ",");
      tok = p;
      tok_end = p + strcspn(p, ";, \t");
      if (tok_end > end)
        tok_end = end;
      if (((size_t)(tok_end - tok) == 4 && strncasecmp(tok, "gzip", 4) == 0) ||
          ((size_t)(tok_end - tok) == 6 && strncasecmp(tok, "x-gzip", 6) == 0))
        gzip = q_nonzero(tok_end, end);
      else if (tok_end - tok == 1 && *tok == '*')
        star = q_nonzero(tok_end, end);
      p = end;
    }
  }
  return gzip >= 0 ? gzip : star > 0;
}

void static_gzip_sibling(const static_state_t *st, const char *rel,
                         static_file_t *f) {
  size_t n = strlen(rel);
  static_file_t gz;
  char *key;
  int status;

  if (strlen(f->name) + 3 > NAME_MAX ||
      (n >= 3 && strcmp(rel + n - 3, ".gz") == 0) ||
      n == 0 || rel[n - 1] == '/') /* an index.html: not looked for */
    return;
  key = malloc(n + 4); /* not the request's arena: this may be a pool job */
  if (key == NULL)
    return;
  memcpy(key, rel, n);
  memcpy(key + n, ".gz", 4);
  memset(&gz, 0, sizeof(gz));
  gz.fd = -1;
  status = static_find(st, key, &gz);
  free(key);
  if (status != 200)
    return;
  if (gz.sb.st_mtim.tv_sec < f->sb.st_mtim.tv_sec ||
      (gz.sb.st_mtim.tv_sec == f->sb.st_mtim.tv_sec &&
       gz.sb.st_mtim.tv_nsec < f->sb.st_mtim.tv_nsec)) {
    close(gz.fd); /* older than FILE: stale */
    return;
  }
  gz.type = f->type;
  gz.encoding = "gzip";
  close(f->fd);
  *f = gz;
}
