/* config.c: the server's settings, from one table of options.
 *
 * Every option is one entry of `options` below: its flag, the kind of
 * value it takes, the field of spoke__config_t it sets, its default, its
 * bounds and its help text. Everything else is driven from that table:
 * spoke__config_defaults applies each default through the same parser a
 * user's value goes through, spoke__config_set looks the flag up and
 * parses and bounds-checks its value in one place (one message shape:
 * the flag, the allowed range, the value given), spoke__config_parse
 * reads "--flag value" and "--flag=value" from the command line,
 * spoke__config_load_file feeds "flag = value" lines of the --config
 * file (base/conffile.c) through spoke__config_set, and
 * spoke__config_usage prints --help from the same entries. Adding an
 * option is adding an entry.
 *
 * Invariants: a refused value leaves its field as it was; numeric fields
 * only ever hold values inside their entry's [lo, hi]; string fields
 * point into argv or into the config file's text (kept for the life of
 * the process), never into a temporary buffer. Filled once on the main
 * thread before anything starts; read-only after.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <uv.h>

#include "ctl/ctl.h"
#include "ctl/options.h"

/* ---- value parsers (no bounds: those are the table's) ---- */

/* "16k" -> 16384 when SUFFIX allows k/m/g; -1 if not a number, or past
 * 2^40. */
static long long parse_number(const char *s, int suffix) {
  const unsigned long long limit = 1ULL << 40;
  unsigned long long v, mult = 1;
  char *end;

  if (!isdigit((unsigned char)s[0]))
    return -1;
  v = strtoull(s, &end, 10);
  if (suffix) {
    switch (tolower((unsigned char)*end)) {
      case 'k': mult = 1024ULL; end++; break;
      case 'm': mult = 1024ULL * 1024; end++; break;
      case 'g': mult = 1024ULL * 1024 * 1024; end++; break;
      default: break;
    }
  }
  if (*end != '\0' || v > limit / mult)
    return -1;
  return (long long)(v * mult);
}

/* "30" or "30s" -> 30000, "500ms" -> 500; -1 if not a time. */
static long long parse_ms(const char *s) {
  size_t n = strlen(s);
  char num[32];
  long long v, mult = 1000;
  if (n > 2 && strcmp(s + n - 2, "ms") == 0) {
    n -= 2;
    mult = 1;
  } else if (n > 1 && s[n - 1] == 's') {
    n -= 1;
  }
  if (n == 0 || n >= sizeof(num))
    return -1;
  memcpy(num, s, n);
  num[n] = '\0';
  v = parse_number(num, 0);
  return v < 0 ? -1 : v * mult; /* at most 2^40 s: no overflow */
}

/* "HOST:PORT", "[V6]:PORT" or ":PORT" (all interfaces). */
static int parse_hostport(const char *flag, const char *v, char *host_out,
                          size_t host_cap, int *port_out, char *err,
                          size_t errlen) {
  const char *colon, *host = v;
  size_t hlen;
  long long port;

  if (v[0] == '[') {
    const char *close = strchr(v, ']');
    if (close == NULL || close[1] != ':')
      goto bad;
    host = v + 1;
    hlen = (size_t)(close - host);
    colon = close + 1;
  } else {
    colon = strrchr(v, ':');
    if (colon == NULL)
      goto bad;
    hlen = (size_t)(colon - v);
  }
  port = parse_number(colon + 1, 0);
  if (port < 0 || port > 65535 || hlen >= host_cap)
    goto bad;
  if (hlen == 0) {
    snprintf(host_out, host_cap, "0.0.0.0");
  } else {
    memcpy(host_out, host, hlen);
    host_out[hlen] = '\0';
  }
  *port_out = (int)port;
  return 0;
bad:
  snprintf(err, errlen, "%s wants HOST:PORT, got \"%s\"", flag, v);
  return SPOKE_EINVAL;
}

/* ---- the options that need their own parse function ---- */

static int opt_listen(spoke__config_t *cfg, const spoke__opt_t *o,
                      const char *v, char *err, size_t errlen) {
  (void)o;
  return parse_hostport("--listen", v, cfg->listen_host,
                        sizeof(cfg->listen_host), &cfg->listen_port, err,
                        errlen);
}

