/* waitclient.c: N concurrent one-shot HTTP/1.1 requests, for the benchmarks.
 *
 * Opens N TCP connections to HOST:PORT (nonblocking connects, paced: at
 * most --max-pending handshakes unfinished at once and at most --rate new
 * connects per second), sends one `GET PATH HTTP/1.1` on each as soon as
 * it is connected and reads its whole response, framed by Content-Length
 * or chunked encoding (or the close, when it has neither). One thread, one
 * edge-triggered epoll set and no allocation after start-up, so that the
 * client is never what a 10,000-connection benchmark measures.
 *
 * Prints one JSON line:
 *
 *   {"n": N, "answered": A, "ok": O, "errors": E, "refused": .., "reset": ..,
 *    "timeouts": .., "other": .., "wall_s": .., "p50_ms": .., "p99_ms": ..,
 *    "max_ms": .., "retry_after": R, "status": {"200": .., "503": ..}}
 *
 * answered: full responses of any status; ok: those with status 200;
 * errors: requests without a full response (refused, reset or closed
 * early, timed out, other), never hidden. wall_s runs from the first
 * connect to the last answer (to the deadline when something timed out).
 * Latencies are per request, from its connect to its last byte.
 * retry_after: responses that carry a Retry-After header.
 *
 * --hold S keeps every answered connection open after the report, until
 * standard input closes (or S seconds pass), then prints
 * {"closed_while_held": K}: how many the server closed meanwhile. The
 * memory benchmark measures the server while they are held.
 *
 *   waitclient -p PORT [-H HOST] [-n N] [-P PATH] [-t TIMEOUT_S]
 *              [-r CONNECTS_PER_S] [-k MAX_PENDING] [--hold S]
 *
 * Exit status 0 when every request was answered, 1 otherwise, 2 on usage.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define BUF_SIZE 4096
#define MAX_EVENTS 1024
#define STDIN_TAG UINT64_MAX

enum state { ST_NEW, ST_CONNECTING, ST_SENDING, ST_READING, ST_DONE,
             ST_FAILED };
enum failure { F_REFUSED, F_RESET, F_OTHER, F_COUNT };

struct conn {
  int fd;
  enum state st;
  double t0;     /* when its connect started */
  size_t sent;   /* request bytes written */
  size_t len;    /* response bytes in buf */
  char buf[BUF_SIZE];
};

struct opts {
  const char *host;
  int port;
  int n;
  const char *path;
  double timeout_s;
  double rate;     /* connects per second; 0: unpaced */
  int max_pending; /* unfinished handshakes at once */
  double hold_s;   /* 0: close each connection when answered */
};

struct run {
  struct opts o;
  struct sockaddr_in addr;
  char req[1024];
  size_t req_len;
  int ep;
  struct conn *conns;
  double start, last_event;
  int next;        /* next connection to open */
  int pending;     /* handshakes not finished */
  int finished;    /* answered + failed */
  int answered;
  int failures[F_COUNT];
  int status[600];
  int retry_after;
  int closed_held; /* answered connections the server closed (--hold) */
  double *lat_ms;  /* one per answered request */
};

