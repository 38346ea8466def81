/* pool.c: the worker threads that run SPOKE_SYNC handlers (--workers).
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
 */
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/prctl.h>

#include "http/http.h"

/* How long a worker out of work stays awake: SPIN_YIELDS sched_yield()s
 * (each gives the CPU to a loop that has work), at most SPIN_NS. */
#define SPIN_YIELDS 64
#define SPIN_NS 200000

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
} pool;

static void run(spoke_request_t *req) {
  spoke__loop_t *loop = req->loop;
  spoke__call_save_t save;
  atomic_fetch_sub(&loop->shared->sync_waiting, 1);
  spoke__call_enter(&save, req->inst, "handler", req->route_index);
  req->handler_rc = req->handler(req);
  spoke__call_leave(&save);
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
  snprintf(name, sizeof(name), "spoke-worker-%d", (int)(intptr_t)arg);
  prctl(PR_SET_NAME, name, 0, 0, 0);
  spoke__crash_thread_init(name); /* a crash here names its culprit */
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
    run(req);
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
  if (pool.threads == NULL)
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
  pool.nthreads = 0;
  pool.stop = 0;
  uv_cond_destroy(&pool.cv);
  uv_mutex_destroy(&pool.mu);
}
