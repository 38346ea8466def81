/* rollargs.c: the command line of `spoke rollout`, its --to lists and its
 * token file.
 *
 *   spoke rollout FILE.so --to HOST:PORT[,HOST:PORT...] --token-file FILE
 *                 [--bake S] [--max-5xx-rate R] [--max-p99 MS]
 *                 [--ready-timeout S] [--dry-run]
 *
 * Every option takes "--opt VALUE" or "--opt=VALUE". --to adds to the
 * row in the order given, and may come more than once; "--to @FILE"
 * reads the addresses from FILE, a line each (commas allowed too),
 * blank lines skipped and '#' starting a comment. An address is an admin
 * listener's HOST:PORT or [IPV6]:PORT; one given twice is a mistake (it
 * would be rolled out to twice). Numbers are checked for their range
 * here, so that the run itself never meets a nonsense limit.
 *
 * The token is the first line of its file, trailing blanks and the line
 * end trimmed. It goes into an Authorization header, so it may hold no
 * control byte, and it may not be empty.
 *
 * Errors are SPOKE_EINVAL with a one-line reason in ERR (a usage error
 * to the command). Reads files; no network, no clock.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/rollout.h"

#define TO_FILE_MAX (1u << 20)

static int host_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
         (c >= '0' && c <= '9') || c == '.' || c == '-' || c == '_';
}

int spoke__roll_parse_addr(const char *s, size_t len, spoke__roll_addr_t *out) {
  const char *host = s, *port;
  size_t hlen, plen;
  unsigned char v6[16];
  long n = 0;

  memset(out, 0, sizeof(*out));
  if (len == 0 || len >= sizeof(out->text))
    return SPOKE_EINVAL;
  if (s[0] == '[') {
    const char *close = memchr(s, ']', len);
    if (close == NULL || close + 1 >= s + len || close[1] != ':')
      return SPOKE_EINVAL;
    host = s + 1;
    hlen = (size_t)(close - host);
    port = close + 2;
  } else {
    const char *colon = memchr(s, ':', len);
    if (colon == NULL || memchr(colon + 1, ':', len - (size_t)(colon - s) - 1))
      return SPOKE_EINVAL; /* none, or an IPv6 address without brackets */
    hlen = (size_t)(colon - s);
    port = colon + 1;
    for (size_t i = 0; i < hlen; i++)
      if (!host_char(s[i]))
        return SPOKE_EINVAL;
  }
  plen = len - (size_t)(port - s);
  if (hlen == 0 || hlen >= sizeof(out->host) || plen == 0 || plen > 5)
    return SPOKE_EINVAL;
  for (size_t i = 0; i < plen; i++) {
    if (port[i] < '0' || port[i] > '9')
      return SPOKE_EINVAL;
    n = n * 10 + (port[i] - '0');
  }
  if (n < 1 || n > 65535)
    return SPOKE_EINVAL;
  memcpy(out->host, host, hlen);
  if (s[0] == '[' && inet_pton(AF_INET6, out->host, v6) != 1)
    return SPOKE_EINVAL;
  snprintf(out->port, sizeof(out->port), "%ld", n);
  memcpy(out->text, s, len);
  return 0;
}

/* S[0..e) without the blanks around it. */
static void trim(const char **s, const char **e) {
  while (*s < *e && (**s == ' ' || **s == '\t' || **s == '\r'))
    (*s)++;
  while (*e > *s && ((*e)[-1] == ' ' || (*e)[-1] == '\t' || (*e)[-1] == '\r'))
    (*e)--;
}

