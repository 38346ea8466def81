/* fuzz_conn.c: libFuzzer target over a connection's input path.
 *
 * LLVMFuzzerInitialize starts the real server in this process, on a
 * thread of its own (one I/O loop, two pool threads), listening on a
 * loopback port of its choosing, with the example plugins hello, echo and
 * counter plus the fuzz-only plugin fuzzkit (tests/fuzz/fuzzkit.c) copied
 * into a private plugins directory. sleep.so is left out: its default
 * wait is two seconds.
 *
 * Each input is one client connection: connect, send every byte of the
 * input, read whatever comes back, and check what came back:
 *
 *   - it is a sequence of complete HTTP/1.1 responses: "HTTP/1.1 NNN
 *     reason" status lines with NNN in 100..599, CRLF-terminated header
 *     lines whose names are tokens and whose values carry no control
 *     bytes, bodies framed by Content-Length or chunked encoding, or
 *     close-delimited (last, with Connection: close); never both a
 *     Content-Length and a Transfer-Encoding, never two Content-Lengths;
 *   - interim responses are "100 Continue" only; every final response has
 *     exactly one well-formed Date header;
 *   - nothing follows a response that says Connection: close;
 *   - every request the input completes (counted by a second, plain
 *     llhttp parse of the input) is answered, in order, unless an earlier
 *     response closed the connection; at most one more response (an error
 *     for a request cut short or refused mid-head) may follow, and it
 *     closes the connection;
 *   - the server closes by itself only after a response that says so;
 *     after the client's EOF it closes promptly;
 *   - no gap of SPOKE_FUZZ_STALL_MS (default 3000) without progress;
 *   - what fuzzkit's /fz/target/... route reports of the request is sane:
 *     the path as the core normalized it has no dot segment, no "//", only
 *     canonical %XX; the query is the target's bytes after its first '?'
 *     (see target_check);
 *   - with SPOKE_FUZZ_STRICT=1, also: a request whose head breaks the
 *     rules docs/DESIGN.md says spoke enforces whatever llhttp accepts (CRLF
 *     only, no obs-fold, token names, no whitespace before the colon, no
 *     control bytes in values), or whose chunked body is not RFC 9112
 *     chunked (CRLF after each size line and each chunk's data), gets no
 *     answer below 400. Off by default until the core meets it.
 *
 * The input is sent and the responses are read together (poll), so a
 * large input cannot deadlock against unread responses. The write side is
 * shut down only once every complete request has been answered: the
 * server treats EOF as the client leaving and may drop responses still in
 * flight, which is its right, so half-closing earlier would make a
 * truncated response legitimate. Then any trailing partial request is
 * abandoned and the server must close.
 *
 * A broken invariant prints the reason, the input and the bytes received
 * (escaped) and abort()s, so libFuzzer saves the input as a crash. Every
 * 1000 inputs (and at start) GET /hello must still give 200.
 *
 * Knobs (environment): SPOKE_FUZZ_STALL_MS, SPOKE_FUZZ_VERBOSE=1 (print
 * every exchange), SPOKE_FUZZ_TMPDIR (where the private directories go;
 * default $TMPDIR or /tmp), SPOKE_FUZZ_LOG_LEVEL (server log level,
 * default -1: silent, since fuzzkit's failing routes log errors by design;
 * 0 shows errors), SPOKE_FUZZ_PORT=N (talk to a
 * server already listening on 127.0.0.1:N instead: another build of
 * spoke, or selftest.py's scripted server; coverage is then the
 * harness's own, and the liveness check wants GET /hello to give 200).
 */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <llhttp.h>

#include "ctl/ctl.h"

#ifndef SPOKE_FUZZ_EXAMPLES_DIR
#error "SPOKE_FUZZ_EXAMPLES_DIR: the build's plugins directory"
#endif
#ifndef SPOKE_FUZZ_KIT_SO
#error "SPOKE_FUZZ_KIT_SO: path of fuzzkit.so"
#endif

#define MAX_REQS 16384                  /* 64 KiB of input holds fewer */
#define MAX_OUTPUT (32u * 1024 * 1024)  /* more than any input can earn */

/* ---- the server ------------------------------------------------------ */

static spoke__server_t server;
static pthread_t server_thread;
static atomic_int server_returned;
static int server_rc;
static char work_dir[PATH_MAX];
static int port;
static int stall_ms = 3000;
static int verbose;
static int strict;
static unsigned long execs;

static void *server_main(void *arg) {
  (void)arg;
  server_rc = spoke__server_run(&server);
  atomic_store(&server_returned, 1);
  return NULL;
}

static void die(const char *fmt, ...)
    __attribute__((format(printf, 1, 2), noreturn));
static void die(const char *fmt, ...) {
  va_list ap;
  fprintf(stderr, "fuzz_conn: ");
  va_start(ap, fmt);
  vfprintf(stderr, fmt, ap);
  va_end(ap);
  fputc('\n', stderr);
  abort();
}

static int copy_file(const char *from, const char *to) {
  char buf[1 << 16];
  ssize_t n;
  int in = open(from, O_RDONLY | O_CLOEXEC), out;
  if (in < 0)
    return -1;
  out = open(to, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0755);
  if (out < 0) {
    close(in);
    return -1;
  }
  while ((n = read(in, buf, sizeof(buf))) > 0)
    if (write(out, buf, (size_t)n) != n) {
      n = -1;
      break;
    }
  close(in);
  if (close(out) != 0)
    n = -1;
  return n < 0 ? -1 : 0;
}

