/* server.h: settings, the server object and the control thread.
 *
 * spoke__config_t is filled once from the command line before any thread
 * starts and is read-only afterwards. spoke__server_t is the process-wide
 * object: it owns the I/O loops, the current snapshot (control thread
 * only) and the counters every thread bumps (atomics).
 */
#ifndef SPOKE_SERVER_H
#define SPOKE_SERVER_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "plugin.h"

typedef struct spoke__config_s {
  char listen_host[256];
  int listen_port;
  const char *plugins_dir;
  const char *runtime_dir;    /* parent of the private plugin copies */
  int loops;                  /* I/O loop threads */
  int workers;                /* libuv threadpool size */
  size_t max_queue;           /* sync requests waiting for a worker */
  size_t max_body;            /* request body bytes (413 past it) */
  size_t max_header;          /* request line + header bytes (431) */
  uint64_t shutdown_timeout_ms;
  int log_level;
} spoke__config_t;

/* config.c */
void spoke__config_defaults(spoke__config_t *cfg);
/* Returns 0 to run, 1 when --help or --version was printed, or
 * SPOKE_EINVAL with the reason in ERR. */
int spoke__config_parse(spoke__config_t *cfg, int argc, char **argv,
                        char *err, size_t errlen);
void spoke__config_usage(FILE *out);

struct spoke__loop_s;

typedef struct spoke__server_s {
  spoke__config_t cfg;
  uv_loop_t *control;             /* main thread's loop */
  struct spoke__loop_s *loops;    /* cfg.loops of them */
  int nloops;
  spoke__snapshot_t *current;     /* control thread only */
  uint64_t generation;            /* control thread only */
  char *runtime_dir;              /* private dir of this process */
  atomic_size_t sync_waiting;     /* queued sync requests not yet running */
  atomic_int loops_running;
  uv_async_t loop_exited;         /* loops ring it as they end */
  uv_mutex_t reap_mu;             /* guards reap_list */
  struct spoke__reap_s *reap_list;
  uv_async_t reap_async;          /* finalizes instances on control */
} spoke__server_t;

/* loader.c: start-up scan of the plugins directory. Loads every *.so in
 * name order into a first snapshot; bad ones are logged and skipped. */
int spoke__loader_scan(spoke__server_t *srv);

/* server.c: runs until SIGTERM/SIGINT and the drain finish. */
int spoke__server_run(spoke__server_t *srv);

/* listen.c: opens N SO_REUSEPORT sockets on HOST:PORT (port 0: the first
 * picks, the rest follow). FDS gets them; *bound_port the real port. */
int spoke__listen_open(const char *host, int port, int n, int *fds,
                       int *bound_port, char *err, size_t errlen);

#endif /* SPOKE_SERVER_H */
