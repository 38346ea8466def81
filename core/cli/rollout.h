/* rollout.h: the pieces of `spoke rollout`, private to core/cli.
 *
 * `spoke rollout FILE.so --to ADMIN...` puts one plugin file on a row of
 * running instances, one at a time, through their admin listeners, and
 * takes it back off every instance it reached when one of them does
 * badly. The pieces, each a file, every call pointing down this list:
 *
 *   rollout.c   the command: options, the local check, the plan, the
 *               order of the steps, the rollback and the report
 *   rollbake.c  the bake of one instance: samples and the verdict
 *   rollstep.c  one instance's steps: fetch, upload, wait, undo; the
 *               progress lines
 *   rollargs.c  the command line, --to lists, the token file
 *   rollstat.c  what /metrics says about one plugin, deltas, the p99
 *   rolljson.c  the one entry of a PUT/DELETE answer we read
 *   promread.c  Prometheus text, sample by sample
 *   adminc.c    a blocking HTTP/1.1 client for one admin request
 *
 * The pure parts (rollargs, rollstat, rolljson, promread) touch neither
 * network nor clock, so tests/unit/test_rollout.c tests them alone.
 * Functions return 0 or a negative SPOKE_E* code, unless said otherwise.
 * Single-threaded: the command runs on the main thread from start to end.
 */
#ifndef SPOKE_CLI_ROLLOUT_H
#define SPOKE_CLI_ROLLOUT_H

#include <stddef.h>

#include "base/base.h"
#include "ctl/ctl.h"

#define SPOKE__ROLL_MAX_FILE SPOKE__UPLOAD_MAX /* the admin's PUT limit */

/* ---- rollargs.c ---- */

/* An admin address: HOST without brackets, PORT as digits, and TEXT as
 * the operator wrote it ("127.0.0.1:9001", "[::1]:9001"). */
typedef struct spoke__roll_addr_s {
  char host[256];
  char port[6];
  char text[264];
} spoke__roll_addr_t;

typedef struct spoke__roll_opts_s {
  const char *file;       /* FILE.so */
  const char *token_file;
  spoke__roll_addr_t *to; /* in order, no two alike */
  size_t nto, to_cap;
  double bake_s;          /* default 30 */
  double max_5xx_rate;    /* a fraction, default 0.01 */
  double max_p99_ms;      /* default 1000 */
  double ready_s;         /* default 30 */
  int dry_run;
} spoke__roll_opts_t;

/* "HOST:PORT" or "[V6]:PORT", LEN bytes at S, into *OUT. SPOKE_EINVAL
 * for anything else (a port outside 1-65535, a bare IPv6 address). */
int spoke__roll_parse_addr(const char *s, size_t len, spoke__roll_addr_t *out);
/* One --to value: "A,B,..." or "@FILE" (a line each, # comments and
 * blank lines skipped, commas allowed too). Appends to O->to. On an
 * error, ERR says why; the addresses added before it stay. */
int spoke__roll_add_to(spoke__roll_opts_t *o, const char *value, char *err,
                       size_t errlen);
/* ARGV[0] is "rollout". 0, 1 for --help, or SPOKE_EINVAL with ERR set
 * (a usage error); defaults first. Free with spoke__roll_opts_free. */
int spoke__roll_parse_args(spoke__roll_opts_t *o, int argc, char **argv,
                           char *err, size_t errlen);
void spoke__roll_opts_free(spoke__roll_opts_t *o);
/* The token: the first line of PATH, trailing whitespace trimmed; an
 * empty one, or one holding a control byte, is SPOKE_EINVAL. */
int spoke__roll_read_token(const char *path, char *out, size_t cap,
                           char *err, size_t errlen);

/* ---- promread.c ---- */

/* One sample line: the metric name, the text between the braces (or
 * none), the value. Spans point into the text read. */
typedef struct spoke__prom_line_s {
  const char *name;
  size_t name_len;
  const char *labels;
  size_t labels_len;
  double value;
} spoke__prom_line_t;

/* The next sample from *P (before END), *P moved past its line: 1, or 0
 * at the end. Comments, blank lines and lines that are no sample are
 * passed over. */
