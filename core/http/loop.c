/* loop.c: one I/O loop thread: its listener, its mailbox, its snapshot.
 *
 * Each loop owns a uv_loop_t on its own thread and its own listening
 * socket on the shared port (SO_REUSEPORT spreads connections). Other
 * threads reach a loop only through its mailbox (mailbox.c).
 *
 * A PUBLISH message swaps the loop's snapshot pointer on the loop's own
 * thread; the old snapshot's reference is dropped there, so the loop
 * never sees a half-built table. DRAIN stops accepting, closes idle
 * connections and lets busy ones finish; once no connection and no
 * request is left the loop closes its handles and its thread ends.
 */
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <string.h>
#include <unistd.h>

#include "http/http.h"

static void begin_drain(spoke__loop_t *loop) {
  spoke__conn_t *conn, *next;
  if (loop->draining)
    return;
  loop->draining = 1;
  uv_close((uv_handle_t *)&loop->listener, NULL);
  for (conn = loop->conns; conn != NULL; conn = next) {
    next = conn->next;
    spoke__conn_close_if_idle(conn);
  }
  spoke__loop_maybe_finish(loop);
}

static void doorbell_cb(uv_async_t *a) { spoke__mailbox_drain(a->data); }

/* Once per loop iteration, before the poll: the deferred unrefs, and the
 * heartbeat the watchdog watches (one relaxed store, this thread's). */
static void settle_cb(uv_prepare_t *p) {
  spoke__loop_t *loop = p->data;
  spoke__stat_add(&loop->heartbeat, 1);
  spoke__loop_settle(loop);
}

/* Upper bounds of the lag buckets, in microseconds. */
const uint64_t spoke__lag_bound_us[SPOKE__LAG_BUCKETS] = {
    1000, 5000, 10000, 25000, 50000, 100000, 250000, 500000, 1000000,
    5000000};

/* The lag timer: armed for SPOKE__LAG_PERIOD_MS, it records how much
 * later than that it ran (what a callback of any request on this loop
 * waited for the loop, at that moment), then arms itself again. */
static void lag_cb(uv_timer_t *t);

static void lag_arm(spoke__loop_t *loop) {
  loop->lag_due = uv_hrtime() + SPOKE__LAG_PERIOD_MS * 1000000ull;
  uv_timer_start(&loop->lag, lag_cb, SPOKE__LAG_PERIOD_MS, 0);
}

static void lag_cb(uv_timer_t *t) {
  spoke__loop_t *loop = t->data;
  uint64_t now = uv_hrtime(), us = 0;
  size_t b = 0;
  if (now > loop->lag_due)
    us = (now - loop->lag_due) / 1000;
  while (b < SPOKE__LAG_BUCKETS && us > spoke__lag_bound_us[b])
    b++;
  spoke__stat_add(&loop->stats.lag[b], 1);
  spoke__stat_add(&loop->stats.lag_sum_us, us);
  lag_arm(loop);
}

/* A PUBLISH: the loop's snapshot pointer swaps on the loop's own thread,
 * and the old table's reference is dropped here, so the loop never sees
 * a half-built table. */
typedef struct publish_s {
  spoke__msg_t msg;
  spoke__loop_t *loop;
  spoke__snapshot_t *snap; /* a reference the loop takes over */
} publish_t;

static void publish_run(spoke__msg_t *msg) {
  publish_t *pub = (publish_t *)msg;
  spoke__loop_t *loop = pub->loop;
  spoke__snapshot_t *old = loop->snap;
  /* New versions' loop_init before the loop routes through them; the
   * versions left out retire here (their loop_fini once idle). */
  spoke__loophooks_adopt(loop, pub->snap);
  spoke__loophooks_retire(loop, old, pub->snap);
  loop->snap = pub->snap;
  spoke__debug("loop %d: now generation %llu", loop->id,
               (unsigned long long)pub->snap->generation);
  spoke__snapshot_unref(old);
  free(pub);
}

