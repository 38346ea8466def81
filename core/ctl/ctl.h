/* ctl.h: the control floor: the server object and the control thread.
 *
 * Everything here runs on the main (control) thread: start-up, signals,
 * reload and the plugins-directory watcher, the admin listener, status
 * and metrics, the settings' parsing. spoke__server_t is the
 * process-wide object: it owns the I/O loops, the current snapshot
 * (control thread only), the settings (base/config.h, read-only once
 * threads run) and what it shares with the loops (spoke__shared_t in
 * http/http.h: counters every thread bumps, atomics). The floors below
 * (http/, plugin/, base/) never call in here (tools/check_layers.py).
 */
#ifndef SPOKE_CTL_H
#define SPOKE_CTL_H

#include <signal.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <time.h>

#include <uv.h>

#include "http/http.h"

/* config.c */
void spoke__config_defaults(spoke__config_t *cfg);
/* Returns 0 to run, 1 when --help or --version was printed, or
 * SPOKE_EINVAL with the reason in ERR. */
int spoke__config_parse(spoke__config_t *cfg, int argc, char **argv,
                        char *err, size_t errlen);
void spoke__config_usage(FILE *out);
/* What spoke__config_parse allocated (the config file's text, the admin
 * token), freed by whoever ran the process on it: spoke__server_run, or
 * the master's spoke__supervise_run (each forked worker frees its own
 * copy in spoke__server_run). After it no plugin may read its section. */
void spoke__config_free(spoke__config_t *cfg);
/* One setting by its flag name ("max-body" or "--max-body"). */
/* Loads --config PATH into CFG->conf, its server settings through
 * spoke__config_set. */
int spoke__config_load_file(spoke__config_t *cfg, const char *path,
                            char *err, size_t errlen);
int spoke__config_set(spoke__config_t *cfg, const char *name, const char *v,
                      char *err, size_t errlen);

struct spoke__loop_s;
/* How a slot's last attempt ended (reload.c). A conflict (a name or a
 * route already served by another file) may be lifted when another
 * slot's instance goes or is replaced; any other refusal only by a new
 * file, or by the operator's rescan. */
typedef enum {
  SPOKE__ADMITTED = 0,     /* loaded, or never tried */
  SPOKE__REFUSED_CONFLICT, /* spoke__admit said SPOKE_ECONFLICT */
  SPOKE__REFUSED_OTHER     /* the file itself, init, out of memory... */
} spoke__refusal_t;

/* One file of the plugins directory (reload.c; control thread only). */
typedef struct spoke__slot_s {
  char *file;                /* base name in the plugins directory */
  spoke__instance_t *inst;   /* serving now, or NULL; the snapshot holds it */
  struct stat seen;          /* the file as of the last attempt */
  char error[512];           /* why the last attempt was refused, or "" */
  spoke__refusal_t refused;  /* how the last attempt ended */
  uint64_t lifts_seen;       /* srv->lifts at the last attempt */
} spoke__slot_t;

typedef struct spoke__server_s {
  spoke__config_t cfg;
  uv_loop_t *control;             /* main thread's loop */
  struct spoke__loop_s *loops;    /* cfg.loops of them */
  int nloops;
  spoke__snapshot_t *current;     /* control thread only */
  uint64_t generation;            /* control thread only */
  spoke__slot_t *slots;           /* control thread: one per plugin file */
  size_t nslots, slots_cap;
  char *runtime_dir;              /* private dir of this process */
  spoke__shared_t shared;         /* with the loops (http.h) */
  atomic_int bound_port;          /* the real port, once listening */
  uint64_t loads, load_failures;  /* control thread (reload.c) */
  uint64_t lifts;                 /* control thread (reload.c): serving
                                     instances removed or replaced */
  uint64_t start_hrtime;          /* uv_hrtime() at start, for uptime */
  uv_async_t loop_exited;         /* loops ring it as they end (shared) */
  uv_mutex_t reap_mu;             /* guards reap_list */
  struct spoke__reap_s *reap_list;
  uv_async_t reap_async;          /* finalizes instances on control */
  /* A worker process of a master (supervise.c) gets these at fork and
   * owns its copies: the master keeps its own. */
  int supervised;                 /* 1 in a worker process */
  int *listen_fds;                /* supervised: cfg.loops listening sockets */
  int listen_port;                /* supervised: their bound port */
  int admin_fd;                   /* supervised: listening, or -1 */
  int report_fd;                  /* supervised: records to the master */
  pid_t master_pid;               /* supervised: the master */
  char *archive_dir;              /* supervised: the master's archive of
                                     builds that served (rollback.c) */
} spoke__server_t;

