/* siblings.c: a supervised worker asks the other workers of its master,
 * so that the admin listener answers for the whole server.
 *
 * Every worker of a master with --admin listens on a Unix socket in the
 * abstract namespace, "spoke-admin.MASTER.PID" (nothing on disk; admin.c
 * serves it: GET /status and GET /metrics of that worker alone). The
 * worker that accepted an operator's request finds the others in the
 * master's ledger (ledger.c, the worker pids), sends each the request
 * on a connection of its own and reads each answer to its end. When all
 * have answered, or TIMEOUT_MS has passed, the caller's callback gets
 * every answer, those that did not come as not ok. A worker being
 * replaced (pid 0 in the ledger) is skipped; one that does not accept
 * (its backlog full, or gone) is not ok at once.
 *
 * Control thread only. A gather owns its timer and its connections and
 * frees itself once they are closed; cancelling (the operator's
 * connection went away) only means the callback is never called.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "ctl/ctl.h"

#define ANSWER_MAX (8u << 20) /* a sibling's answer past this is cut off */

typedef struct peer_s {
  struct spoke__gather_s *g; /* set once connected: then it has a pipe */
  uv_pipe_t pipe;
  uv_write_t wr;
  spoke__buf_t in;   /* the answer: head and body */
  int done;
  int ok;            /* read to its end */
} peer_t;

struct spoke__gather_s {
  spoke__siblings_cb cb;
  void *arg;
  uv_timer_t timer;
  peer_t *peers;
  spoke__sibling_answer_t *answers;
  size_t n;
  size_t pending;    /* connected peers not done */
  int handles;       /* open: the timer and the peers' pipes */
  int starting;      /* inside spoke__siblings_ask: do not finish */
  int finished;
  char request[128];
};

socklen_t spoke__sibling_addr(pid_t master, pid_t pid,
                              struct sockaddr_un *addr) {
  int n;
  memset(addr, 0, sizeof(*addr));
  addr->sun_family = AF_UNIX;
  /* sun_path[0] stays NUL: the abstract namespace. */
  n = snprintf(addr->sun_path + 1, sizeof(addr->sun_path) - 1,
               "spoke-admin.%d.%d", (int)master, (int)pid);
  return (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + (size_t)n);
}

static void handle_closed(uv_handle_t *h) {
  spoke__gather_t *g = h->type == UV_NAMED_PIPE ? ((peer_t *)h->data)->g
                                                : h->data;
  if (--g->handles > 0)
    return;
  for (size_t i = 0; i < g->n; i++)
    spoke__buf_free(&g->peers[i].in);
  free(g->peers);
  free(g->answers);
  free(g);
}

/* The body of a 200 answer in P->in, or not ok. */
static void parse(peer_t *p, spoke__sibling_answer_t *a) {
  const char *head = p->in.data, *end;
  a->ok = 0;
  if (!p->ok || head == NULL || p->in.len < 12 ||
      strncmp(head, "HTTP/1.1 200", 12) != 0)
    return;
  end = memmem(head, p->in.len, "\r\n\r\n", 4);
  if (end == NULL)
    return;
  a->body = end + 4;
  a->len = p->in.len - (size_t)(end + 4 - head);
  a->ok = 1;
}

static void finish(spoke__gather_t *g) {
  if (g->finished)
    return;
  g->finished = 1;
  uv_timer_stop(&g->timer);
  for (size_t i = 0; i < g->n; i++)
    parse(&g->peers[i], &g->answers[i]);
  if (g->cb != NULL)
    g->cb(g->arg, g->answers, g->n);
  uv_close((uv_handle_t *)&g->timer, handle_closed);
}

/* P's connection ends (OK: its answer was read to its end). */
static void peer_done(peer_t *p, int ok) {
  spoke__gather_t *g = p->g;
  if (p->done)
    return;
  p->done = 1;
  p->ok = ok;
  uv_read_stop((uv_stream_t *)&p->pipe);
  uv_close((uv_handle_t *)&p->pipe, handle_closed);
  if (--g->pending == 0 && !g->starting)
    finish(g);
}