int spoke__prom_next(const char **p, const char *end, spoke__prom_line_t *l);
/* 1 if L's metric name is NAME. */
int spoke__prom_is(const spoke__prom_line_t *l, const char *name);
/* The value of label KEY, unescaped, into OUT: 1, 0 when L has no such
 * label, SPOKE_EINVAL when it does not fit in CAP (OUT is then ""). */
int spoke__prom_label(const spoke__prom_line_t *l, const char *key, char *out,
                      size_t cap);

/* ---- rollstat.c ---- */

#define SPOKE__ROLL_BUCKETS 32
#define SPOKE__ROLL_SIGNALS 8

/* What one /metrics says about plugin NAME, for one VERSION and BUILD. */
typedef struct spoke__roll_stats_s {
  double workers;       /* spoke_worker_processes, 1 when absent */
  double serving_build; /* processes serving BUILD */
  double serving_any;   /* processes serving any build of NAME */
  char top_version[64]; /* the build most processes serve, "" for none */
  char top_build[17];
  double top_n;
  double requests, err5xx; /* every route of NAME */
  size_t nbuckets;         /* duration buckets summed over the routes */
  double le[SPOKE__ROLL_BUCKETS]; /* ascending, seconds, +Inf last */
  double count[SPOKE__ROLL_BUCKETS];
  size_t nsignals;         /* crashes of NAME at VERSION, by signal */
  char signal[SPOKE__ROLL_SIGNALS][32];
  double crashes[SPOKE__ROLL_SIGNALS];
} spoke__roll_stats_t;

/* What changed between two readings. */
typedef struct spoke__roll_delta_s {
  double requests, err5xx, crashes;
  char crash_text[160]; /* "SIGSEGV x 2, stall x 1", or "" */
  double p99_ms;        /* NAN without requests, INFINITY above top_ms */
  double top_ms;        /* the largest finite bucket bound */
} spoke__roll_delta_t;

void spoke__roll_stats_read(const char *text, size_t len, const char *name,
                            const char *version, const char *build,
                            spoke__roll_stats_t *out);
/* NOW minus BASE; a counter that went down (a worker that restarted)
 * counts as 0. */
void spoke__roll_delta(const spoke__roll_stats_t *base,
                       const spoke__roll_stats_t *now, spoke__roll_delta_t *d);
/* The p99 estimate of a cumulative histogram (LE ascending, +Inf last):
 * the bound of the first bucket holding 99% of the last one's count, in
 * seconds; NAN for an empty histogram. */
double spoke__roll_p99(const double *le, const double *count, size_t n);
/* FNV-1a 64 of P[0..N) as 16 hex digits: the build id the server gives
 * a file of these bytes (plugin/instance.c). */
void spoke__roll_build_of(const void *p, size_t n, char out[17]);

/* ---- rolljson.c ---- */

/* The entry for one file in a PUT/DELETE answer's "changed" array. */
typedef struct spoke__roll_change_s {
  char change[32];   /* "loaded", "reloaded", "refused", "removed" */
  char error[512];   /* a refusal's reason, cut to fit */
  char version[64];
} spoke__roll_change_t;

/* Finds the entry of "changed" whose "file" is FILE in the JSON object
 * JSON[0..len): 1 with *OUT filled, 0 when none is, SPOKE_EINVAL when
 * the text is not JSON. */
int spoke__roll_json_change(const char *json, size_t len, const char *file,
                            spoke__roll_change_t *out);

/* ---- adminc.c ---- */

/* One request to the admin listener at A: METHOD PATH, with TOKEN as a
 * bearer token unless NULL, BODY (LEN bytes) when not NULL. Connects
 * within 2 s, is done within 10 s. 0 with *STATUS and the body in OUT
 * (emptied first), or SPOKE_EIO / SPOKE_ENOMEM with ERR saying why. */
int spoke__adminc_request(const spoke__roll_addr_t *a, const char *method,
                          const char *path, const char *token,
                          const void *body, size_t len, int *status,
                          spoke__buf_t *out, char *err, size_t errlen);

/* ---- rollstep.c ---- */

