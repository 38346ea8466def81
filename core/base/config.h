/* config.h: the server's settings, and the --config file they may come from.
 *
 * spoke__config_t is filled once at start-up (ctl/config.c, from the
 * command line and the config file) before any thread starts, and is
 * read-only afterwards: every thread may read it without a lock. The
 * config file is kept whole (values point into its text) so plugins can
 * read their [plugin NAME] section at any time (base/conffile.c).
 */
#ifndef SPOKE_BASE_CONFIG_H
#define SPOKE_BASE_CONFIG_H

#include <stddef.h>
#include <stdint.h>

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
  const char *admin_token_file; /* --admin-token-file, or NULL */
  char *admin_token;          /* its token, read once every setting is
                                 in (a flag wins over the file), or NULL:
                                 the admin write endpoints' bearer token
                                 (ctl/admintoken.c); malloc'd, freed by
                                 spoke__config_free */
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
  uint64_t body_deadline_ms;  /* whole body, plus 1 s per body_min_rate
                                 bytes read (408); 0: none */
  size_t body_min_rate;       /* bytes/s a body must keep; 0: none */
  uint64_t send_timeout_ms;   /* between write progress (close) */
  uint64_t handler_timeout_ms; /* async response started within (504) */
  uint64_t shutdown_timeout_ms;
  uint64_t watch_debounce_ms; /* quiet time before a changed file loads */
  uint64_t retire_warn_ms;    /* a version retiring longer is logged */
  uint64_t stall_warn_ms;     /* a loop held longer by one plugin call is
                                 logged and counted; 0: no watchdog */
  uint64_t stall_kill_ms;     /* a loop held this long by one plugin call
                                 gets its worker process replaced; 0: off
                                 (needs --processes) */
  int processes;              /* worker processes under a master; 0: one
                                 process, no master (ctl/supervise.c) */
  int quarantine_after;       /* crashes of one build that quarantine it */
  uint64_t quarantine_window_ms; /* ... within this long; 0 after: never */
  int log_level;
} spoke__config_t;

/* conffile.c. Load: each server setting (a key before the first section)
 * goes to SET(CTX, key, value, err, errlen), which checks and applies it
 * (ctl/config.c) and returns 0 or a negative code with the reason in ERR;
 * plugin sections are kept; the loaded file becomes the one lookups read. */
typedef int (*spoke__conf_set_cb)(void *ctx, const char *key,
                                  const char *value, char *err,
                                  size_t errlen);
int spoke__conffile_load(spoke__conffile_t *cf, const char *path,
                         spoke__conf_set_cb set, void *ctx, char *err,
                         size_t errlen);
/* KEY of plugin SECTION, or NULL (any thread; read-only after start). */
const char *spoke__conffile_lookup(const char *section, const char *key);
void spoke__conffile_free(spoke__conffile_t *cf);


#endif /* SPOKE_BASE_CONFIG_H */
