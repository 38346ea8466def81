/* admin.c: the operator's listener (--admin HOST:PORT), off by default.
 *
 *   GET  /status   JSON: build, uptime, loops, workers, queue depth,
 *                  connections, and every plugin instance and file
 *   GET  /metrics  Prometheus text format (metrics.c)
 *   POST /reload   rescans the plugins directory; answers with what
 *                  changed, file by file
 *   PUT /plugins/NAME.so     writes the body (Content-Length, at most
 *                  64 MiB) into the plugins directory atomically
 *                  (plugfile.c), then rescans as POST /reload does and
 *                  answers the same way, with the file's "build" added
 *   GET /plugins/NAME.so     the file's bytes (what a rollback restores)
 *   DELETE /plugins/NAME.so  removes it, then rescans
 *
 * The write endpoints (POST /reload and everything under /plugins/)
 * answer only a request whose Authorization is "Bearer TOKEN" once
 * --admin-token-file is set (admintoken.c): without it, or with another
 * token, 401 with WWW-Authenticate. Without a token configured,
 * /plugins/ answers 403 (an open upload endpoint would run anyone's code)
 * and POST /reload stays open, as before tokens existed. The check runs
 * on the head, before any body byte is taken. GET /status and GET
 * /metrics need no token.
 *
 * It runs on the control thread's loop, on its own socket: the main
 * listener never routes here, whatever a plugin declares.
 *
 * Under a master (--processes) the socket is the master's, shared by
 * the workers: whichever worker accepts answers for the whole server.
 * GET /status is then the object above for the worker that answers,
 * with "master_pid", "processes" and "workers" (that object for every
 * worker, its own first) added, and GET /metrics the sum
 * of every worker's figures (the master's counts once), gathered from
 * the other workers through their sibling sockets (siblings.c), which
 * this file also serves: GET /status and GET /metrics of this worker
 * alone. POST /reload rescans here and has the master pass SIGHUP on.
 *
 * One request per connection (answered with Connection: close); a head
 * larger than 8 KiB gets 431, head and body larger than that 413 (an
 * upload's body may have 64 MiB, going to its file as it comes), a
 * connection silent for 10 s before its answer is closed (an upload:
 * 10 s without a byte). The admin listener is for operators: bind it
 * to loopback.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "ctl/ctl.h"

#define HEAD_MAX 8192 /* head and body together: nothing here takes more */
#define IDLE_MS 10000

typedef struct admin_conn_s {
  union {
    uv_tcp_t tcp;       /* the operator's listener */
    uv_pipe_t pipe;     /* the sibling socket */
  } h;
  int sibling;          /* from another worker: answer for this one only */
  spoke__gather_t *gather; /* asking the siblings, or NULL; it holds
                              this conn as its callback's argument, so
                              conn_close cancels it */
  uv_timer_t idle;
  spoke__server_t *srv;
  char buf[HEAD_MAX + 1];
  size_t len;
  size_t want;          /* head + declared body: bytes before answering;
                           an upload's: its body's length */
  char method[16];      /* from the request line, once the head is in */
  char path[256];       /* without its query */
  int answered;
  int auth;             /* the head's Authorization: AUTH_* */
  spoke__upload_t *upload; /* PUT /plugins/NAME.so taking its body; while
                              set, buf is only a landing place for body
                              bytes (alloc_cb hands it out from offset
                              0): len and the head in it are stale, which
                              is safe since method and path were copied
                              out and try_request does not run again */
  int closing_handles;
  uv_write_t wr;
  spoke__buf_t out;
  struct admin_conn_s *prev, *next; /* conns, closed by spoke__admin_stop */
} admin_conn_t;

#define STREAM(c) ((uv_stream_t *)&(c)->h)
#define AUTH_NONE 0   /* no Authorization field */
#define AUTH_BAD 1    /* one that does not carry the token */
#define AUTH_OK 2
#define PLUGINS_PREFIX "/plugins/"
#define PLUGINS_LEN (sizeof(PLUGINS_PREFIX) - 1)
#define TOO_BIG 1 /* upload_start: past SPOKE__UPLOAD_MAX */
#define ASK_MS 2000 /* how long siblings have to answer */