static double now_s(void) {
  struct timespec ts;

  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* ---- response framing ------------------------------------------------ */

struct head {
  int status;
  long content_length; /* -1: none */
  int chunked;
  int retry_after;
  size_t size;         /* bytes up to and including the blank line */
};

/* Does the header line [p, end) have NAME (case-insensitive)? Sets *value
 * to the first byte after the colon and its spaces. */
static int header_is(const char *p, const char *end, const char *name,
                     const char **value) {
  size_t n = strlen(name);

  if ((size_t)(end - p) <= n || p[n] != ':' || strncasecmp(p, name, n) != 0)
    return 0;
  p += n + 1;
  while (p < end && (*p == ' ' || *p == '\t'))
    p++;
  *value = p;
  return 1;
}

/* Parses the head in buf[0, len). Returns 1 when h is filled in, 0 when
 * the head is not complete yet, -1 when it is malformed. */
static int parse_head(const char *buf, size_t len, struct head *h) {
  const char *end = memmem(buf, len, "\r\n\r\n", 4);
  const char *line, *eol, *v;

  if (end == NULL)
    return len >= BUF_SIZE ? -1 : 0;
  memset(h, 0, sizeof(*h));
  h->content_length = -1;
  h->size = (size_t)(end - buf) + 4;
  if (sscanf(buf, "HTTP/1.%*d %3d", &h->status) != 1 || h->status < 100 ||
      h->status > 599)
    return -1;
  line = (const char *)memmem(buf, h->size, "\r\n", 2) + 2;
  for (; line < end; line = eol + 2) {
    eol = memmem(line, (size_t)(end + 2 - line), "\r\n", 2);
    if (header_is(line, eol, "content-length", &v))
      h->content_length = strtol(v, NULL, 10);
    else if (header_is(line, eol, "transfer-encoding", &v))
      h->chunked = memmem(v, (size_t)(eol - v), "chunked", 7) != NULL;
    else if (header_is(line, eol, "retry-after", &v))
      h->retry_after = 1;
  }
  return 1;
}

/* Is the chunked body in [p, end) complete (trailers are not expected)?
 * Returns 1, 0 (not yet) or -1 (malformed). */
static int chunked_complete(const char *p, const char *end) {
  for (;;) {
    const char *eol = memmem(p, (size_t)(end - p), "\r\n", 2);
    char *after;
    unsigned long size;

    if (eol == NULL)
      return 0;
    size = strtoul(p, &after, 16);
    if (after == p)
      return -1;
    if (size == 0)
      return end - eol >= 4 ? 1 : 0;
    if ((size_t)(end - eol) < 2 + size + 2)
      return 0;
    p = eol + 2 + size + 2;
  }
}

/* Is the response in c->buf complete? 1, 0 (read more) or -1 (bad).
 * At EOF a response without framing is complete. */
static int response_complete(const struct conn *c, int eof, struct head *h) {
  int r = parse_head(c->buf, c->len, h);

  if (r <= 0)
    return r;
  if (h->chunked)
    return chunked_complete(c->buf + h->size, c->buf + c->len);
  if (h->content_length >= 0)
    return c->len - h->size >= (size_t)h->content_length;
  if (h->status == 204 || h->status == 304 || h->status < 200)
    return 1;
  return eof;
}

/* ---- one connection -------------------------------------------------- */

static void finish(struct run *r, struct conn *c) {
  if (c->st == ST_CONNECTING)
    r->pending--;
  r->finished++;
  r->last_event = now_s();
  if (c->st != ST_DONE || r->o.hold_s <= 0) {
    close(c->fd);
    c->fd = -1;
  }
}

static void fail(struct run *r, struct conn *c, enum failure why) {
  r->failures[why]++;
  finish(r, c);
  c->st = ST_FAILED;
}

static void answered(struct run *r, struct conn *c, const struct head *h) {
  r->lat_ms[r->answered++] = (now_s() - c->t0) * 1000.0;
  r->status[h->status]++;
  r->retry_after += h->retry_after;
  c->st = ST_DONE;
  finish(r, c);
}

static enum failure failure_of(int err) {
  if (err == ECONNREFUSED)
    return F_REFUSED;
  if (err == ECONNRESET || err == EPIPE)
    return F_RESET;
  return F_OTHER;
}

static void open_conn(struct run *r, struct conn *c) {
  struct epoll_event ev = {
      .events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET};
  int one = 1;

  c->t0 = now_s();
  c->st = ST_CONNECTING;
  r->pending++;
  c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (c->fd < 0) {
    r->pending--;
    r->failures[F_OTHER]++;
    r->finished++;
    c->st = ST_FAILED;
    return;
  }
  setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  ev.data.u64 = (uint64_t)(c - r->conns);
  if (epoll_ctl(r->ep, EPOLL_CTL_ADD, c->fd, &ev) != 0) {
    fail(r, c, F_OTHER);
    return;
  }
  if (connect(c->fd, (struct sockaddr *)&r->addr, sizeof(r->addr)) != 0 &&
      errno != EINPROGRESS)
    fail(r, c, failure_of(errno));
}

/* The handshake ended (EPOLLOUT or an error): was it a connection? */
static int connected(struct run *r, struct conn *c) {
  int err = 0;
  socklen_t len = sizeof(err);

  if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0)
    err = errno;
  if (err != 0) {
    fail(r, c, failure_of(err));
    return 0;
  }
  r->pending--;
  c->st = ST_SENDING;
  return 1;
}

static void send_request(struct run *r, struct conn *c) {
  while (c->sent < r->req_len) {
    ssize_t w = write(c->fd, r->req + c->sent, r->req_len - c->sent);

    if (w < 0) {
      if (errno == EAGAIN || errno == EINTR)
        return;
      fail(r, c, failure_of(errno));
      return;
    }
    c->sent += (size_t)w;
  }
  c->st = ST_READING;
}