/* reload.c: the one path by which plugins come, change and go (control
 * thread). reload_file acts on one file of the plugins directory: loads,
 * replaces or removes it; without FORCE an unchanged file (same inode,
 * size and mtime as last time) is left alone. reload_scan does that for
 * every *.so in the directory and every slot whose file is gone, and
 * tries again every file whose last attempt was refused, changed or not.
 * Both end by retrying the files refused for a conflict that a removed
 * or replaced instance may have lifted. */
void spoke__reload_file(spoke__server_t *srv, const char *file, int force);
int spoke__reload_scan(spoke__server_t *srv, int force);
void spoke__reload_free(spoke__server_t *srv);

/* retire.c (control thread): logs a version that stays loaded longer
 * than --retire-warn after it stopped serving, with what holds it. */
void spoke__retire_watch_start(spoke__server_t *srv);
void spoke__retire_watch_stop(void);

/* watch.c: inotify on the plugins directory, feeding reload_file. */
int spoke__watch_start(spoke__server_t *srv);
void spoke__watch_stop(void);

/* status.c: the loaded instances and plugin files as JSON. */
int spoke__status_json(spoke__server_t *srv, spoke__buf_t *b);
/* S as a JSON string literal, quoted and escaped. */
void spoke__json_str(spoke__buf_t *b, const char *s);

/* admintoken.c: --admin-token-file. Load reads PATH's token into *OUT
 * (malloc'd; NULL on error): 0, or a negative code with the reason in
 * ERR. Ok says whether an Authorization field VALUE (LEN bytes, no CRLF)
 * carries TOKEN, in time that depends on TOKEN's length only. */
int spoke__admin_token_load(const char *path, char **out, char *err,
                            size_t errlen);
int spoke__admin_token_ok(const char *token, const char *value, size_t len);

/* plugfile.c (control thread): the admin's /plugins/NAME.so files. An
 * upload of LENGTH bytes (at most SPOKE__UPLOAD_MAX) to DIR/NAME: open,
 * write the body as it arrives (bytes past LENGTH are dropped), commit
 * (flush, rename into place, BUILD the bytes' build id; frees U) or
 * abort (frees U; NULL is a no-op). Read appends the file to OUT; remove unlinks it: both 0, 1
 * for no such file, or a negative code. */
#define SPOKE__UPLOAD_MAX ((size_t)64 << 20)
typedef struct spoke__upload_s spoke__upload_t;
int spoke__upload_open(const char *dir, const char *name, size_t length,
                       spoke__upload_t **out);
int spoke__upload_write(spoke__upload_t *u, const char *data, size_t len);
size_t spoke__upload_missing(const spoke__upload_t *u);
int spoke__upload_commit(spoke__upload_t *u, char build[17]);
void spoke__upload_abort(spoke__upload_t *u);
int spoke__plugfile_read(const char *dir, const char *name,
                         spoke__buf_t *out);
int spoke__plugfile_remove(const char *dir, const char *name);

/* admin.c (control thread): the --admin listener; PORT gets the bound
 * port. Stop closes it and its connections (shutdown). */
int spoke__admin_start(spoke__server_t *srv, int *port);
void spoke__admin_stop(void);

/* metrics.c (control thread): /metrics in Prometheus text format; keeping
 * an unloading instance's counts; freeing them at exit. */
int spoke__metrics_text(spoke__server_t *srv, spoke__buf_t *b);
/* The same without the master's counts (a worker answering a sibling). */
int spoke__metrics_text_local(spoke__server_t *srv, spoke__buf_t *b);
void spoke__stats_fold(const spoke__instance_t *inst);
void spoke__stats_free(void);

void spoke__status_write(spoke__server_t *srv); /* RUNTIME_DIR/status.json */

