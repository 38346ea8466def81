/* buf.c: a growable byte buffer.
 *
 * data is NULL until the first append; after any append data[len] is a
 * NUL byte (not counted in len), so text can be used as a C string.
 * Owned by whoever embeds it; not thread-safe.
 *
 * Also the one way an array of the core grows (spoke__array_grow): by
 * doubling, checked for overflow, the array and its capacity unchanged
 * when memory runs out.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/base.h"

int spoke__array_grow(void *items, size_t *cap, size_t n, size_t size) {
  void **p = items;
  size_t c = *cap ? *cap : 8;
  void *q;
  if (n < *cap)
    return 0;
  while (c <= n) {
    if (c > SIZE_MAX / 2 / size)
      return SPOKE_ENOMEM;
    c *= 2;
  }
  q = realloc(*p, c * size);
  if (q == NULL)
    return SPOKE_ENOMEM;
  *p = q;
  *cap = c;
  return 0;
}

int spoke__buf_reserve(spoke__buf_t *b, size_t extra) {
  size_t need = b->len + extra + 1, cap;
  char *p;

  if (need < b->len)
    return SPOKE_ENOMEM;
  if (need <= b->cap)
    return 0;
  cap = b->cap ? b->cap : 64;
  while (cap < need)
    cap = cap > SIZE_MAX / 2 ? need : cap * 2;
  p = realloc(b->data, cap);
  if (p == NULL)
    return SPOKE_ENOMEM;
  b->data = p;
  b->cap = cap;
  return 0;
}

int spoke__buf_append(spoke__buf_t *b, const void *data, size_t len) {
  int rc = spoke__buf_reserve(b, len);
  if (rc != 0)
    return rc;
  if (len)
    memcpy(b->data + b->len, data, len);
  b->len += len;
  b->data[b->len] = '\0';
  return 0;
}

int spoke__buf_appendf(spoke__buf_t *b, const char *fmt, ...) {
  va_list ap;
  int n, rc;

  va_start(ap, fmt);
  n = vsnprintf(NULL, 0, fmt, ap);
  va_end(ap);
  if (n < 0)
    return SPOKE_EINVAL;
  rc = spoke__buf_reserve(b, (size_t)n);
  if (rc != 0)
    return rc;
  va_start(ap, fmt);
  vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
  va_end(ap);
  b->len += (size_t)n;
  return 0;
}

void spoke__buf_reset(spoke__buf_t *b) {
  b->len = 0;
  if (b->data)
    b->data[0] = '\0';
}

void spoke__buf_free(spoke__buf_t *b) {
  free(b->data);
  b->data = NULL;
  b->len = b->cap = 0;
}
