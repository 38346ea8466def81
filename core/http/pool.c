/* pool.c: the worker threads that run SPOKE_SYNC handlers (--workers),
 * and the blocking calls async handlers hand over (spoke_offload,
 * offload.c: a request whose offload_fn is set runs that instead).
 *
 * Why not libuv's threadpool: it signals its condition variable on every
 * submission while any worker sleeps, even when a worker it woke a moment
 * ago has not run yet. With fast sync handlers and more workers than
 * cores that is a futex wake and a context switch or two per request
 * (measured: six futex calls per /hello/sync, 0.44x the async route).
 * Here a submission wakes a sleeping worker only if no wake is already
 * on its way, and a worker that finishes a job takes the next one
 * without sleeping; so under load the queue feeds busy workers and hardly
 * anyone sleeps, while a lone blocking request still finds an idle
 * worker at once. The spin is bounded (SPIN_YIELDS, SPIN_NS), so an
 * idle server spends at most that much per job.
 *
 * Threads: submit runs on loop threads, jobs on the workers; the queue,
 * idle and waking are guarded by mu. A finished job goes back to its
 * loop through the loop's mailbox (req->done_msg, whose run the
 * submitter set), after the
 * bytes the handler sent, so the loop sees them in order.
 *
 * Each worker also keeps a slot the control thread reads for /status
 * (spoke__pool_running): when its job started (one uv_hrtime() per job),
 * its thread's call record, and the job's plugin and route copied in at
 * the start, so the reader never follows a request or instance pointer.
 * The copy is guarded by a sequence count (odd while the worker writes;
 * a reader that sees it move reads again), and every field is atomic.
 */
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>

#include "http/http.h"

/* How long a worker out of work stays awake: SPIN_YIELDS sched_yield()s
 * (each gives the CPU to a loop that has work), at most SPIN_NS. */
#define SPIN_YIELDS 64
#define SPIN_NS 200000

#define SLOT_PLUGIN 64   /* bytes of the plugin's name, with its NUL */
#define SLOT_TEXT 256    /* plugin name, then the route label */
#define SLOT_WORDS (SLOT_TEXT / 8)

/* One worker's job as /status reads it. Written by the worker only. */
_Static_assert(sizeof(((spoke__pool_job_t *)0)->plugin) == SLOT_PLUGIN &&
                   sizeof(((spoke__pool_job_t *)0)->route) ==
                       SLOT_TEXT - SLOT_PLUGIN,
               "a job's strings are the slot's text");

typedef struct slot_s {
  atomic_uint gen;               /* odd while the worker writes */
  _Atomic uint64_t started;      /* uv_hrtime() at the job's start; 0: idle */
  _Atomic(spoke__call_t *) call; /* the worker's call record */
  _Atomic uint64_t text[SLOT_WORDS];
} slot_t;

static struct {
  uv_mutex_t mu;
  uv_cond_t cv;
  spoke_request_t *head, *tail; /* FIFO through req->sync_next */
  int idle;                     /* workers waiting on cv */
  int waking;                   /* of those, signalled but not yet up */
  int spinning;                 /* a worker looking for work awake */
  atomic_int queued;            /* jobs in the queue, for the spinner */
  int stop;
  int nthreads;
  uv_thread_t *threads;
  slot_t *slots;                /* one per thread */
} pool;

/* The job REQ starts on worker SLOT: its plugin, route and start time. */
/* Copies S into DST[0..cap) (cut to fit, NUL-terminated); returns the
 * end of the copy. A memcpy, not a printf: this runs for every job. */
static char *put_cut(char *dst, size_t cap, const char *s) {
  size_t n = strnlen(s, cap - 1);
  memcpy(dst, s, n);
  dst[n] = '\0';
  return dst + n;
}