/* Control thread only. */
static uv_tcp_t listener;
static int listening;
static uv_pipe_t sibling_listener; /* a supervised worker's */
static int sibling_listening;
static admin_conn_t *conns;

static void conn_freed(uv_handle_t *h) {
  admin_conn_t *c = h->data;
  if (--c->closing_handles > 0)
    return;
  spoke__buf_free(&c->out);
  free(c);
}

static void conn_close(admin_conn_t *c) {
  if (c->closing_handles > 0)
    return;
  if (c->prev)
    c->prev->next = c->next;
  else
    conns = c->next;
  if (c->next)
    c->next->prev = c->prev;
  spoke__siblings_cancel(c->gather);
  c->gather = NULL;
  spoke__upload_abort(c->upload);
  c->upload = NULL;
  c->closing_handles = 2;
  uv_close((uv_handle_t *)&c->idle, conn_freed);
  uv_close((uv_handle_t *)&c->h, conn_freed);
}

static void written(uv_write_t *wr, int status) {
  (void)status;
  conn_close(wr->data);
}

/* EXTRA: more header lines (each ending in CRLF), or NULL. */
static void respond_with(admin_conn_t *c, int status, const char *type,
                         const char *extra, const char *body, size_t len) {
  uv_buf_t buf;
  c->answered = 1;
  uv_read_stop(STREAM(c));
  uv_timer_stop(&c->idle); /* the answer may take its time to leave */
  char headers[320];
  int n = snprintf(headers, sizeof(headers),
                   "Content-Type: %s\r\nCache-Control: no-store\r\n%s", type,
                   extra ? extra : "");
  spoke__head_t h = {.status = status, .headers = headers,
                     .headers_len = (size_t)n, .body_len = (long long)len,
                     .http_minor = 1, .close = 1};
  if (spoke__head_write(&c->out, &h) != 0)
    spoke__buf_free(&c->out);
  else if (len)
    spoke__buf_append(&c->out, body, len);
  if (c->out.data == NULL) {
    conn_close(c);
    return;
  }
  buf = uv_buf_init(c->out.data, (unsigned)c->out.len);
  c->wr.data = c;
  if (uv_write(&c->wr, STREAM(c), &buf, 1, written) != 0)
    conn_close(c);
}

static void respond(admin_conn_t *c, int status, const char *type,
                    const char *body, size_t len) {
  respond_with(c, status, type, NULL, body, len);
}

static void respond_text(admin_conn_t *c, int status, const char *text) {
  respond(c, status, "text/plain; charset=utf-8", text, strlen(text));
}

/* ---- the three resources ---- */

typedef struct jobs_s {
  spoke__buf_t *b;
  int first;
} jobs_t;

/* One sync job running past --stall-warn, for /status. */
static void slow_job(const spoke__pool_job_t *job, void *arg) {
  jobs_t *jobs = arg;
  spoke__buf_t *b = jobs->b;
  spoke__buf_appendf(b, "%s{\"plugin\": ", jobs->first ? "" : ", ");
  spoke__json_str(b, job->plugin);
  spoke__buf_appendf(b, ", \"route\": ");
  spoke__json_str(b, job->route);
  spoke__buf_appendf(b, ", \"thread\": \"spoke-worker-%d\", "
                     "\"running_s\": %.3f}",
                     job->worker, (double)job->running_ns / 1e9);
  jobs->first = 0;
}

