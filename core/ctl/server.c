/* server.c: the control thread: start-up, signals, shutdown.
 *
 * The main thread runs a small uv loop of its own: SIGTERM/SIGINT start a
 * drain (every I/O loop stops accepting and finishes what it has, within
 * --shutdown-timeout), SIGHUP rescans the plugins directory, the watcher
 * (watch.c) reports changed plugin files, and instances whose last
 * reference is gone are finalized here (the reaper), never on an I/O or
 * pool thread. Once a drain has begun nothing is reloaded any more. When every I/O loop has ended the control loop closes,
 * the threads are joined, the last snapshot is released (running each
 * plugin's fini) and the private runtime directory is removed.
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <sys/signalfd.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ctl/ctl.h"

typedef struct spoke__reap_s {
  struct spoke__reap_s *next;
  spoke__instance_t *inst;
} spoke__reap_t;

static spoke__server_t *the_server; /* for the reaper hook */

/* The control thread's handles. Signals arrive through a signalfd the
 * control loop polls: SIGTERM, SIGINT and SIGHUP are blocked in every
 * thread (the main thread blocks them before any other thread exists, and
 * loop threads are born with them blocked), so no asynchronous handler
 * ever runs and no signal can be lost to a thread that is busy elsewhere
 * (as happened under ThreadSanitizer with libuv's uv_signal). */
typedef struct control_s {
  uv_loop_t loop;
  int sigfd;
  uv_poll_t sigpoll;
  uv_timer_t deadline;
  int shutting_down;
  int master_stops;   /* supervised: SIGTERM/SIGINT from the master */
} control_t;

static control_t control = {.sigfd = -1};

static void reap(spoke__instance_t *inst) {
  spoke__server_t *srv = the_server;
  spoke__reap_t *r = malloc(sizeof(*r));
  if (r == NULL) {
    spoke__error("out of memory: plugin %s is not unloaded", inst->name);
    return;
  }
  r->inst = inst;
  uv_mutex_lock(&srv->reap_mu);
  r->next = srv->reap_list;
  srv->reap_list = r;
  uv_mutex_unlock(&srv->reap_mu);
  uv_async_send(&srv->reap_async);
}

static void reap_now(spoke__server_t *srv) {
  spoke__reap_t *r, *next;
  uv_mutex_lock(&srv->reap_mu);
  r = srv->reap_list;
  srv->reap_list = NULL;
  uv_mutex_unlock(&srv->reap_mu);
  for (; r != NULL; r = next) {
    next = r->next;
    spoke__instance_finalize(r->inst);
    free(r);
  }
}

static void unloaded(const spoke__instance_t *inst) {
  spoke__stats_fold(inst);
  spoke__status_write(the_server);
}

static void reap_cb(uv_async_t *a) { reap_now(a->data); }

/* The _exit paths skip the unwinding in spoke__server_run, so they
 * remove the runtime directory themselves; threads may still be running
 * plugin code from the copies (unlinking a mapped file is safe). */
static void deadline_cb(uv_timer_t *t) {
  spoke__server_t *srv = t->data;
  spoke__warn("shutdown deadline passed with requests unfinished; "
              "exiting now");
  spoke__rundir_remove(srv->runtime_dir);
  _exit(0);
}

static void begin_shutdown(spoke__server_t *srv, const char *why) {
  if (control.shutting_down) {
    spoke__warn("%s again: exiting without waiting", why);
    spoke__rundir_remove(srv->runtime_dir);
    _exit(1);
  }
  control.shutting_down = 1;
  spoke__watch_stop();
  spoke__admin_stop();
  spoke__info("%s: draining (up to %llu ms)", why,
              (unsigned long long)srv->cfg.shutdown_timeout_ms);
  for (int i = 0; i < srv->nloops; i++) {
    if (spoke__loop_drain(&srv->loops[i]) != 0) {
      spoke__rundir_remove(srv->runtime_dir);
      _exit(1);
    }
  }
  uv_timer_init(srv->control, &control.deadline);
  control.deadline.data = srv;
  uv_timer_start(&control.deadline, deadline_cb, srv->cfg.shutdown_timeout_ms,
                 0);
  uv_unref((uv_handle_t *)&control.deadline);
}

