/* http.h: I/O loops, connections, requests and responses.
 *
 * Threads. Each spoke__loop_t is one thread with its own uv_loop_t; its
 * connections, its snapshot pointer and every request's lifetime fields
 * are touched only on that thread. Plugin code may call the response
 * functions from any thread: they serialize bytes on the calling thread
 * into a spoke__out_t and hand it to the owning loop, directly when
 * already on it, else through the loop's mailbox (a mutex-guarded list
 * plus a uv_async_t doorbell; uv_async_send coalesces, so the callback
 * drains the whole list).
 *
 * Request lifetime. What keeps a request alive is a set of holds
 * (spoke__hold_t below), taken with spoke__request_hold and given back
 * with spoke__request_release on the request's loop thread; the release
 * of the last hold frees it, exactly once (request.c asserts both: no
 * hold is released that was not taken, no request is freed twice).
 * Freeing unpins its plugin instance. If the client goes away first,
 * the connection detaches the request (aborted = 1, abort callback); the
 * plugin's later completion is accepted and discarded.
 *
 * Within http/ calls point down too (tools/check_layers.py): head.c,
 * frame.c, mailbox.c, request.c, conn_life.c, write.c, accesslog.c,
 * reqstats.c, response.c, timer.c, loophooks.c, offload.c, host.c, pool.c,
 * dispatch.c, parse.c, conn.c, timeouts.c, loop.c, watchdog.c. Where a
 * lower file must reach a higher one
 * it calls a function pointer the higher one installed: a mailbox
 * message's run callback, the loop's deliver callback (conn.c).
 */
#ifndef SPOKE_HTTP_H
#define SPOKE_HTTP_H

#include <signal.h>
#include <stdatomic.h>

#include <llhttp.h>
#include <uv.h>

#include "base/base.h"
#include "plugin/plugin.h"
#include "plugin/router.h"
#include "base/config.h"

typedef struct spoke__conn_s spoke__conn_t;
typedef struct spoke__loop_s spoke__loop_t;

/* What the I/O loops share with each other and with the control thread
 * (ctl/ embeds it in its server object). cfg is read-only once threads
 * run; the counters are atomics any thread may bump; loop_exited is the
 * control thread's handle, rung by each loop as it ends. */
typedef struct spoke__shared_s {
  const spoke__config_t *cfg;
  atomic_size_t sync_waiting;     /* queued sync requests not yet running */
  atomic_size_t sync_admitted;    /* sync requests running or waiting: at
                                     most workers + max_queue (dispatch.c) */
  atomic_int loops_running;
  atomic_size_t open_conns;       /* every loop's connections */
  atomic_uint_fast64_t sync_rejected; /* 503s for a full sync queue */
  uv_async_t *loop_exited;
} spoke__shared_t;

/* ---- head.c: the one writer of response heads ---- */

typedef struct spoke__head_s {
  int status;
  const char *headers;        /* "Name: value\r\n" lines, or NULL */
  size_t headers_len;
  long long body_len;         /* < 0: streamed (chunked for HTTP/1.1) */
  uint8_t http_minor;         /* the client's: 0 or 1 */
  uint8_t close;              /* the connection ends after this response */
} spoke__head_t;

/* Appends H's status line and headers, and the blank line, to OUT. */
int spoke__head_write(spoke__buf_t *out, const spoke__head_t *h);
/* 1 unless STATUS is 1xx, 204 or 304. */
int spoke__status_has_body(int status);
/* 1 if V[0..n) may be a header value: no control byte but HTAB. */
int spoke__header_value_ok(const char *v, size_t n);
/* authority.c: 1 if V[0..n) is a valid Host value, uri-host [":" port]
 * (RFC 9112 §3.2, RFC 3986 §3.2.2); "" is. */
int spoke__host_value_ok(const char *v, size_t n);
/* Thread-local cached Date value for the current second. */
const char *spoke__http_date(void);
/* Writes V in decimal (BASE 10) or lowercase hex (16) at P; returns the
 * end. P needs room for 20 bytes. */
char *spoke__put_num(char *p, unsigned long long v, unsigned base);

/* ---- mailbox.c: what other threads hand a loop ---- */

/* A message runs on the loop's thread: RUN is set by whoever posts it,
 * so the mailbox knows nothing of what messages mean. */
typedef struct spoke__msg_s spoke__msg_t;
typedef void (*spoke__msg_cb)(spoke__msg_t *msg);
struct spoke__msg_s {
  spoke__msg_t *next;
  spoke__msg_cb run;
};

/* Bytes of one request's response, serialized by the producing thread.
 * Owned by the loop once posted; given back after its write completes:
 * freed, or, for the request's own out (SPOKE__OUT_EMBEDDED, whose bytes
 * are the request's wire buffer), left to the request. An out with
 * req == NULL carries bytes of the connection's own: corked responses
 * (write.c) or a 100 Continue (conn.c). */