/* rundir.c: the private runtime directory (plugin copies, status.json).
 * make first sweeps stale directories of dead servers from the parent
 * (--runtime-dir, $TMPDIR or /tmp), then creates SRV->runtime_dir and
 * holds a lock on it while the process lives. remove unlinks what spoke
 * wrote in DIR and DIR itself; it is safe on the _exit paths while other
 * threads run plugin code. */
int spoke__rundir_make(spoke__server_t *srv);
void spoke__rundir_remove(const char *dir);
void spoke__rundir_sweep(const char *parent);

/* server.c: runs until SIGTERM/SIGINT and the drain finish. */
int spoke__server_run(spoke__server_t *srv);


/* crash.c: a crash names its culprit.
 *
 * spoke__crash_install (server.c, at start-up, before any plugin is
 * loaded) sets a handler for SIGSEGV, SIGBUS, SIGFPE, SIGILL and SIGABRT
 * and gives the control thread its alternate signal stack (the loops and
 * workers take theirs: base/altstack.c). On a fatal signal the handler,
 * on the thread that faulted, reads that thread's call record
 * (plugin/call.c) and writes one line to stderr in the log's format:
 *   TIMESTAMP spoke[PID] fatal: SIGSEGV in plugin bad 1.0.0 (generation
 *     4, GET /bad/crash, sync) on thread spoke-worker-3; the server stops
 *     (core dump as usual)
 * (one line; see crash.c for every form). Then the process dies as it
 * would have without the handler: the signal's default action, so the
 * exit status is death by that signal and a core is dumped where the
 * system dumps cores. In a sanitizer build the sanitizer keeps these
 * signals (its report says more) and install only sets up the stack.
 *
 * The report fd: when set (a supervising process's pipe; -1, the
 * default, for none), the handler also writes one spoke__crash_record_t
 * to it, in a single write(2) of sizeof(spoke__crash_record_t) bytes (less
 * than PIPE_BUF, so whole on a pipe), before dying. The record is plain
 * data in the host's byte order: fixed-size, NUL-terminated strings
 * (cut to fit), no pointers. A reader checks magic and size first. */
#define SPOKE__CRASH_MAGIC 0x6b6f7073u /* "spok" in little-endian bytes */

typedef struct spoke__crash_record_s {
  uint32_t magic;       /* SPOKE__CRASH_MAGIC */
  uint32_t size;        /* sizeof(spoke__crash_record_t) */
  int32_t signo;        /* SIGSEGV ... */
  int32_t pid;          /* the process that died (0 when not filled) */
  uint64_t generation;  /* of the plugin version; 0 when in_plugin is 0 */
  int32_t in_plugin;    /* 1: the thread was running plugin code */
  int32_t known_thread; /* 1: a thread spoke started (thread is its name) */
  uint32_t route;       /* index in the plugin's routes, or
                           SPOKE__CALL_NO_ROUTE (init, handover, fini) */
  int32_t mode;         /* SPOKE_SYNC or SPOKE_ASYNC; 0 without a route */
  char plugin[64];      /* name, version: "" when in_plugin is 0 */
  char version[64];
  char what[32];        /* "handler", "init", "abort callback" ... */
  char method[16];      /* the route's; "" without one */
  char path[256];
  char thread[16];      /* "" on a thread spoke did not start */
  char build[17];       /* the instance's build id ("" outside a plugin) */
  char pad[3];
  uint32_t kind;        /* SPOKE__REC_* */
  uint32_t stalled_ms;  /* SPOKE__REC_STALL: how long the loop was held */
} spoke__crash_record_t;

/* What a record says (a worker to its master, ctl/supervise.c). */
enum {
  SPOKE__REC_CRASH = 0, /* a fatal signal; the process dies of it */
  SPOKE__REC_READY = 1, /* the worker serves: its loops accept */
  SPOKE__REC_STALL = 2, /* a call held a loop past --stall-kill; the
                           worker kills itself (SIGKILL) */
  SPOKE__REC_LOADED = 3 /* a build loaded from the plugins directory
                           served and was archived (plugin, version,
                           build filled) */
};

/* A READY record to the report fd, if one is set (the worker serves). */
void spoke__crash_report_ready(void);
/* A LOADED record for INST, if a report fd is set (control thread). */
void spoke__crash_report_loaded(const spoke__instance_t *inst);
/* The watchdog's --stall-kill callback (http/watchdog.c, its thread):
 * writes a STALL record naming CALL's plugin and route to the report fd,
 * then kills this process with SIGKILL, so its master replaces it. */
