/* slowclient.c: N concurrent downloads by deliberately slow readers, for
 * the benchmarks (W7 in workloads.py).
 *
 * Opens N TCP connections to HOST:PORT (nonblocking connects, at most
 * --max-pending handshakes unfinished at once), sends one `GET PATH
 * HTTP/1.1` on each, then reads every response at a bounded rate: each
 * connection may take at most --chunk bytes every --every milliseconds
 * (64 KiB every 100 ms by default), whatever the server could send. Each
 * socket's receive buffer is pinned (--rcvbuf, 64 KiB by default) so the
 * kernel cannot read far ahead on the client's behalf. Responses are
 * framed by Content-Length, chunked encoding (decoded as it streams in)
 * or the close. One thread, one epoll set for the handshakes and the
 * requests, a timer tick for the reads; no allocation after start-up.
 *
 * The run ends when every download has finished or failed, or at
 * --window seconds: then every connection still open is closed (aborted
 * by design, not an error). At --sample seconds each connection's body
 * byte count is recorded; between the sample and the end it is expected
 * to grow by at least --min-bytes. Prints one JSON line:
 *
 *   {"n": N, "ok": .., "complete": .., "complete_right": .., "errors": ..,
 *    "refused": .., "reset": .., "early_close": .., "bad": .., "non200": ..,
 *    "waiting": .., "started": .., "moving": .., "progressing": ..,
 *    "phase_s": .., "phase_min_mib": .., "phase_median_mib": ..,
 *    "total_mib": .., "first_byte_max_ms": .., "wall_s": ..}
 *
 * ok: status 200 heads. complete: whole bodies; complete_right: those
 * of --expect bytes (every complete one when --expect is not given).
 * errors: refused, reset, closed before the body was whole, malformed,
 * or not 200. waiting: no response head by the end. started: at least
 * one body byte. moving: any body bytes between the sample and the end;
 * progressing: at least --min-bytes then, or complete. phase_*: body MiB
 * per connection between the sample and the end (phase_s long), over the
 * connections that had not completed by the sample.
 *
 *   slowclient -p PORT [-H HOST] [-n N] [-P PATH] [--chunk BYTES]
 *              [--every MS] [--window S] [--sample S] [--min-bytes BYTES]
 *              [--expect BYTES] [--rcvbuf BYTES] [--max-pending K]
 *
 * Exit status 0 when no download failed, 1 otherwise, 2 on usage.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define HEAD_MAX 2048
#define READ_MAX (64 * 1024)
#define MAX_EVENTS 512

enum state { ST_NEW, ST_CONNECTING, ST_SENDING, ST_READING, ST_DONE,
             ST_FAILED };
enum failure { F_REFUSED, F_RESET, F_EARLY, F_BAD, F_NON200, F_COUNT };
/* Where the body decoder is: by length, to the close, or chunked. */
enum body { B_HEAD, B_LENGTH, B_CLOSE, B_SIZE, B_EXT, B_DATA, B_DATA_END,
            B_TRAILER, B_END };

struct conn {
  int fd;
  enum state st;
  enum body b;
  long long left;      /* B_LENGTH, B_DATA: body bytes still to come */
  unsigned long size;  /* B_SIZE: the chunk size so far */
  int line_len;        /* B_TRAILER: bytes in the current line */
  long long body;      /* body bytes read */
  long long at_sample; /* body at --sample; -1: finished before it */
  double t0, first_byte;
  size_t sent, head_len;
  char head[HEAD_MAX];
};

struct opts {
  const char *host, *path;
  int port, n, max_pending, rcvbuf;
  long chunk, every_ms;
  long long min_bytes, expect;
  double window_s, sample_s;
};

struct run {
  struct opts o;
  struct sockaddr_in addr;
  char req[1024];
  size_t req_len;
  int ep, next, pending, finished, sampled;
  int ok, complete, complete_right, failures[F_COUNT];
  double start;
  struct conn *conns;
  double *phase; /* scratch for the median */
};