static int opt_admin(spoke__config_t *cfg, const spoke__opt_t *o,
                     const char *v, char *err, size_t errlen) {
  int rc = parse_hostport("--admin", v, cfg->admin_host,
                          sizeof(cfg->admin_host), &cfg->admin_port, err,
                          errlen);
  (void)o;
  cfg->admin_on = rc == 0;
  return rc;
}

static int opt_admin_token(spoke__config_t *cfg, const spoke__opt_t *o,
                           const char *v, char *err, size_t errlen) {
  (void)o;
  (void)err;
  (void)errlen;
  cfg->admin_token_file = v; /* read at the end of spoke__config_parse */
  return 0;
}

/* Only on the command line, in the first pass (spoke__config_parse). */
static int opt_config(spoke__config_t *cfg, const spoke__opt_t *o,
                      const char *v, char *err, size_t errlen) {
  (void)o;
  if (cfg->config_path != NULL) {
    snprintf(err, errlen, "--config given twice");
    return SPOKE_EINVAL;
  }
  cfg->config_path = v;
  return 0;
}

static int opt_help(spoke__config_t *cfg, const spoke__opt_t *o,
                    const char *v, char *err, size_t errlen) {
  (void)cfg, (void)o, (void)v, (void)err, (void)errlen;
  spoke__config_usage(stdout);
  return 1;
}

static int opt_version(spoke__config_t *cfg, const spoke__opt_t *o,
                       const char *v, char *err, size_t errlen) {
  (void)cfg, (void)o, (void)v, (void)err, (void)errlen;
  printf("spoke %s (plugin SDK ABI %d.%d)\n", SPOKE_BUILD_VERSION,
         SPOKE_ABI_MAJOR, SPOKE_ABI_MINOR);
  return 1;
}

#define MAX_LOOPS 1024

/* --loops defaults to the number of CPUs (within its bounds). */
static const char *cpus_default(char *buf, size_t cap) {
  unsigned cpus = uv_available_parallelism();
  if (cpus < 1)
    cpus = 1;
  if (cpus > MAX_LOOPS)
    cpus = MAX_LOOPS;
  snprintf(buf, cap, "%u", cpus);
  return buf;
}

static const char *const log_levels[] = {"error", "warn", "info", "debug",
                                         NULL}; /* SPOKE_LOG_* order */

/* ---- the table ---- */

/* The field F of type T: offsetof plus a compile-time check (a pointer
 * comparison the compiler refuses if F is not a T) that the store below
 * writes the type the field really has. */
#define AT(f, T)                                                             \
  .off = offsetof(spoke__config_t, f) +                                      \
         0 * sizeof(&((spoke__config_t *)0)->f == (T *)0)
#define INT_AT(f) .ctype = SPOKE__OPT_INT, AT(f, int)
#define SIZE_AT(f) .ctype = SPOKE__OPT_SIZE_T, AT(f, size_t)
#define U64_AT(f) .ctype = SPOKE__OPT_U64, AT(f, uint64_t)
#define STR_AT(f) .ctype = SPOKE__OPT_STR, AT(f, const char *)

#define COUNT .kind = SPOKE__OPT_COUNT
#define SIZE .kind = SPOKE__OPT_SIZE
#define TIME .kind = SPOKE__OPT_TIME, .lo = 0, .hi = DAY_MS, .arg = "TIME"
#define PATH .kind = SPOKE__OPT_PATH
#define CUSTOM(fn) .kind = SPOKE__OPT_CUSTOM, .parse = (fn)
#define DAY_MS (24LL * 3600 * 1000)