void spoke__crash_stall_kill(int loop_id, const spoke__call_t *call,
                             uint64_t stalled_ms);
/* The cause alone: "SIGSEGV in plugin bad 1.0.0 (generation 4, GET
 * /bad/crash, sync) on thread spoke-worker-3", without what follows. */
size_t spoke__crash_cause(char *buf, size_t len,
                          const spoke__crash_record_t *rec);

/* Installs the handler (control thread, once, before threads start). */
void spoke__crash_install(void);
/* Where the handler also writes the record; -1 for nowhere (default). */
void spoke__crash_set_report_fd(int fd);
/* "SIGSEGV", ..., or "signal N" (not for the handler: not reentrant). */
const char *spoke__signal_name(int signo);

/* The pure parts the handler uses, async-signal-safe (no allocation, no
 * lock, no libc formatting), exposed for the unit tests.
 * record: fills REC from CALL (a thread's record, plugin/call.c) as if
 *   SIGNO hit the thread named THREAD_NAME (NULL: a thread spoke did not
 *   start); pid is left 0.
 * describe: the line's message (after "fatal: ", without the newline)
 *   from REC into BUF; returns its length (cut to LEN - 1, NUL-ended).
 * format: record, then describe.
 * prefix: "2026-11-24T08:40:01.123Z spoke[PID] fatal: " for NOW (UTC),
 *   as base/log.c writes it; returns its length. */
void spoke__crash_record(spoke__crash_record_t *rec, int signo,
                         const spoke__call_t *call, const char *thread_name);
size_t spoke__crash_describe(char *buf, size_t len,
                             const spoke__crash_record_t *rec);
size_t spoke__crash_format(char *buf, size_t len, int signo,
                           const spoke__call_t *call, const char *thread_name);
size_t spoke__crash_prefix(char *buf, size_t len, const struct timespec *now,
                           int pid);

/* listen.c: opens N SO_REUSEPORT sockets on HOST:PORT (port 0: the first
 * picks, the rest follow). FDS gets them; *bound_port the real port. */
int spoke__listen_open(const char *host, int port, int n, int *fds,
                       int *bound_port, char *err, size_t errlen);

/* supervise.c: the master of --processes N: owns the listening sockets,
 * forks N workers (each runs spoke__server_run) and replaces one that
 * dies; returns when every worker has ended after SIGTERM/SIGINT. */
int spoke__supervise_run(spoke__server_t *srv);

/* ledger.c: what the master knows of its workers' deaths and of the
 * plugin builds they serve, in memory shared with the workers: the
 * master writes (its one thread), workers read consistent copies. Open
 * maps it (the master, before its first fork; ARCHIVE_DIR holds the
 * archived builds, BUILD.so); without it reads give an empty ledger. */
#define SPOKE__LEDGER_ROWS 64
#define SPOKE__LEDGER_BUILDS 128
#define SPOKE__LEDGER_MAX_AFTER 16 /* the largest --quarantine-after */

typedef struct spoke__crash_count_s {
  char plugin[64], version[64], signal[16]; /* signal: "SIGSEGV", "stall" */
  uint64_t n;
} spoke__crash_count_t;

/* One plugin build (its content's id, inst->build). */
typedef struct spoke__build_s {
  char build[17];
  char plugin[64], version[64];
  uint64_t order;      /* 1, 2, ...: when the master first heard of it */
  uint32_t crashes;    /* its crashes and stall kills, all told */
  int archived;        /* it served: ARCHIVE_DIR/BUILD.so is a copy */
  int quarantined;     /* crashed --quarantine-after times in the window */
  char reason[128];    /* quarantined: why, for logs and 503 bodies */
} spoke__build_t;

#define SPOKE__LEDGER_WORKERS 64 /* the largest --processes */

typedef struct spoke__ledger_s {
  uint64_t restarts;   /* worker processes replaced */
  int nworkers;        /* --processes: workers[i] is the pid of worker i, */
  int32_t workers[SPOKE__LEDGER_WORKERS]; /* or 0 while it is replaced */
  size_t ncrashes;
  spoke__crash_count_t crashes[SPOKE__LEDGER_ROWS];
  size_t nbuilds;
  spoke__build_t builds[SPOKE__LEDGER_BUILDS];
} spoke__ledger_t;