enum {
  SPOKE__OUT_LAST = 1,    /* the response ends with these bytes */
  SPOKE__OUT_CLOSE = 2,   /* close the connection after them */
  SPOKE__OUT_PLUGIN = 4,  /* an async plugin's completion: its PLUGIN
                             hold goes (response.c sets it when owed) */
  SPOKE__OUT_RELEASE = 8, /* no bytes: the plugin completed too late */
  SPOKE__OUT_EMBEDDED = 16, /* req->out: not malloc'd */
  SPOKE__OUT_FILE = 32    /* after its bytes: file_len bytes of file_fd
                             from file_off, by sendfile (write.c); the
                             descriptor is the out's, closed with it,
                             until the connection's transfer takes it */
};
typedef struct spoke__out_s {
  spoke__msg_t msg;           /* run: the loop's deliver callback */
  spoke_request_t *req;
  unsigned flags;             /* SPOKE__OUT_* */
  unsigned via_mailbox;
  uv_write_t wr;
  char *data;                 /* after the struct, or req->wire's bytes */
  size_t len;
  int file_fd;                /* SPOKE__OUT_FILE only: the body's file */
  uint64_t file_off, file_len;
} spoke__out_t;

/* A malloc'd out with room for LEN bytes after it; NULL without memory. */
spoke__out_t *spoke__out_new(size_t len);
/* Gives OUT back (loop thread): closes its file if it still has one
 * (SPOKE__OUT_FILE), frees it unless it is embedded. */
void spoke__out_release(spoke__out_t *out);

/* A file body on its way to a connection's socket (write.c): sendfile
 * from the loop, as the socket drains. Loop thread only. The connection
 * owns it (conn->file) from send_file until file_release, which closes
 * FD and lets REQ go; it is freed there, or, once the poll exists, in
 * the poll's close callback, which closes SOCK too. OUT is libuv's and
 * never closed here. */
typedef struct spoke__sendfile_s {
  void (*abort)(spoke__conn_t *conn); /* the connection closes: drop it
                                 (a pointer, so conn_life.c need not call
                                 up into write.c) */
  spoke__conn_t *conn;        /* NULL once released */
  uv_poll_t poll;             /* writable on SOCK, once SOCK exists */
  int out;                    /* the connection's socket (libuv's) */
  int sock;                   /* -1, or a dup of it for POLL, made the
                                 first time the socket is full: libuv
                                 allows one watcher per descriptor */
  int fd;                     /* the file; closed when done */
  uint64_t off, left;
  spoke_request_t *req;       /* held (WRITE) until the body is out */
  uint8_t polling;
} spoke__sendfile_t;

/* ---- the I/O loop (mailbox.c, loop.c) ---- */

struct spoke__loop_s {
  uv_loop_t uv;
  uv_thread_t thread;
  int id;
  spoke__shared_t *shared;
  int listen_fd;
  uv_tcp_t listener;
  uv_async_t doorbell;
  spoke__msg_cb deliver;      /* runs a response's out on this loop: set
                                 by loop.c to conn.c's, called by
                                 response.c (fixed once the loop runs) */
  void (*finishing)(spoke__loop_t *loop); /* set by loop.c: run by
                                 spoke__loop_maybe_finish as the drained
                                 loop starts closing (plugins' loop_fini) */
  /* loophooks.c, loop thread only: versions due for loop_fini (one
   * reference each), run by hooks_idle on the next turn. */
  uv_idle_t hooks_idle;
  spoke__instance_t **stops;
  size_t nstops, stops_cap;
  uint8_t hooks_closing;      /* hooks_idle closes once the list is done */
  uint8_t hooks_closed;       /* uv_close'd */
  uv_mutex_t mu;              /* guards head/tail, and drained's waits */
  spoke__msg_t *head, *tail;  /* mailbox, any thread appends */
  uv_cond_t drained;          /* a request's queued bytes went down */
  /* loop thread only: */
  spoke__snapshot_t *snap;    /* current route table (one reference) */
  uv_timer_t sweep;           /* timeouts.c: checks every deadline */
  spoke__conn_t *conns;       /* doubly linked, for drain and sweep */
  size_t nconns;
  size_t live_requests;
  int draining;
  int closed;                 /* our handles are closing: loop ends */
  int uv_ready;               /* uv loop, mutex and cond initialized */
  /* Loop thread only, shared by its connections one at a time: */
  char *rbuf;                 /* reads land here; conn.c moves leftovers
                                 into the connection's own buffer, so an
                                 idle connection holds none */
  spoke__conn_t *cork;        /* responses made for this connection while
                                 it parses go to cork_buf, written with
                                 one write when its parsing stops */
  spoke__buf_t cork_buf;
  spoke__instance_t **unrefs; /* mailbox.c: references to give back once no
                                 plugin code is on this loop's stack */
  size_t nunrefs, unrefs_cap;
  uv_prepare_t settle;        /* gives them back, before each poll */
  spoke_request_t *orphans;   /* request.c: answered for a plugin (504)
                                 that still owes a completion, unpinned */
  size_t norphans;
  spoke_request_t *free_reqs; /* request.c's pool of finished requests */
  size_t nfree_reqs;
  spoke__loop_stats_t stats;  /* written here, read by /metrics */
  spoke__buf_t alog;          /* access log lines not yet written */
  uv_check_t alog_flush;      /* writes them once per loop iteration */
  uv_timer_t lag;             /* every SPOKE__LAG_PERIOD_MS: how late */
  uint64_t lag_due;           /* uv_hrtime() the lag timer is due */
  /* For the watchdog (watchdog.c), which reads them from its thread: */
  _Atomic uint64_t heartbeat; /* bumped once per loop iteration (settle) */
  _Atomic(spoke__call_t *) call; /* this loop thread's call record while
                                 its uv_run runs, else NULL */
  atomic_int call_reading;    /* the watchdog is reading *call: the loop
                                 thread waits for 0 before it ends */
};