static void slot_begin(slot_t *slot, const spoke_request_t *req) {
  char text[SLOT_TEXT];
  const spoke__instance_t *inst = req->inst; /* NULL: a test's job */
  unsigned g = atomic_load_explicit(&slot->gen, memory_order_relaxed);
  uint64_t w;
  memset(text, 0, sizeof(text));
  if (inst != NULL && req->route_index < inst->desc->nroutes) {
    const spoke_route_t *r = &inst->desc->routes[req->route_index];
    char *route = text + SLOT_PLUGIN, *end = text + SLOT_TEXT, *p;
    put_cut(text, SLOT_PLUGIN, inst->name);
    p = put_cut(route, (size_t)(end - route), r->method ? r->method : "*");
    if (end - p > 1) {
      *p++ = ' ';
      put_cut(p, (size_t)(end - p), r->path);
    }
  }
  atomic_store_explicit(&slot->gen, g + 1, memory_order_relaxed);
  atomic_thread_fence(memory_order_release);
  for (size_t k = 0; k < SLOT_WORDS; k++) {
    memcpy(&w, text + k * 8, 8);
    atomic_store_explicit(&slot->text[k], w, memory_order_relaxed);
  }
  atomic_store_explicit(&slot->started, uv_hrtime(), memory_order_relaxed);
  atomic_store_explicit(&slot->gen, g + 2, memory_order_release);
}

void spoke__pool_running(uint64_t min_ns,
                         void (*cb)(const spoke__pool_job_t *job, void *arg),
                         void *arg) {
  uint64_t now = uv_hrtime();
  for (int i = 0; i < pool.nthreads; i++) {
    slot_t *slot = &pool.slots[i];
    char text[SLOT_TEXT];
    uint64_t started = 0;
    int ok = 0;
    for (int tries = 0; tries < 16 && !ok; tries++) {
      unsigned g1 = atomic_load_explicit(&slot->gen, memory_order_acquire);
      if (g1 & 1)
        continue; /* the worker is writing: look again */
      started = atomic_load_explicit(&slot->started, memory_order_relaxed);
      for (size_t k = 0; k < SLOT_WORDS; k++) {
        uint64_t w = atomic_load_explicit(&slot->text[k],
                                          memory_order_relaxed);
        memcpy(text + k * 8, &w, 8);
      }
      atomic_thread_fence(memory_order_acquire);
      ok = atomic_load_explicit(&slot->gen, memory_order_relaxed) == g1;
    }
    if (!ok || started == 0 || now < started || now - started < min_ns)
      continue;
    spoke__pool_job_t job;
    job.worker = i;
    job.running_ns = now - started;
    text[SLOT_PLUGIN - 1] = text[SLOT_TEXT - 1] = '\0';
    memcpy(job.plugin, text, sizeof(job.plugin));
    memcpy(job.route, text + SLOT_PLUGIN, sizeof(job.route));
    cb(&job, arg);
  }
}

static void run(spoke_request_t *req, slot_t *slot) {
  spoke__loop_t *loop = req->loop;
  spoke__call_save_t save;
  atomic_fetch_sub(&loop->shared->sync_waiting, 1);
  slot_begin(slot, req);
  if (req->offload_fn != NULL) { /* spoke_offload (offload.c) */
    spoke__call_enter(&save, req->inst, "offload", req->route_index);
    req->offload_fn(req->offload_arg);
  } else {
    spoke__call_enter(&save, req->inst, "handler", req->route_index);
    req->handler_rc = req->handler(req);
  }
  spoke__call_leave(&save);
  atomic_store_explicit(&slot->started, 0, memory_order_relaxed);
  atomic_fetch_sub(&loop->shared->sync_admitted, 1);
  req->done_msg.next = NULL;
  spoke__loop_post(loop, &req->done_msg);
}

/* Wakes one sleeper unless enough wakes are on their way. Under mu. */
static void wake_one(void) {
  if (pool.idle > pool.waking) {
    pool.waking++;
    uv_cond_signal(&pool.cv);
  }
}

/* Takes the first job. Under mu, with the queue not empty. */
static spoke_request_t *take(void) {
  spoke_request_t *req = pool.head;
  pool.head = req->sync_next;
  if (pool.head == NULL)
    pool.tail = NULL;
  atomic_fetch_sub(&pool.queued, 1);
  if (pool.head != NULL && pool.spinning == 0)
    wake_one(); /* more work than this thread: share it */
  return req;
}

/* Just done with a job, and the queue is empty: one worker at a time
 * stays awake a moment (yielding the CPU to the loops) in case the next
 * job is close behind, which under load it is, so a submission finds it
 * without a wake. Called and returns under mu. */
