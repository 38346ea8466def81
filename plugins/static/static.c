/* static.c: serves the files of one directory under a URL prefix.
 *
 *   GET|HEAD PREFIX/REL  ->  the regular file ROOT/REL
 *
 * Configuration, from the [plugin static] section of the server's config
 * file (spoke_config; every key optional, unknown keys ignored):
 *   root   = DIR     the directory served; default "static", relative to
 *                    the server's working directory. Resolved once at init
 *                    (realpath) and logged; init fails, with one log line,
 *                    when it is not a directory.
 *   prefix = /PATH   the URL prefix; default /static. Letters, digits,
 *                    "-._~" and '/' only; "/" serves the whole site.
 *   index  = on|off  default off. On: a directory serves its index.html
 *                    ("/dir" is first redirected to "/dir/" so relative
 *                    links work). Never a generated listing. Off, or
 *                    without index.html, a directory is 404.
 *
 * What is guaranteed about paths (the invariants):
 *   - Nothing outside ROOT is ever opened. ROOT is opened once, at init,
 *     as a directory fd. Every request walks its path from that fd one
 *     component at a time with openat(O_NOFOLLOW), so the kernel never
 *     resolves a ".." or a symbolic link on our behalf. (A directory
 *     moved into ROOT's place later is not seen before a reload.)
 *   - No symbolic link below ROOT is ever followed, wherever it points
 *     (outside ROOT or inside it): a link is 404. The strict rule is the
 *     simple one to trust. ROOT itself may be a link: init resolves it.
 *   - The server has already normalized the path (core/path.c: "." and
 *     ".." resolved, also as %2E; %00 refused; encoded unreserved
 *     characters decoded; %2F kept encoded). Components are percent-
 *     decoded here, each on its own, and one that decodes to "", "." or
 *     "..", or contains '/' or NUL, is 404: an encoded slash or dot can
 *     never form a path the walk did not check component by component.
 *     Backslashes and other bytes are ordinary characters of a name.
 *   - Only regular files are served. Directories (but for index.html),
 *     fifos, sockets and devices are 404; a special file is not even
 *     opened (fstatat first, and fstat again on what was opened).
 *
 * HTTP: Content-Type from the extension (text types with charset=utf-8,
 * else application/octet-stream). ETag (strong: inode, size and mtime to
 * the nanosecond) and Last-Modified on 200, 206 and 304. If-None-Match
 * ("*" or a list, weak comparison) and, only without it, If-Modified-
 * Since answer 304 without a body. Range (GET only, RFC 9110 14.2): one
 * range "a-b", "a-" or "-n" is 206 with Content-Range; an unsatisfiable
 * one is 416 whose Content-Range gives the size; several ranges get the
 * whole file (200, which the RFC allows); a malformed Range is ignored.
 * If-Range (an ETag, compared strongly, or the Last-Modified date) turns
 * a stale Range into a 200. Accept-Ranges: bytes, and X-Content-Type-
 * Options: nosniff (a browser takes the type given, never a guessed one).
 * HEAD gets GET's headers and the server drops the body; it never reads
 * the file. GET and HEAD only: the router answers other methods 405.
 *
 * Sizes: a body of up to WHOLE_MAX bytes is read whole and sent with
 * Content-Length. A larger one is streamed in CHUNK pieces, so memory per
 * request stays bounded; the SDK cannot declare a stream's length, so such
 * a response is chunked (close-delimited for HTTP/1.0). A streamed
 * response holds its worker until the client has read all but the last
 * MiB (the SDK's back-pressure), so --workers bounds concurrent large
 * downloads. A read error before the first byte is a 500 with one log
 * line; after it the handler returns SPOKE_EIO and the server cuts the
 * response short, so the client cannot take it for complete.
 *
 * Threading: the route is SPOKE_SYNC, since file I/O blocks; it runs on
 * the worker pool. The state is written by init and only read afterwards,
 * so every worker shares it, root fd included, without a lock.
 */