/* In --help order. */
static const spoke__opt_t options[] = {
  {.name = "listen", .arg = "HOST:PORT", CUSTOM(opt_listen),
   .def = "127.0.0.1:8080",
   .help = "address to listen on; port 0 picks a free port, [::1]:8080 "
           "is IPv6, :8080 every IPv4 address"},
  {.name = "plugins", .arg = "DIR", PATH, STR_AT(plugins_dir),
   .def = "plugins", .help = "plugins directory"},
  {.name = "config", .arg = "FILE", CUSTOM(opt_config),
   .flags = SPOKE__OPT_CLI, .def_note = "none",
   .help = "settings (these flags without --, one per line) and "
           "[plugin NAME] sections; flags win"},
  {.name = "admin", .arg = "HOST:PORT", CUSTOM(opt_admin), .def_note = "off",
   .help = "admin listener: GET /status, GET /metrics, POST /reload, "
           "/plugins/NAME.so; keep it on loopback"},
  {.name = "admin-token-file", .arg = "FILE", CUSTOM(opt_admin_token),
   .def_note = "none",
   .help = "bearer token (the file's first line, 16 to 1024 printable "
           "bytes) that the admin write endpoints (POST /reload, PUT, GET and "
           "DELETE /plugins/NAME.so) require; without one, /plugins/ answers "
           "403 and POST /reload is open; keep the file mode 0600"},
  {.name = "access-log", .arg = "FILE", PATH, STR_AT(access_log),
   .flags = SPOKE__OPT_OFF, .def_note = "off",
   .help = "Combined Log Format plus request time, - for stdout, off for "
           "none; reopened on SIGUSR1"},
  {.name = "loops", .arg = "L", COUNT, INT_AT(loops), .lo = 1,
   .hi = MAX_LOOPS, .def_fn = cpus_default, .def_note = "number of CPUs",
   .help = "I/O loop threads"},
  {.name = "workers", .arg = "W", COUNT, INT_AT(workers), .lo = 1,
   .hi = 1024, .def = "16", .help = "worker-pool threads for sync handlers"},
  {.name = "max-queue", .arg = "Q", COUNT, SIZE_AT(max_queue), .lo = 0,
   .hi = 1LL << 30, .def = "1024",
   .help = "sync requests that may wait for a worker; past it: 503 with "
           "Retry-After"},

  {.group = "limits (BYTES take k, m, g)",
   .name = "max-body", .arg = "BYTES", SIZE, SIZE_AT(max_body), .lo = 0,
   .hi = 1LL << 40, .def = "1m", .help = "request body; past it 413"},
  {.name = "max-request-line", .arg = "BYTES", SIZE,
   SIZE_AT(max_request_line), .lo = 64, .hi = 1LL << 24, .def = "8k",
   .help = "request line; past it 414"},
  {.name = "max-header", .arg = "BYTES", SIZE, SIZE_AT(max_header),
   .lo = 256, .hi = 1LL << 24, .def = "16k",
   .help = "header block; past it 431"},
  {.name = "max-headers", .arg = "N", COUNT, SIZE_AT(max_headers), .lo = 1,
   .hi = 100000, .def = "100", .help = "header fields; past it 431"},
  {.name = "max-conns", .arg = "N", COUNT, SIZE_AT(max_conns), .lo = 1,
   .hi = 1000000, .def = "10000",
   .help = "open connections; past it 503"},
  {.name = "max-requests", .arg = "N", COUNT, SIZE_AT(max_requests),
   .lo = 1, .hi = 1LL << 40, .def = "1000",
   .help = "requests per keep-alive connection"},

  {.group = "timeouts (TIME: seconds, or with ms: 500ms; a day at most)",
   .name = "header-timeout", TIME, U64_AT(header_timeout_ms), .def = "30s",
   .help = "request head complete within; else 408"},
  {.name = "keepalive-timeout", TIME, U64_AT(keepalive_timeout_ms),
   .def = "75s", .help = "idle keep-alive connection kept"},
  {.name = "body-timeout", TIME, U64_AT(body_timeout_ms), .def = "30s",
   .help = "between body reads; else 408"},
  {.name = "body-deadline", TIME, U64_AT(body_deadline_ms), .def = "60s",
   .help = "a request body complete within, plus 1 s for every "
           "--body-min-rate bytes read; else 408"},
  {.name = "body-min-rate", .arg = "BYTES", SIZE, SIZE_AT(body_min_rate),
   .lo = 0, .hi = 1LL << 30, .def = "1k",
   .help = "bytes a second that earn a body time past --body-deadline"},
  {.name = "send-timeout", TIME, U64_AT(send_timeout_ms), .def = "30s",
   .help = "between write progress; else close"},
  {.name = "handler-timeout", TIME, U64_AT(handler_timeout_ms),
   .def = "60s",
   .help = "async handler starts its response within; else 504; 0: no "
           "limit"},
  {.name = "shutdown-timeout", TIME, U64_AT(shutdown_timeout_ms),
   .def = "30s", .help = "how long SIGTERM waits for in-flight requests"},
  {.name = "retire-warn", TIME, U64_AT(retire_warn_ms), .def = "10s",
   .help = "a replaced or removed plugin version still loaded this long "
           "after it stopped serving is logged with what holds it "
           "(requests, plugin holds); 0: never"},

  {.group = "",
   .name = "runtime-dir", .arg = "DIR", PATH, STR_AT(runtime_dir),
   .def_note = "$TMPDIR or /tmp",
   .help = "where private copies of plugins are mapped from; must allow "
           "exec mappings"},
  {.name = "watch-debounce", .arg = "MS", COUNT, U64_AT(watch_debounce_ms),
   .lo = 0, .hi = 60000, .def = "20",
   .help = "quiet time in milliseconds after a plugin file changes before "
           "it is loaded"},
  {.name = "stall-warn", .arg = "MS", COUNT, U64_AT(stall_warn_ms),
   .lo = 0, .hi = 60000, .def = "100",
   .help = "an async handler or callback that holds its I/O loop this many "
           "milliseconds is logged and counted (spoke_loop_stalls_total) "
           "with its plugin and route; 0: no watchdog"},
  {.name = "stall-kill", .arg = "MS", COUNT, U64_AT(stall_kill_ms),
   .lo = 0, .hi = 600000, .def = "0",
   .help = "a loop held this many milliseconds by one plugin call gets its "
           "worker process replaced, counted as a crash of that plugin; 0: "
           "never (needs a master: --processes 1 or more)"},
  {.name = "processes", .arg = "N", COUNT, INT_AT(processes), .lo = 0,
   .hi = 64, .def = "1",
   .help = "worker processes run by a supervising master that keeps the "
           "sockets and replaces a worker that dies (a plugin crash); 0: "
           "one process, no master (for gdb and valgrind)"},
  {.name = "quarantine-after", .arg = "N", COUNT, INT_AT(quarantine_after),
   .lo = 0, .hi = 16, .def = "3",
   .help = "a plugin build whose code crashes (or is stall-killed) this "
           "many times within --quarantine-window is quarantined: the "
           "workers serve the last build of it that never crashed, or "
           "answer its routes 503; 0: never (needs a master: --processes 1 "
           "or more)"},
  {.name = "quarantine-window", TIME, U64_AT(quarantine_window_ms),
   .def = "60s", .help = "the window of --quarantine-after"},
  {.name = "log-level", .arg = "LEVEL", .kind = SPOKE__OPT_ENUM,
   INT_AT(log_level), .names = log_levels, .def = "info",
   .help = "error, warn, info or debug"},
  {.name = "help", CUSTOM(opt_help),
   .flags = SPOKE__OPT_CLI | SPOKE__OPT_NOVALUE, .help = "this text (or -h)"},
  {.name = "version", CUSTOM(opt_version),
   .flags = SPOKE__OPT_CLI | SPOKE__OPT_NOVALUE,
   .help = "the version of spoke and of its plugin SDK"},
};

