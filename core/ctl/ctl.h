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

#include <uv.h>

#include "http/http.h"

/* config.c */
void spoke__config_defaults(spoke__config_t *cfg);
/* Returns 0 to run, 1 when --help or --version was printed, or
 * SPOKE_EINVAL with the reason in ERR. */
int spoke__config_parse(spoke__config_t *cfg, int argc, char **argv,
                        char *err, size_t errlen);
void spoke__config_usage(FILE *out);
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

/* admin.c (control thread): the --admin listener; PORT gets the bound
 * port. Stop closes it and its connections (shutdown). */
int spoke__admin_start(spoke__server_t *srv, int *port);
void spoke__admin_stop(void);

/* metrics.c (control thread): /metrics in Prometheus text format; keeping
 * an unloading instance's counts; freeing them at exit. */
int spoke__metrics_text(spoke__server_t *srv, spoke__buf_t *b);
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

/* listen.c: opens N SO_REUSEPORT sockets on HOST:PORT (port 0: the first
 * picks, the rest follow). FDS gets them; *bound_port the real port. */
int spoke__listen_open(const char *host, int port, int n, int *fds,
                       int *bound_port, char *err, size_t errlen);

#endif /* SPOKE_CTL_H */