#define _GNU_SOURCE /* O_PATH, timegm, strchrnul, GNU strerror_r */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <spoke.h>

#define WHOLE_MAX (1024 * 1024) /* larger bodies are streamed */
#define CHUNK (64 * 1024)       /* one streamed write */
#define PREFIX_MAX 512

typedef struct {
  int root_fd;        /* O_PATH directory fd of ROOT, shared by all threads */
  int index;          /* serve DIR/index.html for a directory */
  const char *prefix; /* route_path: its first prefix_len bytes */
  size_t prefix_len;  /* length of the prefix in a request path; 0 for "/" */
  char root[PATH_MAX]; /* resolved, for the logs */
} static_state_t;

/* A file found for a request. */
typedef struct {
  int fd;                  /* open for reading */
  struct stat sb;          /* of fd */
  char name[NAME_MAX + 1]; /* its last component, for the Content-Type */
  int err;                 /* errno behind a 500 */
} file_t;

static int serve(spoke_request_t *req);

/* The route's pattern, the configured prefix then "/" "*", written by init
 * on the control thread before the server reads the table (it does so
 * again after init). Static rather than allocated: it then lives exactly
 * as long as the descriptor pointing at it, as a string literal would,
 * whatever the server reads during unload. Every loaded version is its
 * own copy of the .so, so a reload starts again from the default. */
static char route_path[PREFIX_MAX + 3];

/* Not const: init points routes[0].path at route_path. */
static spoke_route_t routes[] = {
  { "GET", "/static/*", SPOKE_SYNC, serve },
};

/* ---- small helpers ---- */

static const char *errstr(int err, char *buf, size_t n) {
  return strerror_r(err, buf, n); /* the GNU one: returns the message */
}

