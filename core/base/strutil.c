/* strutil.c: small string helpers shared by the parser, router and SDK.
 * Pure functions, safe from any thread. */
#include <ctype.h>
#include <string.h>
#include <time.h>
#include <strings.h>

#include "base/base.h"

uint64_t spoke__fnv1a(uint64_t h, const void *p, size_t n) {
  const unsigned char *b = p;
  for (size_t i = 0; i < n; i++) {
    h ^= b[i];
    h *= 0x100000001b3ULL; /* the 64-bit FNV prime */
  }
  return h;
}

int spoke__is_token(const char *s, size_t n) {
  static const char extra[] = "!#$%&'*+-.^_`|~";
  if (n == 0)
    return 0;
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)s[i];
    if (!(isalnum(c) && c < 128) && (c == 0 || strchr(extra, c) == NULL))
      return 0;
  }
  return 1;
}

int spoke__hexval(unsigned char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

long spoke__percent_decode(char *s, size_t n, int plus) {
  size_t r = 0, w = 0;
  while (r < n) {
    if (s[r] == '%') {
      int hi, lo;
      if (r + 2 >= n)
        return -1;
      hi = spoke__hexval((unsigned char)s[r + 1]);
      lo = spoke__hexval((unsigned char)s[r + 2]);
      if (hi < 0 || lo < 0)
        return -1;
      s[w++] = (char)(hi * 16 + lo);
      r += 3;
    } else if (plus && s[r] == '+') {
      s[w++] = ' ';
      r++;
    } else {
      s[w++] = s[r++];
    }
  }
  if (w < n)
    s[w] = '\0';
  return (long)w;
}

int spoke__strcaseeq(const char *a, const char *b) {
  return strcasecmp(a, b) == 0;
}

const char *spoke__time_now(spoke__timebuf_t *tb, const char *fmt) {
  time_t now = time(NULL);
  if ((long long)now != tb->at) {
    struct tm tm;
    gmtime_r(&now, &tm);
    if (strftime(tb->text, sizeof(tb->text), fmt, &tm) == 0)
      tb->text[0] = '\0';
    tb->at = (long long)now;
  }
  return tb->text;
}