static double now_s(void) {
  struct timespec ts;

  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* ---- the end of a connection ----------------------------------------- */

static void finish(struct run *r, struct conn *c, enum state st) {
  if (c->st == ST_CONNECTING)
    r->pending--;
  if (c->fd >= 0)
    close(c->fd);
  c->fd = -1;
  c->st = st;
  r->finished++;
  if (!r->sampled)
    c->at_sample = -1;
}

static void fail(struct run *r, struct conn *c, enum failure why) {
  r->failures[why]++;
  finish(r, c, ST_FAILED);
}

static void completed(struct run *r, struct conn *c) {
  r->complete++;
  r->complete_right += r->o.expect < 0 || c->body == r->o.expect;
  finish(r, c, ST_DONE);
}

/* ---- the response ---------------------------------------------------- */

/* The head in c->head is whole: status and framing. 0, or -1 when bad. */
static int parse_head(struct run *r, struct conn *c, size_t size) {
  const char *p = c->head, *end = c->head + size - 2, *eol;
  int status;

  if (sscanf(p, "HTTP/1.%*d %3d", &status) != 1)
    return -1;
  if (status != 200) {
    fail(r, c, F_NON200);
    return 1;
  }
  r->ok++;
  c->b = B_CLOSE;
  for (p = strstr(p, "\r\n") + 2; p < end; p = eol + 2) {
    eol = strstr(p, "\r\n");
    if (strncasecmp(p, "content-length:", 15) == 0 && c->b == B_CLOSE) {
      c->b = B_LENGTH;
      c->left = strtoll(p + 15, NULL, 10);
    } else if (strncasecmp(p, "transfer-encoding:", 18) == 0 &&
               memmem(p, (size_t)(eol - p), "chunked", 7) != NULL) {
      c->b = B_SIZE;
      c->size = 0;
    }
  }
  return 0;
}

/* Feeds n body bytes (chunked framing included) to the decoder. Returns
 * 1 when the body is whole, 0 for more, -1 when it is malformed. */
static int body_bytes(struct conn *c, const char *p, size_t n) {
  for (size_t i = 0; i < n; i++) {
    char ch = p[i];
    size_t take;

    switch (c->b) {
    case B_LENGTH:
    case B_DATA:
      take = n - i < (unsigned long long)c->left ? n - i : (size_t)c->left;
      c->body += (long long)take;
      c->left -= (long long)take;
      i += take - 1;
      if (c->left == 0 && c->b == B_LENGTH)
        return 1;
      if (c->left == 0)
        c->b = B_DATA_END;
      break;
    case B_CLOSE:
      c->body += (long long)(n - i);
      return 0;
    case B_SIZE:
      if (ch >= '0' && ch <= '9')
        c->size = c->size * 16 + (unsigned long)(ch - '0');
      else if ((ch | 0x20) >= 'a' && (ch | 0x20) <= 'f')
        c->size = c->size * 16 + (unsigned long)((ch | 0x20) - 'a' + 10);
      else if (ch == ';' || ch == '\r')
        c->b = B_EXT;
      else if (ch == '\n')
        goto size_done;
      else
        return -1;
      break;
    case B_EXT:
      if (ch != '\n')
        break;
    size_done:
      c->left = (long long)c->size;
      c->b = c->size ? B_DATA : B_TRAILER;
      c->line_len = 0;
      break;
    case B_DATA_END: /* the CRLF after a chunk's data */
      if (ch == '\n') {
        c->b = B_SIZE;
        c->size = 0;
      } else if (ch != '\r') {
        return -1;
      }
      break;
    case B_TRAILER:
      if (ch == '\n' && c->line_len == 0)
        return 1;
      c->line_len = ch == '\n' ? 0 : c->line_len + (ch != '\r');
      break;
    default:
      return -1;
    }
  }
  return 0;
}

/* Up to budget bytes from c's socket. */
static void read_some(struct run *r, struct conn *c, long budget) {
  static char buf[READ_MAX];

  while (budget > 0 && c->st == ST_READING) {
    size_t want = budget < READ_MAX ? (size_t)budget : READ_MAX;
    ssize_t n;
    int done = 0;
    char *at = buf;

    if (c->b == B_HEAD) { /* the head goes to c->head, then is parsed */
      want = HEAD_MAX - 1 - c->head_len < want ? HEAD_MAX - 1 - c->head_len
                                               : want;
      at = c->head + c->head_len;
    }
    n = read(c->fd, at, want);
    if (n < 0 && (errno == EAGAIN || errno == EINTR))
      return;
    if (n < 0) {
      fail(r, c, errno == ECONNRESET ? F_RESET : F_BAD);
      return;
    }
    if (n == 0) {
      if (c->b == B_CLOSE)
        completed(r, c);
      else
        fail(r, c, F_EARLY);
      return;
    }
    budget -= n;
    if (c->b == B_HEAD) {
      char *end;

      c->head_len += (size_t)n;
      c->head[c->head_len] = '\0';
      end = strstr(c->head, "\r\n\r\n");
      if (end == NULL) {
        if (c->head_len == HEAD_MAX - 1)
          fail(r, c, F_BAD);
        continue;
      }
      done = parse_head(r, c, (size_t)(end + 4 - c->head));
      if (done != 0) {
        if (done < 0)
          fail(r, c, F_BAD);
        return;
      }
      c->first_byte = now_s() - c->t0;
      at = end + 4;
      n = c->head + c->head_len - at;
      if (c->b == B_LENGTH && c->left == 0) {
        completed(r, c);
        return;
      }
    }
    done = body_bytes(c, at, (size_t)n);
    if (done > 0)
      completed(r, c);
    else if (done < 0)
      fail(r, c, F_BAD);
  }
}

/* ---- connecting ------------------------------------------------------ */

static void open_conn(struct run *r, struct conn *c) {
  struct epoll_event ev = {.events = EPOLLOUT | EPOLLET};

  c->t0 = now_s();
  c->st = ST_CONNECTING;
  r->pending++;
  c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (c->fd < 0) {
    fail(r, c, F_BAD);
    return;
  }
  if (r->o.rcvbuf > 0) /* before connect, so the window is small at once */
    setsockopt(c->fd, SOL_SOCKET, SO_RCVBUF, &r->o.rcvbuf,
               sizeof(r->o.rcvbuf));
  ev.data.u64 = (uint64_t)(c - r->conns);
  if (epoll_ctl(r->ep, EPOLL_CTL_ADD, c->fd, &ev) != 0 ||
      (connect(c->fd, (struct sockaddr *)&r->addr, sizeof(r->addr)) != 0 &&
       errno != EINPROGRESS))
    fail(r, c, errno == ECONNREFUSED ? F_REFUSED : F_BAD);
}

/* EPOLLOUT: the handshake ended, or the request can go on. */
static void on_writable(struct run *r, struct conn *c) {
  if (c->st == ST_CONNECTING) {
    int err = 0;
    socklen_t len = sizeof(err);

    if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0 || err) {
      fail(r, c, err == ECONNREFUSED ? F_REFUSED : F_BAD);
      return;
    }
    r->pending--;
    c->st = ST_SENDING;
  }
  while (c->st == ST_SENDING && c->sent < r->req_len) {
    ssize_t w = write(c->fd, r->req + c->sent, r->req_len - c->sent);

    if (w < 0 && (errno == EAGAIN || errno == EINTR))
      return;
    if (w < 0) {
      fail(r, c, errno == ECONNRESET || errno == EPIPE ? F_RESET : F_BAD);
      return;
    }
    c->sent += (size_t)w;
  }
  if (c->st == ST_SENDING) { /* sent: from now on the tick reads it */
    epoll_ctl(r->ep, EPOLL_CTL_DEL, c->fd, NULL);
    c->st = ST_READING;
  }
}

