/* server.h: settings, the server object and the control thread.
 *
 * spoke__config_t is filled once from the command line before any thread
 * starts and is read-only afterwards. spoke__server_t is the process-wide
 * object: it owns the I/O loops, the current snapshot (control thread
 * only) and the counters every thread bumps (atomics).
 */
#ifndef SPOKE_SERVER_H
#define SPOKE_SERVER_H

#include <signal.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>

#include <uv.h>

#include "plugin.h"

/* conffile.c: the --config file, kept whole: values point into text. */
typedef struct spoke__conf_entry_s {
  const char *section;        /* a plugin's name */
  const char *key, *value;
} spoke__conf_entry_t;

typedef struct spoke__conffile_s {
  const char *path;
  char *text;
  spoke__conf_entry_t *entries; /* the [plugin NAME] keys, in file order */
  size_t n, cap;
} spoke__conffile_t;

typedef struct spoke__config_s {
  char listen_host[256];
  int listen_port;
  const char *config_path;    /* --config, or NULL */
  spoke__conffile_t conf;     /* what it held (values point into it) */
  int admin_on;               /* --admin given */
  char admin_host[256];
  int admin_port;
  const char *access_log;     /* --access-log FILE, "-", or NULL */
  const char *plugins_dir;
  const char *runtime_dir;    /* parent of the private plugin copies */
  int loops;                  /* I/O loop threads */
  int workers;                /* libuv threadpool size */
  size_t max_queue;           /* sync requests waiting for a worker */
  size_t max_body;            /* request body bytes (413 past it) */
  size_t max_request_line;    /* request line bytes (414 past it) */
  size_t max_header;          /* header block bytes (431 past it) */
  size_t max_headers;         /* header fields (431 past it) */
  size_t max_conns;           /* open connections, whole process (503) */
  size_t max_requests;        /* requests per keep-alive connection */
  uint64_t header_timeout_ms; /* head complete within (408) */
  uint64_t keepalive_timeout_ms; /* idle between requests (close) */
  uint64_t body_timeout_ms;   /* between body reads (408) */
  uint64_t send_timeout_ms;   /* between write progress (close) */
  uint64_t handler_timeout_ms; /* async response started within (504) */
  uint64_t shutdown_timeout_ms;
  uint64_t watch_debounce_ms; /* quiet time before a changed file loads */
  int log_level;
} spoke__config_t;

/* config.c */
void spoke__config_defaults(spoke__config_t *cfg);
/* Returns 0 to run, 1 when --help or --version was printed, or
 * SPOKE_EINVAL with the reason in ERR. */
int spoke__config_parse(spoke__config_t *cfg, int argc, char **argv,
                        char *err, size_t errlen);
void spoke__config_usage(FILE *out);
/* One setting by its flag name ("max-body" or "--max-body"). */
int spoke__config_set(spoke__config_t *cfg, const char *name, const char *v,
                      char *err, size_t errlen);

/* conffile.c. Load: server settings go through spoke__config_set, plugin
 * sections are kept; the loaded file becomes the one lookups read. */
int spoke__conffile_load(spoke__conffile_t *cf, const char *path,
                         spoke__config_t *cfg, char *err, size_t errlen);
/* KEY of plugin SECTION, or NULL (any thread; read-only after start). */
const char *spoke__conffile_lookup(const char *section, const char *key);
void spoke__conffile_free(spoke__conffile_t *cf);

struct spoke__loop_s;
/* One file of the plugins directory (reload.c; control thread only). */
typedef struct spoke__slot_s {
  char *file;                /* base name in the plugins directory */
  spoke__instance_t *inst;   /* serving now, or NULL; the snapshot holds it */
  struct stat seen;          /* the file as of the last attempt */
  char error[512];           /* why the last attempt was refused, or "" */
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
  atomic_size_t sync_waiting;     /* queued sync requests not yet running */
  atomic_size_t sync_admitted;    /* sync requests running or waiting: at
                                     most workers + max_queue (dispatch.c) */
  atomic_int loops_running;
  atomic_int bound_port;          /* the real port, once listening */
  atomic_size_t open_conns;       /* every loop's connections */
  atomic_uint_fast64_t sync_rejected; /* 503s for a full sync queue */
  uint64_t loads, load_failures;  /* control thread (reload.c) */
  uint64_t start_hrtime;          /* uv_hrtime() at start, for uptime */
  uv_async_t loop_exited;         /* loops ring it as they end */
  uv_mutex_t reap_mu;             /* guards reap_list */
  struct spoke__reap_s *reap_list;
  uv_async_t reap_async;          /* finalizes instances on control */
} spoke__server_t;

/* reload.c: the one path by which plugins come, change and go (control
 * thread). reload_file acts on one file of the plugins directory: loads,
 * replaces or removes it; without FORCE an unchanged file (same inode,
 * size and mtime as last time) is left alone. reload_scan does that for
 * every *.so in the directory and every slot whose file is gone. */
void spoke__reload_file(spoke__server_t *srv, const char *file, int force);
int spoke__reload_scan(spoke__server_t *srv, int force);
int spoke__reload_is_plugin_name(const char *name);
void spoke__reload_free(spoke__server_t *srv);

/* watch.c: inotify on the plugins directory, feeding reload_file. */
int spoke__watch_start(spoke__server_t *srv);
void spoke__watch_stop(void);

/* status.c: the loaded instances and plugin files as JSON. */
int spoke__status_json(spoke__server_t *srv, spoke__buf_t *b);
/* S as a JSON string literal, quoted and escaped. */
void spoke__json_str(spoke__buf_t *b, const char *s);

/* server.c: the signals the control thread reads from its signalfd; every
 * other thread keeps them blocked. */
void spoke__control_signals(sigset_t *set);

/* admin.c (control thread): the --admin listener; PORT gets the bound
 * port. Stop closes it and its connections (shutdown). */
int spoke__admin_start(spoke__server_t *srv, int *port);
void spoke__admin_stop(void);

/* stats.c (control thread): /metrics in Prometheus text format; keeping
 * an unloading instance's counts; freeing them at exit. */
int spoke__metrics_text(spoke__server_t *srv, spoke__buf_t *b);
void spoke__stats_fold(const spoke__instance_t *inst);
void spoke__stats_free(void);

/* accesslog.c (control thread): open before the loops start; SIGUSR1
 * reopens the same path; close at exit. */
int spoke__accesslog_open(const char *path);
void spoke__accesslog_reopen(void);
void spoke__accesslog_close(void);
void spoke__status_write(spoke__server_t *srv); /* RUNTIME_DIR/status.json */

/* server.c: runs until SIGTERM/SIGINT and the drain finish. */
int spoke__server_run(spoke__server_t *srv);

/* listen.c: opens N SO_REUSEPORT sockets on HOST:PORT (port 0: the first
 * picks, the rest follow). FDS gets them; *bound_port the real port. */
int spoke__listen_open(const char *host, int port, int n, int *fds,
                       int *bound_port, char *err, size_t errlen);

#endif /* SPOKE_SERVER_H */