/* mailbox.c. Post: any thread; MSG->run runs on LOOP's thread, in post
 * order. The doorbell's callback (loop.c installs it) drains the box. */
void spoke__loop_post(spoke__loop_t *loop, spoke__msg_t *msg);
void spoke__mailbox_drain(spoke__loop_t *loop);
int spoke__loop_is_current(const spoke__loop_t *loop);
void spoke__loop_set_current(spoke__loop_t *loop); /* NULL: none */
spoke__loop_t *spoke__loop_current(void); /* this thread's loop, or NULL */
/* Gives INST's reference back once no plugin code is on LOOP's stack:
 * before the loop's next poll (spoke__loop_settle, from its prepare
 * handle, and once more when it ends). A request's pin and a plugin's
 * own hold end this way on a loop thread, so a version is never
 * unloaded under the callback that let it go (loop thread). */
void spoke__loop_defer_unref(spoke__loop_t *loop, spoke__instance_t *inst);
void spoke__loop_settle(spoke__loop_t *loop);
/* Ends the loop once draining and nothing is left (loop thread): closes
 * its doorbell and its sweep timer, so uv_run returns. */
void spoke__loop_maybe_finish(spoke__loop_t *loop);

/* loop.c. Init takes over LISTEN_FD and the reference to SNAP, also
 * when it fails; a loop whose thread never started (start-up failed) is
 * undone with spoke__loop_abandon, which closes both. */
int spoke__loop_init(spoke__loop_t *loop, spoke__shared_t *shared, int id,
                     int listen_fd, spoke__snapshot_t *snap);
void spoke__loop_abandon(spoke__loop_t *loop);
/* What a loop's thread does once its uv_run has returned (a test that
 * drives a loop itself calls it too): handles a plugin left open are
 * closed, requests a plugin never completed dropped, the last references
 * given back, memory freed. Returns how many handles were left open. */
int spoke__loop_end(spoke__loop_t *loop);
int spoke__loop_start(spoke__loop_t *loop);  /* spawns the thread */
void spoke__loop_join(spoke__loop_t *loop);
/* Control thread: LOOP switches to SNAP (takes a reference of its own),
 * or starts draining. 0 or SPOKE_ENOMEM (nothing was sent). */
int spoke__loop_publish(spoke__loop_t *loop, spoke__snapshot_t *snap);
int spoke__loop_drain(spoke__loop_t *loop);
/* The signals the control thread reads from its signalfd (ctl/server.c);
 * every loop thread, and each thread it starts, keeps them blocked. */
void spoke__control_signals(sigset_t *set);

/* ---- request.c ---- */

/* Parsing a small request allocates nothing: its arena starts in this
 * block inside the request, and finished requests are pooled per loop
 * (their buffers keep their memory, up to a bound). */
#define SPOKE__REQ_ARENA_INLINE 1024
#define SPOKE__REQ_POOL_MAX 128

/* Why a request is still alive. The first five are taken at most once
 * at a time; STACK, WRITE, TIMER and DRAIN are counted. */
typedef enum {
  SPOKE__HOLD_CONN = 0,       /* attached to its connection */
  SPOKE__HOLD_HANDLER,        /* its handler is running (or queued) */
  SPOKE__HOLD_UNCOMPLETED,    /* its response's last bytes not queued yet */
  SPOKE__HOLD_PLUGIN,         /* an async plugin still owes a completion,
                                 even after the core answered (504) */
  SPOKE__HOLD_OFFLOAD,        /* a spoke_offload whose done callback has
                                 not run yet (offload.c) */
  SPOKE__HOLD_STACK,          /* a function on the loop's stack uses it (an
                                 abort or timer callback, a delivery) */
  SPOKE__HOLD_WRITE,          /* a queued write of its bytes */
  SPOKE__HOLD_TIMER,          /* a pending spoke_timer_start */
  SPOKE__HOLD_DRAIN,          /* a drain callback posted to the mailbox,
                                 not yet run (one at a time) */
  SPOKE__HOLD_KINDS
} spoke__hold_t;

typedef struct spoke__header_s {
  const char *name;
  const char *value;
} spoke__header_t;