/* This worker's (or process's) status object, without a newline. */
static void own_status(spoke__server_t *srv, spoke__buf_t *b) {
  double uptime = (double)(uv_hrtime() - srv->start_hrtime) / 1e9;
  jobs_t jobs = {b, 1};
  spoke__buf_appendf(b,
                     "{\"build\": \"%s\", \"sdk_abi\": \"%d.%d\", "
                     "\"pid\": %d, "
                     "\"uptime_s\": %.3f, \"loops\": %d, \"workers\": %d, "
                     "\"queue_depth\": %zu, \"open_connections\": %zu, ",
                     SPOKE_BUILD_VERSION, SPOKE_ABI_MAJOR, SPOKE_ABI_MINOR,
                     (int)getpid(), uptime, srv->cfg.loops, srv->cfg.workers,
                     atomic_load(&srv->shared.sync_waiting),
                     atomic_load(&srv->shared.open_conns));
  /* Sync handlers may block (that is what workers are for); those that
   * have for --stall-warn or longer are listed, with their running time. */
  spoke__buf_appendf(b, "\"sync_running\": [");
  spoke__pool_running(srv->cfg.stall_warn_ms * 1000000ull, slow_job, &jobs);
  spoke__buf_appendf(b, "], \"status\": ");
  spoke__status_json(srv, b);
  while (b->len > 0 && b->data[b->len - 1] == '\n')
    b->len--;
  spoke__buf_append(b, "}", 1);
}

static void respond_json(admin_conn_t *c, spoke__buf_t *b) {
  spoke__buf_append(b, "\n", 1);
  if (b->data == NULL)
    respond_text(c, 500, "out of memory\n");
  else
    respond(c, 200, "application/json", b->data, b->len);
  spoke__buf_free(b);
}

/* Supervised: this worker's object (what an operator of one process
 * reads, unchanged) and "master_pid", "processes" and "workers": every
 * worker's object, this one's first, or {"pid", "error"} for one that
 * did not answer. */
static void status_gathered(void *arg, const spoke__sibling_answer_t *a,
                            size_t n) {
  admin_conn_t *c = arg;
  spoke__buf_t own = {0}, b = {0};
  c->gather = NULL;
  own_status(c->srv, &own);
  if (own.data == NULL || own.len < 2) {
    spoke__buf_free(&own);
    respond_text(c, 500, "out of memory\n");
    return;
  }
  spoke__buf_append(&b, own.data, own.len - 1); /* without its '}' */
  spoke__buf_appendf(&b, ", \"master_pid\": %d, \"processes\": %d, "
                     "\"workers\": [", (int)c->srv->master_pid,
                     c->srv->cfg.processes);
  spoke__buf_append(&b, own.data, own.len);
  spoke__buf_free(&own);
  for (size_t i = 0; i < n; i++) {
    spoke__buf_append(&b, ", ", 2);
    if (a[i].ok) {
      size_t len = a[i].len;
      while (len > 0 && a[i].body[len - 1] == '\n')
        len--;
      spoke__buf_append(&b, a[i].body, len);
    } else {
      spoke__buf_appendf(&b, "{\"pid\": %d, \"error\": \"no answer within "
                         "%d ms\"}", a[i].pid, ASK_MS);
    }
  }
  spoke__buf_append(&b, "]}", 2);
  respond_json(c, &b);
}

/* An operator's request to a supervised worker: CB answers it with the
 * other workers' answers to PATH (none when there is no other worker).
 * 0 when this process answers alone. */
static int ask_siblings(admin_conn_t *c, const char *path,
                        spoke__siblings_cb cb) {
  if (!c->srv->supervised || c->sibling)
    return 0;
  c->gather = spoke__siblings_ask(c->srv, path, ASK_MS, cb, c);
  if (c->gather == NULL)
    cb(c, NULL, 0);
  return 1;
}

static void status_json(admin_conn_t *c) {
  spoke__buf_t b = {0};
  if (ask_siblings(c, "/status", status_gathered))
    return;
  own_status(c->srv, &b);
  respond_json(c, &b);
}

static void respond_metrics(admin_conn_t *c, spoke__buf_t *b, int rc) {
  if (rc != 0 || b->data == NULL)
    respond_text(c, 500, "out of memory\n");
  else
    respond(c, 200, "text/plain; version=0.0.4; charset=utf-8", b->data,
            b->len);
  spoke__buf_free(b);
}

/* Supervised: this worker's figures (with the master's counts) and
 * every sibling's (without) summed, series by series, and how many
 * workers the sum covers. */