/* The comma list S[0..len) (WHERE names it in errors) onto O->to. */
static int add_list(spoke__roll_opts_t *o, const char *s, size_t len,
                    const char *where, char *err, size_t errlen) {
  const char *end = s + len;
  while (s < end) {
    const char *comma = memchr(s, ',', (size_t)(end - s)), *e;
    spoke__roll_addr_t a;
    e = comma ? comma : end;
    trim(&s, &e);
    if (spoke__roll_parse_addr(s, (size_t)(e - s), &a) != 0) {
      const char *colon = memchr(s, ':', (size_t)(e - s));
      int v6 = s[0] != '[' && colon != NULL &&
               memchr(colon + 1, ':', (size_t)(e - colon - 1)) != NULL;
      snprintf(err, errlen,
               "%s: \"%.*s\" is not an admin address (HOST:PORT or "
               "[IPV6]:PORT, port 1-65535%s)",
               where, (int)(e - s), s,
               v6 ? "; an IPv6 address goes in brackets" : "");
      return SPOKE_EINVAL;
    }
    for (size_t i = 0; i < o->nto; i++) {
      if (strcmp(o->to[i].host, a.host) == 0 &&
          strcmp(o->to[i].port, a.port) == 0) {
        snprintf(err, errlen, "%s: %s is given twice", where, a.text);
        return SPOKE_EINVAL;
      }
    }
    if (spoke__array_grow(&o->to, &o->to_cap, o->nto, sizeof(*o->to)) != 0) {
      snprintf(err, errlen, "out of memory");
      return SPOKE_ENOMEM;
    }
    o->to[o->nto++] = a;
    s = comma ? comma + 1 : end;
    if (comma != NULL && s == end) {
      snprintf(err, errlen, "%s: an empty address after the last comma",
               where);
      return SPOKE_EINVAL;
    }
  }
  return 0;
}

/* All of PATH (at most TO_FILE_MAX bytes) into B. */
static int slurp(const char *path, spoke__buf_t *b, char *err, size_t errlen) {
  FILE *f = fopen(path, "r");
  char chunk[4096];
  size_t n;
  if (f == NULL) {
    snprintf(err, errlen, "cannot read %s: %s", path, strerror(errno));
    return SPOKE_EINVAL;
  }
  while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0) {
    if (b->len + n > TO_FILE_MAX || spoke__buf_append(b, chunk, n) != 0) {
      snprintf(err, errlen, "%s: too large", path);
      fclose(f);
      return SPOKE_EINVAL;
    }
  }
  if (ferror(f)) {
    snprintf(err, errlen, "cannot read %s: %s", path, strerror(errno));
    fclose(f);
    return SPOKE_EINVAL;
  }
  fclose(f);
  return 0;
}

int spoke__roll_add_to(spoke__roll_opts_t *o, const char *value, char *err,
                       size_t errlen) {
  spoke__buf_t b = {0};
  char where[4200];
  size_t before = o->nto, line_no = 0;
  const char *p, *end;
  int rc = 0;

  if (value[0] != '@')
    return add_list(o, value, strlen(value), "--to", err, errlen);
  if ((rc = slurp(value + 1, &b, err, errlen)) != 0)
    return rc;
  p = b.data ? b.data : "";
  end = p + b.len;
  while (p < end && rc == 0) {
    const char *nl = memchr(p, '\n', (size_t)(end - p));
    const char *e = nl ? nl : end, *hash = memchr(p, '#', (size_t)(e - p));
    const char *s = p;
    line_no++;
    if (hash != NULL)
      e = hash;
    trim(&s, &e);
    snprintf(where, sizeof(where), "--to %s, line %zu", value, line_no);
    if (e > s)
      rc = add_list(o, s, (size_t)(e - s), where, err, errlen);
    p = nl ? nl + 1 : end;
  }
  spoke__buf_free(&b);
  if (rc == 0 && o->nto == before) {
    snprintf(err, errlen, "--to %s: no address in the file", value);
    rc = SPOKE_EINVAL;
  }
  return rc;
}

/* VALUE as a number in [LO, HI] into *OUT. */
static int number(const char *flag, const char *value, double lo, double hi,
                  double *out, char *err, size_t errlen) {
  char *end;
  double v = strtod(value, &end);
  if (end == value || *end != '\0' || !isfinite(v) || v < lo || v > hi) {
    snprintf(err, errlen, "%s wants a number from %g to %g, got \"%s\"", flag,
             lo, hi, value);
    return SPOKE_EINVAL;
  }
  *out = v;
  return 0;
}

/* "--flag VALUE" or "--flag=VALUE" at ARGV[*i]: the value, or NULL. */
static const char *flag_value(const char *flag, int argc, char **argv,
                              int *i) {
  size_t n = strlen(flag);
  if (strncmp(argv[*i], flag, n) != 0)
    return NULL;
  if (argv[*i][n] == '=')
    return argv[*i] + n + 1;
  if (argv[*i][n] == '\0' && *i + 1 < argc)
    return argv[++*i];
  return NULL;
}