/* ---- the run --------------------------------------------------------- */

static void take_sample(struct run *r) {
  for (int i = 0; i < r->o.n; i++)
    if (r->conns[i].at_sample >= 0)
      r->conns[i].at_sample = r->conns[i].body;
  r->sampled = 1;
}

static void run_all(struct run *r) {
  struct epoll_event evs[MAX_EVENTS];
  double every = (double)r->o.every_ms / 1000.0, next_tick, end;

  r->start = now_s();
  next_tick = r->start + every;
  end = r->start + r->o.window_s;
  while (r->finished < r->o.n) {
    double t = now_s(), wait = next_tick - t;
    int nev;

    if (t >= end)
      break;
    if (!r->sampled && t - r->start >= r->o.sample_s)
      take_sample(r);
    while (r->next < r->o.n && r->pending < r->o.max_pending)
      open_conn(r, &r->conns[r->next++]);
    nev = epoll_wait(r->ep, evs, MAX_EVENTS, wait > 0 ? (int)(wait * 1e3) + 1
                                                       : 0);
    for (int i = 0; i < nev; i++) {
      struct conn *c = &r->conns[evs[i].data.u64];

      if (c->st == ST_CONNECTING || c->st == ST_SENDING)
        on_writable(r, c);
    }
    if (now_s() < next_tick)
      continue;
    for (int i = 0; i < r->o.n; i++)
      if (r->conns[i].st == ST_READING)
        read_some(r, &r->conns[i], r->o.chunk);
    /* Keep the cadence, but never catch up in a burst after a stall. */
    next_tick += every;
    if (next_tick < now_s())
      next_tick = now_s() + every;
  }
  if (!r->sampled)
    take_sample(r);
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;

  return (x > y) - (x < y);
}