static int rm_entry(const char *path, const struct stat *st, int flag,
                    struct FTW *ftw) {
  (void)st;
  (void)flag;
  (void)ftw;
  remove(path);
  return 0;
}

static void cleanup(void) {
  /* The server still runs: its watcher would log the directory going. */
  spoke__log_level = -1;
  if (work_dir[0] != '\0')
    nftw(work_dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

static int env_int(const char *name, int def) {
  const char *s = getenv(name);
  return s != NULL && *s != '\0' ? atoi(s) : def;
}

static void start_server(void) {
  static char plugins[PATH_MAX + 16], runtime[PATH_MAX + 16];
  static const char *const examples[] = { "hello.so", "echo.so", "counter.so" };
  const char *base = getenv("SPOKE_FUZZ_TMPDIR");
  const char *exdir = SPOKE_FUZZ_EXAMPLES_DIR;
  char from[PATH_MAX * 2], to[PATH_MAX * 2];
  struct timespec ts = { 0, 1000000 };
  int waited = 0;

  if (base == NULL || *base == '\0')
    base = getenv("TMPDIR");
  if (base == NULL || *base == '\0')
    base = "/tmp";
  snprintf(work_dir, sizeof(work_dir), "%s/spoke-fuzz.XXXXXX", base);
  if (mkdtemp(work_dir) == NULL)
    die("cannot create %s: %s", work_dir, strerror(errno));
  atexit(cleanup);
  snprintf(plugins, sizeof(plugins), "%s/plugins", work_dir);
  snprintf(runtime, sizeof(runtime), "%s/run", work_dir);
  if (mkdir(plugins, 0700) != 0 || mkdir(runtime, 0700) != 0)
    die("cannot create directories in %s: %s", work_dir, strerror(errno));
  for (size_t i = 0; i < sizeof(examples) / sizeof(examples[0]); i++) {
    snprintf(from, sizeof(from), "%s/%s", exdir, examples[i]);
    snprintf(to, sizeof(to), "%s/%s", plugins, examples[i]);
    if (copy_file(from, to) != 0)
      die("cannot copy %s to %s: %s (build the examples first)", from, to,
          strerror(errno));
  }
  snprintf(to, sizeof(to), "%s/fuzzkit.so", plugins);
  if (copy_file(SPOKE_FUZZ_KIT_SO, to) != 0)
    die("cannot copy %s: %s", SPOKE_FUZZ_KIT_SO, strerror(errno));

  spoke__config_defaults(&server.cfg);
  snprintf(server.cfg.listen_host, sizeof(server.cfg.listen_host),
           "127.0.0.1");
  server.cfg.listen_port = 0;
  server.cfg.plugins_dir = plugins;
  server.cfg.runtime_dir = runtime;
  server.cfg.loops = 1;
  server.cfg.workers = 2;
  /* Small limits, so that inputs of at most 64 KiB reach them. */
  server.cfg.max_header = 8 * 1024;
  server.cfg.max_body = 16 * 1024;
  server.cfg.max_requests = 64; /* the per-connection cap, reachable too */
  server.cfg.shutdown_timeout_ms = 1000;
  server.cfg.log_level = env_int("SPOKE_FUZZ_LOG_LEVEL", -1);

  if (pthread_create(&server_thread, NULL, server_main, NULL) != 0)
    die("cannot start the server thread");
  while ((port = atomic_load(&server.bound_port)) == 0) {
    if (atomic_load(&server_returned))
      die("the server did not start (rc %d)", server_rc);
    if (++waited > 60000)
      die("the server did not bind within 60 s");
    nanosleep(&ts, NULL);
  }
  /* libuv took SIGINT and SIGTERM for the server's drain. Give them back:
   * libFuzzer installs its own handlers after this function, but only over
   * default ones, and Ctrl-C must stop the fuzzer, not drain the server. */
  signal(SIGINT, SIG_DFL);
  signal(SIGTERM, SIG_DFL);
  signal(SIGPIPE, SIG_IGN);
}

/* ---- what the input asks: a plain llhttp parse ----------------------- */

/* The same llhttp, run over the whole input, says how many requests it
 * completes and where each one's head and body lie (pausing at the end of
 * each head and each message to learn the offsets). */
typedef struct {
  size_t ncomplete;             /* requests the input completes */
  size_t nheads;                /* requests whose head completes */
  int phase;                    /* the callback that paused: 1 head, 2 end */
  const char *base;             /* the input */
  struct {
    size_t start, head_end;     /* [start, head_end): blank lines + head */
    unsigned char head;         /* method is HEAD */
    unsigned char chunked;      /* chunked body, ends at the next start */
    size_t url, url_len;        /* the request target in the input */
    const char *strict;         /* why the strict grammar refuses it */
  } req[MAX_REQS];
  size_t end[MAX_REQS];         /* where each complete request ends */
} reqinfo_t;

static int rq_url(llhttp_t *p, const char *at, size_t len) {
  reqinfo_t *ri = p->data;
  if (ri->nheads < MAX_REQS) {
    if (ri->req[ri->nheads].url_len == 0)
      ri->req[ri->nheads].url = (size_t)(at - ri->base);
    ri->req[ri->nheads].url_len += len;
  }
  return 0;
}

static int rq_headers_complete(llhttp_t *p) {
  reqinfo_t *ri = p->data;
  if (ri->nheads < MAX_REQS) {
    ri->req[ri->nheads].head = p->method == HTTP_HEAD;
    ri->req[ri->nheads].chunked = (p->flags & F_CHUNKED) != 0;
  }
  ri->nheads++;
  ri->phase = 1;
  return HPE_PAUSED;
}

static int rq_message_complete(llhttp_t *p) {
  reqinfo_t *ri = p->data;
  ri->ncomplete++;
  ri->phase = 2;
  return HPE_PAUSED;
}

/* ---- the design's head rules (SPOKE_FUZZ_STRICT) ---------------------- */

/* docs/DESIGN.md: spoke refuses, whatever its llhttp accepts, a head with
 * anything but CRLF line ends (no bare CR or LF), obs-fold, a header name
 * that is not a token, whitespace before the colon, control bytes in a
 * value. This is that grammar, kept independent of llhttp and the core;
 * chunked bodies are held to RFC 9112 as well (CRLF after every size line
 * and every chunk's data, trailers as header lines). NULL when fine. */

static int is_tchar(unsigned char c);

static const char *strict_line_end(const uint8_t *d, size_t end, size_t *i) {
  /* *i at a CR or LF: must be CRLF. */
  if (d[*i] == '\n')
    return "bare LF";
  if (*i + 1 >= end || d[*i + 1] != '\n')
    return "bare CR";
  *i += 2;
  return NULL;
}

/* Header lines from *I up to and including the empty line. */
static const char *strict_fields(const uint8_t *d, size_t end, size_t *i) {
  for (;;) {
    size_t name;
    const char *why;
    if (*i >= end)
      return "head cut short";
    if (d[*i] == '\r' || d[*i] == '\n')
      return strict_line_end(d, end, i); /* the empty line */
    if (d[*i] == ' ' || d[*i] == '\t')
      return "obs-fold (a line starting with whitespace)";
    for (name = *i; *i < end && is_tchar(d[*i]); (*i)++)
      ;
    if (*i == name)
      return "header name is not a token";
    if (*i >= end)
      return "head cut short";
    if (d[*i] == ' ' || d[*i] == '\t')
      return "whitespace before the colon";
    if (d[*i] != ':')
      return "header name is not a token";
    for ((*i)++; *i < end && d[*i] != '\r' && d[*i] != '\n'; (*i)++)
      if ((d[*i] < 0x20 && d[*i] != '\t') || d[*i] == 0x7f)
        return "control byte in a header value";
    if (*i >= end)
      return "head cut short";
    if ((why = strict_line_end(d, end, i)) != NULL)
      return why;
  }
}

static const char *strict_head(const uint8_t *d, size_t start, size_t end) {
  size_t i = start;
  const char *why;
  /* RFC 9112 2.2: empty lines before a request may be ignored. */
  while (i < end && (d[i] == '\r' || d[i] == '\n'))
    if ((why = strict_line_end(d, end, &i)) != NULL)
      return why;
  for (; i < end && d[i] != '\r' && d[i] != '\n'; i++)
    if (d[i] < 0x20 || d[i] == 0x7f)
      return "control byte in the request line";
  if (i >= end)
    return "head cut short";
  if ((why = strict_line_end(d, end, &i)) != NULL)
    return why;
  if ((why = strict_fields(d, end, &i)) != NULL)
    return why;
  return i == end ? NULL : "head ends before llhttp says";
}

static const char *strict_chunked(const uint8_t *d, size_t i, size_t end) {
  const char *why;
  for (;;) {
    size_t size = 0, digits = 0;
    for (; i < end && isxdigit(d[i]); i++, digits++) {
      if (digits == 15)
        return "chunk size too long";
      size = size * 16 + (size_t)(isdigit(d[i]) ? d[i] - '0'
                                                : (d[i] | 0x20) - 'a' + 10);
    }
    if (digits == 0)
      return "chunk size is not hex";
    /* chunk-ext: anything but control bytes up to the line end */
    for (; i < end && d[i] != '\r' && d[i] != '\n'; i++)
      if ((d[i] < 0x20 && d[i] != '\t') || d[i] == 0x7f)
        return "control byte in a chunk extension";
    if (i >= end)
      return "chunked body cut short";
    if ((why = strict_line_end(d, end, &i)) != NULL)
      return why;
    if (size == 0)
      break;
    if (end - i < size + 2)
      return "chunked body cut short";
    i += size;
    if (d[i] != '\r' || d[i + 1] != '\n')
      return "chunk data not followed by CRLF";
    i += 2;
  }
  if ((why = strict_fields(d, end, &i)) != NULL) /* trailers */
    return why;
  return i == end ? NULL : "chunked body ends before llhttp says";
}

static void scan_requests(const uint8_t *data, size_t size, reqinfo_t *ri,
                          int strict) {
  static llhttp_settings_t settings;
  static int ready;
  llhttp_t p;
  llhttp_errno_t e;
  size_t pos = 0;

  if (!ready) {
    llhttp_settings_init(&settings);
    settings.on_url = rq_url;
    settings.on_headers_complete = rq_headers_complete;
    settings.on_message_complete = rq_message_complete;
    ready = 1;
  }
  ri->ncomplete = ri->nheads = 0;
  ri->base = (const char *)data;
  ri->req[0].url_len = 0;
  llhttp_init(&p, HTTP_REQUEST, &settings);
  p.data = ri;
  /* Until the input ends (HPE_OK), llhttp fails, or an upgrade (the server
   * answers that request, then closes). A head that ends the input still
   * completes its message on the next, empty, execute. */
  for (;;) {
    size_t at;
    ri->phase = 0;
    e = llhttp_execute(&p, (const char *)data + pos, size - pos);
    if (e != HPE_PAUSED)
      break;
    at = (size_t)((const uint8_t *)llhttp_get_error_pos(&p) - data);
    if (ri->phase == 1 && ri->nheads <= MAX_REQS) {
      size_t n = ri->nheads - 1;
      ri->req[n].start = n == 0 ? 0 : ri->end[n - 1];
      ri->req[n].head_end = at;
      ri->req[n].strict =
          strict ? strict_head(data, ri->req[n].start, at) : NULL;
      if (n + 1 < MAX_REQS)
        ri->req[n + 1].url_len = 0;
    } else if (ri->phase == 2 && ri->ncomplete <= MAX_REQS) {
      size_t n = ri->ncomplete - 1;
      ri->end[n] = at;
      if (strict && ri->req[n].strict == NULL && ri->req[n].chunked)
        ri->req[n].strict = strict_chunked(data, ri->req[n].head_end, at);
    }
    llhttp_resume(&p);
    pos = at;
  }
}

/* ---- the exchange ---------------------------------------------------- */

typedef struct {
  char *buf;
  size_t len, cap;
  int half_closed;      /* we shut down our write side */
  int server_closed;    /* EOF (or reset) seen */
  int closed_first;     /* the server closed before our EOF */
  int send_failed;      /* the server stopped taking bytes */
  int send_errno;       /* why, or 0 */
  int recv_errno;       /* the error that ended reading, 0 for EOF */
  size_t sent;
} exchange_t;

/* ---- checking the responses ------------------------------------------ */

typedef enum { RS_OK, RS_MORE, RS_BAD } rstat_t;
typedef enum { M_BODY, M_HEAD, M_EITHER } rmode_t;

typedef struct {
  int status;
  int final;
  int close;
  size_t end;
  size_t body, body_len;      /* a Content-Length body, else body_len 0 */
  const char *why;
  size_t where;
} resp_t;

static int is_tchar(unsigned char c) {
  return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') ||
         (c >= 'A' && c <= 'Z') || (c != 0 && strchr("!#$%&'*+-.^_`|~", c));
}

static int ieq(const char *a, size_t alen, const char *b) {
  size_t blen = strlen(b);
  if (alen != blen)
    return 0;
  for (size_t i = 0; i < alen; i++) {
    unsigned char x = (unsigned char)a[i], y = (unsigned char)b[i];
    if (x >= 'A' && x <= 'Z')
      x = (unsigned char)(x + 32);
    if (y >= 'A' && y <= 'Z')
      y = (unsigned char)(y + 32);
    if (x != y)
      return 0;
  }
  return 1;
}

static int date_ok(const char *v, size_t n) {
  /* "Sun, 06 Nov 1994 08:49:37 GMT" */
  static const char *const days = "Mon Tue Wed Thu Fri Sat Sun ";
  static const char *const months =
      "Jan Feb Mar Apr May Jun Jul Aug Sep Oct Nov Dec ";
  static const char shape[] = "Aaa, 00 Aaa 0000 00:00:00 GMT";
  char d[5], m[5];
  if (n != sizeof(shape) - 1)
    return 0;
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)v[i];
    if (shape[i] == '0' ? !(c >= '0' && c <= '9')
        : shape[i] == 'A' ? !(c >= 'A' && c <= 'Z')
        : shape[i] == 'a' ? !(c >= 'a' && c <= 'z')
                          : c != (unsigned char)shape[i])
      return 0;
  }
  memcpy(d, v, 3);
  memcpy(m, v + 8, 3);
  d[3] = m[3] = ' ';
  d[4] = m[4] = '\0';
  return strstr(days, d) != NULL && strstr(months, m) != NULL;
}