/* SIGTERM or SIGINT from FROM. In a supervised worker only the master's
 * second one means "exit now": the same signal often reaches a worker
 * twice, once from whoever stops the service (systemd signals every
 * process of its group, `kill $(pidof spoke)` every spoke) and once
 * passed on by the master; whichever comes first starts the drain. */
static void on_stop_signal(spoke__server_t *srv, int signum, pid_t from) {
  const char *why = signum == SIGTERM ? "SIGTERM" : "SIGINT";
  if (srv->supervised) {
    int second = from == srv->master_pid && ++control.master_stops == 2;
    if (control.shutting_down && !second)
      return; /* draining already */
  }
  begin_shutdown(srv, why);
}

static void on_signal(spoke__server_t *srv, int signum, pid_t from) {
  if (signum == SIGUSR1) {
    spoke__accesslog_reopen();
    return;
  }
  if (signum == SIGHUP) {
    if (!control.shutting_down) {
      spoke__info("SIGHUP: rescanning %s", srv->cfg.plugins_dir);
      spoke__reload_scan(srv, 0);
    }
    return;
  }
  on_stop_signal(srv, signum, from);
}

static void sigfd_readable(uv_poll_t *h, int status, int events) {
  spoke__server_t *srv = h->data;
  struct signalfd_siginfo si;
  (void)events;
  if (status < 0)
    return;
  while (read(control.sigfd, &si, sizeof(si)) == (ssize_t)sizeof(si))
    on_signal(srv, (int)si.ssi_signo, (pid_t)si.ssi_pid);
}

/* Blocks the control signals in this (the main) thread, so every thread
 * started afterwards inherits the block, and opens the signalfd. */
static int watch_signals(spoke__server_t *srv) {
  sigset_t set;
  spoke__control_signals(&set);
  pthread_sigmask(SIG_BLOCK, &set, NULL);
  control.sigfd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
  if (control.sigfd < 0) {
    spoke__error("signalfd: %s", strerror(errno));
    return SPOKE_EIO;
  }
  uv_poll_init(srv->control, &control.sigpoll, control.sigfd);
  control.sigpoll.data = srv;
  uv_poll_start(&control.sigpoll, UV_READABLE, sigfd_readable);
  return 0;
}

static void sigpoll_closed(uv_handle_t *h) {
  (void)h;
  close(control.sigfd);
  control.sigfd = -1;
}

static void loop_exited_cb(uv_async_t *a) {
  spoke__server_t *srv = a->data;
  if (atomic_load(&srv->shared.loops_running) > 0)
    return;
  uv_close((uv_handle_t *)&control.sigpoll, sigpoll_closed);
  if (control.shutting_down)
    uv_close((uv_handle_t *)&control.deadline, NULL);
  uv_close((uv_handle_t *)&srv->loop_exited, NULL);
  uv_close((uv_handle_t *)&srv->reap_async, NULL);
}

/* The control loop and what it serves: the reaper, the loops' exit
 * bell, signals, the admin listener, the access log, the watcher. No
 * thread exists yet; on failure everything opened is closed again. */
static int control_open(spoke__server_t *srv) {
  spoke__config_t *cfg = &srv->cfg;
  int rc;

  if ((rc = uv_loop_init(&control.loop)) != 0)
    return rc;
  srv->control = &control.loop;
  uv_mutex_init(&srv->reap_mu);
  uv_async_init(srv->control, &srv->reap_async, reap_cb);
  srv->reap_async.data = srv;
  uv_async_init(srv->control, &srv->loop_exited, loop_exited_cb);
  srv->loop_exited.data = srv;
  srv->shared.cfg = &srv->cfg;
  srv->shared.loop_exited = &srv->loop_exited;
  spoke__instance_set_reaper(reap);
  spoke__instance_set_unloaded_hook(unloaded);
  if ((rc = watch_signals(srv)) != 0)
    return rc;
  if (cfg->admin_on && srv->supervised) {
    if ((rc = spoke__admin_start(srv, &(int){0})) != 0) {
      spoke__error("admin listener: %s", uv_strerror(rc));
      return rc;
    }
  } else if (cfg->admin_on) {
    int admin_port = 0;
    rc = spoke__admin_start(srv, &admin_port);
    if (rc != 0) {
      spoke__error("cannot listen on --admin %s:%d: %s", cfg->admin_host,
                   cfg->admin_port, uv_strerror(rc));
      return rc;
    }
    spoke__info("admin endpoint at %s%s%s:%d (GET /status, GET /metrics, "
                "POST /reload, /plugins/NAME.so)",
                strchr(cfg->admin_host, ':') ? "[" : "", cfg->admin_host,
                strchr(cfg->admin_host, ':') ? "]" : "", admin_port);
  }
  if (cfg->access_log != NULL &&
      (rc = spoke__accesslog_open(cfg->access_log)) != 0)
    return rc;
  spoke__watch_start(srv);
  spoke__retire_watch_start(srv);
  return 0;
}

