/* conditional.c: validators, conditional requests and byte ranges.
 *
 *   ETag           strong: inode, size and mtime to the nanosecond, so it
 *                  changes whenever the file is replaced or rewritten.
 *   Last-Modified  the mtime as an IMF-fixdate.
 *   If-Match       "*" or a list, compared strongly (a W/ tag never
 *                  matches); every such header counts. Only without it
 *                  is If-Unmodified-Since looked at (a date that is not
 *                  one is ignored). Either may make the answer a 412;
 *                  they are evaluated first (RFC 9110 §13.2.2).
 *   If-None-Match  "*" or a list, compared weakly (W/ ignored); every
 *                  such header counts. Only without it is If-Modified-
 *                  Since looked at. Either may make the answer a 304.
 *   Range          (RFC 9110 14.2) one range "a-b", "a-" or "-n" is a
 *                  206; an unsatisfiable one a 416; several ranges get
 *                  the whole file (a 200, which the RFC allows); a
 *                  malformed Range, or one not in bytes, is ignored.
 *   If-Range       an ETag, compared strongly (a weak one never matches),
 *                  or the Last-Modified date: when it does not hold, a
 *                  stale Range becomes a 200.
 *
 * Everything here only reads the request and the file's stat; the
 * response is built in send.c. Dates are parsed and printed without the
 * locale, in all three HTTP-date forms (RFC 9110 5.6.7).
 */
#define _GNU_SOURCE /* timegm */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "internal.h"

static const char *const day_names[] = { "Sun", "Mon", "Tue", "Wed",
                                         "Thu", "Fri", "Sat" };
static const char *const month_names[] = { "Jan", "Feb", "Mar", "Apr",
                                           "May", "Jun", "Jul", "Aug",
                                           "Sep", "Oct", "Nov", "Dec" };

/* T as an IMF-fixdate, "Sun, 06 Nov 1994 08:49:37 GMT" (no locale). */
void static_http_date(time_t t, char *out, size_t n) {
  struct tm tm;
  gmtime_r(&t, &tm);
  snprintf(out, n, "%s, %02d %s %04d %02d:%02d:%02d GMT",
           day_names[tm.tm_wday], tm.tm_mday, month_names[tm.tm_mon],
           tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec);
}

/* An HTTP-date in any of its three forms (RFC 9110 5.6.7): IMF-fixdate,
 * RFC 850 and asctime. 0 and *OUT, or -1. */
static int parse_http_date(const char *s, time_t *out) {
  char wday[16], mon[4];
  unsigned d, y, h, mi, sec;
  int m, n = -1;
  struct tm tm;

  if (sscanf(s, "%3[A-Za-z], %2u %3[A-Za-z] %4u %2u:%2u:%2u GMT%n", wday,
             &d, mon, &y, &h, &mi, &sec, &n) == 7 && n > 0 && s[n] == '\0') {
  } else if (n = -1, sscanf(s, "%15[A-Za-z], %2u-%3[A-Za-z]-%2u "
                               "%2u:%2u:%2u GMT%n", wday, &d, mon, &y, &h,
                            &mi, &sec, &n) == 7 && n > 0 && s[n] == '\0') {
    y += y < 70 ? 2000 : 1900;
  } else if (n = -1, sscanf(s, "%3[A-Za-z] %3[A-Za-z] %2u %2u:%2u:%2u %4u%n",
                            wday, mon, &d, &h, &mi, &sec, &y, &n) == 7 &&
                         n > 0 && s[n] == '\0') {
  } else {
    return -1;
  }
  for (m = 0; m < 12 && strcasecmp(mon, month_names[m]) != 0; m++)
    ;
  if (m == 12 || d < 1 || d > 31 || h > 23 || mi > 59 || sec > 60 ||
      y < 1900)
    return -1;
  memset(&tm, 0, sizeof(tm));
  tm.tm_year = (int)y - 1900;
  tm.tm_mon = m;
  tm.tm_mday = (int)d;
  tm.tm_hour = (int)h;
  tm.tm_min = (int)mi;
  tm.tm_sec = (int)sec;
  *out = timegm(&tm);
  return 0;
}

/* "inode-size-mtime", quoted: changes whenever the file is replaced or
 * rewritten (to the nanosecond), so it is used as a strong validator. */
void static_make_etag(const struct stat *sb, char *out, size_t n) {
  snprintf(out, n, "\"%" PRIx64 "-%" PRIx64 "-%" PRIx64 ".%lx\"",
           (uint64_t)sb->st_ino, (uint64_t)sb->st_size,
           (uint64_t)sb->st_mtim.tv_sec, (long)sb->st_mtim.tv_nsec);
}

/* What a response says about F, computed once per open (the cache keeps
 * it with the fd). */
void static_file_describe(static_file_t *f) {
  f->type = static_content_type(f->name);
  static_make_etag(&f->sb, f->etag, sizeof(f->etag));
  static_http_date(f->sb.st_mtim.tv_sec, f->modified, sizeof(f->modified));
}

/* Whether the entity-tag list LIST names ETAG (a strong tag): "*", or a
 * list of entity tags. STRONG: a weak tag (W/) never matches (If-Match,
 * RFC 9110 §13.1.1); else the W/ is ignored (If-None-Match, §13.1.2). A
 * malformed list matches nothing from where it goes wrong. */