static rstat_t bad(resp_t *r, size_t where, const char *why) {
  r->why = why;
  r->where = where;
  return RS_BAD;
}

/* A chunked body from POS; *END past its last CRLF. */
static rstat_t parse_chunked(const char *b, size_t len, size_t pos,
                             size_t *end, resp_t *r) {
  for (;;) {
    size_t size = 0, digits = 0;
    while (pos < len) {
      unsigned char c = (unsigned char)b[pos];
      int v = c >= '0' && c <= '9' ? c - '0'
              : c >= 'a' && c <= 'f' ? c - 'a' + 10
              : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
      if (v < 0)
        break;
      if (++digits > 15)
        return bad(r, pos, "chunk size too long");
      size = size * 16 + (size_t)v;
      pos++;
    }
    if (pos == len)
      return RS_MORE;
    if (digits == 0)
      return bad(r, pos, "chunk size is not hex");
    if (len - pos < 2)
      return RS_MORE;
    if (b[pos] != '\r' || b[pos + 1] != '\n')
      return bad(r, pos, "chunk size line does not end in CRLF");
    pos += 2;
    if (size == 0) {
      /* No trailers from this server. */
      if (len - pos < 2)
        return RS_MORE;
      if (b[pos] != '\r' || b[pos + 1] != '\n')
        return bad(r, pos, "last chunk not followed by CRLF");
      *end = pos + 2;
      return RS_OK;
    }
    if (len - pos < size + 2)
      return RS_MORE;
    pos += size;
    if (b[pos] != '\r' || b[pos + 1] != '\n')
      return bad(r, pos, "chunk data not followed by CRLF");
    pos += 2;
  }
}

