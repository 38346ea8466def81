/* loophooks.c: a plugin with per-loop state and blocking calls handed to
 * the pool (SDK 1.4), built twice (loophooks_v1.so, loophooks_v2.so with
 * -DVERSION=1 / 2), both named "loophooks", for test_loophooks.py.
 *
 * loop_init, on each loop's thread, allocates that loop's state (its
 * loop, a sequence number, a repeating uv_timer_t of its own) and logs
 * "loophooks vV loop_init on THREAD seq S". loop_fini logs
 * "loophooks vV loop_fini on THREAD seq S served N" (with " INSIDE
 * spoke_response_send" appended if the core ran it from within the
 * plugin's own call, which it must not) and closes the
 * timer; the timer's close callback logs "loophooks vV timer closed on
 * THREAD" and frees the state, so a version unmapped before its close
 * callbacks ran would crash, and a timer left open would keep the loop,
 * and the server's shutdown, from ending. fini logs "loophooks vV fini".
 * With `fail = yes` in its config section, loop_init fails instead.
 *
 *   GET /lh/state           "vV seq S on THREAD\n": the request's loop
 *                           state, proving loop_init ran before it
 *   GET /lh/wait?ms=N       the same after N ms (a spoke timer): a
 *                           request in flight across a reload
 *   GET /lh/offload?ms=N    sleeps N ms with spoke_offload, logging
 *                           "loophooks offload start on THREAD" from the
 *                           pool; answers "vV offloaded on WORKER, done
 *                           on LOOP\n", or 503 when the pool is full. DONE
 *                           logs "loophooks offload done status S".
 *   GET /lh/offload?fifo=P  the same, but the pool thread blocks reading
 *                           the FIFO P until the test writes to it (so a
 *                           test decides when the blocking call ends).
 *                           A client that leaves is logged: "loophooks
 *                           client gone".
 *   GET /lh/offload-twice   a second offload while one is pending:
 *                           answers the second call's error name
 *
 * Threads: the hooks, handlers and callbacks run on the loop thread but
 * the offloaded sleep, which runs on a pool thread and touches only its
 * own argument.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <time.h>
#include <unistd.h>

#include <uv.h>

#include <spoke.h>

#ifndef VERSION
#error "build with -DVERSION=N (1, 2)"
#endif

#define STR_(x) #x
#define STR(x) STR_(x)
#define V "v" STR(VERSION)

typedef struct loop_state_s {
  uv_timer_t tick;      /* keeps running: loop_fini must close it */
  unsigned seq;         /* the order loop_init ran in, this version */
  unsigned long served; /* requests answered on this loop */
} loop_state_t;

typedef struct job_s {
  unsigned long ms;
  char fifo[256];       /* "" or a FIFO to block on */
  char worker[16];      /* written by the pool thread, read in done */
} job_t;

static unsigned next_seq; /* loop_init runs on several loop threads */
static _Thread_local int in_send; /* inside our own spoke_response_send */
static uv_mutex_t seq_mu;

static void thread_name(char out[16]) {
  memset(out, 0, 16);
  prctl(PR_GET_NAME, out, 0, 0, 0);
}

static unsigned long query_ms(spoke_request_t *req) {
  const char *s = spoke_request_query_param(req, "ms");
  return s != NULL ? strtoul(s, NULL, 10) : 0;
}

static int answer(spoke_request_t *req, int status, const char *text) {
  spoke_response_status(req, status);
  int rc;
  spoke_response_header(req, "Content-Type", "text/plain");
  in_send = 1;
  rc = spoke_response_send(req, text, strlen(text));
  in_send = 0;
  return rc;
}

static int init(const spoke_host_t *host, void **state) {
  (void)host, (void)state;
  return uv_mutex_init(&seq_mu) == 0 ? 0 : SPOKE_ENOMEM;
}

static void fini(void *state) {
  (void)state;
  spoke_log(SPOKE_LOG_INFO, "loophooks " V " fini");
  uv_mutex_destroy(&seq_mu);
}

static void tick(uv_timer_t *t) { (void)t; }

static int loop_init(const spoke_host_t *host, uv_loop_t *loop, void *state,
                     void **loop_state) {
  const char *fail = spoke_config("fail");
  loop_state_t *ls;
  char name[16];
  (void)host, (void)state;
  if (fail != NULL && strcmp(fail, "yes") == 0)
    return SPOKE_EIO;
  ls = calloc(1, sizeof(*ls));
  if (ls == NULL)
    return SPOKE_ENOMEM;
  uv_mutex_lock(&seq_mu);
  ls->seq = ++next_seq;
  uv_mutex_unlock(&seq_mu);
  uv_timer_init(loop, &ls->tick);
  ls->tick.data = ls;
  uv_timer_start(&ls->tick, tick, 50, 50);
  thread_name(name);
  spoke_log(SPOKE_LOG_INFO, "loophooks " V " loop_init on %s seq %u", name,
            ls->seq);
  *loop_state = ls;
  return 0;
}