#define NOPTIONS (sizeof(options) / sizeof(options[0]))

const spoke__opt_t *spoke__config_options(size_t *n) {
  *n = NOPTIONS;
  return options;
}

const spoke__opt_t *spoke__config_option(const char *name) {
  while (*name == '-')
    name++;
  for (size_t i = 0; i < NOPTIONS; i++)
    if (strcmp(options[i].name, name) == 0)
      return &options[i];
  return NULL;
}

/* ---- applying one value ---- */

static void store_number(spoke__config_t *cfg, const spoke__opt_t *o,
                         long long n) {
  void *p = (char *)cfg + o->off;
  switch (o->ctype) {
    case SPOKE__OPT_INT: *(int *)p = (int)n; break;
    case SPOKE__OPT_SIZE_T: *(size_t *)p = (size_t)n; break;
    case SPOKE__OPT_U64: *(uint64_t *)p = (uint64_t)n; break;
    default: break;
  }
}

/* N as the user would write it for O's kind: 16m, 86400s, 1024. */
static void format_value(const spoke__opt_t *o, long long n, char *buf,
                         size_t cap) {
  if (o->kind == SPOKE__OPT_SIZE && n > 0) {
    static const char units[] = "gmk";
    for (int i = 0; i < 3; i++) {
      long long unit = 1LL << (10 * (3 - i));
      if (n % unit == 0) {
        snprintf(buf, cap, "%lld%c", n / unit, units[i]);
        return;
      }
    }
  } else if (o->kind == SPOKE__OPT_TIME) {
    if (n % 1000 == 0)
      snprintf(buf, cap, "%llds", n / 1000);
    else
      snprintf(buf, cap, "%lldms", n);
    return;
  }
  snprintf(buf, cap, "%lld", n);
}