int spoke__loop_publish(spoke__loop_t *loop, spoke__snapshot_t *snap) {
  publish_t *pub = malloc(sizeof(*pub));
  if (pub == NULL)
    return SPOKE_ENOMEM;
  spoke__snapshot_ref(snap);
  pub->msg.run = publish_run;
  pub->loop = loop;
  pub->snap = snap;
  spoke__loop_post(loop, &pub->msg);
  return 0;
}

typedef struct drain_s {
  spoke__msg_t msg;
  spoke__loop_t *loop;
} drain_t;

static void drain_run(spoke__msg_t *msg) {
  drain_t *d = (drain_t *)msg;
  spoke__loop_t *loop = d->loop;
  free(d);
  begin_drain(loop);
}

int spoke__loop_drain(spoke__loop_t *loop) {
  drain_t *d = malloc(sizeof(*d));
  if (d == NULL)
    return SPOKE_ENOMEM;
  d->msg.run = drain_run;
  d->loop = loop;
  spoke__loop_post(loop, &d->msg);
  return 0;
}

/* The drained loop is closing: every version it still routes to is
 * retired, so their loop_fini run (no request is left to wait for). */
static void finishing(spoke__loop_t *loop) {
  spoke__loophooks_retire(loop, loop->snap, NULL);
  spoke__loophooks_close(loop);
}

static void on_connection(uv_stream_t *server, int status) {
  spoke__loop_t *loop = server->data;
  if (status < 0) {
    spoke__warn("loop %d: accept failed: %s", loop->id, uv_strerror(status));
    return;
  }
  spoke__conn_accept(loop);
}

int spoke__loop_init(spoke__loop_t *loop, spoke__shared_t *shared, int id,
                     int listen_fd, spoke__snapshot_t *snap) {
  int rc;
  memset(loop, 0, sizeof(*loop));
  loop->shared = shared;
  loop->id = id;
  loop->listen_fd = listen_fd;
  loop->snap = snap;
  if ((rc = uv_loop_init(&loop->uv)) != 0) {
    close(listen_fd);
    spoke__snapshot_unref(snap);
    loop->snap = NULL;
    return rc;
  }
  loop->uv_ready = 1;
  uv_mutex_init(&loop->mu);
  uv_cond_init(&loop->drained);
  uv_async_init(&loop->uv, &loop->doorbell, doorbell_cb);
  loop->doorbell.data = loop;
  loop->deliver = spoke__conn_deliver;
  loop->finishing = finishing;
  spoke__loophooks_init(loop);
  uv_prepare_init(&loop->uv, &loop->settle);
  loop->settle.data = loop;
  uv_prepare_start(&loop->settle, settle_cb);
  uv_unref((uv_handle_t *)&loop->settle); /* never keeps the loop up */
  spoke__timeouts_start(loop);
  uv_timer_init(&loop->uv, &loop->lag);
  loop->lag.data = loop;
  lag_arm(loop);
  uv_unref((uv_handle_t *)&loop->lag); /* never keeps a drained loop up */
  uv_tcp_init(&loop->uv, &loop->listener);
  loop->listener.data = loop;
  if ((rc = uv_tcp_open(&loop->listener, listen_fd)) != 0) {
    close(listen_fd); /* not the listener's: it closes nothing */
    return rc;
  }
  return uv_listen((uv_stream_t *)&loop->listener, 4096, on_connection);
}

static void close_leftover(uv_handle_t *h, void *arg) {
  if (!uv_is_closing(h)) {
    uv_close(h, NULL);
    if (arg != NULL)
      (*(int *)arg)++;
  }
}