static void close_handle(uv_handle_t *h, void *arg) {
  (void)arg;
  if (!uv_is_closing(h))
    uv_close(h, h == (uv_handle_t *)&control.sigpoll ? sigpoll_closed : NULL);
}

/* Closes what control_open opened (the loops are gone or never ran). */
static void control_close(spoke__server_t *srv) {
  spoke__retire_watch_stop();
  spoke__watch_stop();
  spoke__admin_stop();
  spoke__instance_set_reaper(NULL);
  spoke__instance_set_unloaded_hook(NULL);
  if (srv->control == NULL)
    return;
  uv_walk(srv->control, close_handle, NULL);
  uv_run(srv->control, UV_RUN_DEFAULT);
  reap_now(srv);
  spoke__accesslog_close();
  uv_loop_close(srv->control);
  uv_mutex_destroy(&srv->reap_mu);
  if (control.sigfd >= 0) /* never polled */
    close(control.sigfd);
  control.sigfd = -1;
  srv->control = NULL;
}

/* One I/O loop per listening socket; they take FDS over, also when this
 * fails (spoke__loop_init's rule), so the caller closes none of them. */
static int loops_open(spoke__server_t *srv, int *fds) {
  int n = srv->cfg.loops, rc = 0;
  srv->loops = calloc((size_t)n, sizeof(*srv->loops));
  if (srv->loops == NULL) {
    for (int i = 0; i < n; i++)
      close(fds[i]);
    return SPOKE_ENOMEM;
  }
  srv->nloops = n;
  for (int i = 0; i < n; i++) {
    spoke__snapshot_ref(srv->current);
    int r = spoke__loop_init(&srv->loops[i], &srv->shared, i, fds[i],
                             srv->current);
    if (r != 0 && rc == 0) {
      spoke__error("loop %d: %s", i, uv_strerror(r));
      rc = r;
    }
  }
  return rc;
}

/* Joins the loops that ran and undoes those that never did. */
static void loops_close(spoke__server_t *srv, int started) {
  for (int i = 0; i < srv->nloops; i++) {
    if (i < started)
      spoke__loop_join(&srv->loops[i]);
    else
      spoke__loop_abandon(&srv->loops[i]);
  }
  free(srv->loops);
  srv->loops = NULL;
  srv->nloops = 0;
}

/* Start-up runs in steps; a step that fails undoes the ones before it
 * through the labels at the end, in reverse, so a failed start leaves no
 * thread, socket, plugin or directory behind. Once the loops run, the
 * way out is the drain (SIGTERM, or a failed start of a later loop). */