/* The one check of a numeric value: N is what V parsed to (-1 if it did
 * not); the message names the flag, the range and what was given. */
static int check_bounds(const spoke__opt_t *o, const char *v, long long n,
                        char *err, size_t errlen) {
  static const char *const what[] = {
    [SPOKE__OPT_COUNT] = "a number",
    [SPOKE__OPT_SIZE] = "a number of bytes",
    [SPOKE__OPT_TIME] = "a time",
  };
  static const char *const hint[] = {
    [SPOKE__OPT_COUNT] = "",
    [SPOKE__OPT_SIZE] = " (k, m, g: powers of 1024)",
    [SPOKE__OPT_TIME] = " (30, 30s or 500ms)",
  };
  char lo[32], hi[32];
  if (n >= o->lo && n <= o->hi)
    return 0;
  format_value(o, o->lo, lo, sizeof(lo));
  format_value(o, o->hi, hi, sizeof(hi));
  snprintf(err, errlen, "--%s wants %s from %s to %s%s, got \"%s\"",
           o->name, what[o->kind], lo, hi, hint[o->kind], v);
  return SPOKE_EINVAL;
}

static int set_enum(spoke__config_t *cfg, const spoke__opt_t *o,
                    const char *v, char *err, size_t errlen) {
  size_t n = 0, len;
  for (n = 0; o->names[n] != NULL; n++)
    if (strcmp(v, o->names[n]) == 0) {
      store_number(cfg, o, (long long)n);
      return 0;
    }
  /* "--log-level wants error, warn, info or debug, got ..." */
  len = (size_t)snprintf(err, errlen, "--%s wants", o->name);
  for (size_t i = 0; i < n && len < errlen; i++)
    len += (size_t)snprintf(err + len, errlen - len, "%s %s",
                            i == 0 ? "" : i + 1 == n ? " or" : ",",
                            o->names[i]);
  if (len < errlen)
    snprintf(err + len, errlen - len, ", got \"%s\"", v);
  return SPOKE_EINVAL;
}

/* Parses V for O, checks it, stores it; the field is untouched on error. */
static int apply(spoke__config_t *cfg, const spoke__opt_t *o, const char *v,
                 char *err, size_t errlen) {
  long long n;
  int rc;

  switch (o->kind) {
    case SPOKE__OPT_CUSTOM:
      return o->parse(cfg, o, v, err, errlen);
    case SPOKE__OPT_PATH:
      if ((o->flags & SPOKE__OPT_OFF) &&
          (v[0] == '\0' || strcmp(v, "off") == 0))
        v = NULL;
      *(const char **)(void *)((char *)cfg + o->off) = v;
      return 0;
    case SPOKE__OPT_ENUM:
      return set_enum(cfg, o, v, err, errlen);
    case SPOKE__OPT_COUNT: n = parse_number(v, 0); break;
    case SPOKE__OPT_SIZE: n = parse_number(v, 1); break;
    case SPOKE__OPT_TIME: n = parse_ms(v); break;
    default: return SPOKE_EINVAL;
  }
  if ((rc = check_bounds(o, v, n, err, errlen)) != 0)
    return rc;
  store_number(cfg, o, n);
  return 0;
}