struct spoke_request_s {
  spoke__loop_t *loop;        /* fixed */
  spoke__conn_t *conn;        /* loop thread; NULL once detached */
  spoke__instance_t *inst;    /* pinned from dispatch (loop thread) until
                                 freed, or until an orphaned request lets
                                 go of it (request.c, loop thread: NULL);
                                 other threads read it only through
                                 spoke__request_inst */
  spoke_handler_cb handler;   /* in inst's code, so pinned with it; the
                                 route itself lives in a snapshot, which a
                                 reload may free while the request waits */
  spoke__arena_t arena;       /* handling thread */

  /* Parsed request: written by the loop while parsing, read-only once
   * dispatched. */
  const char *method;
  const char *url;
  const char *path;
  size_t path_len;
  const char *query;
  uint8_t http_major, http_minor;
  uint8_t is_head;
  uint8_t keep_alive;
  uint8_t expect_continue;
  spoke__header_t *headers;
  size_t nheaders, headers_cap;
  spoke__param_t params[SPOKE__MAX_PARAMS];
  size_t nparams;
  spoke__buf_t body;

  /* Plugin side: the thread handling the request. */
  void *user_data;
  _Atomic(spoke_abort_cb) abort_cb; /* set by the plugin, run by the loop */
  int handler_rc;
  int status;
  spoke__buf_t resp_headers;  /* "Name: value\r\n" lines */
  atomic_int resp_started;    /* streaming began: set by the plugin's
                                 thread, read by the loop's timeout sweep
                                 and core responses, hence atomic */
  uint8_t resp_close;         /* plugin asked for Connection: close */
  uint8_t resp_length_set;    /* spoke_response_length was called: the
                                 stream carries Content-Length resp_length
                                 instead of chunked encoding */
  uint64_t resp_length;

  atomic_int completed;       /* any thread: first completion wins */
  atomic_int plugin_owes;     /* async: the plugin has not completed yet */
  uint8_t mode;               /* SPOKE_SYNC or SPOKE_ASYNC once routed */
  atomic_uint in_mailbox;     /* outs posted, not yet delivered: later
                                 outs must queue behind them */
  atomic_size_t queued;       /* response bytes posted, not yet written */
  atomic_int waiting;         /* writers blocked on queued (back-pressure) */
  atomic_int aborted;         /* set by the loop, read anywhere */

  /* Loop thread only. */
  uint16_t holds[SPOKE__HOLD_KINDS]; /* request.c's hold/release only */
  unsigned nholds;            /* their sum: freed when it drops to 0 */
  spoke_request_t *next_free; /* loop->free_reqs */
  uint64_t t_start;           /* uv_hrtime() at its first byte */
  uint32_t route_index;       /* in inst's routes, once routed */
  uint8_t routed;             /* counted in the loop's in_flight */
  char peer[48];              /* client address, when logging access */
  uint8_t pooled;             /* in the pool: not a live request */
  uint8_t orphaned;           /* on loop->orphans */
  spoke_request_t *orphan_prev, *orphan_next;
  char plugin_name[64];       /* inst->name, kept for logs once unpinned:
                                 written by the loop before inst goes NULL */
  /* Back-pressure from the loop (SDK 1.3, request.c): the plugin's drain
   * callback, registered and not run yet; drain_msg runs it from the
   * mailbox once the queue is at the low-water mark (a DRAIN hold while
   * it is posted). */
  spoke_drain_cb drain_cb;
  spoke__msg_t drain_msg;
  uint8_t drain_posted;

  /* Sync dispatch (pool.c): sync_next under the pool's mutex; done_msg
   * written by the worker and handed to the loop through its mailbox. */
  spoke_request_t *sync_next;
  spoke__msg_t done_msg;
  /* spoke_offload (offload.c): set on the loop thread before the job is
   * queued, read by the worker that runs FN, cleared on the loop when
   * DONE runs. A request with offload_fn set is an offload job to the
   * pool, not a sync handler; done_msg brings it back. */
  spoke_offload_cb offload_fn;
  void *offload_arg;
  spoke_offload_done_cb offload_done;

  /* Written by the completing thread with the response's bytes; read by
   * the loop once the last out arrives (stats, access log). */
  uint64_t body_sent;         /* response body bytes */

  /* The whole response's bytes and the out that carries them: reused
   * with the request, so a response allocates nothing. Written by the
   * completing thread, then the loop's (handed over with the out). */
  spoke__buf_t wire;
  spoke__out_t out;

  /* Kept last: request.c clears everything before it on reuse. */
  _Alignas(16) char arena_storage[SPOKE__REQ_ARENA_INLINE];
};

/* A new request, held by its connection (CONN) and for its response
 * (UNCOMPLETED). Loop thread. */
spoke_request_t *spoke__request_new(spoke__loop_t *loop, spoke__conn_t *conn);
/* Takes or gives back one hold (loop thread). Releasing the last frees
 * the request: back to the loop's pool, or to malloc when the pool is
 * full. Releasing a hold not held, or holding an exclusive one twice,
 * is a bug and asserts. */
