/* supervise.c: the master of --processes N: a crash costs one worker
 * process and a respawn, not the server.
 *
 * The master binds the listening sockets (main and admin) and forks N
 * worker processes; each runs spoke__server_run on the master's sockets
 * (server.c, srv->supervised) and never returns here. The master runs no
 * plugin code, starts no thread and no libuv loop: it waits in poll(2) on
 * a signalfd and on one pipe per worker, so forking at any time is safe.
 * The sockets stay open in the master, so connections waiting in the
 * accept queue when a worker dies are served by the others, or by its
 * replacement.
 *
 * A worker writes fixed-size records to its pipe (ctl.h,
 * spoke__crash_record_t): READY once its loops accept; from its
 * fatal-signal handler, what it was running when it crashed; from the
 * watchdog, the call that held a loop past --stall-kill (it then kills
 * itself). When a worker dies the master reads its last record, logs one
 * line naming the culprit and respawns it at once:
 *
 *   worker 4121 died: SIGSEGV in plugin bad 2.0.0 (generation 4, GET
 *     /bad/crash, sync) on thread spoke-worker-3; respawned as 4130 in 9 ms
 *
 * (one line, logged when the replacement is ready). A death with no
 * plugin to blame (a core bug, or a kill from outside), or one before
 * the worker served (a plugin crashing in init), that follows another
 * such death gets an exponential pause before the respawn, 50 ms
 * doubling up to 1 s, never a tight fork loop; a worker that served
 * 10 s ends the streak. A worker that dies before it was ever
 * ready at start-up fails the start: the master stops the others and
 * exits 1.
 *
 * Signals: SIGTERM and SIGINT are passed to every worker (each drains;
 * the master closes its listening sockets, stop_listening)
 * and the master exits when all have ended, 0 if all ended cleanly; a
 * second one is passed on as SIGINT (it cannot merge with the first
 * while that is pending) and the workers exit at once;
 * SIGHUP (rescan) and SIGUSR1 (log reopen) are passed on; a worker that
 * answered POST /reload sends its master SIGHUP, passed on to the
 * others, so one request reloads every worker. Workers get
 * SIGTERM if the master dies (PR_SET_PDEATHSIG), and have a process
 * group of their own, so a terminal's ^C is passed on once, by the
 * master, not delivered twice.
 *
 * Counts (restarts, crashes by plugin, version and signal) live in this
 * process's memory: a worker inherits them at fork, so the /metrics of
 * a worker shows what its master had counted when it was forked.
 * Single-threaded: everything here runs on the master's main thread.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <netinet/in.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "ctl/ctl.h"

#define STREAK_RESET_NS (10ull * 1000000000ull)

typedef struct worker_s {
  pid_t pid;               /* 0: not running */
  int rfd;                 /* the read end of its record pipe */
  int ready;               /* it sent READY */
  uint64_t ready_ns;       /* when */
  spoke__crash_record_t last; /* its last crash or stall record */
  int has_last;
  /* The death being replaced: logged when the replacement is ready. */
  char death[1024];
  uint64_t died_ns;
  int streak;              /* deaths in a row with no plugin to blame */
  uint64_t respawn_at;     /* > 0: respawn then (back-off) */
} worker_t;

/* ---- the master's state (main thread only) ---- */

static struct {
  spoke__server_t *srv;
  worker_t *w;
  int n;
  int sigfd;
  int *fds;            /* the listening sockets; -1 once closed */
  int nfds;
  int admin_fd;
  int port;
  int started;         /* every worker was ready once: start-up is over */
  int shutting_down;
  int failed;          /* a worker ended badly during shutdown or start */
  char *archive;       /* the master's runtime directory: archived builds */
} m = {.sigfd = -1, .admin_fd = -1};