/* One response from POS. AT_EOF: no more bytes will come. */
static rstat_t parse_response(const char *b, size_t len, size_t pos,
                              rmode_t mode, int at_eof, resp_t *r) {
  static const char proto[] = "HTTP/1.1 ";
  const size_t plen = sizeof(proto) - 1;
  size_t avail = len - pos, i, line, head_end, body;
  int ncl = 0, nte = 0, ndate = 0, chunked = 0, close = 0;
  unsigned long long cl = 0;
  const char *hdr_end;

  memset(r, 0, sizeof(*r));
  /* Garbage shows at once, not only when the head would be complete. */
  if (memcmp(b + pos, proto, avail < plen ? avail : plen) != 0)
    return bad(r, pos, "not an HTTP/1.1 status line");
  hdr_end = memmem(b + pos, avail, "\r\n\r\n", 4);
  if (hdr_end == NULL) {
    if (avail > 64 * 1024)
      return bad(r, pos, "response head longer than 64 KiB");
    return at_eof ? bad(r, pos, "truncated response head") : RS_MORE;
  }
  head_end = (size_t)(hdr_end - b) + 4;
  /* Status line. */
  i = pos + plen;
  if (!(b[i] >= '1' && b[i] <= '5' && b[i + 1] >= '0' && b[i + 1] <= '9' &&
        b[i + 2] >= '0' && b[i + 2] <= '9'))
    return bad(r, i, "status code is not 100..599");
  r->status = (b[i] - '0') * 100 + (b[i + 1] - '0') * 10 + (b[i + 2] - '0');
  i += 3;
  if (b[i] != ' ')
    return bad(r, i, "no SP after the status code");
  for (i++; b[i] != '\r'; i++) {
    unsigned char c = (unsigned char)b[i];
    if ((c < 0x20 && c != '\t') || c == 0x7f)
      return bad(r, i, "control byte in the reason phrase");
  }
  if (b[i + 1] != '\n')
    return bad(r, i, "status line does not end in CRLF");
  line = i + 2;
  /* Header lines. */
  while (line < head_end - 2) {
    size_t name_end, v, vend;
    for (i = line; is_tchar((unsigned char)b[i]); i++)
      ;
    name_end = i;
    if (name_end == line)
      return bad(r, line, "header name is empty or not a token");
    if (b[i] != ':')
      return bad(r, i, "header name not followed by ':'");
    for (i++; b[i] == ' ' || b[i] == '\t'; i++)
      ;
    v = i;
    for (; b[i] != '\r'; i++) {
      unsigned char c = (unsigned char)b[i];
      if ((c < 0x20 && c != '\t') || c == 0x7f)
        return bad(r, i, "control byte in a header value");
    }
    if (b[i + 1] != '\n')
      return bad(r, i, "bare CR in the head");
    vend = i;
    while (vend > v && (b[vend - 1] == ' ' || b[vend - 1] == '\t'))
      vend--;
    if (ieq(b + line, name_end - line, "Content-Length")) {
      if (++ncl > 1)
        return bad(r, line, "two Content-Length headers");
      if (vend == v || vend - v > 18)
        return bad(r, v, "bad Content-Length value");
      for (size_t k = v; k < vend; k++) {
        if (b[k] < '0' || b[k] > '9')
          return bad(r, k, "bad Content-Length value");
        cl = cl * 10 + (unsigned)(b[k] - '0');
      }
    } else if (ieq(b + line, name_end - line, "Transfer-Encoding")) {
      if (++nte > 1)
        return bad(r, line, "two Transfer-Encoding headers");
      if (!ieq(b + v, vend - v, "chunked"))
        return bad(r, v, "Transfer-Encoding other than chunked");
      chunked = 1;
    } else if (ieq(b + line, name_end - line, "Date")) {
      if (++ndate > 1)
        return bad(r, line, "two Date headers");
      if (!date_ok(b + v, vend - v))
        return bad(r, v, "malformed Date");
    } else if (ieq(b + line, name_end - line, "Connection")) {
      if (ieq(b + v, vend - v, "close"))
        close = 1;
      else if (!ieq(b + v, vend - v, "keep-alive"))
        return bad(r, v, "unexpected Connection value");
    }
    line = i + 2;
  }
  r->close = close;
  r->final = r->status >= 200;
  if (ncl && nte)
    return bad(r, pos, "both Content-Length and Transfer-Encoding");
  if (!r->final) {
    if (r->status != 100)
      return bad(r, pos, "interim response other than 100 Continue");
    if (ncl || nte || close)
      return bad(r, pos, "100 Continue with framing or Connection headers");
    r->end = head_end;
    return RS_OK;
  }
  if (ndate != 1)
    return bad(r, pos, "final response without a Date header");
  if (r->status == 204 || r->status == 304) {
    if (nte || (r->status == 204 && ncl))
      return bad(r, pos, "204/304 with body framing");
    r->end = head_end;
    return RS_OK;
  }
  /* A HEAD response that closes may also be an error the server sent
   * before it knew the method was HEAD (refused mid-head): either. */
  if (mode == M_HEAD && close)
    mode = M_EITHER;
  if (mode == M_HEAD) {
    r->end = head_end;
    return RS_OK;
  }
  if (mode == M_EITHER && head_end == len) {
    if (!at_eof)
      return RS_MORE;
    r->end = head_end;
    return RS_OK;
  }
  if (ncl) {
    if (cl > len - head_end)
      return at_eof ? bad(r, head_end, "body shorter than Content-Length")
                    : RS_MORE;
    r->end = head_end + (size_t)cl;
    r->body = head_end;
    r->body_len = (size_t)cl;
    return RS_OK;
  }
  if (chunked) {
    rstat_t s = parse_chunked(b, len, head_end, &body, r);
    if (s == RS_MORE && at_eof)
      return bad(r, head_end, "truncated chunked body");
    if (s == RS_OK)
      r->end = body;
    return s;
  }
  if (!close)
    return bad(r, pos, "no Content-Length, no chunked, no Connection: close");
  if (!at_eof)
    return RS_MORE;
  r->end = len; /* close-delimited */
  return RS_OK;
}