static void read_response(struct run *r, struct conn *c) {
  struct head h;

  for (;;) {
    ssize_t n = read(c->fd, c->buf + c->len, BUF_SIZE - c->len);
    int done;

    if (n < 0 && (errno == EAGAIN || errno == EINTR))
      return;
    if (n < 0) {
      fail(r, c, failure_of(errno));
      return;
    }
    c->len += (size_t)n;
    done = response_complete(c, n == 0, &h);
    if (done > 0) {
      answered(r, c, &h);
      return;
    }
    if (done < 0 || n == 0 || c->len == BUF_SIZE) {
      fail(r, c, n == 0 ? F_RESET : F_OTHER);
      return;
    }
  }
}

/* A held connection the server closed. */
static void close_held(struct run *r, struct conn *c, uint32_t events) {
  if (c->fd >= 0 && (events & (EPOLLRDHUP | EPOLLHUP | EPOLLERR))) {
    close(c->fd);
    c->fd = -1;
    r->closed_held++;
  }
}

static void on_event(struct run *r, struct conn *c, uint32_t events) {
  if (c->st == ST_DONE) {
    close_held(r, c, events);
    return;
  }
  if (c->st == ST_CONNECTING) {
    if (!(events & (EPOLLOUT | EPOLLERR | EPOLLHUP)) || !connected(r, c))
      return;
  }
  if (c->st == ST_SENDING)
    send_request(r, c);
  if (c->st == ST_READING)
    read_response(r, c);
}

/* ---- the run --------------------------------------------------------- */

/* Opens as many connections as the pacing allows now. */
static void open_more(struct run *r) {
  double elapsed = now_s() - r->start;

  while (r->next < r->o.n && r->pending < r->o.max_pending &&
         (r->o.rate <= 0 || r->next < 1 + (int)(r->o.rate * elapsed)))
    open_conn(r, &r->conns[r->next++]);
}

/* epoll_wait's timeout: 1 ms while the pacing holds connects back. */
static int wait_ms(const struct run *r, double deadline) {
  double left = deadline - now_s();

  if (left <= 0)
    return 0;
  if (r->next < r->o.n && r->pending < r->o.max_pending)
    return 1;
  return left > 1.0 ? 1000 : (int)(left * 1000.0) + 1;
}

static void run_all(struct run *r) {
  struct epoll_event evs[MAX_EVENTS];
  double deadline;

  r->start = r->last_event = now_s();
  deadline = r->start + r->o.timeout_s;
  while (r->finished < r->o.n && now_s() < deadline) {
    int i, nev;

    open_more(r);
    nev = epoll_wait(r->ep, evs, MAX_EVENTS, wait_ms(r, deadline));
    for (i = 0; i < nev; i++)
      on_event(r, &r->conns[evs[i].data.u64], evs[i].events);
  }
  if (r->finished < r->o.n)
    r->last_event = now_s();
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;

  return (x > y) - (x < y);
}

/* Nearest-rank percentile of the sorted latencies. */
static double percentile(const struct run *r, double p) {
  int idx;

  if (r->answered == 0)
    return 0.0;
  idx = (int)(p * r->answered + 0.999999) - 1;
  return r->lat_ms[idx < 0 ? 0 : idx];
}

static void report(struct run *r) {
  int timeouts = r->o.n - r->finished;
  int errors = r->o.n - r->answered;
  int i, first = 1;

  qsort(r->lat_ms, (size_t)r->answered, sizeof(double), cmp_double);
  printf("{\"n\": %d, \"answered\": %d, \"ok\": %d, \"errors\": %d, "
         "\"refused\": %d, \"reset\": %d, \"timeouts\": %d, \"other\": %d, "
         "\"wall_s\": %.4f, \"p50_ms\": %.2f, \"p99_ms\": %.2f, "
         "\"max_ms\": %.2f, \"retry_after\": %d, \"status\": {",
         r->o.n, r->answered, r->status[200], errors, r->failures[F_REFUSED],
         r->failures[F_RESET], timeouts, r->failures[F_OTHER],
         r->last_event - r->start, percentile(r, 0.50), percentile(r, 0.99),
         percentile(r, 1.0), r->retry_after);
  for (i = 100; i < 600; i++) {
    if (r->status[i] == 0)
      continue;
    printf("%s\"%d\": %d", first ? "" : ", ", i, r->status[i]);
    first = 0;
  }
  printf("}}\n");
  fflush(stdout);
}

/* --hold: waits for standard input to close, counting held connections
 * the server closes meanwhile. */