static int hexval(unsigned char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

static int unreserved(unsigned char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
         (c >= '0' && c <= '9') || c == '-' || c == '.' || c == '_' ||
         c == '~';
}

static const char *const day_names[] = { "Sun", "Mon", "Tue", "Wed",
                                         "Thu", "Fri", "Sat" };
static const char *const month_names[] = { "Jan", "Feb", "Mar", "Apr",
                                           "May", "Jun", "Jul", "Aug",
                                           "Sep", "Oct", "Nov", "Dec" };

/* T as an IMF-fixdate, "Sun, 06 Nov 1994 08:49:37 GMT" (no locale). */
static void http_date(time_t t, char *out, size_t n) {
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

/* ---- Content-Type ---- */

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
static const char *content_type(const char *name) {
  const char *dot = strrchr(name, '.');
  if (dot != NULL && dot != name)
    for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++)
      if (strcasecmp(dot + 1, types[i].ext) == 0)
        return types[i].type;
  return "application/octet-stream";
}

/* ---- finding the file: the walk below ROOT ---- */

/* HTTP status for a failed open/stat; ERR kept in F for a 500's log. */
static int errno_status(int err, file_t *f) {
  switch (err) {
    case ENOENT: case ENOTDIR: case ELOOP: case ENAMETOOLONG:
      return 404; /* ELOOP: a symbolic link met with O_NOFOLLOW */
    case EACCES: case EPERM:
      return 403;
    default:
      f->err = err;
      return 500;
  }
}

/* Percent-decodes the path component S (N bytes) into OUT (NAME_MAX + 1
 * bytes). -1 for a component no file can be named by: empty, ".", "..",
 * too long, or holding '/' or NUL once decoded. */
static int decode_component(const char *s, size_t n, char *out) {
  size_t w = 0;
  for (size_t r = 0; r < n; r++) {
    int c = (unsigned char)s[r];
    if (c == '%') {
      int hi, lo;
      if (n - r < 3 || (hi = hexval((unsigned char)s[r + 1])) < 0 ||
          (lo = hexval((unsigned char)s[r + 2])) < 0)
        return -1;
      c = hi * 16 + lo;
      r += 2;
    }
    if (c == '\0' || c == '/' || w == NAME_MAX)
      return -1;
    out[w++] = (char)c;
  }
  out[w] = '\0';
  if (w == 0 || strcmp(out, ".") == 0 || strcmp(out, "..") == 0)
    return -1;
  return 0;
}

/* Opens NAME in DIR for reading when it is a regular file, never through
 * a symbolic link. A directory sets *IS_DIR and opens nothing. */
static int open_file(int dir, const char *name, file_t *f, int *is_dir) {
  struct stat sb;
  int fd;

  *is_dir = 0;
  if (fstatat(dir, name, &sb, AT_SYMLINK_NOFOLLOW) != 0)
    return errno_status(errno, f);
  if (S_ISDIR(sb.st_mode)) {
    *is_dir = 1;
    return 200;
  }
  if (!S_ISREG(sb.st_mode))
    return 404; /* a link, fifo, socket or device: never opened */
  /* O_NONBLOCK: should a fifo be swapped in since the fstatat, opening it
   * does not wait for a writer; the fstat below then refuses it. */
  fd = openat(dir, name,
              O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
  if (fd < 0)
    return errno_status(errno, f);
  if (fstat(fd, &f->sb) != 0 || !S_ISREG(f->sb.st_mode)) {
    close(fd);
    return 404;
  }
  f->fd = fd;
  if (name != f->name)
    snprintf(f->name, sizeof(f->name), "%s", name);
  return 200;
}

/* DIR was asked for: its index.html, a redirect to "DIR/", or 404. */
static int open_index(const static_state_t *st, int dir, int slash,
                      file_t *f) {
  int is_dir, status;
  if (!st->index)
    return 404;
  if (!slash)
    return 301;
  status = open_file(dir, "index.html", f, &is_dir);
  return status == 200 && is_dir ? 404 : status;
}

/* Finds REL (the request path after the prefix: "" or "/...", still
 * percent-encoded) below ROOT. 200 with F->fd open, 301 for a directory
 * that needs its slash, or an error status. */
static int open_beneath(const static_state_t *st, const char *rel,
                        file_t *f) {
  size_t len = strlen(rel);
  int slash = len > 0 && rel[len - 1] == '/'; /* names a directory */
  int dir = st->root_fd;                      /* ours to close if not root */
  const char *p = rel;
  int status, is_dir;

  for (;;) {
    const char *end;
    int next;

    while (*p == '/')
      p++;
    if (*p == '\0') { /* REL is ROOT itself */
      status = open_index(st, dir, slash, f);
      break;
    }
    end = strchrnul(p, '/');
    if (decode_component(p, (size_t)(end - p), f->name) != 0) {
      status = 404;
      break;
    }
    for (p = end; *p == '/'; p++)
      ;
    if (*p == '\0') { /* the last component */
      status = open_file(dir, f->name, f, &is_dir);
      if (status == 200 && is_dir) {
        next = openat(dir, f->name,
                      O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (next < 0) {
          status = errno_status(errno, f);
          break;
        }
        status = open_index(st, next, slash, f);
        close(next);
      } else if (status == 200 && slash) { /* "file/" */
        close(f->fd);
        status = 404;
      }
      break;
    }
    /* A directory on the way: a real one, not a link to one. */
    next = openat(dir, f->name, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (next < 0) {
      status = errno_status(errno, f);
      break;
    }
    if (dir != st->root_fd)
      close(dir);
    dir = next;
  }
  if (dir != st->root_fd)
    close(dir);
  return status;
}

/* ---- conditional requests and ranges ---- */

/* "inode-size-mtime", quoted: changes whenever the file is replaced or
 * rewritten (to the nanosecond), so it is used as a strong validator. */
static void make_etag(const struct stat *sb, char *out, size_t n) {
  snprintf(out, n, "\"%" PRIx64 "-%" PRIx64 "-%" PRIx64 ".%lx\"",
           (uint64_t)sb->st_ino, (uint64_t)sb->st_size,
           (uint64_t)sb->st_mtim.tv_sec, (long)sb->st_mtim.tv_nsec);
}

/* Whether the If-None-Match value LIST names ETAG: "*", or a list of
 * entity tags compared weakly (a W/ prefix is ignored). A malformed list
 * matches nothing from where it goes wrong. */
static int etag_listed(const char *list, const char *etag) {
  size_t elen = strlen(etag);
  const char *p = list, *q;

  for (;;) {
    while (*p == ' ' || *p == '\t' || *p == ',')
      p++;
    if (*p == '\0')
      return 0;
    if (*p == '*')
      return 1;
    if (p[0] == 'W' && p[1] == '/')
      p += 2;
    if (*p != '"' || (q = strchr(p + 1, '"')) == NULL)
      return 0;
    if ((size_t)(q + 1 - p) == elen && memcmp(p, etag, elen) == 0)
      return 1;
    for (p = q + 1; *p == ' ' || *p == '\t'; p++)
      ;
    if (*p != ',' && *p != '\0')
      return 0;
  }
}

/* Whether the request's validators say the client's copy is current:
 * If-None-Match (every such header) when present, else If-Modified-Since. */
static int not_modified(spoke_request_t *req, const char *etag,
                        time_t mtime) {
  size_t count = spoke_request_header_count(req);
  int seen = 0;
  const char *ims;
  time_t t;

  for (size_t i = 0; i < count; i++) {
    const char *name, *value;
    spoke_request_header_at(req, i, &name, &value);
    if (strcasecmp(name, "If-None-Match") != 0)
      continue;
    if (etag_listed(value, etag))
      return 1;
    seen = 1;
  }
  if (seen)
    return 0;
  ims = spoke_request_header(req, "If-Modified-Since");
  return ims != NULL && parse_http_date(ims, &t) == 0 && mtime <= t;
}

/* If-Range: whether a Range may be honoured. An entity tag must match
 * strongly (a weak one never does), a date must be Last-Modified's. */
static int if_range_holds(spoke_request_t *req, const char *etag,
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

enum { RANGE_NONE, RANGE_ONE, RANGE_UNSATISFIABLE };

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

/* The Range value H against a body of SIZE bytes. RANGE_ONE with
 * [*FIRST, *LAST]; RANGE_NONE to serve the whole body (malformed, not
 * bytes, several ranges, or a suffix range of an empty file);
 * RANGE_UNSATISFIABLE for 416. */
static int parse_range(const char *h, uint64_t size, uint64_t *first,
                       uint64_t *last) {
  const char *p = h;
  uint64_t a = 0, b;
  int suffix = 0;

  if (strncasecmp(p, "bytes", 5) != 0)
    return RANGE_NONE;
  for (p += 5; *p == ' ' || *p == '\t'; p++)
    ;
  if (*p++ != '=')
    return RANGE_NONE;
  while (*p == ' ' || *p == '\t')
    p++;
  if (*p == '-') { /* "-n": the last n bytes */
    p++;
    if (parse_u64(&p, &b) != 0)
      return RANGE_NONE;
    suffix = 1;
  } else {
    if (parse_u64(&p, &a) != 0 || *p++ != '-')
      return RANGE_NONE;
    b = UINT64_MAX; /* "a-": to the end */
    if (*p >= '0' && *p <= '9' && (parse_u64(&p, &b) != 0 || b < a))
      return RANGE_NONE;
  }
  while (*p == ' ' || *p == '\t')
    p++;
  if (*p != '\0')
    return RANGE_NONE; /* several ranges (or junk): the whole body */
  if (suffix) {
    if (b == 0)
      return RANGE_UNSATISFIABLE;
    if (size == 0)
      return RANGE_NONE;
    *first = b >= size ? 0 : size - b;
    *last = size - 1;
    return RANGE_ONE;
  }
  if (a >= size)
    return RANGE_UNSATISFIABLE;
  *first = a;
  *last = b >= size ? size - 1 : b;
  return RANGE_ONE;
}

/* ---- responses ---- */

static const char *reason(int status) {
  switch (status) {
    case 301: return "Moved Permanently";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 416: return "Range Not Satisfiable";
    default: return "Internal Server Error";
  }
}

/* A short text response, "404 Not Found\n". */
static int reply_status(spoke_request_t *req, int status) {
  char body[64];
  int n = snprintf(body, sizeof(body), "%d %s\n", status, reason(status));
  spoke_response_status(req, status);
  spoke_response_header(req, "Content-Type", "text/plain; charset=utf-8");
  return spoke_response_send(req, body, (size_t)n);
}

/* "/dir" -> 301 to "/dir/", the query kept. */
static int redirect_dir(spoke_request_t *req, const char *path) {
  const char *query = spoke_request_query(req);
  size_t n = strlen(path) + strlen(query) + 3;
  char *location = spoke_request_alloc(req, n);
  if (location == NULL)
    return SPOKE_ENOMEM;
  snprintf(location, n, "%s/%s%s", path, *query ? "?" : "", query);
  spoke_response_header(req, "Location", location);
  return reply_status(req, 301);
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
                     : errstr(err, buf, sizeof(buf)));
}

/* Everything after the file is open: validators, range, headers, body.
 * Nothing is set on the response before the first bytes are in hand, so
 * a read error can still be a clean 500. */
static int respond_file(spoke_request_t *req, const file_t *f) {
  char etag[96], modified[64], content_range[96];
  uint64_t size = (uint64_t)f->sb.st_size, first = 0, last, count;
  time_t mtime = f->sb.st_mtim.tv_sec;
  int head = strcmp(spoke_request_method(req), "HEAD") == 0;
  int status = 200, rc;
  const char *range;
  size_t n;
  char *buf;

  make_etag(&f->sb, etag, sizeof(etag));
  http_date(mtime, modified, sizeof(modified));
  if (not_modified(req, etag, mtime)) {
    spoke_response_status(req, 304);
    spoke_response_header(req, "ETag", etag);
    spoke_response_header(req, "Last-Modified", modified);
    return spoke_response_send(req, NULL, 0);
  }

  last = size == 0 ? 0 : size - 1;
  range = head ? NULL : spoke_request_header(req, "Range");
  if (range != NULL && if_range_holds(req, etag, mtime)) {
    switch (parse_range(range, size, &first, &last)) {
      case RANGE_UNSATISFIABLE:
        snprintf(content_range, sizeof(content_range), "bytes */%" PRIu64,
                 size);
        spoke_response_header(req, "Content-Range", content_range);
        return reply_status(req, 416);
      case RANGE_ONE:
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
    return reply_status(req, 500);
  }

  spoke_response_status(req, status);
  spoke_response_header(req, "Content-Type", content_type(f->name));
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

/* GET|HEAD PREFIX/...: the handler. */
static int serve(spoke_request_t *req) {
  const static_state_t *st = spoke_plugin_state(req);
  const char *path = spoke_request_path(req);
  file_t f;
  int status, rc;

  /* The router matched the prefix and its wildcard, so the path starts
   * with the prefix; check anyway rather than trust an offset. */
  if (strncmp(path, st->prefix, st->prefix_len) != 0 ||
      (path[st->prefix_len] != '\0' && path[st->prefix_len] != '/'))
    return reply_status(req, 404);
  memset(&f, 0, sizeof(f));
  f.fd = -1;
  status = open_beneath(st, path + st->prefix_len, &f);
  if (status == 301)
    return redirect_dir(req, path);
  if (status != 200) {
    if (status == 500) {
      char buf[128];
      spoke_log(SPOKE_LOG_ERROR, "%s %s: open below %s: %s",
                spoke_request_method(req), path, st->root,
                errstr(f.err, buf, sizeof(buf)));
    }
    return reply_status(req, status);
  }
  rc = respond_file(req, &f);
  close(f.fd);
  return rc;
}

/* ---- configuration ---- */

/* PREFIX in the form the server's normalized paths use ("/a/b": repeated
 * and trailing slashes dropped, "/" becomes "") then "/" "*" into OUT
 * (PREFIX_MAX + 3 bytes); *LEN gets the prefix's length. 0, or -1 if it
 * is not a plain path. */
static int make_pattern(const char *prefix, char *out, size_t *len) {
  const char *p = prefix;
  size_t w = 0;

  if (p[0] != '/')
    return -1;
  for (;;) {
    const char *seg;
    size_t n;
    while (*p == '/')
      p++;
    if (*p == '\0')
      break;
    for (seg = p; *p != '\0' && *p != '/'; p++)
      if (!unreserved((unsigned char)*p))
        return -1;
    n = (size_t)(p - seg);
    if ((n == 1 && seg[0] == '.') ||
        (n == 2 && seg[0] == '.' && seg[1] == '.') || w + 1 + n > PREFIX_MAX)
      return -1;
    out[w++] = '/';
    memcpy(out + w, seg, n);
    w += n;
  }
  *len = w;
  memcpy(out + w, "/*", 3);
  return 0;
}

static int parse_switch(const char *v, int *out) {
  if (strcasecmp(v, "on") == 0 || strcasecmp(v, "yes") == 0 ||
      strcasecmp(v, "true") == 0 || strcmp(v, "1") == 0)
    *out = 1;
  else if (strcasecmp(v, "off") == 0 || strcasecmp(v, "no") == 0 ||
           strcasecmp(v, "false") == 0 || strcmp(v, "0") == 0)
    *out = 0;
  else
    return -1;
  return 0;
}

static int static_init(const spoke_host_t *host, void **state) {
  const char *root = spoke_config("root");
  const char *prefix = spoke_config("prefix");
  const char *index = spoke_config("index");
  static_state_t *st = calloc(1, sizeof(*st));
  char pattern[PREFIX_MAX + 3], buf[128];

  (void)host;
  if (st == NULL)
    return SPOKE_ENOMEM;
  if (root == NULL || *root == '\0')
    root = "static";
  if (prefix == NULL)
    prefix = "/static";
  if (index != NULL && parse_switch(index, &st->index) != 0) {
    spoke_log(SPOKE_LOG_ERROR, "index = %s: want on or off", index);
    goto fail;
  }
  if (make_pattern(prefix, pattern, &st->prefix_len) != 0) {
    spoke_log(SPOKE_LOG_ERROR,
              "prefix = %s: want a path of letters, digits, \"-._~\" and "
              "'/' (at most %d bytes), starting with '/'",
              prefix, PREFIX_MAX);
    goto fail;
  }
  if (realpath(root, st->root) == NULL) {
    int err = errno;
    char cwd[PATH_MAX];
    spoke_log(SPOKE_LOG_ERROR, "root %s%s%s: %s; not serving", root,
              root[0] == '/' ? "" : " in ",
              root[0] == '/' ? ""
                             : getcwd(cwd, sizeof(cwd)) ? cwd : "(unknown)",
              errstr(err, buf, sizeof(buf)));
    goto fail;
  }
  st->root_fd = open(st->root, O_PATH | O_DIRECTORY | O_CLOEXEC);
  if (st->root_fd < 0) {
    spoke_log(SPOKE_LOG_ERROR, "root %s: %s; not serving", st->root,
              errstr(errno, buf, sizeof(buf)));
    goto fail;
  }
  memcpy(route_path, pattern, sizeof(pattern));
  routes[0].path = route_path;
  st->prefix = route_path;
  spoke_log(SPOKE_LOG_INFO, "serving %s at %.*s/ (index %s)", st->root,
            (int)st->prefix_len, route_path, st->index ? "on" : "off");
  *state = st;
  return 0;

fail:
  free(st);
  return SPOKE_EINIT;
}

static void static_fini(void *state) {
  static_state_t *st = state;
  close(st->root_fd);
  free(st);
}

SPOKE_PLUGIN(.name = "static", .version = "1.0.0", SPOKE_ROUTES(routes),
             .init = static_init, .fini = static_fini);