void spoke__request_hold(spoke_request_t *req, spoke__hold_t why);
void spoke__request_release(spoke_request_t *req, spoke__hold_t why);
int spoke__request_held(const spoke_request_t *req, spoke__hold_t why);

/* REQ's plugin version, or NULL once let go of: from any thread (a
 * plugin's own thread completing late). The version itself stays mapped
 * while that thread runs its code only if the plugin holds it (SDK 1.3
 * spoke_plugin_hold), as its own threads must. */
static inline const spoke__instance_t *spoke__request_inst(
    const spoke_request_t *req) {
  return __atomic_load_n(&req->inst, __ATOMIC_ACQUIRE);
}


/* Lets go of REQ's plugin version before the request ends (loop
 * thread): a request answered for its plugin (504) whose plugin may
 * never complete it must not keep that version loaded. REQ->inst is NULL
 * afterwards (spoke__request_orphan keeps the plugin's name for logs);
 * no plugin code may run for REQ through the core afterwards (no
 * handler, no spoke timer). */
void spoke__request_unpin(spoke_request_t *req);
/* REQ was answered for its plugin (504) and its abort callback ran: it
 * lets go of its version (unpin) and waits, off the count a drain waits
 * for, for a completion the plugin may never send. When the loop ends,
 * spoke__request_orphans_free drops the ones still waiting. */
void spoke__request_orphan(spoke_request_t *req);
/* Orphans REQ if the core answered for its plugin (completed and aborted:
 * a 504), the plugin still owes its completion, and nothing of the core
 * will call the plugin for it again: no handler running, no spoke timer
 * or offload pending but ENDING, the one the caller is about to give
 * back (SPOKE__HOLD_KINDS: none). Loop thread. */
void spoke__request_orphan_if_idle(spoke_request_t *req, spoke__hold_t ending);
void spoke__request_orphans_free(spoke__loop_t *loop);
/* Requests created and not yet freed, in the whole process (any thread):
 * 0 once every loop has ended, or a hold was never released. */
long spoke__request_live_count(void);
/* Frees the loop's pooled requests (loop thread, at its end). */
void spoke__request_pool_free(spoke__loop_t *loop);
/* The connection is gone: mark aborted, tell the plugin (loop thread). */
void spoke__request_detach(spoke_request_t *req);
/* Nobody waits for this response any more (client gone, or answered 504
 * for the plugin): aborted = 1 and the plugin's abort callback, once. */
void spoke__request_abort(spoke_request_t *req);
/* Wakes writers waiting for room in REQ's queue (any thread). */
void spoke__request_wake_writers(spoke_request_t *req);
/* LEN of REQ's queued bytes left the queue: written, copied or dropped
 * (loop thread); at the low-water mark wakes a waiting writer and posts
 * a registered drain callback. */
void spoke__request_dequeued(spoke_request_t *req, size_t len);
/* Response bytes a writer off the loop may have queued before it waits
 * (back-pressure, response.c); it is woken at the low-water mark, half of
 * it, where a drain callback runs too. */
#define SPOKE__STREAM_HIGH_WATER (1024 * 1024)
#define SPOKE__STREAM_LOW_WATER (SPOKE__STREAM_HIGH_WATER / 2)
/* Registers CB to run once from REQ's loop, in a mailbox message of its
 * own, as soon as REQ's queued bytes are at the low-water mark: at once
 * if they are, else when spoke__request_dequeued brings them there.
 * Replaces a callback registered before. Dropped if the request is
 * aborted or completed first. Loop thread; the caller has checked the
 * request is neither (response.c). */
void spoke__request_on_drain(spoke_request_t *req, spoke_drain_cb cb);
int spoke__request_add_header(spoke_request_t *req, const char *name,
                              size_t nlen, const char *value, size_t vlen);

/* The host-table request accessors (spoke_host_t members). */
const char *spoke__request_method(const spoke_request_t *req);
const char *spoke__request_path(const spoke_request_t *req);
const char *spoke__request_query(const spoke_request_t *req);
const char *spoke__request_query_param(spoke_request_t *req, const char *name);
const char *spoke__request_header(const spoke_request_t *req, const char *name);
size_t spoke__request_header_count(const spoke_request_t *req);
int spoke__request_header_at(const spoke_request_t *req, size_t i,
                             const char **name, const char **value);
const char *spoke__request_param(const spoke_request_t *req, const char *name);
const void *spoke__request_body(const spoke_request_t *req, size_t *len);
struct uv_loop_s *spoke__request_loop(const spoke_request_t *req);
void *spoke__request_alloc(spoke_request_t *req, size_t size);
void spoke__request_set_data(spoke_request_t *req, void *data);
void *spoke__request_data(const spoke_request_t *req);
int spoke__request_aborted(const spoke_request_t *req);
int spoke__request_on_abort(spoke_request_t *req, spoke_abort_cb cb);

/* ---- response.c ---- */

/* REQ's status line and headers (head.c's writer over the request's
 * status, headers and framing). BODY_LEN < 0: streamed. */
int spoke__response_head(spoke_request_t *req, spoke__buf_t *out,
                         long long body_len);