void spoke__config_defaults(spoke__config_t *cfg) {
  char buf[32], err[256];
  memset(cfg, 0, sizeof(*cfg));
  for (size_t i = 0; i < NOPTIONS; i++) {
    const spoke__opt_t *o = &options[i];
    const char *d = o->def_fn != NULL ? o->def_fn(buf, sizeof(buf)) : o->def;
    if (d != NULL && apply(cfg, o, d, err, sizeof(err)) != 0) {
      /* The table is wrong; tests/unit/test_config.c catches it first. */
      fprintf(stderr, "spoke: built-in default: %s\n", err);
      abort();
    }
  }
}

int spoke__config_set(spoke__config_t *cfg, const char *name, const char *v,
                      char *err, size_t errlen) {
  const spoke__opt_t *o = spoke__config_option(name);

  if (o == NULL) {
    while (*name == '-')
      name++;
    snprintf(err, errlen, "unknown option \"--%.60s\"", name);
    return SPOKE_EINVAL;
  }
  if (o->flags & SPOKE__OPT_NOVALUE) {
    snprintf(err, errlen, "--%s takes no value", o->name);
    return SPOKE_EINVAL;
  }
  if (o->flags & SPOKE__OPT_CLI) {
    snprintf(err, errlen, "--%s works on the command line only", o->name);
    return SPOKE_EINVAL;
  }
  return apply(cfg, o, v, err, errlen);
}

static int set_from_file(void *cfg, const char *key, const char *value,
                         char *err, size_t errlen) {
  return spoke__config_set(cfg, key, value, err, errlen);
}

int spoke__config_load_file(spoke__config_t *cfg, const char *path,
                            char *err, size_t errlen) {
  return spoke__conffile_load(&cfg->conf, path, set_from_file, cfg, err,
                              errlen);
}

/* ---- the command line ---- */

/* The entry ARG names exactly ("--help", "-h"), if it takes no value. */
static const spoke__opt_t *novalue_option(const char *arg) {
  const spoke__opt_t *o;
  if (strcmp(arg, "-h") == 0)
    arg = "--help";
  if (strncmp(arg, "--", 2) != 0 || arg[2] == '-')
    return NULL;
  o = spoke__config_option(arg + 2);
  return o != NULL && (o->flags & SPOKE__OPT_NOVALUE) ? o : NULL;
}

/* The command-line-only entry FLAG names exactly ("--config"), if any:
 * read in the first pass, skipped in the second. */
static const spoke__opt_t *cli_option(const char *flag) {
  const spoke__opt_t *o;
  if (strncmp(flag, "--", 2) != 0 || flag[2] == '-')
    return NULL;
  o = spoke__config_option(flag + 2);
  return o != NULL && (o->flags & SPOKE__OPT_CLI) &&
                 !(o->flags & SPOKE__OPT_NOVALUE)
             ? o
             : NULL;
}

/* Splits ARGV[*I] into its flag and value ("--f v" or "--f=v"). */
static int next_flag(int argc, char **argv, int *i, char *flag,
                     size_t flaglen, const char **v, char *err,
                     size_t errlen) {
  const char *arg = argv[*i], *eq;
  if (strncmp(arg, "--", 2) != 0) {
    snprintf(err, errlen, "unexpected argument \"%s\"", arg);
    return SPOKE_EINVAL;
  }
  eq = strchr(arg, '=');
  if (eq != NULL) {
    snprintf(flag, flaglen, "%.*s", (int)(eq - arg), arg);
    *v = eq + 1;
    return 0;
  }
  snprintf(flag, flaglen, "%s", arg);
  if (*i + 1 >= argc) {
    snprintf(err, errlen, "%s needs a value", arg);
    return SPOKE_EINVAL;
  }
  *v = argv[++*i];
  return 0;
}