int spoke__server_run(spoke__server_t *srv) {
  spoke__config_t *cfg = &srv->cfg;
  int fds[1024], port = 0, rc, started = 0;
  char err[256], workers[16];

  /* libuv reads the pool size once, on first use: before any loop. */
  snprintf(workers, sizeof(workers), "%d", cfg->workers);
  setenv("UV_THREADPOOL_SIZE", workers, 1);
  signal(SIGPIPE, SIG_IGN);
  spoke__log_level = cfg->log_level;
  spoke__crash_install(); /* before any plugin code: init crashes too */
  if (srv->supervised)
    spoke__crash_set_report_fd(srv->report_fd);
  else if (cfg->stall_kill_ms > 0)
    spoke__warn("--stall-kill needs --processes 1 or more (a master to "
                "replace the worker): stalls are only logged");
  the_server = srv;
  srv->start_hrtime = uv_hrtime();
  spoke__stats_nloops = cfg->loops; /* instances count per loop */

  /* Bind first: a busy port fails before any plugin code runs. A worker
   * process has its master's sockets. */
  if (srv->supervised) {
    memcpy(fds, srv->listen_fds, sizeof(int) * (size_t)cfg->loops);
    port = srv->listen_port;
    rc = 0;
  } else {
    rc = spoke__listen_open(cfg->listen_host, cfg->listen_port, cfg->loops,
                            fds, &port, err, sizeof(err));
  }
  if (rc != 0) {
    spoke__error("cannot listen on %s:%d: %s", cfg->listen_host,
                 cfg->listen_port, err);
    goto out_conf;
  }
  if ((rc = spoke__rundir_make(srv)) != 0)
    goto out_fds;
  spoke__info("runtime directory %s (plugin copies, status.json)",
              srv->runtime_dir);
  srv->current = spoke__snapshot_build(0, NULL, 0, NULL, NULL);
  if (srv->current == NULL) {
    rc = SPOKE_ENOMEM;
    goto out_dir;
  }
  if ((rc = spoke__reload_scan(srv, 1)) != 0)
    goto out_snap;
  spoke__info("%zu plugin%s serving from %s (generation %llu)",
              srv->current->ninst, srv->current->ninst == 1 ? "" : "s",
              cfg->plugins_dir, (unsigned long long)srv->generation);

  if ((rc = control_open(srv)) != 0)
    goto out_control;
  rc = loops_open(srv, fds); /* the loops own the sockets from here */
  if (rc != 0)
    goto out_loops;
  /* After the signal mask (control_open): threads are born with the
   * control signals blocked. */
  if ((rc = spoke__pool_start(cfg->workers)) != 0)
    goto out_pool;
  for (; started < srv->nloops; started++)
    if ((rc = spoke__loop_start(&srv->loops[started])) != 0)
      break;
  if (rc != 0) {
    spoke__error("cannot start loop %d: %s", started, uv_strerror(rc));
    if (started == 0)
      goto out_pool;
    begin_shutdown(srv, "start-up failed"); /* the loops that run drain */
  } else {
    if (spoke__watchdog_start(srv->loops, srv->nloops, cfg->stall_warn_ms,
                              srv->supervised ? cfg->stall_kill_ms : 0,
                              spoke__crash_stall_kill) != 0)
      spoke__warn("cannot start the stall watchdog: loops that block are "
                  "not reported");
    atomic_store(&srv->bound_port, port);
    if (srv->supervised) {
      spoke__info("worker process serving (%d loop%s, %d worker%s)",
                  cfg->loops, cfg->loops == 1 ? "" : "s", cfg->workers,
                  cfg->workers == 1 ? "" : "s");
      spoke__crash_report_ready();
    } else {
      spoke__info("listening on %s%s%s:%d (%d loop%s, %d worker%s)",
                  strchr(cfg->listen_host, ':') ? "[" : "", cfg->listen_host,
                  strchr(cfg->listen_host, ':') ? "]" : "", port, cfg->loops,
                  cfg->loops == 1 ? "" : "s", cfg->workers,
                  cfg->workers == 1 ? "" : "s");
    }
  }

  uv_run(srv->control, UV_RUN_DEFAULT);

  if (rc == 0 && spoke__request_live_count() != 0) {
    /* Every loop has ended, so every request must have been freed: one
     * that was not kept a hold nobody released (a core bug). */
    spoke__error("%ld request%s never freed at shutdown (a hold was not "
                 "released)", spoke__request_live_count(),
                 spoke__request_live_count() == 1 ? " was" : "s were");
    rc = SPOKE_EIO;
  }
out_pool:
  spoke__watchdog_stop(); /* it reads the loops' call records */
  loops_close(srv, started);
  spoke__pool_stop(); /* no loop submits any more */
  goto out_control;
out_loops:
  loops_close(srv, 0);
out_control:
  control_close(srv);
  spoke__stats_free();
out_snap:
  spoke__snapshot_unref(srv->current);
  srv->current = NULL;
  spoke__reload_free(srv);
out_dir: /* every instance is finalized: status.json is what is left */
  spoke__rundir_remove(srv->runtime_dir);
  free(srv->runtime_dir);
  srv->runtime_dir = NULL;
  if (rc == 0)
    spoke__info("stopped");
  goto out_conf;
out_fds: /* failed before any loop took its socket over */
  for (int i = 0; i < cfg->loops; i++)
    close(fds[i]);
out_conf:
  spoke__config_free(cfg); /* every plugin is gone */
  return rc;
}