/* A whole response from the core (404, 405, 413, 500, 503 ...); extra
 * header lines (each ending in CRLF) may be NULL. Completes the request
 * unless already completed. */
int spoke__response_simple(spoke_request_t *req, int status,
                           const char *extra_headers);
/* The same with BODY[0..len) (text/plain) instead of "STATUS Reason". */
int spoke__response_text(spoke_request_t *req, int status,
                         const char *extra_headers, const char *body,
                         size_t len);

/* The host-table response functions (spoke_host_t members). */
int spoke__response_status(spoke_request_t *req, int status);
int spoke__response_header(spoke_request_t *req, const char *name,
                           const char *value);
int spoke__response_send(spoke_request_t *req, const void *body, size_t len);
int spoke__response_write(spoke_request_t *req, const void *data, size_t len);
int spoke__response_end(spoke_request_t *req);
size_t spoke__response_pending(const spoke_request_t *req);
int spoke__response_on_drain(spoke_request_t *req, spoke_drain_cb cb);
int spoke__response_file(spoke_request_t *req, int fd, uint64_t offset,
                         uint64_t length);
int spoke__response_length(spoke_request_t *req, uint64_t length);

/* 1 when REQ's connection closes after its response (STREAMED: sent
 * without a length). */
int spoke__response_closes(const spoke_request_t *req, int streamed);

/* ---- connections ---- */

/* frame.c: the line rules of a request (CRLF only, no obs-fold) checked
 * on the raw bytes llhttp consumed, across reads, through the body's
 * framing up to the end of the trailers. */
typedef struct spoke__frame_scan_s {
  uint8_t state;               /* frame.c's SC_* */
  uint8_t prev_cr;             /* the last byte was CR */
  uint8_t seen_line;           /* a non-empty line is behind us */
  uint8_t in_ext;              /* chunk size line: past the digits */
  uint32_t line_len;           /* bytes of the current line so far; in the
                                  chunk states, chunk-extension bytes of
                                  the whole body (frame.c) */
  uint64_t remaining;          /* body or chunk-data bytes to skip */
  uint64_t chunk;              /* the chunk size being read */
} spoke__frame_scan_t;

/* How the body of the request being read is framed (on_headers_complete). */
typedef enum {
  SPOKE__BODY_NONE = 0,
  SPOKE__BODY_LENGTH,
  SPOKE__BODY_CHUNKED
} spoke__body_kind_t;

void spoke__frame_reset(spoke__frame_scan_t *sc);
/* Scans DATA[0..len) of the current request. 0, or -1 on a violation. */
int spoke__frame_scan(spoke__frame_scan_t *sc, spoke__body_kind_t kind,
                      uint64_t length, const char *data, size_t len);

/* What a connection is waiting for; decides which deadline applies. */
typedef enum {
  SPOKE__PHASE_NEW = 0,     /* no request yet: header timeout, silent */
  SPOKE__PHASE_IDLE,        /* between requests: keep-alive timeout */
  SPOKE__PHASE_HEAD,        /* reading a head: header timeout, 408 */
  SPOKE__PHASE_BODY,        /* reading a body: body timeout, 408 */
  SPOKE__PHASE_HANDLER,     /* async handler, no response yet: 504 */
  SPOKE__PHASE_BUSY,        /* sync handler or response under way */
  SPOKE__PHASE_LINGER       /* shut down; draining the client's bytes */
} spoke__phase_t;

struct spoke__conn_s {
  uv_tcp_t tcp;
  spoke__loop_t *loop;
  spoke__conn_t *prev, *next;  /* loop->conns */
  llhttp_t parser;
  char *rbuf;                  /* bytes read, [rpos, rlen) not parsed: the
                                  loop's shared buffer during a read
                                  callback, else our own or NULL */
  size_t rpos, rlen, rcap;
  spoke_request_t *req;        /* being parsed, or in flight */
  int req_dispatched;          /* req is in flight, parser paused */
  spoke__buf_t field, value;   /* header accumulation */
  spoke__buf_t url;
  spoke__frame_scan_t scan;    /* the line rules (frame.c) */
  spoke__body_kind_t body_kind; /* of the request being read */
  uint64_t body_length;        /* its Content-Length, for body_kind LENGTH */
  size_t head_bytes;
  size_t trailers;             /* trailer fields read (never kept) */
  int head_done;               /* the request's head is in: any field now
                                  is a trailer (parse.c) */
  int hosts;                   /* Host fields in the head (parse.c) */
  int bad_host;                /* one of them had an invalid value */
  int err_status;              /* set by callbacks before failing */
  spoke__phase_t phase;
  uint64_t deadline;           /* loop time (ms) the phase ends; 0: none */
  uint64_t body_start;         /* loop time (ms) the body phase began */
  uint64_t body_seen;          /* body bytes read since */
  uint64_t send_deadline;      /* no write progress by then: close */
  size_t nrequests;            /* dispatched on this connection */
  unsigned advancing : 1;      /* inside spoke__conn_advance */
  unsigned closing : 1;
  unsigned reading : 1;
  unsigned close_after : 1;    /* no further requests on this conn */
  unsigned lingering : 1;      /* after shutdown: read and discard */
  unsigned rbuf_shared : 1;    /* rbuf is loop->rbuf (inside read_cb) */
  char peer[48];               /* client address, when logging access */
  /* write.c: a file body being sent, the outs that came behind it (in
   * order, linked by msg.next, each holding its request with a WRITE
   * hold), and what to do once all of them are out (conn.c's finish,
   * deferred by a close that came meanwhile). */
  spoke__sendfile_t *file;
  spoke__out_t *behind_head, *behind_tail;
  void (*after_file)(spoke__conn_t *conn);

};