static void metrics_gathered(void *arg, const spoke__sibling_answer_t *a,
                             size_t n) {
  admin_conn_t *c = arg;
  spoke__buf_t own = {0}, sum = {0};
  const char **docs = calloc(n + 1, sizeof(*docs));
  size_t *lens = calloc(n + 1, sizeof(*lens)), k = 1; /* k: documents */
  int rc = spoke__metrics_text(c->srv, &own);
  c->gather = NULL;
  if (docs == NULL || lens == NULL || rc != 0 || own.data == NULL) {
    rc = SPOKE_ENOMEM;
  } else {
    docs[0] = own.data;
    lens[0] = own.len;
    for (size_t i = 0; i < n; i++)
      if (a[i].ok) {
        docs[k] = a[i].body;
        lens[k++] = a[i].len;
      }
    rc = spoke__prom_sum(docs, lens, k, &sum);
    spoke__buf_appendf(&sum, "# HELP spoke_worker_processes_counted Worker "
                       "processes whose figures this answer sums (one that "
                       "did not answer within %d ms is left out).\n"
                       "# TYPE spoke_worker_processes_counted gauge\n"
                       "spoke_worker_processes_counted %zu\n"
                       "# HELP spoke_worker_processes Worker processes "
                       "running.\n# TYPE spoke_worker_processes gauge\n"
                       "spoke_worker_processes %zu\n",
                       ASK_MS, k, n + 1);
  }
  free(docs);
  free(lens);
  spoke__buf_free(&own);
  respond_metrics(c, &sum, rc);
}

static void metrics(admin_conn_t *c) {
  spoke__buf_t b = {0};
  if (ask_siblings(c, "/metrics", metrics_gathered))
    return;
  respond_metrics(c, &b, c->sibling ? spoke__metrics_text_local(c->srv, &b)
                                    : spoke__metrics_text(c->srv, &b));
}

/* What a slot held before the rescan, to tell what changed. */
typedef struct seen_s {
  char *file;
  uint64_t generation; /* 0: nothing loaded */
  char *error;
} seen_t;

/* Rescans, and answers with what changed; BUILD (or NULL): the build id
 * of the file just uploaded, added to the answer. */
static void reload(admin_conn_t *c, const char *build) {
  spoke__server_t *srv = c->srv;
  size_t n = srv->nslots, changes = 0;
  seen_t *before = calloc(n ? n : 1, sizeof(*before));
  spoke__buf_t b = {0};

  if (before == NULL) {
    respond_text(c, 500, "out of memory\n");
    return;
  }
  for (size_t i = 0; i < n; i++) {
    before[i].file = strdup(srv->slots[i].file);
    before[i].generation =
        srv->slots[i].inst ? srv->slots[i].inst->generation : 0;
    before[i].error = strdup(srv->slots[i].error);
  }
  spoke__info("%s %s: rescanning %s", c->method, c->path,
              srv->cfg.plugins_dir);
  spoke__reload_scan(srv, 0);
  if (srv->supervised)
    kill(srv->master_pid, SIGHUP); /* the master has the others rescan */
  spoke__buf_appendf(&b, "{\"generation\": %llu, ",
                     (unsigned long long)srv->generation);
  if (build != NULL)
    spoke__buf_appendf(&b, "\"build\": \"%s\", ", build);
  spoke__buf_appendf(&b, "\"changed\": [");
  for (size_t i = 0; i < srv->nslots; i++) {
    const spoke__slot_t *s = &srv->slots[i];
    const seen_t *was = NULL;
    uint64_t gen = s->inst ? s->inst->generation : 0;
    const char *what = NULL;
    for (size_t j = 0; j < n; j++)
      if (before[j].file && strcmp(before[j].file, s->file) == 0)
        was = &before[j];
    if (s->error[0] && (was == NULL || !was->error ||
                        strcmp(was->error, s->error) != 0))
      what = "refused";
    else if (gen != 0 && (was == NULL || was->generation != gen))
      what = was && was->generation ? "reloaded" : "loaded";
    if (what == NULL)
      continue;
    spoke__buf_appendf(&b, "%s{\"file\": ", changes++ ? ", " : "");
    spoke__json_str(&b, s->file);
    spoke__buf_appendf(&b, ", \"change\": \"%s\"", what);
    if (s->inst) {
      spoke__buf_appendf(&b, ", \"plugin\": ");
      spoke__json_str(&b, s->inst->name);
      spoke__buf_appendf(&b, ", \"version\": ");
      spoke__json_str(&b, s->inst->version);
      spoke__buf_appendf(&b, ", \"generation\": %llu",
                         (unsigned long long)gen);
    }
    if (s->error[0]) {
      spoke__buf_appendf(&b, ", \"error\": ");
      spoke__json_str(&b, s->error);
    }
    spoke__buf_append(&b, "}", 1);
  }
  for (size_t j = 0; j < n; j++) { /* files that went away */
    int still = 0;
    for (size_t i = 0; i < srv->nslots && !still; i++)
      still = strcmp(before[j].file ? before[j].file : "",
                     srv->slots[i].file) == 0;
    if (!still && before[j].file) {
      spoke__buf_appendf(&b, "%s{\"file\": ", changes++ ? ", " : "");
      spoke__json_str(&b, before[j].file);
      spoke__buf_appendf(&b, ", \"change\": \"removed\"}");
    }
  }
  spoke__buf_append(&b, "]}\n", 3);
  for (size_t j = 0; j < n; j++) {
    free(before[j].file);
    free(before[j].error);
  }
  free(before);
  respond(c, 200, "application/json", b.data ? b.data : "", b.len);
  spoke__buf_free(&b);
}