static void hold(struct run *r) {
  struct epoll_event ev = {.events = EPOLLIN, .data.u64 = STDIN_TAG};
  struct epoll_event evs[MAX_EVENTS];
  double deadline = now_s() + r->o.hold_s;
  int stdin_open = 1;

  if (epoll_ctl(r->ep, EPOLL_CTL_ADD, STDIN_FILENO, &ev) != 0)
    stdin_open = 0; /* not pollable (a file): hold for the time alone */
  while (now_s() < deadline) {
    int i, nev = epoll_wait(r->ep, evs, MAX_EVENTS, 200);

    for (i = 0; i < nev; i++) {
      char b[256];

      if (evs[i].data.u64 != STDIN_TAG)
        close_held(r, &r->conns[evs[i].data.u64], evs[i].events);
      else if (stdin_open && read(STDIN_FILENO, b, sizeof(b)) <= 0)
        deadline = 0;
    }
  }
  printf("{\"closed_while_held\": %d}\n", r->closed_held);
  fflush(stdout);
}

/* ---- set-up ---------------------------------------------------------- */

static void usage(void) {
  fprintf(stderr, "usage: waitclient -p PORT [-H HOST] [-n N] [-P PATH]\n"
                  "         [-t TIMEOUT_S] [-r CONNECTS_PER_S]"
                  " [-k MAX_PENDING] [--hold S]\n");
  exit(2);
}

static void parse_opts(int argc, char **argv, struct opts *o) {
  static const struct option longs[] = {
      {"port", required_argument, NULL, 'p'},
      {"host", required_argument, NULL, 'H'},
      {"n", required_argument, NULL, 'n'},
      {"path", required_argument, NULL, 'P'},
      {"timeout", required_argument, NULL, 't'},
      {"rate", required_argument, NULL, 'r'},
      {"max-pending", required_argument, NULL, 'k'},
      {"hold", required_argument, NULL, 'h'},
      {NULL, 0, NULL, 0}};
  int ch;

  *o = (struct opts){.host = "127.0.0.1", .n = 1000,
                     .path = "/sleep/async?ms=2000", .timeout_s = 15.0,
                     .max_pending = 512};
  while ((ch = getopt_long(argc, argv, "p:H:n:P:t:r:k:", longs, NULL)) != -1) {
    switch (ch) {
    case 'p': o->port = atoi(optarg); break;
    case 'H': o->host = optarg; break;
    case 'n': o->n = atoi(optarg); break;
    case 'P': o->path = optarg; break;
    case 't': o->timeout_s = atof(optarg); break;
    case 'r': o->rate = atof(optarg); break;
    case 'k': o->max_pending = atoi(optarg); break;
    case 'h': o->hold_s = atof(optarg); break;
    default: usage();
    }
  }
  if (o->port <= 0 || o->port > 65535 || o->n <= 0 || o->max_pending <= 0 ||
      o->timeout_s <= 0)
    usage();
}

/* Room for N sockets: the soft open-files limit raised to the hard one. */
static void raise_nofile(int n) {
  struct rlimit rl;

  if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
    return;
  rl.rlim_cur = rl.rlim_max;
  setrlimit(RLIMIT_NOFILE, &rl);
  if (rl.rlim_cur < (rlim_t)n + 16)
    fprintf(stderr, "waitclient: open-files limit %lu < %d connections\n",
            (unsigned long)rl.rlim_cur, n);
}

static void setup(struct run *r) {
  int len;

  memset(&r->addr, 0, sizeof(r->addr));
  r->addr.sin_family = AF_INET;
  r->addr.sin_port = htons((uint16_t)r->o.port);
  if (inet_pton(AF_INET, r->o.host, &r->addr.sin_addr) != 1)
    usage();
  len = snprintf(r->req, sizeof(r->req),
                 "GET %s HTTP/1.1\r\nHost: %s:%d\r\nUser-Agent: waitclient\r\n"
                 "\r\n", r->o.path, r->o.host, r->o.port);
  if (len < 0 || (size_t)len >= sizeof(r->req))
    usage();
  r->req_len = (size_t)len;
  r->ep = epoll_create1(EPOLL_CLOEXEC);
  r->conns = calloc((size_t)r->o.n, sizeof(*r->conns));
  r->lat_ms = calloc((size_t)r->o.n, sizeof(*r->lat_ms));
  if (r->ep < 0 || r->conns == NULL || r->lat_ms == NULL) {
    perror("waitclient");
    exit(2);
  }
  for (int i = 0; i < r->o.n; i++)
    r->conns[i].fd = -1; /* not opened yet */
}

int main(int argc, char **argv) {
  static struct run r;

  parse_opts(argc, argv, &r.o);
  raise_nofile(r.o.n);
  setup(&r);
  run_all(&r);
  report(&r);
  if (r.o.hold_s > 0)
    hold(&r);
  return r.answered == r.o.n ? 0 : 1;
}