/* conn_life.c: a connection's phase and deadlines, and its end. */

/* Enters PHASE and sets the deadline it implies (loop thread). */
void spoke__conn_phase(spoke__conn_t *conn, spoke__phase_t phase);
/* LEN more body bytes arrived: the body's deadlines move (conn_life.c). */
void spoke__conn_body_progress(spoke__conn_t *conn, size_t len);
/* Write progress: re-arms or clears the send deadline. */
void spoke__conn_send_progress(spoke__conn_t *conn);
/* Closes now: a request not yet dispatched is completed and dropped, one
 * in flight is detached (its plugin is told). Freed in the close
 * callback, after every write callback. */
void spoke__conn_close(spoke__conn_t *conn);
/* Closes with a reset (SO_LINGER 0): nothing queued is sent. */
void spoke__conn_reset(spoke__conn_t *conn);

/* conn.c: reading, parsing, answering in order, accepting. */
void spoke__conn_accept(spoke__loop_t *loop);
/* Parses buffered bytes and dispatches the next request if the current
 * one is finished (loop thread). */
void spoke__conn_advance(spoke__conn_t *conn);
/* Answers STATUS (408 ...) to the request being read, then closes. */
void spoke__conn_fail(spoke__conn_t *conn, int status);
/* Closes the connection if it has no request under way (drain). */
void spoke__conn_close_if_idle(spoke__conn_t *conn);
/* The loop's deliver callback: bytes produced for a request (an
 * spoke__out_t's msg) go out on its connection, in order; the last of
 * a response lets the connection go on to the next request. */
void spoke__conn_deliver(spoke__msg_t *msg);

/* parse.c: the llhttp callbacks that fill a connection's request. */
const llhttp_settings_t *spoke__parse_settings(void);

/* ---- write.c ---- */

/* Sends OUT's bytes on CONN in delivery order and takes OUT over: 0, or a
 * negative libuv error (the connection is then closed). A SPOKE__OUT_FILE
 * out's file follows its bytes; whatever comes while a file is being
 * sent waits behind it. */
int spoke__conn_send(spoke__conn_t *conn, spoke__out_t *out);
/* 1 while CONN still has bytes to send: queued writes or a file. */
static inline int spoke__conn_sending(const spoke__conn_t *conn) {
  return conn->file != NULL || conn->tcp.write_queue_size > 0;
}
/* While corked (at most one connection per loop at a time), what is sent
 * on CONN gathers in the loop's cork buffer; uncork writes it at once. */
void spoke__conn_cork(spoke__conn_t *conn);
void spoke__conn_uncork(spoke__conn_t *conn);

/* ---- dispatch.c ---- */

/* Routes a fully parsed request and runs its handler (loop thread). A
 * sync handler's return comes back through the loop's mailbox. */
void spoke__dispatch(spoke_request_t *req);

/* ---- pool.c ---- */

/* Runs REQ's handler on a worker, then posts REQ->done_msg (its run set
 * by the submitter) to REQ's loop (submit: loop thread). Start and stop:
 * control thread, before the first and after the last submission. */
int spoke__pool_start(int nthreads);
void spoke__pool_submit(spoke_request_t *req);
void spoke__pool_stop(void);
/* Admits one more job (a sync handler, or an offload: offload.c) while
 * fewer than workers + --max-queue are running or waiting: 0, counted as
 * waiting until a worker takes it, and the caller must then submit it;
 * else SPOKE_EBUSY, counted as a rejection. Any thread (atomics). */
int spoke__pool_admit(spoke__shared_t *srv);
/* A sync job running on a worker, as the control thread reads it. */
typedef struct spoke__pool_job_s {
  int worker;                 /* spoke-worker-N */
  uint64_t running_ns;        /* since it started */
  char plugin[64];
  char route[192];            /* "GET /users/:id" */
} spoke__pool_job_t;
/* Calls CB for each sync job that has been running for MIN_NS or more
 * (any thread; reads each worker's slot, never a request or instance). */
void spoke__pool_running(uint64_t min_ns,
                         void (*cb)(const spoke__pool_job_t *job, void *arg),
                         void *arg);

/* ---- timeouts.c ---- */

/* The loop's sweep of every connection's deadlines (loop thread). */
void spoke__timeouts_start(spoke__loop_t *loop);