static void drain_records(worker_t *w) {
  spoke__crash_record_t rec;
  ssize_t r;
  while ((r = read(w->rfd, &rec, sizeof(rec))) == (ssize_t)sizeof(rec)) {
    if (rec.magic != SPOKE__CRASH_MAGIC || rec.size != sizeof(rec))
      continue;
    rec.plugin[sizeof(rec.plugin) - 1] = '\0'; /* the strings are ours */
    rec.version[sizeof(rec.version) - 1] = '\0';
    rec.what[sizeof(rec.what) - 1] = rec.method[sizeof(rec.method) - 1] = 0;
    rec.path[sizeof(rec.path) - 1] = rec.thread[sizeof(rec.thread) - 1] = 0;
    if (rec.kind == SPOKE__REC_READY) {
      if (!w->ready) {
        w->ready = 1;
        w->ready_ns = uv_hrtime();
      }
    } else if (rec.kind == SPOKE__REC_LOADED) {
      rec.build[sizeof(rec.build) - 1] = '\0';
      spoke__ledger_loaded(&rec);
    } else {
      w->last = rec;
      w->has_last = 1;
    }
  }
}

/* In the child: becomes a worker; never returns. */
static void become_worker(spoke__server_t *srv, int report_fd, pid_t master) {
  sigset_t none;
  sigemptyset(&none);
  sigprocmask(SIG_SETMASK, &none, NULL);
  /* Its own process group: a terminal's ^C reaches the master alone,
   * which passes it on once (a second signal means "exit now"). */
  setpgid(0, 0);
  prctl(PR_SET_PDEATHSIG, SIGTERM, 0, 0, 0);
  if (getppid() != master)
    _exit(1); /* the master died between fork and prctl */
  close(m.sigfd);
  for (int i = 0; i < m.n; i++)
    if (m.w[i].rfd >= 0)
      close(m.w[i].rfd);
  srv->supervised = 1;
  srv->listen_fds = m.fds;
  srv->listen_port = m.port;
  srv->admin_fd = m.admin_fd;
  srv->report_fd = report_fd;
  srv->master_pid = master;
  srv->archive_dir = m.archive;
  srv->runtime_dir = NULL; /* the master's: the worker makes its own */
  exit(spoke__server_run(srv) == 0 ? 0 : 1);
}

/* The worker pids into the ledger, for the workers' admin (admin.c). */
static void publish_workers(void) {
  int32_t pids[SPOKE__LEDGER_WORKERS] = {0};
  for (int i = 0; i < m.n && i < SPOKE__LEDGER_WORKERS; i++)
    pids[i] = (int32_t)m.w[i].pid;
  spoke__ledger_workers(pids, m.n);
}

static int spawn(worker_t *w) {
  int p[2];
  pid_t pid, master = getpid();
  if (pipe2(p, O_CLOEXEC) != 0) {
    spoke__error("cannot start a worker process: pipe: %s", strerror(errno));
    return SPOKE_EIO;
  }
  pid = fork();
  if (pid < 0) {
    spoke__error("cannot start a worker process: fork: %s", strerror(errno));
    close(p[0]);
    close(p[1]);
    return SPOKE_EIO;
  }
  if (pid == 0) {
    close(p[0]);
    become_worker(m.srv, p[1], master);
  }
  close(p[1]);
  fcntl(p[0], F_SETFL, O_NONBLOCK);
  w->pid = pid;
  w->rfd = p[0];
  w->ready = 0;
  w->has_last = 0;
  w->respawn_at = 0;
  publish_workers();
  return 0;
}

/* SIGNO to every worker but FROM (a worker that asked, or 0). */
static void forward(int signo, pid_t from) {
  for (int i = 0; i < m.n; i++)
    if (m.w[i].pid > 0 && m.w[i].pid != from)
      kill(m.w[i].pid, signo);
}

static int running(void) {
  int n = 0;
  for (int i = 0; i < m.n; i++)
    n += m.w[i].pid > 0;
  return n;
}

/* Why W (pid PID) ended, from its record or its wait status, into BUF.
 * Returns 1 when a plugin is to blame. */
static int cause_of(worker_t *w, int status, char *buf, size_t len) {
  const spoke__crash_record_t *r = &w->last;
  if (w->has_last && r->kind == SPOKE__REC_STALL && r->plugin[0] != '\0') {
    snprintf(buf, len, "loop held %u ms (past --stall-kill) by plugin %s %s "
             "(generation %llu, %s%s%s%s%s) on thread %s", r->stalled_ms,
             r->plugin, r->version, (unsigned long long)r->generation,
             r->method, r->method[0] ? " " : "", r->path,
             r->method[0] ? ", " : "",
             r->mode == SPOKE_SYNC ? "sync" : r->mode == SPOKE_ASYNC
                                                  ? "async" : r->what,
             r->thread);
    return 1;
  }
  if (w->has_last && r->kind == SPOKE__REC_CRASH) {
    spoke__crash_cause(buf, len, r);
    return r->in_plugin;
  }
  if (WIFSIGNALED(status))
    snprintf(buf, len, "killed by %s (no report from the worker)",
             spoke__signal_name(WTERMSIG(status)));
  else
    snprintf(buf, len, "exited with status %d", WEXITSTATUS(status));
  return 0;
}