int spoke__loop_end(spoke__loop_t *loop) {
  int leftovers = 0;
  /* A loop that ended without draining (a test's) may owe loop_fini
   * still; the handles they close are run below. */
  spoke__loophooks_end(loop);
  /* Handles a plugin left open would keep the loop from closing. */
  if (uv_loop_close(&loop->uv) == UV_EBUSY) {
    uv_walk(&loop->uv, close_leftover, &leftovers);
    uv_run(&loop->uv, UV_RUN_DEFAULT);
    uv_loop_close(&loop->uv);
  }
  spoke__request_orphans_free(loop);
  spoke__loop_settle(loop);
  free(loop->unrefs);
  loop->unrefs = NULL;
  loop->nunrefs = loop->unrefs_cap = 0;
  spoke__snapshot_unref(loop->snap);
  loop->snap = NULL;
  spoke__request_pool_free(loop);
  free(loop->rbuf);
  loop->rbuf = NULL;
  spoke__buf_free(&loop->cork_buf);
  spoke__buf_free(&loop->alog);
  uv_cond_destroy(&loop->drained);
  uv_mutex_destroy(&loop->mu);
  loop->uv_ready = 0;
  return leftovers;
}

static void loop_main(void *arg) {
  spoke__loop_t *loop = arg;
  spoke__loop_set_current(loop);
  {
    char name[16]; /* gdb's `info threads`, top, perf */
    snprintf(name, sizeof(name), "spoke-loop-%d", loop->id);
    prctl(PR_SET_NAME, name, 0, 0, 0);
    spoke__crash_thread_init(name); /* a crash here names its culprit */
  }
  spoke__accesslog_loop_init(loop);
  /* The watchdog may read this thread's call record while uv_run runs;
   * afterwards it must not (the record ends with the thread): once the
   * pointer is gone, wait out a read that began before (both sides use
   * sequentially consistent atomics, so one of them sees the other). */
  atomic_store(&loop->call, spoke__call_mine());
  spoke__loophooks_adopt(loop, loop->snap); /* loop_init, before serving */
  uv_run(&loop->uv, UV_RUN_DEFAULT);
  atomic_store(&loop->call, NULL);
  while (atomic_load(&loop->call_reading))
    sched_yield();
  spoke__accesslog_loop_close(loop);
  spoke__loop_end(loop);
  spoke__loop_set_current(NULL);
  spoke__crash_thread_fini();
  atomic_fetch_sub(&loop->shared->loops_running, 1);
  uv_async_send(loop->shared->loop_exited);
}

void spoke__control_signals(sigset_t *set) {
  sigemptyset(set);
  sigaddset(set, SIGTERM); /* drain */
  sigaddset(set, SIGINT);  /* drain */
  sigaddset(set, SIGHUP);  /* rescan the plugins directory */
  sigaddset(set, SIGUSR1); /* reopen the access log */
}

void spoke__loop_abandon(spoke__loop_t *loop) {
  if (loop->uv_ready) {
    uv_walk(&loop->uv, close_leftover, NULL); /* its own handles */
    uv_run(&loop->uv, UV_RUN_DEFAULT);
    spoke__loop_end(loop);
    return;
  }
  spoke__snapshot_unref(loop->snap);
  loop->snap = NULL;
}

/* Signals are the control thread's (server.c reads them from a
 * signalfd): a loop thread, and every thread it starts (libuv's pool, a
 * plugin's own), is born with them blocked, whatever the caller's mask. */
int spoke__loop_start(spoke__loop_t *loop) {
  sigset_t block, old;
  int rc;
  spoke__control_signals(&block);
  sigaddset(&block, SIGUSR2);
  pthread_sigmask(SIG_BLOCK, &block, &old);
  atomic_fetch_add(&loop->shared->loops_running, 1);
  rc = uv_thread_create(&loop->thread, loop_main, loop);
  pthread_sigmask(SIG_SETMASK, &old, NULL);
  if (rc != 0)
    atomic_fetch_sub(&loop->shared->loops_running, 1);
  return rc;
}

void spoke__loop_join(spoke__loop_t *loop) { uv_thread_join(&loop->thread); }