static void report(struct run *r) {
  double wall = now_s() - r->start, total = 0, fb_max = 0;
  double phase_s = wall - r->o.sample_s, mib = 1024.0 * 1024.0;
  int waiting = 0, started = 0, moving = 0, progressing = 0, m = 0;
  int errors = 0;

  for (int f = 0; f < F_COUNT; f++)
    errors += r->failures[f];
  for (int i = 0; i < r->o.n; i++) {
    const struct conn *c = &r->conns[i];
    long long grew = c->body - (c->at_sample < 0 ? 0 : c->at_sample);

    total += (double)c->body;
    waiting += c->st != ST_FAILED && c->b == B_HEAD;
    started += c->body > 0;
    fb_max = c->first_byte > fb_max ? c->first_byte : fb_max;
    if (c->at_sample < 0) { /* finished before the sample */
      progressing += c->st == ST_DONE;
      continue;
    }
    moving += grew > 0;
    progressing += c->st == ST_DONE || grew >= r->o.min_bytes;
    r->phase[m++] = (double)grew / mib;
  }
  qsort(r->phase, (size_t)m, sizeof(double), cmp_double);
  printf("{\"n\": %d, \"ok\": %d, \"complete\": %d, \"complete_right\": %d, "
         "\"errors\": %d, \"refused\": %d, \"reset\": %d, "
         "\"early_close\": %d, \"bad\": %d, \"non200\": %d, "
         "\"waiting\": %d, \"started\": %d, \"moving\": %d, "
         "\"progressing\": %d, \"phase_s\": %.3f, \"phase_min_mib\": %.3f, "
         "\"phase_median_mib\": %.3f, \"total_mib\": %.3f, "
         "\"first_byte_max_ms\": %.1f, \"wall_s\": %.3f}\n",
         r->o.n, r->ok, r->complete, r->complete_right, errors,
         r->failures[F_REFUSED], r->failures[F_RESET], r->failures[F_EARLY],
         r->failures[F_BAD], r->failures[F_NON200], waiting, started, moving,
         progressing, phase_s > 0 ? phase_s : 0, m ? r->phase[0] : 0,
         m ? r->phase[m / 2] : 0, total / mib, fb_max * 1e3, wall);
  fflush(stdout);
}

/* ---- set-up ---------------------------------------------------------- */

static void usage(void) {
  fprintf(stderr,
          "usage: slowclient -p PORT [-H HOST] [-n N] [-P PATH]"
          " [--chunk BYTES] [--every MS]\n"
          "         [--window S] [--sample S] [--min-bytes BYTES]"
          " [--expect BYTES]\n"
          "         [--rcvbuf BYTES] [--max-pending K]\n");
  exit(2);
}