/* One instance of the row, and what happened to it. */
typedef struct spoke__roll_inst_s {
  const spoke__roll_addr_t *addr;
  spoke__roll_stats_t plan;   /* the plan's reading */
  spoke__roll_stats_t before; /* the reading just before the upload */
  int skip;        /* already served the new build everywhere */
  int touched;     /* its file may have changed: roll it back */
  int had_file;    /* the GET found a file; else the undo is DELETE */
  spoke__buf_t old;         /* that file's bytes */
  char old_build[17];
  int undone;      /* 0 not tried, 1 rolled back, -1 rollback failed */
  char undo_err[1024];
} spoke__roll_inst_t;

typedef struct spoke__roll_s {
  spoke__roll_opts_t opts;
  char token[4096];
  const char *base;     /* FILE's base name */
  char path[600];       /* "/plugins/BASE", percent-encoded */
  spoke__buf_t bytes;   /* FILE's bytes */
  char name[128], version[128], build[17];
  spoke__roll_inst_t *insts; /* one per opts.to, in order */
  size_t ninsts;
  int width;            /* the widest address, for the columns */
  double t0;            /* spoke__roll_clock() at the start */
  /* the failure, if any */
  int failed;
  size_t failed_at;
  const char *failed_step;
  char why[1024];
  int have_seen;        /* a bake sample was taken: */
  spoke__roll_delta_t seen;
  double seen_s;        /* over this many seconds */
} spoke__roll_t;

/* From here on SIGINT and SIGTERM are noted, once, instead of ending
 * the process; SIGPIPE is ignored. */
void spoke__roll_catch_signals(void);
/* "SIGINT" or "SIGTERM" once one came, else NULL. */
const char *spoke__roll_interrupted(void);
/* Seconds on the monotonic clock. */
double spoke__roll_clock(void);
void spoke__roll_sleep(double seconds);
/* "[  3.2s] ADDR  TEXT", flushed; IN may be NULL (no address). */
void spoke__roll_say(const spoke__roll_t *r, const spoke__roll_inst_t *in,
                     const char *fmt, ...) SPOKE__PRINTF(3, 4);
/* Records the first failure (instance IN at STEP) and says it. */
void spoke__roll_fail(spoke__roll_t *r, const spoke__roll_inst_t *in,
                      const char *step, const char *fmt, ...)
    SPOKE__PRINTF(4, 5);
/* "hello 1.0.0 (build 0123...) on 2/2 processes", or "not loaded":
 * what S says serves of plugin r->name. */
void spoke__roll_describe(const spoke__roll_t *r,
                          const spoke__roll_stats_t *s, char *out,
                          size_t cap);
/* GET /metrics of IN, read for plugin r->name, crashes at r->version,
 * serving of BUILD. */
int spoke__roll_metrics(const spoke__roll_t *r, const spoke__roll_inst_t *in,
                        const char *build, spoke__roll_stats_t *st, char *err,
                        size_t errlen);
/* GET /plugins/BASE of IN with the token into OUT: 0 with *HAS 1 and
 * its BUILD, or *HAS 0 for a 404; SPOKE_EIO with ERR for anything else
 * (unreachable, 401, 403, ...). */
int spoke__roll_fetch(const spoke__roll_t *r, const spoke__roll_inst_t *in,
                      spoke__buf_t *out, int *has, char build[17], char *err,
                      size_t errlen);
/* Step 3, up to the bake: keeps the old file, uploads the new one, waits
 * until every process serves it. 0, or -1 with the failure recorded. */
int spoke__roll_install(spoke__roll_t *r, spoke__roll_inst_t *in);
/* Puts IN's old file back (or deletes the new one) and waits for it;
 * sets IN->undone. */
void spoke__roll_undo(spoke__roll_t *r, spoke__roll_inst_t *in);

/* ---- rollbake.c ---- */

/* Watches IN for opts.bake_s once it serves the new build. 0, or -1
 * with the failure recorded. */
int spoke__roll_bake(spoke__roll_t *r, spoke__roll_inst_t *in);
/* "120 requests, 3 5xx (2.50%), p99 <= 5 ms" ("p99 > 10000 ms" above
 * every finite bound, "no p99" without requests). */
void spoke__roll_seen_text(const spoke__roll_delta_t *d, char *out,
                           size_t cap);

#endif /* SPOKE_CLI_ROLLOUT_H */