static rmode_t mode_for(const reqinfo_t *ri, size_t nfinal) {
  if (nfinal >= ri->nheads || nfinal >= MAX_REQS)
    return M_EITHER;
  return ri->req[nfinal].head ? M_HEAD : M_BODY;
}

/* ---- reporting -------------------------------------------------------- */

/* Prints P escaped: all of it up to 8 KiB, else the first 2 KiB and the
 * last 6 KiB (where a stream usually goes wrong); MARK gets a marker. */
static void dump(const char *what, const char *p, size_t n, size_t mark) {
  const size_t head = 2048, tail = 6144;
  int cut = n > head + tail;
  fprintf(stderr, "---- %s (%zu bytes%s) ----\n", what, n,
          cut ? ", middle left out" : "");
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)p[i];
    if (cut && i == head) {
      fprintf(stderr, "\n[... %zu bytes ...]\n", n - head - tail);
      i = n - tail;
      c = (unsigned char)p[i];
    }
    if (i == mark)
      fputs("\xe2\x96\xb6", stderr); /* a marker where the problem is */
    if (c == '\n')
      fputs("\\n\n", stderr);
    else if (c == '\r')
      fputs("\\r", stderr);
    else if (c == '\\')
      fputs("\\\\", stderr);
    else if (c < 0x20 || c >= 0x7f)
      fprintf(stderr, "\\x%02x", c);
    else
      fputc(c, stderr);
  }
  fputs("\n---- end ----\n", stderr);
}