int spoke__roll_parse_args(spoke__roll_opts_t *o, int argc, char **argv,
                           char *err, size_t errlen) {
  memset(o, 0, sizeof(*o));
  o->bake_s = 30;
  o->max_5xx_rate = 0.01;
  o->max_p99_ms = 1000;
  o->ready_s = 30;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i], *v;
    int rc = 0;
    if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0)
      return 1;
    if (strcmp(a, "--dry-run") == 0) {
      o->dry_run = 1;
    } else if ((v = flag_value("--to", argc, argv, &i)) != NULL) {
      rc = spoke__roll_add_to(o, v, err, errlen);
    } else if ((v = flag_value("--token-file", argc, argv, &i)) != NULL) {
      o->token_file = v;
    } else if ((v = flag_value("--bake", argc, argv, &i)) != NULL) {
      rc = number("--bake", v, 0, 86400, &o->bake_s, err, errlen);
    } else if ((v = flag_value("--max-5xx-rate", argc, argv, &i)) != NULL) {
      rc = number("--max-5xx-rate", v, 0, 1, &o->max_5xx_rate, err, errlen);
    } else if ((v = flag_value("--max-p99", argc, argv, &i)) != NULL) {
      rc = number("--max-p99", v, 0.001, 1e9, &o->max_p99_ms, err, errlen);
    } else if ((v = flag_value("--ready-timeout", argc, argv, &i)) != NULL) {
      rc = number("--ready-timeout", v, 0.1, 86400, &o->ready_s, err,
                  errlen);
    } else if (a[0] != '-' && o->file == NULL) {
      o->file = a;
    } else if (a[0] != '-') {
      snprintf(err, errlen, "one plugin file at a time (got %s and %s)",
               o->file, a);
      rc = SPOKE_EINVAL;
    } else {
      snprintf(err, errlen, "unknown option or missing value: %s", a);
      rc = SPOKE_EINVAL;
    }
    if (rc != 0)
      return SPOKE_EINVAL;
  }
  if (o->file == NULL)
    snprintf(err, errlen, "no plugin file given");
  else if (o->nto == 0)
    snprintf(err, errlen, "no instance given (--to HOST:PORT, the admin "
                          "listeners)");
  else if (o->token_file == NULL)
    snprintf(err, errlen, "no --token-file given (the admin token)");
  else
    return 0;
  return SPOKE_EINVAL;
}

void spoke__roll_opts_free(spoke__roll_opts_t *o) {
  free(o->to);
  o->to = NULL;
  o->nto = o->to_cap = 0;
}

int spoke__roll_read_token(const char *path, char *out, size_t cap,
                           char *err, size_t errlen) {
  FILE *f = fopen(path, "r");
  size_t n;

  out[0] = '\0';
  if (f == NULL) {
    snprintf(err, errlen, "--token-file %s: %s", path, strerror(errno));
    return SPOKE_EINVAL;
  }
  if (fgets(out, (int)cap, f) == NULL)
    out[0] = '\0';
  n = strlen(out);
  if (n == cap - 1 && out[n - 1] != '\n' && !feof(f)) {
    fclose(f);
    snprintf(err, errlen, "--token-file %s: the first line is too long",
             path);
    out[0] = '\0';
    return SPOKE_EINVAL;
  }
  fclose(f);
  while (n > 0 && (out[n - 1] == '\n' || out[n - 1] == '\r' ||
                   out[n - 1] == ' ' || out[n - 1] == '\t'))
    out[--n] = '\0';
  for (size_t i = 0; i < n; i++) {
    if ((unsigned char)out[i] < 0x20 || out[i] == 0x7f) {
      snprintf(err, errlen, "--token-file %s: the token holds a control "
                            "character", path);
      out[0] = '\0';
      return SPOKE_EINVAL;
    }
  }
  if (n == 0) {
    snprintf(err, errlen, "--token-file %s: the first line is empty", path);
    return SPOKE_EINVAL;
  }
  return 0;
}
