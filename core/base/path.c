/* path.c: the request path as the router sees it.
 *
 * Before routing, the path is normalized so that two spellings of one
 * resource route alike and none climbs above the root:
 *   - percent-encodings must be valid (%XX, hex) and never %00: else 400;
 *   - encoded unreserved characters are decoded (%41 -> A, %2E -> .), all
 *     other encodings are kept, with upper-case hex (%2f -> %2F: an
 *     encoded slash never splits a segment);
 *   - repeated slashes are merged;
 *   - "." and ".." segments are resolved (RFC 3986, 5.2.4); ".." at the
 *     root stays at the root.
 * Works in place (the result is never longer). Pure, any thread.
 */
#include <string.h>

#include "base/base.h"

static int unreserved(unsigned char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
         (c >= '0' && c <= '9') || c == '-' || c == '.' || c == '_' ||
         c == '~';
}

/* Pass 1: checks and canonicalizes percent-encodings. */
static int decode_unreserved(char *p, size_t n, size_t *out) {
  static const char hex[] = "0123456789ABCDEF";
  size_t r = 0, w = 0;
  while (r < n) {
    unsigned char c = (unsigned char)p[r];
    if (c == '%') {
      int hi, lo, v;
      if (r + 2 >= n)
        return SPOKE_EINVAL;
      hi = spoke__hexval((unsigned char)p[r + 1]);
      lo = spoke__hexval((unsigned char)p[r + 2]);
      if (hi < 0 || lo < 0)
        return SPOKE_EINVAL;
      v = hi * 16 + lo;
      if (v == 0)
        return SPOKE_EINVAL;
      if (unreserved((unsigned char)v)) {
        p[w++] = (char)v;
      } else {
        p[w++] = '%';
        p[w++] = hex[hi];
        p[w++] = hex[lo];
      }
      r += 3;
    } else {
      p[w++] = p[r++];
    }
  }
  *out = w;
  return 0;
}

int spoke__path_normalize(char *path, size_t len, size_t *out_len) {
  size_t n, r = 0, w = 0;
  int slash_last = 0; /* the path ends in a directory: keep its '/' */
  int rc;

  if (len == 0 || path[0] != '/')
    return SPOKE_EINVAL;
  rc = decode_unreserved(path, len, &n);
  if (rc != 0)
    return rc;
  /* Pass 2: segments, written back as "/seg" each; w <= r always, so the
   * output never overtakes what is still to be read. */
  while (r < n) {
    size_t start = ++r, seg; /* past the '/' */
    while (r < n && path[r] != '/')
      r++;
    seg = r - start;
    slash_last = 1;
    if (seg == 0 || (seg == 1 && path[start] == '.'))
      continue; /* "" (a repeated slash) or "." */
    if (seg == 2 && path[start] == '.' && path[start + 1] == '.') {
      while (w > 0 && path[w - 1] != '/') /* drop "/last", not the root */
        w--;
      if (w > 0)
        w--;
      continue;
    }
    path[w++] = '/';
    memmove(path + w, path + start, seg);
    w += seg;
    slash_last = 0;
  }
  if (w == 0 || slash_last)
    path[w++] = '/';
  path[w] = '\0';
  *out_len = w;
  return 0;
}