static void fail(const uint8_t *in, size_t insize, const exchange_t *ex,
                 const reqinfo_t *ri, size_t where, const char *fmt, ...)
    __attribute__((format(printf, 6, 7), noreturn));
static void fail(const uint8_t *in, size_t insize, const exchange_t *ex,
                 const reqinfo_t *ri, size_t where, const char *fmt, ...) {
  va_list ap;
  fprintf(stderr, "\nfuzz_conn: INVARIANT BROKEN: ");
  va_start(ap, fmt);
  vfprintf(stderr, fmt, ap);
  va_end(ap);
  fprintf(stderr,
          "\n(input: %zu bytes, %zu sent%s%s, %zu complete requests, %zu "
          "heads; %s; %s%s%s)\n",
          insize, ex->sent, ex->send_errno ? ", send: " : "",
          ex->send_errno ? strerror(ex->send_errno) : "", ri->ncomplete,
          ri->nheads,
          ex->half_closed ? "client half-closed" : "client did not half-close",
          ex->server_closed ? (ex->closed_first ? "server closed first"
                                                : "server closed")
                            : "server did not close",
          ex->recv_errno ? ", recv: " : "",
          ex->recv_errno ? strerror(ex->recv_errno) : "");
  dump("input", (const char *)in, insize, (size_t)-1);
  dump("received", ex->buf ? ex->buf : "", ex->len, where);
  abort();
}

/* ---- talking to the server ------------------------------------------- */

static int connect_server(void) {
  struct sockaddr_in sa;
  struct linger lg = { 1, 0 };
  int one = 1;
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0)
    die("socket: %s", strerror(errno));
  memset(&sa, 0, sizeof(sa));
  sa.sin_family = AF_INET;
  sa.sin_port = htons((uint16_t)port);
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  while (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
    if (errno == EINTR || errno == EALREADY || errno == EINPROGRESS)
      continue;
    if (errno == EISCONN) /* an interrupted attempt went through */
      break;
    die("connect to 127.0.0.1:%d: %s", port, strerror(errno));
  }
  /* Close with RST: no TIME_WAIT pile-up over millions of connections. */
  setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
  return fd;
}

static void grow(exchange_t *ex, size_t need) {
  size_t cap = ex->cap ? ex->cap : 16384;
  while (cap < need)
    cap *= 2;
  if (cap != ex->cap) {
    char *n = realloc(ex->buf, cap);
    if (n == NULL)
      die("out of memory");
    ex->buf = n;
    ex->cap = cap;
  }
}

/* Sends DATA and reads until the server closes. Returns NULL, or why it
 * stalled; *BAD_WHY is set when the bytes so far already break the
 * response grammar. Counts complete final responses as they arrive, to
 * know when to half-close. */
