/* config.c: the command line and the settings it shares with the file.
 *
 * Every setting has a default here and a flag; "--flag value" and
 * "--flag=value" both work, and "flag = value" in the --config file
 * (conffile.c) goes through the same spoke__config_set. Sizes take k/m/g
 * suffixes (powers of 1024). Filled once on the main thread before
 * anything starts; read-only after.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <uv.h>

#include "ctl/ctl.h"

void spoke__config_defaults(spoke__config_t *cfg) {
  unsigned cpus = uv_available_parallelism();
  memset(cfg, 0, sizeof(*cfg));
  snprintf(cfg->listen_host, sizeof(cfg->listen_host), "127.0.0.1");
  cfg->listen_port = 8080;
  cfg->plugins_dir = "plugins";
  cfg->loops = cpus > 0 ? (int)cpus : 1;
  cfg->workers = 16;
  cfg->max_queue = 1024;
  cfg->max_body = 1024 * 1024;
  cfg->max_request_line = 8 * 1024;
  cfg->max_header = 16 * 1024;
  cfg->max_headers = 100;
  cfg->max_conns = 10000;
  cfg->max_requests = 1000;
  cfg->header_timeout_ms = 30000;
  cfg->keepalive_timeout_ms = 75000;
  cfg->body_timeout_ms = 30000;
  cfg->send_timeout_ms = 30000;
  cfg->handler_timeout_ms = 60000;
  cfg->shutdown_timeout_ms = 30000;
  cfg->watch_debounce_ms = 20;
  cfg->log_level = SPOKE_LOG_INFO;
}

void spoke__config_usage(FILE *out) {
  fprintf(out,
"usage: spoke --listen HOST:PORT --plugins DIR [options]\n"
"       spoke new NAME [DIR] | spoke check FILE.so... | spoke help [COMMAND]\n"
"\n"
"Serves HTTP/1.1 with routes from the plugins (*.so) in DIR.\n"
"\n"
"  --listen HOST:PORT      address to listen on (default 127.0.0.1:8080;\n"
"                          port 0 picks a free port; [::1]:8080 for IPv6)\n"
"  --plugins DIR           plugins directory (default ./plugins)\n"
"  --config FILE           settings (these flags without --, one per line)\n"
"                          and [plugin NAME] sections; flags win\n"
"  --admin HOST:PORT       admin listener: GET /status, GET /metrics,\n"
"                          POST /reload (off by default; keep it on loopback)\n"
"  --access-log FILE       Combined Log Format plus request time, - for\n"
"                          stdout; reopened on SIGUSR1 (default off)\n"
"  --loops L               I/O loop threads (default: number of CPUs)\n"
"  --workers W             worker-pool threads for sync handlers\n"
"                          (default 16, at most 1024)\n"
"  --max-queue Q           sync requests that may wait for a worker;\n"
"                          past it: 503 with Retry-After (default 1024)\n"
"\nlimits (BYTES take k, m, g):\n"
"  --max-body BYTES        request body; past it 413 (default 1m)\n"
"  --max-request-line BYTES  request line; past it 414 (default 8k)\n"
"  --max-header BYTES      header block; past it 431 (default 16k)\n"
"  --max-headers N         header fields; past it 431 (default 100)\n"
"  --max-conns N           open connections; past it 503 (default 10000)\n"
"  --max-requests N        requests per keep-alive connection (default 1000)\n"
"\ntimeouts (TIME: seconds, or with ms: 500ms):\n"
"  --header-timeout TIME   request head complete within; else 408\n"
"                          (default 30)\n"
"  --keepalive-timeout TIME  idle keep-alive connection kept (default 75)\n"
"  --body-timeout TIME     between body reads; else 408 (default 30)\n"
"  --send-timeout TIME     between write progress; else close (default 30)\n"
"  --handler-timeout TIME  async handler starts its response within;\n"
"                          else 504; 0: no limit (default 60)\n"
"  --shutdown-timeout TIME how long SIGTERM waits for in-flight requests\n"
"                          (default 30)\n"
"\n"
"  --runtime-dir DIR       where private copies of plugins are mapped from;\n"
"                          must allow exec mappings (default $TMPDIR or /tmp)\n"
"  --watch-debounce MS     quiet time after a plugin file changes before it\n"
"                          is loaded (default 20)\n"
"  --log-level LEVEL       error, warn, info or debug (default info)\n"
"  --help                  this text\n"
"  --version               the version of spoke and of its plugin SDK\n");
}

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

static int parse_listen(spoke__config_t *cfg, const char *v, char *err,
                        size_t errlen) {
  return parse_hostport("--listen", v, cfg->listen_host,
                        sizeof(cfg->listen_host), &cfg->listen_port, err,
                        errlen);
}

static int parse_level(const char *v) {
  static const char *names[] = {"error", "warn", "info", "debug"};
  for (int i = 0; i < 4; i++)
    if (strcmp(v, names[i]) == 0)
      return i;
  return -1;
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
  if (v < 0 || v > 24LL * 3600 * 1000 / mult) /* a day at most */
    return -1;
  return v * mult;
}