/* A crash or stall kill in plugin code, REC: counted against its build,
 * which may now be quarantined. Then the other workers rescan, so all
 * serve the rollback (or the 503s) and not only the replacement. */
static void counted(const spoke__crash_record_t *rec, uint64_t now) {
  spoke__config_t *cfg = &m.srv->cfg;
  spoke__build_t q;
  spoke__ledger_t *l;
  const spoke__build_t *t;
  if (!spoke__ledger_crash(rec, cfg->quarantine_after,
                           cfg->quarantine_window_ms * 1000000ull, now, &q))
    return;
  l = spoke__ledger_copy();
  t = l != NULL ? spoke__ledger_rollback(l, q.plugin, q.build) : NULL;
  if (t != NULL)
    spoke__error("rolled back plugin %s %s -> %s after %u crashes: %s; "
                 "quarantined until a different build of it is in %s",
                 q.plugin, q.version, t->version, q.crashes, q.reason,
                 cfg->plugins_dir);
  else
    spoke__error("quarantined plugin %s %s after %u crashes: %s; no "
                 "earlier build of it served without crashing, so its "
                 "routes answer 503 until a different build of it is in %s",
                 q.plugin, q.version, q.crashes, q.reason, cfg->plugins_dir);
  free(l);
  if (!m.shutting_down)
    forward(SIGHUP, 0);
}

static void reaped(worker_t *w, int status) {
  char cause[900];
  uint64_t now = uv_hrtime();
  int blamed, clean = WIFEXITED(status) && WEXITSTATUS(status) == 0;
  pid_t pid = w->pid;

  drain_records(w); /* its last words came before its death */
  close(w->rfd);
  w->rfd = -1;
  w->pid = 0;
  publish_workers();
  blamed = cause_of(w, status, cause, sizeof(cause));
  if (w->has_last && w->last.in_plugin)
    counted(&w->last, now);
  if (m.shutting_down) {
    if (!clean) {
      m.failed = 1;
      spoke__warn("worker %d ended: %s", (int)pid, cause);
    }
    return;
  }
  if (!w->ready && !m.started) {
    spoke__error("worker %d failed to start: %s", (int)pid, cause);
    m.failed = 1;
    return;
  }
  spoke__ledger_restart();
  /* A plugin to blame and a worker that served: respawn at once (the
   * quarantine deals with a build that keeps crashing). No plugin to
   * blame, or a death before serving (a crash in init, say, where
   * --quarantine-after 0 would otherwise fork for ever): the streak. */
  if ((blamed && w->ready) ||
      (w->ready && now - w->ready_ns >= STREAK_RESET_NS))
    w->streak = 0;
  if (!blamed || !w->ready)
    w->streak++;
  snprintf(w->death, sizeof(w->death), "worker %d died: %s", (int)pid,
           cause);
  w->died_ns = now;
  if (w->streak >= 2) {
    uint64_t ms = 50ull << (w->streak - 2 > 5 ? 5 : w->streak - 2);
    if (ms > 1000)
      ms = 1000;
    spoke__error("%s; respawning in %llu ms (%d deaths in a row %s)",
                 w->death, (unsigned long long)ms, w->streak,
                 blamed ? "before serving" : "with no plugin to blame");
    w->death[0] = '\0';
    w->respawn_at = now + ms * 1000000ull;
    return;
  }
  if (spawn(w) != 0)
    w->respawn_at = now + 1000000000ull; /* try again in a second */
}