/* ---- the plugin files ---- */

/* The write endpoints' gate: 1 when the request may go on, else 0 with
 * the answer sent. PLUGINS: an endpoint under /plugins/, which a server
 * without a token refuses outright. */
static int authorized(admin_conn_t *c, int plugins) {
  const char *token = c->srv->cfg.admin_token;
  if (token == NULL && plugins) {
    respond_text(c, 403, "403 plugin files are off: start spoke with "
                         "--admin-token-file to upload, read or remove "
                         "them\n");
    return 0;
  }
  if (token == NULL || c->auth == AUTH_OK)
    return 1;
  const char *text = c->auth == AUTH_NONE
                         ? "401 this endpoint needs Authorization: Bearer "
                           "TOKEN\n"
                         : "401 wrong token\n";
  respond_with(c, 401, "text/plain; charset=utf-8",
               c->auth == AUTH_NONE
                   ? "WWW-Authenticate: Bearer realm=\"spoke admin\"\r\n"
                   : "WWW-Authenticate: Bearer realm=\"spoke admin\", "
                     "error=\"invalid_token\"\r\n",
               text, strlen(text));
  return 0;
}

static void plugin_get(admin_conn_t *c, const char *name) {
  spoke__buf_t b = {0};
  int rc = spoke__plugfile_read(c->srv->cfg.plugins_dir, name, &b);
  if (rc == 0)
    respond(c, 200, "application/octet-stream", b.data ? b.data : "",
            b.len);
  else if (rc == 1)
    respond_text(c, 404, "404 no such plugin file\n");
  else
    respond_text(c, 500, "500 cannot read the plugin file\n");
  spoke__buf_free(&b);
}

static void plugin_delete(admin_conn_t *c, const char *name) {
  int rc = spoke__plugfile_remove(c->srv->cfg.plugins_dir, name);
  if (rc == 1) {
    respond_text(c, 404, "404 no such plugin file\n");
    return;
  }
  if (rc != 0) {
    respond_text(c, 500, "500 cannot remove the plugin file\n");
    return;
  }
  spoke__info("DELETE /plugins/%s: removed", name);
  reload(c, NULL);
}

/* The whole body is in the temporary file: into place, then rescan. */
static void upload_done(admin_conn_t *c, const char *name) {
  char build[17];
  int rc = spoke__upload_commit(c->upload, build);
  c->upload = NULL;
  if (rc != 0) {
    respond_text(c, 500, "500 cannot write the plugin file\n");
    return;
  }
  spoke__info("PUT /plugins/%s: %zu bytes written (build %s)", name,
              c->want, build);
  reload(c, build);
}