/* ---- reqstats.c ---- */

/* REQ's response is queued whole: count it (REQ's loop thread). */
void spoke__stats_request_done(spoke_request_t *req);
/* Upper bounds of the latency buckets, in microseconds. */
extern const uint64_t spoke__lat_bound_us[SPOKE__LAT_BUCKETS];

/* ---- accesslog.c ---- */

/* Appends REQ's line to its loop's buffer, when logging is on (loop
 * thread); the loop writes the buffer once per iteration. */
void spoke__accesslog_request(spoke_request_t *req);
/* 1 when --access-log is on (set once at start-up). */
int spoke__accesslog_enabled(void);
/* The loop's writer (loop.c, at start and end). */
void spoke__accesslog_loop_init(spoke__loop_t *loop);
void spoke__accesslog_loop_close(spoke__loop_t *loop);
/* Control thread: open before the loops start; SIGUSR1 reopens the same
 * path; close at exit. */
int spoke__accesslog_open(const char *path);
void spoke__accesslog_reopen(void);
void spoke__accesslog_close(void);

/* ---- host.c ---- */

/* The function table plugins are handed: the accessors and response
 * functions above, the timer, logging, config (built once, read-only). */
const spoke_host_t *spoke__host_table(void);

/* ---- timer.c ---- */
int spoke__timer_start(spoke_request_t *req, uint64_t ms, spoke_timer_cb cb);

/* ---- loophooks.c: plugins' per-loop hooks, on the loop thread ---- */
/* Its idle handle, at loop init (inactive: keeps nothing up). */
void spoke__loophooks_init(spoke__loop_t *loop);
/* The drained loop closes: its idle closes once no loop_fini is due. */
void spoke__loophooks_close(spoke__loop_t *loop);
/* After uv_run: every loop_fini still owed runs now, the idle closes
 * (spoke__loop_end then runs the loop once more for closing handles). */
void spoke__loophooks_end(spoke__loop_t *loop);
/* loop_init for each version in SNAP not yet started on LOOP. */
void spoke__loophooks_adopt(spoke__loop_t *loop, spoke__snapshot_t *snap);
/* Each version of OLD that NOW (NULL: none) does not list is retired on
 * LOOP: its loop_fini runs on the next turn if no request of it is
 * pinned here, else after the last one is let go of
 * (spoke__loophooks_unpinned). */
void spoke__loophooks_retire(spoke__loop_t *loop, spoke__snapshot_t *old,
                             spoke__snapshot_t *now);
/* A request pinned in INST on LOOP let go (INST has slots). */
void spoke__loophooks_unpinned(spoke__loop_t *loop, spoke__instance_t *inst);
/* spoke_loop_state: REQ's version's slot state on REQ's loop. */
void *spoke__loophooks_state(const spoke_request_t *req);

/* ---- offload.c: spoke_offload ---- */
int spoke__offload(spoke_request_t *req, spoke_offload_cb fn, void *arg,
                   spoke_offload_done_cb done);

/* ---- loop.c: the lag timer ---- */

/* Each loop's lag timer fires every SPOKE__LAG_PERIOD_MS and counts how
 * late it ran in its loop's stats.lag histogram; these are the buckets'
 * upper bounds, in microseconds. An idle loop also turns at least this
 * often, which the watchdog relies on. */
#define SPOKE__LAG_PERIOD_MS 100
extern const uint64_t spoke__lag_bound_us[SPOKE__LAG_BUCKETS];

/* ---- watchdog.c: loops held by one call ---- */

/* The hard limit's callback (--stall-kill): LOOP_ID's loop has been held
 * by CALL (that loop thread's record, depth > 0, the same seq, heartbeat
 * frozen) for STALLED_MS >= kill_ms (estimated from the look before the
 * first that saw it). Called once per call, on the watchdog thread; CALL
 * stays valid while it runs and its inst is loaded as long as the call
 * is in progress (it was just before the callback). Installed by a
 * higher floor (it records the crash and kills the process). */
typedef void (*spoke__stall_kill_cb)(int loop_id, const spoke__call_t *call,
                                     uint64_t stalled_ms);

/* Starts the spoke-watchdog thread over LOOPS[0..n) (control thread,
 * after the loops started) and installs the stall hook: a loop held
 * inside one plugin call for WARN_MS or more is logged and counted by
 * that loop when the call returns; a loop held as long outside any call
 * spoke made is logged by the watchdog. A call holding its loop for
 * KILL_MS or more is handed to ON_KILL once. WARN_MS 0: no warnings;
 * KILL_MS 0 or ON_KILL NULL: no hard limit; both off: nothing is
 * started. It ticks every min(WARN_MS, KILL_MS)/4 ms of those on (at
 * least 5). Stop (control thread, before the loops are joined) ends the
 * thread. */
int spoke__watchdog_start(spoke__loop_t *loops, int n, uint64_t warn_ms,
                          uint64_t kill_ms, spoke__stall_kill_cb on_kill);
void spoke__watchdog_stop(void);

#endif /* SPOKE_HTTP_H */