static void on_ready(worker_t *w) {
  if (w->death[0] != '\0') {
    spoke__error("%s; respawned as %d in %llu ms", w->death, (int)w->pid,
                 (unsigned long long)((w->ready_ns - w->died_ns) / 1000000));
    w->death[0] = '\0';
  } else if (m.started) {
    spoke__info("worker %d serving", (int)w->pid);
  }
  if (!m.started) {
    for (int i = 0; i < m.n; i++)
      if (!m.w[i].ready)
        return;
    m.started = 1;
    spoke__config_t *cfg = &m.srv->cfg;
    spoke__info("listening on %s%s%s:%d (%d process%s, %d loop%s, %d "
                "worker%s each)",
                strchr(cfg->listen_host, ':') ? "[" : "", cfg->listen_host,
                strchr(cfg->listen_host, ':') ? "]" : "", m.port, m.n,
                m.n == 1 ? "" : "es", cfg->loops, cfg->loops == 1 ? "" : "s",
                cfg->workers, cfg->workers == 1 ? "" : "s");
  }
}

/* A drain starts: the master lets go of the listening sockets. Each
 * worker closes its own copies as its loops begin to drain, so once all
 * have, the port refuses new connections at once and a front proxy
 * tries another instance, where they would otherwise wait in the accept
 * queue, unserved, until the master exits, and be reset then. No
 * respawn follows a drain, so nothing needs them again. */
static void stop_listening(void) {
  for (int i = 0; i < m.nfds; i++)
    if (m.fds[i] >= 0) {
      close(m.fds[i]);
      m.fds[i] = -1;
    }
}

static void on_signal(int signo, pid_t from) {
  if (signo == SIGCHLD) {
    int status;
    pid_t pid;
    while ((pid = waitpid(-1, &status, WNOHANG)) > 0)
      for (int i = 0; i < m.n; i++)
        if (m.w[i].pid == pid)
          reaped(&m.w[i], status);
    if (m.failed && !m.started && !m.shutting_down) {
      m.shutting_down = 1;
      forward(SIGTERM, 0);
    }
    return;
  }
  if (signo == SIGHUP || signo == SIGUSR1) {
    if (!m.shutting_down)
      forward(signo, from);
    return;
  }
  if (m.shutting_down) {
    /* A second one: the workers exit at once. Passed on as SIGINT, a
     * signal of its own, so that it cannot merge with a SIGTERM still
     * pending in a worker (either order reads as first and second). */
    spoke__warn("%s again: exiting without waiting for %d worker "
                "process%s", signo == SIGTERM ? "SIGTERM" : "SIGINT",
                running(), running() == 1 ? "" : "es");
    forward(SIGINT, 0);
    return;
  }
  spoke__info("%s: draining %d worker process%s",
              signo == SIGTERM ? "SIGTERM" : "SIGINT", running(),
              running() == 1 ? "" : "es");
  m.shutting_down = 1;
  stop_listening();
  forward(SIGTERM, 0);
}

/* The admin socket, bound and listening, handed to every worker. */
static int admin_open(spoke__config_t *cfg, int *port) {
  char err[256];
  int fd, rc = spoke__listen_open(cfg->admin_host, cfg->admin_port, 1, &fd,
                                  port, err, sizeof(err));
  if (rc != 0) {
    spoke__error("cannot listen on --admin %s:%d: %s", cfg->admin_host,
                 cfg->admin_port, err);
    return -1;
  }
  if (listen(fd, 64) != 0) {
    close(fd);
    return -1;
  }
  return fd;
}