/* Bytes of an upload's body: into the file; done once all are in. */
static void upload_feed(admin_conn_t *c, const char *data, size_t len) {
  if (spoke__upload_write(c->upload, data, len) != 0) {
    respond_text(c, 500, "500 cannot write the plugin file\n");
    spoke__upload_abort(c->upload);
    c->upload = NULL;
    return;
  }
  if (spoke__upload_missing(c->upload) == 0)
    upload_done(c, c->path + PLUGINS_LEN);
}

/* PUT /plugins/NAME.so, its head in: the body goes to a file as it
 * comes (HEAD bytes of c->buf are the head; what follows is body). */
static void upload_start(admin_conn_t *c, const char *name, size_t head,
                         size_t length) {
  int rc = length > SPOKE__UPLOAD_MAX
               ? TOO_BIG
               : spoke__upload_open(c->srv->cfg.plugins_dir, name, length,
                                    &c->upload);
  if (rc == SPOKE_EINVAL)
    respond_text(c, 400, "400 not a plugin file name (NAME.so, not "
                         "starting with '.')\n");
  else if (rc == TOO_BIG)
    respond_text(c, 413, "413 a plugin file may have 64 MiB at most\n");
  else if (rc == SPOKE_EBUSY)
    respond_text(c, 409, "409 another upload of this file is in "
                         "progress\n");
  else if (rc != 0)
    respond_text(c, 500, "500 cannot write into the plugins directory\n");
  if (rc != 0)
    return;
  c->want = length;
  upload_feed(c, c->buf + head, c->len - head);
}

/* ---- reading one request ---- */

static void dispatch(admin_conn_t *c, const char *method, const char *path) {
  int get = strcmp(method, "GET") == 0;
  if (c->sibling && (strcmp(path, "/reload") == 0 ||
                     strncmp(path, PLUGINS_PREFIX, PLUGINS_LEN) == 0)) {
    respond_text(c, 404, "404 Not Found\n"); /* the master passes it on */
  } else if (strcmp(path, "/status") == 0) {
    if (get)
      status_json(c);
    else
      respond_text(c, 405, "405 use GET\n");
  } else if (strcmp(path, "/metrics") == 0) {
    if (get)
      metrics(c);
    else
      respond_text(c, 405, "405 use GET\n");
  } else if (strcmp(path, "/reload") == 0) {
    if (strcmp(method, "POST") != 0)
      respond_text(c, 405, "405 use POST\n");
    else if (authorized(c, 0))
      reload(c, NULL);
  } else if (strncmp(path, PLUGINS_PREFIX, PLUGINS_LEN) == 0) {
    if (!get && strcmp(method, "DELETE") != 0)
      respond_text(c, 405, "405 use GET, PUT or DELETE\n");
    else if (authorized(c, 1))
      get ? plugin_get(c, path + PLUGINS_LEN)
          : plugin_delete(c, path + PLUGINS_LEN);
  } else {
    respond_text(c, 404, "404 Not Found: GET /status, GET /metrics, "
                         "POST /reload, /plugins/NAME.so\n");
  }
}

/* A Content-Length value: digits only. -1 when it is not one. */
static long long content_length(const char *v, const char *end) {
  long long n = 0;
  while (v < end && (*v == ' ' || *v == '\t'))
    v++;
  if (v == end || *v < '0' || *v > '9')
    return -1;
  for (; v < end && *v >= '0' && *v <= '9'; v++) {
    if (n > (1LL << 40))
      return -1;
    n = n * 10 + (*v - '0');
  }
  while (v < end && (*v == ' ' || *v == '\t'))
    v++;
  return v == end ? n : -1;
}

/* The request line, Content-Length and Authorization, parsed once the
 * head is in; answers once the body is in too (ignored, but for an
 * upload's, which goes to its file as it comes). */
