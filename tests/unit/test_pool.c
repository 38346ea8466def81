/* test_pool.c: the worker pool for sync handlers (core/http/pool.c),
 * with a real loop on the test's thread to take the jobs back through
 * its mailbox (loopkit.h, mailbox.c).
 *
 * Jobs are requests made by hand (spoke__request_new, no connection),
 * submitted as dispatch.c does: admitted and waiting counted, a HANDLER
 * hold, done_msg.run set, then spoke__pool_submit.
 *
 * - Many jobs: each runs once, on a worker (not the loop thread), and
 *   comes back to its loop through its done_msg, once, after it ran.
 * - W workers, W blocking jobs: job W+1 waits (no worker picks it up)
 *   until one is released; no more than W ever run at once.
 * - Stop joins: it returns only after every queued job has run.
 *
 * Blocking jobs wait on a condition variable the test releases; all
 * waits are bounded (a timed wait, or loopkit's iteration count).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "loopkit.h"

#define W 3         /* workers */
#define NJOBS 200
#define WAIT_NS (10 * 1000000000ULL) /* a bound, never reached when well */

static lk_t *kit;

/* Per job (by id, in req->user_data): runs, comebacks, and how many
 * runs it had when it came back. */
static atomic_int runs[NJOBS], dones[NJOBS], runs_at_done[NJOBS];
static atomic_int ran_on_loop;   /* jobs run on the loop's thread */
static atomic_int done_off_loop; /* comebacks off the loop's thread */
static atomic_int ndone;
static atomic_int bad_rc;        /* handler_rc not carried back */

/* The blocking jobs' state, under mu. */
static uv_mutex_t mu;
static uv_cond_t cv;
static int running, max_running, started, finished, tokens, gave_up;
static int given;            /* tokens handed out, ever */
static int given_at_start[NJOBS]; /* by start order: given when it began */

static int job_id(const spoke_request_t *req) {
  return (int)(intptr_t)req->user_data;
}

static int count_job(spoke_request_t *req) {
  atomic_fetch_add(&runs[job_id(req)], 1);
  if (spoke__loop_is_current(req->loop))
    atomic_fetch_add(&ran_on_loop, 1);
  uv_mutex_lock(&mu);
  finished++;
  uv_mutex_unlock(&mu);
  return -job_id(req); /* comes back as handler_rc */
}

/* Runs until the test hands it a token. */
static int block_job(spoke_request_t *req) {
  atomic_fetch_add(&runs[job_id(req)], 1);
  uv_mutex_lock(&mu);
  running++;
  given_at_start[started++] = given;
  if (running > max_running)
    max_running = running;
  uv_cond_broadcast(&cv);
  while (tokens == 0 && !gave_up)
    if (uv_cond_timedwait(&cv, &mu, WAIT_NS) != 0)
      gave_up = 1; /* never released: the test fails, nothing hangs */
  if (tokens > 0)
    tokens--;
  running--;
  finished++;
  uv_cond_broadcast(&cv);
  uv_mutex_unlock(&mu);
  return -job_id(req);
}

/* The job's done_msg, run on its loop. */
static void job_done(spoke__msg_t *msg) {
  spoke_request_t *req = SPOKE__CONTAINER_OF(msg, spoke_request_t, done_msg);
  int id = job_id(req);
  if (!spoke__loop_is_current(req->loop))
    atomic_fetch_add(&done_off_loop, 1);
  if (req->handler_rc != -id)
    atomic_fetch_add(&bad_rc, 1);
  atomic_store(&runs_at_done[id], atomic_load(&runs[id]));
  atomic_fetch_add(&dones[id], 1);
  atomic_fetch_add(&ndone, 1);
  spoke__request_release(req, SPOKE__HOLD_HANDLER);
  spoke__request_release(req, SPOKE__HOLD_UNCOMPLETED);
  spoke__request_release(req, SPOKE__HOLD_CONN); /* frees it */
}

/* Submits job ID running H, as dispatch.c's run_sync does. */
static void submit(spoke_handler_cb h, int id) {
  spoke_request_t *req = spoke__request_new(&kit->loop, NULL);
  assert_non_null(req);
  req->method = "GET";
  req->path = "/job";
  req->mode = SPOKE_SYNC;
  req->handler = h;
  req->user_data = (void *)(intptr_t)id;
  atomic_fetch_add(&kit->shared.sync_admitted, 1);
  atomic_fetch_add(&kit->shared.sync_waiting, 1);
  spoke__request_hold(req, SPOKE__HOLD_HANDLER);
  req->done_msg.run = job_done;
  spoke__pool_submit(req);
}

/* Waits (bounded) until *COUNTER, read under mu, reaches N. */
static int wait_count(const int *counter, int n) {
  int ok = 1;
  uv_mutex_lock(&mu);
  while (*counter < n && ok)
    ok = uv_cond_timedwait(&cv, &mu, WAIT_NS) == 0;
  ok = *counter >= n;
  uv_mutex_unlock(&mu);
  return ok;
}

static int read_locked(const int *v) {
  int n;
  uv_mutex_lock(&mu);
  n = *v;
  uv_mutex_unlock(&mu);
  return n;
}

static void give_tokens(int n) {
  uv_mutex_lock(&mu);
  tokens += n;
  given += n;
  uv_cond_broadcast(&cv);
  uv_mutex_unlock(&mu);
}

/* 1 when K's mailbox holds no message. */
static int mailbox_empty(lk_t *k) {
  int empty;
  uv_mutex_lock(&k->loop.mu);
  empty = k->loop.head == NULL;
  uv_mutex_unlock(&k->loop.mu);
  return empty;
}