static const char *exchange(const uint8_t *data, size_t size,
                            const reqinfo_t *ri, exchange_t *ex,
                            const char **bad_why, size_t *bad_where) {
  int fd = connect_server();
  size_t scan_pos = 0, scan_final = 0;
  const char *stalled = NULL;

  *bad_why = NULL;
  ex->len = 0;
  ex->sent = 0;
  ex->half_closed = ex->server_closed = ex->closed_first = 0;
  ex->send_failed = ex->send_errno = ex->recv_errno = 0;
  for (;;) {
    struct pollfd pfd = { fd, POLLIN, 0 };
    int n;

    /* Everything sent and every complete request answered: EOF. */
    if (!ex->half_closed && (ex->sent == size || ex->send_failed) &&
        scan_final >= ri->ncomplete) {
      shutdown(fd, SHUT_WR);
      ex->half_closed = 1;
    }
    if (ex->sent < size && !ex->send_failed)
      pfd.events |= POLLOUT;
    n = poll(&pfd, 1, stall_ms);
    if (n < 0) {
      if (errno == EINTR)
        continue;
      die("poll: %s", strerror(errno));
    }
    if (n == 0) {
      stalled = ex->half_closed
                    ? "the server did not close after the client's EOF"
                    : "the server stopped answering complete requests";
      break;
    }
    if (pfd.revents & POLLOUT) {
      ssize_t w = send(fd, data + ex->sent, size - ex->sent, MSG_NOSIGNAL);
      if (w > 0)
        ex->sent += (size_t)w;
      else if (w < 0 && errno != EAGAIN && errno != EINTR) {
        ex->send_failed = 1; /* EPIPE, ECONNRESET: it closed */
        ex->send_errno = errno;
      }
    }
    if (pfd.revents & (POLLIN | POLLHUP | POLLERR)) {
      ssize_t r;
      grow(ex, ex->len + 16384);
      r = recv(fd, ex->buf + ex->len, ex->cap - ex->len, 0);
      if (r > 0) {
        ex->len += (size_t)r;
        if (ex->len > MAX_OUTPUT) {
          *bad_why = "more than 32 MiB of responses";
          *bad_where = ex->len;
          break;
        }
        /* Count the complete final responses so far. */
        for (;;) {
          resp_t resp;
          rstat_t s = parse_response(ex->buf, ex->len, scan_pos,
                                     mode_for(ri, scan_final), 0, &resp);
          if (s == RS_MORE || scan_pos == ex->len)
            break;
          if (s == RS_BAD) {
            *bad_why = resp.why;
            *bad_where = resp.where;
            goto out;
          }
          scan_pos = resp.end;
          scan_final += resp.final;
          if (scan_pos == ex->len)
            break;
        }
      } else if (r == 0 || (errno != EAGAIN && errno != EINTR)) {
        ex->recv_errno = r == 0 ? 0 : errno;
        ex->server_closed = 1;
        ex->closed_first = !ex->half_closed;
        break;
      }
    }
  }
out:
  close(fd);
  return stalled;
}

/* fuzzkit's "* /fz/target/(rest)" answers "fz-target\npath=P\nquery=Q\n",
 * P the path as the core normalized it (core/path.c), Q the query. P must
 * be normalized: rooted, no empty segment but a trailing one, no "." or
 * ".." segment, every %XX upper-case hex, neither %00 nor an unreserved
 * character; and Q must be the request target's bytes after its first
 * '?'. NULL when fine, or when the body is not fuzzkit's. */
static int unreserved(unsigned char c) {
  return isalnum(c) || c == '-' || c == '.' || c == '_' || c == '~';
}

static const char *target_check(const reqinfo_t *ri, size_t i, const char *b,
                                size_t n) {
  static const char tag[] = "fz-target\npath=";
  const char *p, *pe, *q, *u, *uq, *want;
  size_t plen, qlen, ulen, wlen;

  if (n < sizeof(tag) - 1 || memcmp(b, tag, sizeof(tag) - 1) != 0)
    return NULL;
  p = b + sizeof(tag) - 1;
  pe = memchr(p, '\n', (size_t)(b + n - p));
  if (pe == NULL || b + n - pe < 8 || memcmp(pe + 1, "query=", 6) != 0 ||
      b[n - 1] != '\n')
    return "fz-target: malformed body";
  plen = (size_t)(pe - p);
  q = pe + 7;
  qlen = (size_t)(b + n - 1 - q);
  if (plen == 0 || p[0] != '/')
    return "normalized path does not start with '/'";
  for (size_t k = 1, seg = 1; k <= plen; k++) {
    if (k < plen && p[k] != '/')
      continue;
    if (k == seg && k < plen)
      return "normalized path has an empty segment (\"//\")";
    if ((k - seg == 1 && p[seg] == '.') ||
        (k - seg == 2 && p[seg] == '.' && p[seg + 1] == '.'))
      return "normalized path keeps a dot segment";
    seg = k + 1;
  }
  for (size_t k = 0; k < plen; k++) {
    unsigned v;
    if (p[k] != '%')
      continue;
    if (k + 2 >= plen || !isxdigit((unsigned char)p[k + 1]) ||
        !isxdigit((unsigned char)p[k + 2]) ||
        islower((unsigned char)p[k + 1]) || islower((unsigned char)p[k + 2]))
      return "normalized path has a %-encoding that is not %XX upper-case";
    v = (unsigned)strtoul((char[]){ p[k + 1], p[k + 2], 0 }, NULL, 16);
    if (v == 0)
      return "normalized path keeps %00";
    if (unreserved((unsigned char)v))
      return "normalized path keeps an encoded unreserved character";
  }
  if (plen < 10 || memcmp(p, "/fz/target", 10) != 0 ||
      (plen > 10 && p[10] != '/'))
    return "request routed to /fz/target/* has another path";
  if (i >= ri->nheads || i >= MAX_REQS)
    return NULL;
  u = ri->base + ri->req[i].url;
  ulen = ri->req[i].url_len;
  uq = memchr(u, '?', ulen);
  want = uq ? uq + 1 : "";
  wlen = uq ? (size_t)(u + ulen - uq - 1) : 0;
  if (qlen != wlen || memcmp(q, want, wlen) != 0)
    return "query differs from the request target's";
  return NULL;
}