static int time_opt(const char *flag, const char *v, uint64_t *out, char *err,
                    size_t errlen) {
  long long ms = parse_ms(v);
  if (ms < 0) {
    snprintf(err, errlen, "%s wants a time (30, 30s or 500ms), got \"%s\"",
             flag, v);
    return SPOKE_EINVAL;
  }
  *out = (uint64_t)ms;
  return 0;
}

/* Reads a number option in [lo, hi]; SUFFIX: a byte size (k, m, g). */
static int num_opt(const char *flag, const char *v, int suffix, long long lo,
                   long long hi, long long *out, char *err, size_t errlen) {
  long long n = parse_number(v, suffix);
  if (n < lo || n > hi) {
    snprintf(err, errlen, "%s wants a number from %lld to %lld, got \"%s\"",
             flag, lo, hi, v);
    return SPOKE_EINVAL;
  }
  *out = n;
  return 0;
}

/* "--flag" or "flag": the name without the dashes, for messages. */
static int set_from_file(void *cfg, const char *key, const char *value,
                         char *err, size_t errlen) {
  return spoke__config_set(cfg, key, value, err, errlen);
}

int spoke__config_load_file(spoke__config_t *cfg, const char *path,
                            char *err, size_t errlen) {
  return spoke__conffile_load(&cfg->conf, path, set_from_file, cfg, err,
                              errlen);
}