static int setup(void **state) {
  for (int i = 0; i < NJOBS; i++) {
    atomic_store(&runs[i], 0);
    atomic_store(&dones[i], 0);
    atomic_store(&runs_at_done[i], 0);
  }
  atomic_store(&ran_on_loop, 0);
  atomic_store(&done_off_loop, 0);
  atomic_store(&ndone, 0);
  atomic_store(&bad_rc, 0);
  running = max_running = started = finished = tokens = gave_up = 0;
  given = 0;
  uv_mutex_init(&mu);
  uv_cond_init(&cv);
  kit = lk_new();
  if (kit == NULL)
    return -1;
  kit->cfg.workers = W;
  lk_start(kit, NULL); /* no routes: only the loop and its mailbox */
  *state = kit;
  return spoke__pool_start(W) == 0 ? 0 : -1;
}

static int teardown(void **state) {
  (void)state;
  give_tokens(NJOBS); /* a failed test may have left jobs blocked */
  spoke__pool_stop(); /* joined; a second stop does nothing */
  LK_RUN_UNTIL(kit, mailbox_empty(kit));
  lk_stop(kit);
  lk_free(kit);
  kit = NULL;
  uv_cond_destroy(&cv);
  uv_mutex_destroy(&mu);
  return 0;
}

/* Every job came back exactly once, after it ran exactly once. */
static void check_each_once(int n) {
  for (int i = 0; i < n; i++) {
    if (atomic_load(&runs[i]) != 1 || atomic_load(&dones[i]) != 1 ||
        atomic_load(&runs_at_done[i]) != 1)
      fail_msg("job %d: ran %d times, came back %d times (ran %d before)",
               i, atomic_load(&runs[i]), atomic_load(&dones[i]),
               atomic_load(&runs_at_done[i]));
  }
  assert_int_equal(atomic_load(&bad_rc), 0);
  assert_int_equal(atomic_load(&done_off_loop), 0);
  assert_int_equal(atomic_load(&kit->shared.sync_admitted), 0);
  assert_int_equal(atomic_load(&kit->shared.sync_waiting), 0);
}

static void jobs_run_and_come_back_once(void **state) {
  lk_t *k = *state;
  for (int i = 0; i < NJOBS; i++)
    submit(count_job, i);
  LK_RUN_UNTIL(k, atomic_load(&ndone) == NJOBS);
  assert_int_equal(atomic_load(&ran_on_loop), 0); /* on workers */
  /* After the workers are gone nothing else comes back. */
  spoke__pool_stop();
  LK_RUN_UNTIL(k, mailbox_empty(k));
  lk_step(k);
  assert_int_equal(atomic_load(&ndone), NJOBS);
  check_each_once(NJOBS);
  assert_int_equal(k->loop.live_requests, 0);
}

static void extra_job_waits_for_a_worker(void **state) {
  lk_t *k = *state;
  for (int i = 0; i < W + 1; i++)
    submit(block_job, i);
  /* W of them run, one per worker; the last is not picked up. */
  assert_true(wait_count(&started, W));
  assert_int_equal(read_locked(&started), W);
  assert_int_equal(atomic_load(&k->shared.sync_waiting), 1);
  assert_int_equal(atomic_load(&k->shared.sync_admitted), W + 1);

  /* One released: its worker takes the waiting job, which began only
   * after that release. */
  give_tokens(1);
  assert_true(wait_count(&started, W + 1));
  assert_int_equal(atomic_load(&k->shared.sync_waiting), 0);
  for (int i = 0; i < W; i++)
    assert_int_equal(given_at_start[i], 0);
  assert_int_equal(read_locked(&given_at_start[W]), 1);
  LK_RUN_UNTIL(k, atomic_load(&ndone) == 1);

  give_tokens(W);
  LK_RUN_UNTIL(k, atomic_load(&ndone) == W + 1);
  check_each_once(W + 1);
  assert_int_equal(read_locked(&max_running), W);
  assert_int_equal(read_locked(&gave_up), 0);
}

/* spoke__pool_stop on a thread of its own, so the test can release the
 * blocked jobs while it waits. */
static int stop_entered, finished_at_stop;

static void stopper(void *arg) {
  (void)arg;
  uv_mutex_lock(&mu);
  stop_entered = 1;
  uv_cond_broadcast(&cv);
  uv_mutex_unlock(&mu);
  spoke__pool_stop();
  /* Joined: every job has returned. */
  finished_at_stop = read_locked(&finished);
}

static void stop_joins_after_the_queue(void **state) {
  lk_t *k = *state;
  uv_thread_t t;
  int queued = 5;

  stop_entered = finished_at_stop = 0;
  for (int i = 0; i < W; i++)
    submit(block_job, i);
  for (int i = W; i < W + queued; i++)
    submit(count_job, i);
  assert_true(wait_count(&started, W));

  assert_int_equal(uv_thread_create(&t, stopper, NULL), 0);
  assert_true(wait_count(&stop_entered, 1));
  give_tokens(W);
  uv_thread_join(&t);
  assert_int_equal(finished_at_stop, W + queued);

  LK_RUN_UNTIL(k, atomic_load(&ndone) == W + queued);
  check_each_once(W + queued);
}

int main(void) {
  const struct CMUnitTest tests[] = {
    cmocka_unit_test_setup_teardown(jobs_run_and_come_back_once, setup,
                                    teardown),
    cmocka_unit_test_setup_teardown(extra_job_waits_for_a_worker, setup,
                                    teardown),
    cmocka_unit_test_setup_teardown(stop_joins_after_the_queue, setup,
                                    teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