static void tick_closed(uv_handle_t *h) {
  char name[16];
  thread_name(name);
  spoke_log(SPOKE_LOG_INFO, "loophooks " V " timer closed on %s", name);
  free(h->data);
}

static void loop_fini(uv_loop_t *loop, void *state, void *loop_state) {
  loop_state_t *ls = loop_state;
  char name[16];
  (void)loop, (void)state;
  thread_name(name);
  spoke_log(SPOKE_LOG_INFO, "loophooks " V " loop_fini on %s seq %u served %lu%s",
            name, ls->seq, ls->served,
            in_send ? " INSIDE spoke_response_send" : "");
  uv_close((uv_handle_t *)&ls->tick, tick_closed);
}

static int say_state(spoke_request_t *req) {
  loop_state_t *ls = spoke_loop_state(req);
  char name[16], text[96];
  if (ls == NULL)
    return answer(req, 500, "no loop state\n");
  ls->served++;
  thread_name(name);
  snprintf(text, sizeof(text), V " seq %u on %s\n", ls->seq, name);
  return answer(req, 200, text);
}

static int state_handler(spoke_request_t *req) { return say_state(req); }

static void waited(spoke_request_t *req) { say_state(req); }

static int wait_handler(spoke_request_t *req) {
  return spoke_timer_start(req, query_ms(req), waited);
}

static void sleep_ms(void *arg) {
  job_t *job = arg;
  struct timespec ts = {(time_t)(job->ms / 1000),
                        (long)(job->ms % 1000) * 1000000L};
  thread_name(job->worker);
  spoke_log(SPOKE_LOG_INFO, "loophooks offload start on %s", job->worker);
  if (job->fifo[0] != '\0') {
    char buf[64];
    int fd = open(job->fifo, O_RDONLY | O_CLOEXEC);
    while (fd >= 0 && read(fd, buf, sizeof(buf)) > 0) {
    }
    if (fd >= 0)
      close(fd);
    return;
  }
  while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
  }
}

static void slept(spoke_request_t *req, void *arg, int status) {
  job_t *job = arg;
  char name[16], text[96];
  thread_name(name);
  spoke_log(SPOKE_LOG_INFO, "loophooks " V " offload done status %s",
            spoke_err_name(status));
  snprintf(text, sizeof(text), V " offloaded on %s, done on %s\n",
           job->worker, name);
  free(job);
  answer(req, 200, text);
}

static void client_gone(spoke_request_t *req) {
  (void)req;
  spoke_log(SPOKE_LOG_INFO, "loophooks client gone");
}

static int offload_handler(spoke_request_t *req) {
  job_t *job = calloc(1, sizeof(*job));
  const char *fifo = spoke_request_query_param(req, "fifo");
  int rc;
  if (job == NULL)
    return SPOKE_ENOMEM;
  job->ms = query_ms(req);
  if (fifo != NULL)
    snprintf(job->fifo, sizeof(job->fifo), "%s", fifo);
  spoke_request_on_abort(req, client_gone);
  rc = spoke_offload(req, sleep_ms, job, slept);
  if (rc == 0)
    return 0;
  free(job);
  spoke_response_header(req, "Retry-After", "1");
  return answer(req, rc == SPOKE_EBUSY ? 503 : 500, spoke_err_name(rc));
}

static int twice_handler(spoke_request_t *req) {
  job_t *job = calloc(1, sizeof(*job));
  int rc;
  if (job == NULL)
    return SPOKE_ENOMEM;
  job->ms = 10;
  rc = spoke_offload(req, sleep_ms, job, slept);
  if (rc != 0) {
    free(job);
    return answer(req, 500, spoke_err_name(rc));
  }
  /* The first is pending: the second must be refused, and neither of
   * its callbacks may run. The first one's DONE answers the request. */
  rc = spoke_offload(req, sleep_ms, NULL, slept);
  spoke_log(SPOKE_LOG_INFO, "loophooks second offload: %s",
            spoke_err_name(rc));
  return 0;
}

static const spoke_route_t routes[] = {
    {"GET", "/lh/state", SPOKE_ASYNC, state_handler},
    {"GET", "/lh/wait", SPOKE_ASYNC, wait_handler},
    {"GET", "/lh/offload", SPOKE_ASYNC, offload_handler},
    {"GET", "/lh/offload-twice", SPOKE_ASYNC, twice_handler},
};

SPOKE_PLUGIN(.name = "loophooks", .version = STR(VERSION) ".0.0",
             SPOKE_ROUTES(routes), .init = init, .fini = fini,
             .loop_init = loop_init, .loop_fini = loop_fini);