static int etag_listed(const char *list, const char *etag, int strong) {
  size_t elen = strlen(etag);
  const char *p = list, *q;

  for (;;) {
    int weak = 0;
    while (*p == ' ' || *p == '\t' || *p == ',')
      p++;
    if (*p == '\0')
      return 0;
    if (*p == '*')
      return 1;
    if (p[0] == 'W' && p[1] == '/') {
      weak = 1;
      p += 2;
    }
    if (*p != '"' || (q = strchr(p + 1, '"')) == NULL)
      return 0;
    if (!(strong && weak) && (size_t)(q + 1 - p) == elen &&
        memcmp(p, etag, elen) == 0)
      return 1;
    for (p = q + 1; *p == ' ' || *p == '\t'; p++)
      ;
    if (*p != ',' && *p != '\0')
      return 0;
  }
}

/* Every NAME field of the request, as one list, against ETAG: 1 when it
 * names it, 0 when not, -1 when there is no such field. */
static int etag_fields(spoke_request_t *req, const char *name,
                       const char *etag, int strong) {
  size_t count = spoke_request_header_count(req);
  int seen = -1;

  for (size_t i = 0; i < count; i++) {
    const char *n, *value;
    spoke_request_header_at(req, i, &n, &value);
    if (strcasecmp(n, name) != 0)
      continue;
    if (etag_listed(value, etag, strong))
      return 1;
    seen = 0;
  }
  return seen;
}

/* RFC 9110 §13.2.2, steps 1 and 2: If-Match when present, else
 * If-Unmodified-Since (ignored when it is not a date). */
int static_preconditions_hold(spoke_request_t *req, const char *etag,
                              time_t mtime) {
  int match = etag_fields(req, "If-Match", etag, 1);
  const char *ius;
  time_t t;

  if (match >= 0)
    return match;
  ius = spoke_request_header(req, "If-Unmodified-Since");
  return ius == NULL || parse_http_date(ius, &t) != 0 || mtime <= t;
}

/* Whether the request's validators say the client's copy is current:
 * If-None-Match (every such header) when present, else If-Modified-Since. */
int static_not_modified(spoke_request_t *req, const char *etag,
                        time_t mtime) {
  int match = etag_fields(req, "If-None-Match", etag, 0);
  const char *ims;
  time_t t;

  if (match >= 0)
    return match;
  ims = spoke_request_header(req, "If-Modified-Since");
  return ims != NULL && parse_http_date(ims, &t) == 0 && mtime <= t;
}

/* If-Range: whether a Range may be honoured. An entity tag must match
 * strongly (a weak one never does), a date must be Last-Modified's. */
int static_if_range_holds(spoke_request_t *req, const char *etag,
                          time_t mtime) {
  const char *v = spoke_request_header(req, "If-Range");
  time_t t;
  if (v == NULL)
    return 1;
  if (v[0] == '"')
    return strcmp(v, etag) == 0;
  if (v[0] == 'W' && v[1] == '/')
    return 0;
  return parse_http_date(v, &t) == 0 && t == mtime;
}

/* Decimal digits at *P, saturating at UINT64_MAX. -1 when there are none. */
static int parse_u64(const char **p, uint64_t *out) {
  uint64_t v = 0;
  const char *s = *p;
  if (*s < '0' || *s > '9')
    return -1;
  for (; *s >= '0' && *s <= '9'; s++) {
    unsigned d = (unsigned)(*s - '0');
    v = v > (UINT64_MAX - d) / 10 ? UINT64_MAX : v * 10 + d;
  }
  *p = s;
  *out = v;
  return 0;
}

/* The Range value H against a body of SIZE bytes. STATIC_RANGE_ONE with
 * [*FIRST, *LAST]; STATIC_RANGE_NONE to serve the whole body (malformed,
 * not bytes, several ranges, or a suffix range of an empty file);
 * STATIC_RANGE_UNSATISFIABLE for 416. */
int static_parse_range(const char *h, uint64_t size, uint64_t *first,
                       uint64_t *last) {
  const char *p = h;
  uint64_t a = 0, b;
  int suffix = 0;

  if (strncasecmp(p, "bytes", 5) != 0)
    return STATIC_RANGE_NONE;
  for (p += 5; *p == ' ' || *p == '\t'; p++)
    ;
  if (*p++ != '=')
    return STATIC_RANGE_NONE;
  while (*p == ' ' || *p == '\t')
    p++;
  if (*p == '-') { /* "-n": the last n bytes */
    p++;
    if (parse_u64(&p, &b) != 0)
      return STATIC_RANGE_NONE;
    suffix = 1;
  } else {
    if (parse_u64(&p, &a) != 0 || *p++ != '-')
      return STATIC_RANGE_NONE;
    b = UINT64_MAX; /* "a-": to the end */
    if (*p >= '0' && *p <= '9' && (parse_u64(&p, &b) != 0 || b < a))
      return STATIC_RANGE_NONE;
  }
  while (*p == ' ' || *p == '\t')
    p++;
  if (*p != '\0')
    return STATIC_RANGE_NONE; /* several ranges (or junk): the whole body */
  if (suffix) {
    if (b == 0)
      return STATIC_RANGE_UNSATISFIABLE;
    if (size == 0)
      return STATIC_RANGE_NONE;
    *first = b >= size ? 0 : size - b;
    *last = size - 1;
    return STATIC_RANGE_ONE;
  }
  if (a >= size)
    return STATIC_RANGE_UNSATISFIABLE;
  *first = a;
  *last = b >= size ? size - 1 : b;
  return STATIC_RANGE_ONE;
}