int spoke__supervise_run(spoke__server_t *srv) {
  spoke__config_t *cfg = &srv->cfg;
  char err[256];
  sigset_t set;
  int rc, admin_port = 0;

  spoke__log_level = cfg->log_level;
  signal(SIGPIPE, SIG_IGN);
  m.srv = srv;
  m.n = cfg->processes;
  m.w = calloc((size_t)m.n, sizeof(*m.w));
  m.fds = calloc((size_t)cfg->loops, sizeof(int));
  if (m.w == NULL || m.fds == NULL)
    return SPOKE_ENOMEM;
  for (int i = 0; i < m.n; i++)
    m.w[i].rfd = -1;
  rc = spoke__listen_open(cfg->listen_host, cfg->listen_port, cfg->loops,
                          m.fds, &m.port, err, sizeof(err));
  if (rc != 0) {
    spoke__error("cannot listen on %s:%d: %s", cfg->listen_host,
                 cfg->listen_port, err);
    return rc;
  }
  m.nfds = cfg->loops;
  /* The workers' loops take over the sockets with uv_tcp_open and
   * listen there; listening here too keeps the queue across deaths. */
  for (int i = 0; i < cfg->loops; i++)
    listen(m.fds[i], SOMAXCONN);
  if (cfg->admin_on) {
    if ((m.admin_fd = admin_open(cfg, &admin_port)) < 0)
      return SPOKE_EIO;
    cfg->admin_port = admin_port;
    spoke__info("admin endpoint at %s%s%s:%d (GET /status, GET /metrics, "
                "POST /reload, /plugins/NAME.so)",
                strchr(cfg->admin_host, ':') ? "[" : "", cfg->admin_host,
                strchr(cfg->admin_host, ':') ? "]" : "", admin_port);
  }
  /* The archive of builds that served, in a runtime directory of the
   * master's own (removed when it exits), and the ledger, shared with
   * every worker it forks. */
  if ((rc = spoke__rundir_make(srv)) != 0)
    return rc;
  m.archive = srv->runtime_dir;
  srv->runtime_dir = NULL;
  if (spoke__ledger_open(m.archive) != 0) {
    spoke__rundir_remove(m.archive);
    return SPOKE_ENOMEM;
  }
  spoke__info("plugin build archive in %s (rollback targets)", m.archive);
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGHUP);
  sigaddset(&set, SIGUSR1);
  sigaddset(&set, SIGCHLD);
  sigprocmask(SIG_BLOCK, &set, NULL);
  m.sigfd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
  if (m.sigfd < 0) {
    spoke__error("signalfd: %s", strerror(errno));
    return SPOKE_EIO;
  }
  spoke__info("master %d: starting %d worker process%s", (int)getpid(),
              m.n, m.n == 1 ? "" : "es");
  for (int i = 0; i < m.n; i++)
    if (spawn(&m.w[i]) != 0) {
      m.failed = m.shutting_down = 1;
      forward(SIGTERM, 0);
      break;
    }

  while (running() > 0 || (!m.shutting_down && !m.failed)) {
    struct pollfd pfd[1 + 64];
    int np = 0, timeout = -1;
    uint64_t now = uv_hrtime();
    pfd[np++] = (struct pollfd){.fd = m.sigfd, .events = POLLIN};
    for (int i = 0; i < m.n && np < (int)SPOKE__ARRAY_SIZE(pfd); i++) {
      worker_t *w = &m.w[i];
      if (w->pid > 0)
        pfd[np++] = (struct pollfd){.fd = w->rfd, .events = POLLIN};
      if (w->pid == 0 && w->respawn_at > 0 && !m.shutting_down) {
        if (w->respawn_at <= now) {
          w->respawn_at = 0;
          w->died_ns = now;
          if (spawn(w) != 0)
            w->respawn_at = now + 1000000000ull;
          else
            pfd[np++] = (struct pollfd){.fd = w->rfd, .events = POLLIN};
        }
        if (w->respawn_at > 0) {
          int ms = (int)((w->respawn_at - now) / 1000000) + 1;
          timeout = timeout < 0 || ms < timeout ? ms : timeout;
        }
      }
    }
    if (poll(pfd, (nfds_t)np, timeout) < 0 && errno != EINTR)
      break;
    for (int i = 0; i < m.n; i++) {
      worker_t *w = &m.w[i];
      int was_ready = w->ready;
      if (w->pid <= 0)
        continue;
      drain_records(w);
      if (w->ready && !was_ready)
        on_ready(w);
    }
    if (pfd[0].revents & POLLIN) {
      struct signalfd_siginfo si;
      while (read(m.sigfd, &si, sizeof(si)) == (ssize_t)sizeof(si))
        on_signal((int)si.ssi_signo, (pid_t)si.ssi_pid);
    }
  }
  close(m.sigfd);
  stop_listening();
  if (m.admin_fd >= 0)
    close(m.admin_fd);
  spoke__rundir_remove(m.archive);
  free(m.archive);
  free(m.fds);
  free(m.w);
  spoke__config_free(cfg);
  if (!m.failed)
    spoke__info("stopped");
  return m.failed ? SPOKE_EIO : 0;
}