int spoke__config_set(spoke__config_t *cfg, const char *name, const char *v,
                      char *err, size_t errlen) {
  char flag[64];
  long long n = 0;
  int rc = 0;

  while (*name == '-')
    name++;
  snprintf(flag, sizeof(flag), "--%s", name);
  if (strcmp(flag, "--listen") == 0) {
    rc = parse_listen(cfg, v, err, errlen);
  } else if (strcmp(flag, "--admin") == 0) {
    rc = parse_hostport(flag, v, cfg->admin_host, sizeof(cfg->admin_host),
                        &cfg->admin_port, err, errlen);
    cfg->admin_on = rc == 0;
  } else if (strcmp(flag, "--access-log") == 0) {
    cfg->access_log = v[0] != '\0' && strcmp(v, "off") != 0 ? v : NULL;
  } else if (strcmp(flag, "--plugins") == 0) {
    cfg->plugins_dir = v;
  } else if (strcmp(flag, "--runtime-dir") == 0) {
    cfg->runtime_dir = v;
  } else if (strcmp(flag, "--loops") == 0) {
    if ((rc = num_opt(flag, v, 0, 1, 1024, &n, err, errlen)) == 0)
      cfg->loops = (int)n;
  } else if (strcmp(flag, "--workers") == 0) {
    if ((rc = num_opt(flag, v, 0, 1, 1024, &n, err, errlen)) == 0)
      cfg->workers = (int)n;
  } else if (strcmp(flag, "--max-queue") == 0) {
    if ((rc = num_opt(flag, v, 0, 0, 1LL << 30, &n, err, errlen)) == 0)
      cfg->max_queue = (size_t)n;
  } else if (strcmp(flag, "--max-body") == 0) {
    if ((rc = num_opt(flag, v, 1, 0, 1LL << 40, &n, err, errlen)) == 0)
      cfg->max_body = (size_t)n;
  } else if (strcmp(flag, "--max-header") == 0) {
    if ((rc = num_opt(flag, v, 1, 256, 1LL << 24, &n, err, errlen)) == 0)
      cfg->max_header = (size_t)n;
  } else if (strcmp(flag, "--max-request-line") == 0) {
    if ((rc = num_opt(flag, v, 1, 64, 1LL << 24, &n, err, errlen)) == 0)
      cfg->max_request_line = (size_t)n;
  } else if (strcmp(flag, "--max-headers") == 0) {
    if ((rc = num_opt(flag, v, 0, 1, 100000, &n, err, errlen)) == 0)
      cfg->max_headers = (size_t)n;
  } else if (strcmp(flag, "--max-conns") == 0) {
    if ((rc = num_opt(flag, v, 0, 1, 1000000, &n, err, errlen)) == 0)
      cfg->max_conns = (size_t)n;
  } else if (strcmp(flag, "--max-requests") == 0) {
    if ((rc = num_opt(flag, v, 0, 1, 1LL << 40, &n, err, errlen)) == 0)
      cfg->max_requests = (size_t)n;
  } else if (strcmp(flag, "--header-timeout") == 0) {
    rc = time_opt(flag, v, &cfg->header_timeout_ms, err, errlen);
  } else if (strcmp(flag, "--keepalive-timeout") == 0) {
    rc = time_opt(flag, v, &cfg->keepalive_timeout_ms, err, errlen);
  } else if (strcmp(flag, "--body-timeout") == 0) {
    rc = time_opt(flag, v, &cfg->body_timeout_ms, err, errlen);
  } else if (strcmp(flag, "--send-timeout") == 0) {
    rc = time_opt(flag, v, &cfg->send_timeout_ms, err, errlen);
  } else if (strcmp(flag, "--handler-timeout") == 0) {
    rc = time_opt(flag, v, &cfg->handler_timeout_ms, err, errlen);
  } else if (strcmp(flag, "--shutdown-timeout") == 0) {
    rc = time_opt(flag, v, &cfg->shutdown_timeout_ms, err, errlen);
  } else if (strcmp(flag, "--watch-debounce") == 0) {
    if ((rc = num_opt(flag, v, 0, 0, 60000, &n, err, errlen)) == 0)
      cfg->watch_debounce_ms = (uint64_t)n;
  } else if (strcmp(flag, "--log-level") == 0) {
    cfg->log_level = parse_level(v);
    if (cfg->log_level < 0) {
      snprintf(err, errlen, "--log-level wants error, warn, info or debug");
      rc = SPOKE_EINVAL;
    }
  } else {
    snprintf(err, errlen, "unknown option \"%s\"", flag);
    rc = SPOKE_EINVAL;
  }
  return rc;
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

/* The file first (--config, wherever it stands), then every flag in
 * order on top of it: the command line wins. */
int spoke__config_parse(spoke__config_t *cfg, int argc, char **argv,
                        char *err, size_t errlen) {
  char flag[64];
  const char *v;
  int rc;

  for (int i = 1; i < argc; i++) {
    const char *arg = argv[i];
    if (strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0) {
      spoke__config_usage(stdout);
      return 1;
    }
    if (strcmp(arg, "--version") == 0) {
      printf("spoke %s (plugin SDK ABI %d.%d)\n", SPOKE_BUILD_VERSION,
             SPOKE_ABI_MAJOR, SPOKE_ABI_MINOR);
      return 1;
    }
    if ((rc = next_flag(argc, argv, &i, flag, sizeof(flag), &v, err,
                        errlen)) != 0)
      return rc;
    if (strcmp(flag, "--config") == 0) {
      if (cfg->config_path != NULL) {
        snprintf(err, errlen, "--config given twice");
        return SPOKE_EINVAL;
      }
      cfg->config_path = v;
    }
  }
  if (cfg->config_path != NULL &&
      (rc = spoke__config_load_file(cfg, cfg->config_path, err, errlen)) != 0)
    return rc;
  for (int i = 1; i < argc; i++) {
    next_flag(argc, argv, &i, flag, sizeof(flag), &v, err, errlen);
    if (strcmp(flag, "--config") == 0)
      continue;
    if ((rc = spoke__config_set(cfg, flag, v, err, errlen)) != 0)
      return rc;
  }
  return 0;
}