static void try_request(admin_conn_t *c) {
  char *end = strstr(c->buf, "\r\n\r\n"), *sp1, *sp2, *eol, *line, *q;
  long long body = 0;
  int has_length = 0;
  size_t head;

  if (end == NULL) {
    if (c->len >= HEAD_MAX)
      respond_text(c, 431, "431 request head too large\n");
    return;
  }
  head = (size_t)(end + 4 - c->buf);
  if (c->want == 0) {
    eol = strstr(c->buf, "\r\n");
    sp1 = memchr(c->buf, ' ', (size_t)(eol - c->buf));
    sp2 = sp1 ? memchr(sp1 + 1, ' ', (size_t)(eol - sp1 - 1)) : NULL;
    if (sp1 == NULL || sp2 == NULL ||
        sp1 - c->buf >= (long)sizeof(c->method) ||
        sp2 - sp1 - 1 >= (long)sizeof(c->path) ||
        strncmp(sp2 + 1, "HTTP/1.", 7) != 0) {
      respond_text(c, 400, "400 Bad Request\n");
      return;
    }
    snprintf(c->method, sizeof(c->method), "%.*s", (int)(sp1 - c->buf),
             c->buf);
    snprintf(c->path, sizeof(c->path), "%.*s", (int)(sp2 - sp1 - 1),
             sp1 + 1);
    if ((q = strchr(c->path, '?')) != NULL)
      *q = '\0';
    for (line = eol + 2; line < end; line = strstr(line, "\r\n") + 2) {
      char *lend = strstr(line, "\r\n");
      if (strncasecmp(line, "Content-Length:", 15) == 0) {
        if (has_length++ || (body = content_length(line + 15, lend)) < 0) {
          respond_text(c, 400, "400 bad Content-Length\n");
          return;
        }
      } else if (strncasecmp(line, "Authorization:", 14) == 0) {
        const char *v = line + 14, *token = c->srv->cfg.admin_token;
        while (v < lend && (*v == ' ' || *v == '\t'))
          v++;
        c->auth = token && spoke__admin_token_ok(token, v, (size_t)(lend - v))
                      ? AUTH_OK
                      : AUTH_BAD;
      } else if (strncasecmp(line, "Transfer-Encoding:", 18) == 0) {
        respond_text(c, 411, "411 send a Content-Length\n");
        return;
      }
    }
    if (strcmp(c->method, "PUT") == 0 && !c->sibling &&
        strncmp(c->path, PLUGINS_PREFIX, PLUGINS_LEN) == 0) {
      if (!has_length)
        respond_text(c, 411, "411 an upload needs a Content-Length\n");
      else if (authorized(c, 1))
        upload_start(c, c->path + PLUGINS_LEN, head, (size_t)body);
      return;
    }
    c->want = head + (size_t)body;
    if (body > HEAD_MAX || c->want > HEAD_MAX) {
      respond_text(c, 413, "413 body too large\n");
      return;
    }
  }
  if (c->len >= c->want)
    dispatch(c, c->method, c->path);
}

static void alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
  admin_conn_t *c = h->data;
  (void)suggested;
  if (c->upload != NULL) { /* an upload's body: any room will do */
    buf->base = c->buf;
    buf->len = HEAD_MAX;
    return;
  }
  buf->base = c->buf + c->len;
  buf->len = HEAD_MAX - c->len;
}

static void read_cb(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf) {
  admin_conn_t *c = s->data;
  if (c->upload != NULL) {
    if (nread > 0) {
      uv_timer_again(&c->idle); /* silence, not length, ends an upload */
      upload_feed(c, buf->base, (size_t)nread);
    } else if (nread < 0) {
      conn_close(c); /* cut short: the temporary file goes */
    }
    return;
  }
  if (nread < 0 || (nread == 0 && c->len >= HEAD_MAX)) {
    if (nread == UV_ENOBUFS && !c->answered)
      respond_text(c, 431, "431 request head too large\n");
    else
      conn_close(c);
    return;
  }
  c->len += (size_t)nread;
  c->buf[c->len] = '\0';
  /* A NUL in the head is refused; a body (an upload's) may hold any byte. */
  char *nul = memchr(c->buf, '\0', c->len);
  char *end = memmem(c->buf, c->len, "\r\n\r\n", 4);
  if (nul != NULL && (end == NULL || nul < end)) {
    respond_text(c, 400, "400 Bad Request\n");
    return;
  }
  if (!c->answered)
    try_request(c);
}

static void idle_cb(uv_timer_t *t) { conn_close(t->data); }