int spoke__ledger_open(const char *archive_dir);
void spoke__ledger_read(spoke__ledger_t *out);
/* A consistent copy in memory of its own (free() it), NULL when out of
 * memory: read into a malloc'd ledger (it is too big for a stack). */
spoke__ledger_t *spoke__ledger_copy(void);
/* On a copy: 1 when any build is quarantined. */
int spoke__ledger_any_quarantined(const spoke__ledger_t *l);
/* On a copy: BUILD's entry, or NULL. Rollback: the newest build of
 * PLUGIN other than EXCEPT that is archived, not quarantined and never
 * crashed, or NULL. */
const spoke__build_t *spoke__ledger_find(const spoke__ledger_t *l,
                                         const char *build);
const spoke__build_t *spoke__ledger_rollback(const spoke__ledger_t *l,
                                             const char *plugin,
                                             const char *except);
/* The master's writes. Crash counts REC (a crash or a stall kill; one
 * outside plugin code counts nothing) against its plugin version and
 * build; when that makes AFTER (> 0) crashes of the build within
 * WINDOW_NS before NOW, the build is quarantined: returns 1 with its
 * entry copied into *QUARANTINED. Loaded: a worker archived REC's build
 * (a SPOKE__REC_LOADED record). */
void spoke__ledger_restart(void);
/* The worker pids now (N of them, 0 for one being replaced). */
void spoke__ledger_workers(const int32_t *pids, int n);
int spoke__ledger_crash(const spoke__crash_record_t *rec, int after,
                        uint64_t window_ns, uint64_t now,
                        spoke__build_t *quarantined);
void spoke__ledger_loaded(const spoke__crash_record_t *rec);

/* siblings.c (a supervised worker's control thread): asks the other
 * workers of this master for PATH (GET, on their admin sibling socket)
 * and calls CB once, later, with one answer per worker (OK 0 for a
 * worker that did not answer 200 within TIMEOUT_MS; BODY is valid only
 * during the call). NULL when there is no other worker: answer alone.
 * Cancel: CB is not called (the asker went away). */
typedef struct spoke__sibling_answer_s {
  int pid;
  int ok;
  const char *body;
  size_t len;
} spoke__sibling_answer_t;
typedef struct spoke__gather_s spoke__gather_t;
typedef void (*spoke__siblings_cb)(void *arg,
                                   const spoke__sibling_answer_t *answers,
                                   size_t n);
spoke__gather_t *spoke__siblings_ask(spoke__server_t *srv, const char *path,
                                     uint64_t timeout_ms,
                                     spoke__siblings_cb cb, void *arg);
void spoke__siblings_cancel(spoke__gather_t *g);
struct sockaddr_un;
/* The abstract address of worker PID's sibling socket (master MASTER). */
socklen_t spoke__sibling_addr(pid_t master, pid_t pid,
                              struct sockaddr_un *addr);
/* promsum.c: N Prometheus text documents summed into one (series with
 * the same name and labels added up, families kept together). */
int spoke__prom_sum(const char *const *docs, const size_t *lens, size_t n,
                    spoke__buf_t *out);

/* rollback.c (a supervised worker's control thread; elsewhere a no-op).
 * Pick: what to load for the plugin file PATH, given the ledger's
 * quarantine (see rollback.c). Stale: INST's build was quarantined since
 * it loaded. Archive: INST (loaded from the plugins directory) goes into
 * the master's archive and is reported to it as a rollback target. */
typedef struct spoke__pick_s {
  char path[4096];      /* the file, or an archived build's copy */
  int rollback;         /* 1: PATH is an archived build */
  char quarantine[128]; /* "" or why: load the file quarantined */
  char from[64];        /* a quarantined build's version, or "" */
} spoke__pick_t;
void spoke__rollback_pick(spoke__server_t *srv, const char *path,
                          spoke__pick_t *out);
int spoke__rollback_stale(spoke__server_t *srv, const spoke__instance_t *inst);
void spoke__rollback_archive(spoke__server_t *srv,
                             const spoke__instance_t *inst);

#endif /* SPOKE_CTL_H */