/* --help and --version first, wherever they stand; then the file
 * (--config), then every flag in order on top of it: the command line
 * wins. */
int spoke__config_parse(spoke__config_t *cfg, int argc, char **argv,
                        char *err, size_t errlen) {
  const spoke__opt_t *o;
  char flag[64];
  const char *v;
  int rc;

  for (int i = 1; i < argc; i++) {
    if ((o = novalue_option(argv[i])) != NULL)
      return o->parse(cfg, o, NULL, err, errlen);
    if ((rc = next_flag(argc, argv, &i, flag, sizeof(flag), &v, err,
                        errlen)) != 0)
      return rc;
    if ((o = cli_option(flag)) != NULL &&
        (rc = o->parse(cfg, o, v, err, errlen)) != 0)
      return rc;
  }
  if (cfg->config_path != NULL &&
      (rc = spoke__config_load_file(cfg, cfg->config_path, err, errlen)) != 0)
    return rc;
  for (int i = 1; i < argc; i++) {
    next_flag(argc, argv, &i, flag, sizeof(flag), &v, err, errlen);
    if (cli_option(flag) != NULL)
      continue;
    if ((rc = spoke__config_set(cfg, flag, v, err, errlen)) != 0)
      return rc;
  }
  if (cfg->admin_token_file != NULL)
    return spoke__admin_token_load(cfg->admin_token_file, &cfg->admin_token,
                                   err, errlen);
  return 0;
}

/* ---- --help ---- */

enum { HELP_COL = 26, HELP_WIDTH = 78 };

/* "  --flag ARG" then the help, the default and (numbers) the range,
 * wrapped at HELP_WIDTH and indented to HELP_COL. */
static void usage_option(FILE *out, const spoke__opt_t *o) {
  const char *d = o->def != NULL ? o->def : o->def_note;
  char text[512], range[80] = "", lo[32], hi[32];
  const char *w = text;
  int col, fresh = 1;

  col = fprintf(out, "  --%s%s%s", o->name, o->arg != NULL ? " " : "",
                o->arg != NULL ? o->arg : "");
  if (o->kind == SPOKE__OPT_COUNT || o->kind == SPOKE__OPT_SIZE) {
    format_value(o, o->lo, lo, sizeof(lo));
    format_value(o, o->hi, hi, sizeof(hi));
    snprintf(range, sizeof(range), ", %s to %s", lo, hi);
  }
  if (d != NULL)
    snprintf(text, sizeof(text), "%s (default %s%s)", o->help, d, range);
  else
    snprintf(text, sizeof(text), "%s", o->help);
  col += fprintf(out, "%*s", col < HELP_COL - 1 ? HELP_COL - col : 1, "");
  while (*w != '\0') {
    int len = (int)strcspn(w, " ");
    if (!fresh && col + 1 + len > HELP_WIDTH) {
      col = fprintf(out, "\n%*s", HELP_COL, "") - 1;
      fresh = 1;
    }
    if (!fresh)
      col += fprintf(out, " ");
    col += fprintf(out, "%.*s", len, w);
    fresh = 0;
    w += len;
    while (*w == ' ')
      w++;
  }
  fputc('\n', out);
}

void spoke__config_free(spoke__config_t *cfg) {
  spoke__conffile_free(&cfg->conf);
  free(cfg->admin_token);
  cfg->admin_token = NULL;
}

void spoke__config_usage(FILE *out) {
  fprintf(out,
"usage: spoke --listen HOST:PORT --plugins DIR [options]\n"
"       spoke new NAME [DIR] | spoke check FILE.so... | spoke help [COMMAND]\n"
"\n"
"Serves HTTP/1.1 with routes from the plugins (*.so) in DIR.\n"
"\n");
  for (size_t i = 0; i < NOPTIONS; i++) {
    const spoke__opt_t *o = &options[i];
    if (o->group != NULL)
      fprintf(out, "\n%s%s", o->group, o->group[0] != '\0' ? ":\n" : "");
    usage_option(out, o);
  }
}