static void accept_conn(uv_stream_t *server, int status, int sibling) {
  spoke__server_t *srv = server->data;
  admin_conn_t *c;
  if (status != 0)
    return;
  c = calloc(1, sizeof(*c));
  if (c == NULL)
    return;
  c->srv = srv;
  c->sibling = sibling;
  if (sibling) {
    uv_pipe_init(srv->control, &c->h.pipe, 0);
    c->h.pipe.data = c;
  } else {
    uv_tcp_init(srv->control, &c->h.tcp);
    c->h.tcp.data = c;
  }
  uv_timer_init(srv->control, &c->idle);
  c->idle.data = c;
  c->next = conns;
  if (conns)
    conns->prev = c;
  conns = c;
  if (uv_accept(server, STREAM(c)) != 0) {
    conn_close(c);
    return;
  }
  uv_timer_start(&c->idle, idle_cb, IDLE_MS, IDLE_MS);
  uv_read_start(STREAM(c), alloc_cb, read_cb);
}

static void on_connection(uv_stream_t *server, int status) {
  accept_conn(server, status, 0);
}

static void on_sibling(uv_stream_t *server, int status) {
  accept_conn(server, status, 1);
}

/* A supervised worker's sibling socket (siblings.c names it). */
static int sibling_start(spoke__server_t *srv) {
  struct sockaddr_un addr;
  socklen_t len = spoke__sibling_addr(srv->master_pid, getpid(), &addr);
  int rc, fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0)
    return uv_translate_sys_error(errno);
  if (bind(fd, (struct sockaddr *)&addr, len) != 0 || listen(fd, 64) != 0) {
    rc = uv_translate_sys_error(errno);
    close(fd);
    return rc;
  }
  uv_pipe_init(srv->control, &sibling_listener, 0);
  sibling_listener.data = srv;
  sibling_listening = 1;
  if ((rc = uv_pipe_open(&sibling_listener, fd)) != 0)
    return rc;
  return uv_listen((uv_stream_t *)&sibling_listener, 64, on_sibling);
}

int spoke__admin_start(spoke__server_t *srv, int *port) {
  const spoke__config_t *cfg = &srv->cfg;
  struct sockaddr_storage sa;
  int rc, len = sizeof(sa);

  if (srv->supervised) { /* the master's socket, bound and listening */
    uv_tcp_init(srv->control, &listener);
    listener.data = srv;
    listening = 1;
    if ((rc = uv_tcp_open(&listener, srv->admin_fd)) != 0 ||
        (rc = uv_listen((uv_stream_t *)&listener, 64, on_connection)) != 0 ||
        (rc = sibling_start(srv)) != 0)
      return rc;
    *port = cfg->admin_port;
    return 0;
  }
  if (strchr(cfg->admin_host, ':') != NULL)
    rc = uv_ip6_addr(cfg->admin_host, cfg->admin_port,
                     (struct sockaddr_in6 *)&sa);
  else
    rc = uv_ip4_addr(cfg->admin_host, cfg->admin_port,
                     (struct sockaddr_in *)&sa);
  if (rc != 0)
    return rc;
  uv_tcp_init(srv->control, &listener);
  listener.data = srv;
  listening = 1;
  if ((rc = uv_tcp_bind(&listener, (struct sockaddr *)&sa, 0)) != 0 ||
      (rc = uv_listen((uv_stream_t *)&listener, 64, on_connection)) != 0)
    return rc;
  if (uv_tcp_getsockname(&listener, (struct sockaddr *)&sa, &len) == 0)
    *port = ntohs(sa.ss_family == AF_INET6
                      ? ((struct sockaddr_in6 *)&sa)->sin6_port
                      : ((struct sockaddr_in *)&sa)->sin_port);
  return 0;
}

void spoke__admin_stop(void) {
  if (listening && !uv_is_closing((uv_handle_t *)&listener))
    uv_close((uv_handle_t *)&listener, NULL);
  listening = 0;
  if (sibling_listening &&
      !uv_is_closing((uv_handle_t *)&sibling_listener))
    uv_close((uv_handle_t *)&sibling_listener, NULL);
  sibling_listening = 0;
  while (conns != NULL)
    conn_close(conns);
}