/* Whole-stream checks once the server has closed. */
static void check(const uint8_t *data, size_t size, const reqinfo_t *ri,
                  exchange_t *ex) {
  size_t pos = 0, nfinal = 0, last_start = 0;
  int last_close = 0, last_final = 0, last_status = 0, after_close = 0;

  while (pos < ex->len) {
    resp_t r;
    rstat_t s;
    if (after_close)
      fail(data, size, ex, ri, pos, "bytes after a Connection: close response");
    s = parse_response(ex->buf, ex->len, pos, mode_for(ri, nfinal), 1, &r);
    if (s != RS_OK)
      fail(data, size, ex, ri, r.where, "%s", r.why);
    last_start = pos;
    pos = r.end;
    last_final = r.final;
    if (r.final) {
      const char *why = target_check(ri, nfinal, ex->buf + r.body,
                                     r.body_len);
      if (why != NULL)
        fail(data, size, ex, ri, last_start, "request %zu: %s", nfinal + 1,
             why);
      if (nfinal < ri->nheads && nfinal < MAX_REQS &&
          ri->req[nfinal].strict != NULL && r.status < 400)
        fail(data, size, ex, ri, last_start,
             "request %zu (input bytes %zu..%zu) breaks the design's "
             "request rules (%s), yet the server answered %d",
             nfinal + 1, ri->req[nfinal].start, ri->req[nfinal].head_end,
             ri->req[nfinal].strict, r.status);
      nfinal++;
      last_close = r.close;
      last_status = r.status;
      after_close = r.close;
    }
  }
  if (nfinal > ri->ncomplete + 1)
    fail(data, size, ex, ri, last_start,
         "%zu responses for %zu complete requests", nfinal, ri->ncomplete);
  if (nfinal == ri->ncomplete + 1 && !(last_close && last_status >= 400))
    fail(data, size, ex, ri, last_start,
         "a response beyond the complete requests that is not an error "
         "closing the connection");
  if (ex->closed_first && !(last_final && last_close))
    fail(data, size, ex, ri, last_start,
         "the server closed the connection without a response saying so "
         "(%zu of %zu complete requests answered)",
         nfinal, ri->ncomplete);
  if (nfinal < ri->ncomplete && !last_close)
    fail(data, size, ex, ri, last_start,
         "only %zu of %zu complete requests answered", nfinal, ri->ncomplete);
}

static void liveness(void) {
  static const char req[] = "GET /hello HTTP/1.1\r\nHost: fuzz\r\n\r\n";
  static const char want[] = "HTTP/1.1 200 ";
  static reqinfo_t ri;
  exchange_t ex = { 0 };
  const char *why, *stalled;
  size_t where;

  if (atomic_load(&server_returned))
    die("the server has stopped (rc %d)", server_rc);
  scan_requests((const uint8_t *)req, sizeof(req) - 1, &ri, 1);
  stalled = exchange((const uint8_t *)req, sizeof(req) - 1, &ri, &ex, &why,
                     &where);
  if (stalled != NULL || why != NULL || ex.len < sizeof(want) - 1 ||
      memcmp(ex.buf, want, sizeof(want) - 1) != 0)
    fail((const uint8_t *)req, sizeof(req) - 1, &ex, &ri, 0,
         "liveness check after %lu inputs: GET /hello did not give 200 (%s)",
         execs, stalled ? stalled : why ? why : "wrong answer");
  check((const uint8_t *)req, sizeof(req) - 1, &ri, &ex);
  free(ex.buf);
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  (void)argc;
  (void)argv;
  stall_ms = env_int("SPOKE_FUZZ_STALL_MS", stall_ms);
  verbose = env_int("SPOKE_FUZZ_VERBOSE", 0);
  strict = env_int("SPOKE_FUZZ_STRICT", 0);
  port = env_int("SPOKE_FUZZ_PORT", 0);
  if (port == 0)
    start_server();
  else
    signal(SIGPIPE, SIG_IGN);
  liveness();
  return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static reqinfo_t ri;      /* large: not on the stack */
  static exchange_t ex;     /* its buffer is reused */
  const char *why, *stalled;
  size_t where = 0;

  scan_requests(data, size, &ri, strict);
  stalled = exchange(data, size, &ri, &ex, &why, &where);
  if (verbose) {
    fprintf(stderr, "fuzz_conn: %zu complete requests (%zu heads)\n",
            ri.ncomplete, ri.nheads);
    dump("received", ex.buf ? ex.buf : "", ex.len, (size_t)-1);
  }
  if (why != NULL)
    fail(data, size, &ex, &ri, where, "%s", why);
  if (stalled != NULL)
    fail(data, size, &ex, &ri, ex.len, "%s (no progress for %d ms)", stalled,
         stall_ms);
  check(data, size, &ri, &ex);
  if (++execs % 1000 == 0)
    liveness();
  return 0;
}