static void spin(void) {
  uint64_t until = uv_hrtime() + SPIN_NS;
  pool.spinning = 1;
  uv_mutex_unlock(&pool.mu);
  for (int i = 0; i < SPIN_YIELDS && atomic_load(&pool.queued) == 0 &&
                  uv_hrtime() < until;
       i++)
    sched_yield();
  uv_mutex_lock(&pool.mu);
  pool.spinning = 0;
}

static void worker_main(void *arg) {
  char name[16]; /* gdb's `info threads`, top, perf */
  slot_t *slot = &pool.slots[(intptr_t)arg];
  snprintf(name, sizeof(name), "spoke-worker-%d", (int)(intptr_t)arg);
  prctl(PR_SET_NAME, name, 0, 0, 0);
  spoke__crash_thread_init(name); /* a crash here names its culprit */
  atomic_store(&slot->call, spoke__call_mine());
  uv_mutex_lock(&pool.mu);
  for (;;) {
    spoke_request_t *req;
    while (pool.head == NULL && !pool.stop) {
      pool.idle++;
      uv_cond_wait(&pool.cv, &pool.mu);
      pool.idle--;
      if (pool.waking > 0)
        pool.waking--;
    }
    if (pool.head == NULL)
      break; /* stopping, and nothing left */
    req = take();
    uv_mutex_unlock(&pool.mu);
    run(req, slot);
    uv_mutex_lock(&pool.mu);
    if (pool.head == NULL && pool.spinning == 0 && !pool.stop)
      spin();
  }
  uv_mutex_unlock(&pool.mu);
  spoke__crash_thread_fini();
}

int spoke__pool_start(int nthreads) {
  int rc;
  if (uv_mutex_init(&pool.mu) != 0)
    return SPOKE_ENOMEM;
  if (uv_cond_init(&pool.cv) != 0) {
    uv_mutex_destroy(&pool.mu);
    return SPOKE_ENOMEM;
  }
  pool.threads = calloc((size_t)nthreads, sizeof(*pool.threads));
  pool.slots = calloc((size_t)nthreads, sizeof(*pool.slots));
  if (pool.threads == NULL || pool.slots == NULL)
    return SPOKE_ENOMEM;
  for (pool.nthreads = 0; pool.nthreads < nthreads; pool.nthreads++) {
    uv_thread_options_t opt = {UV_THREAD_HAS_STACK_SIZE, 8 << 20};
    rc = uv_thread_create_ex(&pool.threads[pool.nthreads], &opt, worker_main,
                             (void *)(intptr_t)pool.nthreads);
    if (rc != 0) {
      spoke__error("cannot start worker %d: %s", pool.nthreads,
                   uv_strerror(rc));
      return rc;
    }
  }
  return 0;
}

/* A request handed to a worker that has not picked it up yet counts as
 * running, so a burst never sees idle workers as a full queue. */
int spoke__pool_admit(spoke__shared_t *srv) {
  size_t limit = (size_t)srv->cfg->workers + srv->cfg->max_queue;
  if (atomic_fetch_add(&srv->sync_admitted, 1) >= limit) {
    atomic_fetch_sub(&srv->sync_admitted, 1);
    atomic_fetch_add(&srv->sync_rejected, 1);
    return SPOKE_EBUSY;
  }
  atomic_fetch_add(&srv->sync_waiting, 1);
  return 0;
}

void spoke__pool_submit(spoke_request_t *req) {
  req->sync_next = NULL;
  uv_mutex_lock(&pool.mu);
  if (pool.tail != NULL)
    pool.tail->sync_next = req;
  else
    pool.head = req;
  pool.tail = req;
  atomic_fetch_add(&pool.queued, 1);
  if (pool.spinning == 0)
    wake_one(); /* else the spinner takes it */
  uv_mutex_unlock(&pool.mu);
}

void spoke__pool_stop(void) {
  if (pool.threads == NULL)
    return;
  uv_mutex_lock(&pool.mu);
  pool.stop = 1;
  uv_cond_broadcast(&pool.cv);
  uv_mutex_unlock(&pool.mu);
  for (int i = 0; i < pool.nthreads; i++)
    uv_thread_join(&pool.threads[i]);
  free(pool.threads);
  pool.threads = NULL;
  free(pool.slots);
  pool.slots = NULL;
  pool.nthreads = 0;
  pool.stop = 0;
  uv_cond_destroy(&pool.cv);
  uv_mutex_destroy(&pool.mu);
}