static void peer_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
  peer_t *p = h->data;
  (void)suggested;
  if (spoke__buf_reserve(&p->in, 16384) != 0) {
    buf->base = NULL;
    buf->len = 0;
    return;
  }
  buf->base = p->in.data + p->in.len;
  buf->len = 16384;
}

static void peer_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf) {
  peer_t *p = s->data;
  (void)buf;
  if (nread == UV_EOF) {
    peer_done(p, 1);
  } else if (nread < 0) {
    peer_done(p, 0);
  } else {
    p->in.len += (size_t)nread;
    if (p->in.len > ANSWER_MAX)
      peer_done(p, 0);
  }
}

static void peer_written(uv_write_t *wr, int status) {
  if (status != 0)
    peer_done(wr->data, 0);
}

/* The deadline, or the turn after a start that reached nobody. */
static void timed_out(uv_timer_t *t) {
  spoke__gather_t *g = t->data;
  for (size_t i = 0; i < g->n && !g->finished; i++)
    if (g->peers[i].g != NULL) /* connected */
      peer_done(&g->peers[i], 0);
  finish(g);
}

/* Connects P to worker PID of this master and sends the request; P
 * counts as pending from the moment it has a pipe (P->g set). */
static void peer_start(spoke__server_t *srv, spoke__gather_t *g, peer_t *p,
                       pid_t pid) {
  struct sockaddr_un addr;
  socklen_t len = spoke__sibling_addr(srv->master_pid, pid, &addr);
  uv_buf_t buf = uv_buf_init(g->request, (unsigned)strlen(g->request));
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0)
    return;
  if (connect(fd, (struct sockaddr *)&addr, len) != 0) {
    close(fd); /* gone, or its backlog is full: not ok */
    return;
  }
  p->g = g;
  g->pending++;
  g->handles++;
  uv_pipe_init(srv->control, &p->pipe, 0);
  p->pipe.data = p;
  p->wr.data = p;
  if (uv_pipe_open(&p->pipe, fd) != 0) {
    close(fd);
    peer_done(p, 0);
  } else if (uv_read_start((uv_stream_t *)&p->pipe, peer_alloc,
                           peer_read) != 0 ||
             uv_write(&p->wr, (uv_stream_t *)&p->pipe, &buf, 1,
                      peer_written) != 0) {
    peer_done(p, 0);
  }
}

spoke__gather_t *spoke__siblings_ask(spoke__server_t *srv, const char *path,
                                     uint64_t timeout_ms,
                                     spoke__siblings_cb cb, void *arg) {
  spoke__ledger_t *l = spoke__ledger_copy();
  spoke__gather_t *g = NULL;
  pid_t self = getpid();
  size_t n = 0;

  if (l == NULL)
    return NULL;
  for (int i = 0; i < l->nworkers; i++)
    n += l->workers[i] > 0 && l->workers[i] != self;
  if (!srv->supervised || n == 0 || (g = calloc(1, sizeof(*g))) == NULL)
    goto out;
  g->peers = calloc(n, sizeof(*g->peers));
  g->answers = calloc(n, sizeof(*g->answers));
  if (g->peers == NULL || g->answers == NULL) {
    free(g->peers);
    free(g->answers);
    free(g);
    g = NULL;
    goto out;
  }
  g->cb = cb;
  g->arg = arg;
  g->n = n;
  g->starting = 1;
  snprintf(g->request, sizeof(g->request),
           "GET %s HTTP/1.1\r\nHost: sibling\r\n\r\n", path);
  uv_timer_init(srv->control, &g->timer);
  g->timer.data = g;
  g->handles = 1;
  n = 0;
  for (int i = 0; i < l->nworkers; i++) {
    if (l->workers[i] <= 0 || l->workers[i] == self)
      continue;
    g->answers[n].pid = l->workers[i];
    peer_start(srv, g, &g->peers[n++], l->workers[i]);
  }
  g->starting = 0;
  /* The callback never runs inside this call: with nobody to wait for,
   * on the loop's next turn. */
  uv_timer_start(&g->timer, timed_out, g->pending == 0 ? 0 : timeout_ms, 0);
out:
  free(l);
  return g;
}

void spoke__siblings_cancel(spoke__gather_t *g) {
  if (g != NULL)
    g->cb = NULL;
}