static void parse_opts(int argc, char **argv, struct opts *o) {
  static const struct option longs[] = {
      {"port", required_argument, NULL, 'p'},
      {"host", required_argument, NULL, 'H'},
      {"n", required_argument, NULL, 'n'},
      {"path", required_argument, NULL, 'P'},
      {"chunk", required_argument, NULL, 'c'},
      {"every", required_argument, NULL, 'e'},
      {"window", required_argument, NULL, 'w'},
      {"sample", required_argument, NULL, 's'},
      {"min-bytes", required_argument, NULL, 'm'},
      {"expect", required_argument, NULL, 'x'},
      {"rcvbuf", required_argument, NULL, 'b'},
      {"max-pending", required_argument, NULL, 'k'},
      {NULL, 0, NULL, 0}};
  int ch;

  *o = (struct opts){.host = "127.0.0.1", .path = "/", .n = 100,
                     .max_pending = 512, .rcvbuf = 64 * 1024,
                     .chunk = 64 * 1024, .every_ms = 100, .min_bytes = 1,
                     .expect = -1, .window_s = 10.0, .sample_s = -1};
  while ((ch = getopt_long(argc, argv, "p:H:n:P:", longs, NULL)) != -1) {
    switch (ch) {
    case 'p': o->port = atoi(optarg); break;
    case 'H': o->host = optarg; break;
    case 'n': o->n = atoi(optarg); break;
    case 'P': o->path = optarg; break;
    case 'c': o->chunk = atol(optarg); break;
    case 'e': o->every_ms = atol(optarg); break;
    case 'w': o->window_s = atof(optarg); break;
    case 's': o->sample_s = atof(optarg); break;
    case 'm': o->min_bytes = atoll(optarg); break;
    case 'x': o->expect = atoll(optarg); break;
    case 'b': o->rcvbuf = atoi(optarg); break;
    case 'k': o->max_pending = atoi(optarg); break;
    default: usage();
    }
  }
  if (o->sample_s < 0)
    o->sample_s = o->window_s / 4;
  if (o->port <= 0 || o->port > 65535 || o->n <= 0 || o->chunk <= 0 ||
      o->every_ms <= 0 || o->window_s <= 0 || o->sample_s > o->window_s ||
      o->max_pending <= 0 || optind != argc)
    usage();
}

static void setup(struct run *r) {
  struct rlimit rl;
  int len;

  if (getrlimit(RLIMIT_NOFILE, &rl) == 0) { /* room for N sockets */
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
    if (rl.rlim_cur < (rlim_t)r->o.n + 16)
      fprintf(stderr, "slowclient: open-files limit %lu < %d connections\n",
              (unsigned long)rl.rlim_cur, r->o.n);
  }
  r->addr.sin_family = AF_INET;
  r->addr.sin_port = htons((uint16_t)r->o.port);
  if (inet_pton(AF_INET, r->o.host, &r->addr.sin_addr) != 1)
    usage();
  len = snprintf(r->req, sizeof(r->req),
                 "GET %s HTTP/1.1\r\nHost: %s:%d\r\nUser-Agent: slowclient\r\n"
                 "\r\n", r->o.path, r->o.host, r->o.port);
  if (len < 0 || (size_t)len >= sizeof(r->req))
    usage();
  r->req_len = (size_t)len;
  r->ep = epoll_create1(EPOLL_CLOEXEC);
  r->conns = calloc((size_t)r->o.n, sizeof(*r->conns));
  r->phase = calloc((size_t)r->o.n, sizeof(*r->phase));
  if (r->ep < 0 || r->conns == NULL || r->phase == NULL) {
    perror("slowclient");
    exit(2);
  }
  for (int i = 0; i < r->o.n; i++)
    r->conns[i].fd = -1;
}

int main(int argc, char **argv) {
  static struct run r;
  int errors = 0;

  parse_opts(argc, argv, &r.o);
  setup(&r);
  run_all(&r);
  report(&r);
  for (int f = 0; f < F_COUNT; f++)
    errors += r.failures[f];
  return errors ? 1 : 0; /* open connections close at exit */
}
