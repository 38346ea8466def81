/* test_config.c: the settings (core/ctl/config.c) and their option table.
 *
 * Most cases share one shape (arguments in; a return code and one field,
 * or a piece of the message, out) and live in the `cases` table. The
 * table_* tests walk the option table itself (ctl/options.h) so that a
 * new option is held to the same rules without a new test: help text, a
 * default that passes its own parser and bounds, both ends of its range
 * accepted, one past either end refused with a message naming the flag.
 * Cases of other shapes (host:port, --help output, the config file)
 * keep their own functions. */
#include <setjmp.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "ctl/ctl.h"
#include "ctl/options.h"

static spoke__config_t cfg;
static char err[256];

/* Parses ARGS (NULL-terminated; after the program name) into cfg, which
 * starts from the defaults. */
static int parse_argv(const char *const *args) {
  char *argv[32];
  int argc = 0;

  spoke__config_defaults(&cfg);
  err[0] = '\0';
  argv[argc++] = "spoke";
  for (; *args != NULL; args++) {
    assert_true(argc < 31);
    argv[argc++] = (char *)*args;
  }
  argv[argc] = NULL;
  return spoke__config_parse(&cfg, argc, argv, err, sizeof(err));
}

/* The same with what it prints (--help, --version) thrown away. */
static int parse_quiet(const char *const *args) {
  int saved, null, rc;
  fflush(stdout);
  saved = dup(STDOUT_FILENO);
  null = open("/dev/null", O_WRONLY);
  assert_true(saved >= 0 && null >= 0);
  dup2(null, STDOUT_FILENO);
  close(null);
  rc = parse_argv(args);
  fflush(stdout);
  dup2(saved, STDOUT_FILENO);
  close(saved);
  return rc;
}

/* parse("--flag", "value", ..., NULL). */
static int parse(const char *first, ...) {
  const char *args[32];
  int n = 0;
  va_list ap;

  va_start(ap, first);
  for (const char *a = first; a != NULL; a = va_arg(ap, const char *)) {
    assert_true(n < 31);
    args[n++] = a;
  }
  va_end(ap);
  args[n] = NULL;
  return parse_argv(args);
}

static void defaults(void **state) {
  (void)state;
  memset(&cfg, 0x5a, sizeof(cfg));
  spoke__config_defaults(&cfg);
  assert_string_equal(cfg.listen_host, "127.0.0.1");
  assert_int_equal(cfg.listen_port, 8080);
  assert_string_equal(cfg.plugins_dir, "plugins");
  assert_null(cfg.runtime_dir);
  assert_true(cfg.loops >= 1);
  assert_int_equal(cfg.workers, 16);
  assert_int_equal(cfg.max_queue, 1024);
  assert_int_equal(cfg.max_body, 1024 * 1024);
  assert_int_equal(cfg.max_header, 16 * 1024);
  assert_int_equal(cfg.shutdown_timeout_ms, 30000);
  assert_int_equal(cfg.log_level, SPOKE_LOG_INFO);

  /* No arguments: the defaults stand. */
  assert_int_equal(parse(NULL), 0);
  assert_int_equal(cfg.listen_port, 8080);
}

static void listen_forms(void **state) {
  (void)state;
  assert_int_equal(parse("--listen", "10.1.2.3:9000", NULL), 0);
  assert_string_equal(cfg.listen_host, "10.1.2.3");
  assert_int_equal(cfg.listen_port, 9000);

  assert_int_equal(parse("--listen", "localhost:0", NULL), 0);
  assert_string_equal(cfg.listen_host, "localhost");
  assert_int_equal(cfg.listen_port, 0);

  assert_int_equal(parse("--listen", "[::1]:80", NULL), 0);
  assert_string_equal(cfg.listen_host, "::1");
  assert_int_equal(cfg.listen_port, 80);

  assert_int_equal(parse("--listen", "[::]:65535", NULL), 0);
  assert_string_equal(cfg.listen_host, "::");
  assert_int_equal(cfg.listen_port, 65535);

  /* No host: every IPv4 address. */
  assert_int_equal(parse("--listen", ":8081", NULL), 0);
  assert_string_equal(cfg.listen_host, "0.0.0.0");
  assert_int_equal(cfg.listen_port, 8081);

  /* "--flag=value" form, with other options on the same line. */
  assert_int_equal(parse("--listen=127.0.0.2:81", "--plugins=/srv/p",
                         "--loops=3", "--log-level=debug", NULL),
                   0);
  assert_string_equal(cfg.listen_host, "127.0.0.2");
  assert_int_equal(cfg.listen_port, 81);
  assert_string_equal(cfg.plugins_dir, "/srv/p");
  assert_int_equal(cfg.loops, 3);
  assert_int_equal(cfg.log_level, SPOKE_LOG_DEBUG);

  /* The last --listen wins. */
  assert_int_equal(parse("--listen", "a:1", "--listen", "b:2", NULL), 0);
  assert_string_equal(cfg.listen_host, "b");
  assert_int_equal(cfg.listen_port, 2);
}

static void listen_bad(void **state) {
  static const char *bad[] = {"8080", "host", "host:", "host:abc",
                              "host:65536", "host:-1", "host:80x",
                              "[::1]80", "[::1", "[::1]:", ":", ""};
  char longhost[400];
  (void)state;

  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
    if (parse("--listen", bad[i], NULL) != SPOKE_EINVAL)
      fail_msg("--listen \"%s\" was accepted", bad[i]);
    assert_non_null(strstr(err, "--listen"));
    /* A refused value leaves the default in place. */
    assert_string_equal(cfg.listen_host, "127.0.0.1");
    assert_int_equal(cfg.listen_port, 8080);
  }
  /* A host longer than the buffer is refused, not truncated. */
  memset(longhost, 'h', 300);
  snprintf(longhost + 300, sizeof(longhost) - 300, ":80");
  assert_int_equal(parse("--listen", longhost, NULL), SPOKE_EINVAL);
}

/* ---- one shape, many cases: argv in, rc and one field (or the
 * message) out ---- */

typedef struct {
  const char *args[4];  /* after the program name; NULL-terminated */
  int rc;
  const char *opt;      /* the option whose field is checked, or NULL */
  long long num;        /* rc 0, numeric option: the field's value */
  const char *str;      /* rc 0, path option: the field's value (or NULL) */
  const char *err;      /* rc != 0: a substring of the message, or NULL */
} case_t;

#define KB 1024LL
#define MB (1024LL * 1024)
#define GB (1024LL * 1024 * 1024)

/* The field of OPT is NUM (or the string STR) after the arguments. */
#define ACCEPT(opt, num, ...) {{__VA_ARGS__, NULL}, 0, opt, num, NULL, NULL}
#define ACCEPT_STR(opt, str, ...) {{__VA_ARGS__, NULL}, 0, opt, 0, str, NULL}
/* Refused; the message holds MSG (unless NULL); OPT keeps its default. */
#define REFUSE(opt, msg, ...)                                                \
  {{__VA_ARGS__, NULL}, SPOKE_EINVAL, opt, 0, NULL, msg}
/* Prints something and stops (--help, --version): rc 1. */
#define STOPS(...) {{__VA_ARGS__, NULL}, 1, NULL, 0, NULL, NULL}

static const case_t cases[] = {
  /* Sizes: bytes, or k/m/g (either case), powers of 1024. */
  ACCEPT("max-body", 512, "--max-body", "512"),
  ACCEPT("max-body", 64 * KB, "--max-body", "64k"),
  ACCEPT("max-body", 2 * KB, "--max-body=2K"),
  ACCEPT("max-body", 3 * MB, "--max-body", "3m"),
  ACCEPT("max-body", GB, "--max-body", "1g"),
  ACCEPT("max-body", 1024 * GB, "--max-body", "1024g"),
  ACCEPT("max-body", 0, "--max-body", "0"),
  ACCEPT("max-header", 32 * KB, "--max-header", "32k"),
  ACCEPT("max-request-line", 64, "--max-request-line", "64"),
  REFUSE("max-body", "--max-body", "--max-body", "10x"),
  REFUSE("max-body", "got \"k\"", "--max-body", "k"),
  REFUSE("max-body", NULL, "--max-body", "-5"),
  REFUSE("max-body", NULL, "--max-body", "1.5m"),
  REFUSE("max-body", NULL, "--max-body", "1kk"),
  REFUSE("max-body", NULL, "--max-body", ""),
  REFUSE("max-body", NULL, "--max-body", "1t"),
  REFUSE("max-body", "1024g", "--max-body", "2048g"),
  /* 2^54 + 1 KiB is 2^64 + 1024 bytes: refused, not wrapped to 1024. */
  REFUSE("max-body", NULL, "--max-body", "18014398509481985k"),
  REFUSE("max-body", NULL, "--max-body", "99999999999999999999"),
  REFUSE("max-header", "256", "--max-header", "255"),
  /* Counts: plain numbers, no suffix, no sign. */
  ACCEPT("max-queue", 0, "--max-queue", "0"),
  REFUSE("max-queue", "--max-queue", "--max-queue", "1k"),
  ACCEPT("workers", 1, "--workers", "1"),
  ACCEPT("workers", 1024, "--workers", "1024"),
  REFUSE("workers", "1024", "--workers", "0"),
  REFUSE("workers", "--workers", "--workers", "1025"),
  REFUSE("workers", "\"many\"", "--workers", "many"),
  REFUSE("workers", NULL, "--workers", "+1"),
  ACCEPT("loops", 3, "--loops=3"),
  ACCEPT("loops", 2, "--loops", "2"),
  REFUSE("loops", NULL, "--loops", "0"),
  REFUSE("loops", NULL, "--loops", "1025"),
  ACCEPT("watch-debounce", 60000, "--watch-debounce", "60000"),
  REFUSE("watch-debounce", NULL, "--watch-debounce", "5s"),
  /* Times: seconds, "s" or "ms"; a day at most. */
  ACCEPT("shutdown-timeout", 5000, "--shutdown-timeout", "5"),
  ACCEPT("shutdown-timeout", 5000, "--shutdown-timeout", "5s"),
  ACCEPT("shutdown-timeout", 250, "--shutdown-timeout", "250ms"),
  ACCEPT("handler-timeout", 0, "--handler-timeout", "0"),
  ACCEPT("header-timeout", 86400000, "--header-timeout", "86400"),
  ACCEPT("header-timeout", 86400000, "--header-timeout", "86400000ms"),
  REFUSE("shutdown-timeout", "86400s", "--shutdown-timeout", "86401"),
  REFUSE("body-timeout", NULL, "--body-timeout", "86400001ms"),
  REFUSE("send-timeout", NULL, "--send-timeout", "ms"),
  REFUSE("send-timeout", NULL, "--send-timeout", "1h"),
  REFUSE("send-timeout", NULL, "--send-timeout", "-1"),
  /* Log level: one of four words. */
  ACCEPT("log-level", SPOKE_LOG_DEBUG, "--log-level=debug"),
  ACCEPT("log-level", SPOKE_LOG_ERROR, "--log-level", "error"),
  ACCEPT("log-level", SPOKE_LOG_WARN, "--log-level", "warn"),
  REFUSE("log-level", "--log-level", "--log-level", "verbose"),
  REFUSE("log-level", NULL, "--log-level", "INFO"),
  /* Paths: kept as given; the value may contain '=' or be empty. */
  ACCEPT_STR("plugins", "/srv/p", "--plugins=/srv/p"),
  ACCEPT_STR("plugins", "/x", "--plugins", "/x"),
  ACCEPT_STR("plugins", "a=b", "--plugins=a=b"),
  ACCEPT_STR("plugins", "", "--plugins="),
  ACCEPT_STR("runtime-dir", "/run/spoke", "--runtime-dir=/run/spoke"),
  ACCEPT_STR("access-log", "-", "--access-log", "-"),
  ACCEPT_STR("access-log", "/var/log/spoke", "--access-log",
             "/var/log/spoke"),
  ACCEPT_STR("access-log", NULL, "--access-log", "off"),
  ACCEPT_STR("access-log", NULL, "--access-log="),
  /* Flags are looked up without their dashes, however many. */
  ACCEPT("max-body", 4 * KB, "---max-body", "4k"),
  /* Options without a value are not settings. */
  REFUSE(NULL, "--help", "--help=1"),
  STOPS("--version", "x", "--bogus"),
};

static void table_of_cases(void **state) {
  spoke__config_t def;
  (void)state;
  spoke__config_defaults(&def);
  for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    const case_t *c = &cases[i];
    const spoke__opt_t *o = c->opt ? spoke__config_option(c->opt) : NULL;
    int rc;

    if (c->opt != NULL && o == NULL)
      fail_msg("case %zu: no option \"%s\"", i, c->opt);
    rc = c->rc == 1 ? parse_quiet(c->args) : parse_argv(c->args);
    if (rc != c->rc)
      fail_msg("case %zu (%s %s): rc %d, want %d (%s)", i, c->args[0],
               c->args[1] ? c->args[1] : "", rc, c->rc, err);
    if (c->err != NULL && strstr(err, c->err) == NULL)
      fail_msg("case %zu (%s %s): message \"%s\" lacks \"%s\"", i,
               c->args[0], c->args[1] ? c->args[1] : "", err, c->err);
    if (o == NULL)
      continue;
    if (o->ctype == SPOKE__OPT_STR) {
      const char *got = *(const char **)(void *)((char *)&cfg + o->off);
      const char *want = c->rc == 0 ? c->str
                         : *(const char **)(void *)((char *)&def + o->off);
      if (got != want && (got == NULL || want == NULL ||
                          strcmp(got, want) != 0))
        fail_msg("case %zu: --%s is \"%s\", want \"%s\"", i, o->name,
                 got ? got : "(null)", want ? want : "(null)");
    } else {
      /* A refused value leaves the default in place. */
      long long want = c->rc == 0 ? c->num : spoke__opt_number(&def, o);
      if (spoke__opt_number(&cfg, o) != want)
        fail_msg("case %zu: --%s is %lld, want %lld", i, o->name,
                 spoke__opt_number(&cfg, o), want);
    }
  }
}

/* ---- the option table itself (ctl/options.h) ---- */

static int numeric(const spoke__opt_t *o) {
  return o->kind == SPOKE__OPT_COUNT || o->kind == SPOKE__OPT_SIZE ||
         o->kind == SPOKE__OPT_TIME;
}

/* V as a user writes it for O's kind (TIME in ms, the rest plain). */
static void spell(const spoke__opt_t *o, long long v, char *buf,
                  size_t cap) {
  snprintf(buf, cap, o->kind == SPOKE__OPT_TIME ? "%lldms" : "%lld", v);
}

/* Every option has help, is listed by --help with its default, and its
 * built-in default passes its own parser and bounds. */
static void table_invariants(void **state) {
  size_t n;
  const spoke__opt_t *opts = spoke__config_options(&n);
  char usage[8192], want[128], buf[32];
  FILE *tmp = tmpfile();
  size_t got;
  (void)state;

  assert_non_null(tmp);
  spoke__config_usage(tmp);
  rewind(tmp);
  got = fread(usage, 1, sizeof(usage) - 1, tmp);
  usage[got] = '\0';
  fclose(tmp);
  assert_true(got < sizeof(usage) - 1);

  assert_true(n >= 24);
  for (size_t i = 0; i < n; i++) {
    const spoke__opt_t *o = &opts[i];
    const char *d = o->def_fn ? o->def_fn(buf, sizeof(buf)) : o->def;
    spoke__config_t c;

    assert_non_null(o->name);
    assert_non_null(o->help);
    if (o->help[0] == '\0')
      fail_msg("--%s has no help text", o->name);
    assert_ptr_equal(spoke__config_option(o->name), o); /* names unique */
    snprintf(want, sizeof(want), "  --%s ", o->name);
    if (strstr(usage, want) == NULL)
      fail_msg("--help does not list --%s", o->name);
    if (o->flags & SPOKE__OPT_NOVALUE)
      continue;
    assert_non_null(o->arg);
    if (d == NULL && o->def_note == NULL)
      fail_msg("--%s has neither a default nor a note on it", o->name);
    snprintf(want, sizeof(want), "(default %s",
             o->def != NULL ? o->def : o->def_note);
    if (strstr(usage, want) == NULL)
      fail_msg("--help does not give --%s's default: %s", o->name, want);
    if (numeric(o)) {
      assert_true(o->lo >= 0 && o->lo <= o->hi);
      if (o->ctype == SPOKE__OPT_INT)
        assert_true(o->hi <= INT_MAX);
      else
        assert_true(o->ctype == SPOKE__OPT_SIZE_T ||
                    o->ctype == SPOKE__OPT_U64);
    }
    if (o->def_fn != NULL) /* its buffer is temporary: numbers only */
      assert_true(numeric(o));
    if (d == NULL || (o->flags & SPOKE__OPT_CLI))
      continue;
    /* The default goes through the same door as a user's value... */
    spoke__config_defaults(&c);
    if (spoke__config_set(&c, o->name, d, err, sizeof(err)) != 0)
      fail_msg("--%s's default \"%s\" is refused: %s", o->name, d, err);
    /* ...and is what spoke__config_defaults left there, within bounds. */
    if (numeric(o) || o->kind == SPOKE__OPT_ENUM) {
      spoke__config_t fresh;
      spoke__config_defaults(&fresh);
      assert_int_equal(spoke__opt_number(&fresh, o), spoke__opt_number(&c, o));
      if (numeric(o) && (spoke__opt_number(&fresh, o) < o->lo ||
                         spoke__opt_number(&fresh, o) > o->hi))
        fail_msg("--%s's default is out of its bounds", o->name);
    }
  }
}

/* For every numeric option: both ends of its range are taken as they
 * are; one past either end is refused, naming the flag and the value,
 * on the command line and from the config file's door alike. */
static void table_bounds(void **state) {
  size_t n;
  const spoke__opt_t *opts = spoke__config_options(&n);
  char v[64], got[80];
  (void)state;

  for (size_t i = 0; i < n; i++) {
    const spoke__opt_t *o = &opts[i];
    long long ends[2] = {o->lo, o->hi}, past[2] = {o->lo - 1, o->hi + 1};
    if (!numeric(o))
      continue;
    for (int e = 0; e < 2; e++) {
      const char *args[] = {NULL, NULL, NULL};
      char flag[64];
      snprintf(flag, sizeof(flag), "--%s", o->name);
      args[0] = flag;
      args[1] = v;

      spell(o, ends[e], v, sizeof(v));
      if (parse_argv(args) != 0)
        fail_msg("%s %s (an end of its range) refused: %s", flag, v, err);
      assert_int_equal(spoke__opt_number(&cfg, o), ends[e]);

      if (past[e] < 0)
        continue; /* "-1" is not a number at all; covered by the cases */
      spell(o, past[e], v, sizeof(v));
      snprintf(got, sizeof(got), "got \"%s\"", v);
      if (parse_argv(args) != SPOKE_EINVAL)
        fail_msg("%s %s (past its range) accepted", flag, v);
      if (strstr(err, flag) == NULL || strstr(err, got) == NULL ||
          strstr(err, " from ") == NULL)
        fail_msg("%s %s: message \"%s\" lacks the flag, value or range",
                 flag, v, err);
      spoke__config_defaults(&cfg);
      assert_int_equal(spoke__config_set(&cfg, o->name, v, err, sizeof(err)),
                       SPOKE_EINVAL);
      assert_non_null(strstr(err, flag));
    }
  }
}

/* Names that are not settings, through spoke__config_set (the config
 * file's door). */
static void set_refuses(void **state) {
  static const char *bad[] = {"colour", "config", "help", "version", "",
                              "max_body"};
  (void)state;
  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
    spoke__config_defaults(&cfg);
    err[0] = '\0';
    if (spoke__config_set(&cfg, bad[i], "1", err, sizeof(err)) !=
        SPOKE_EINVAL)
      fail_msg("spoke__config_set(\"%s\") accepted", bad[i]);
    assert_true(err[0] != '\0');
  }
  assert_null(cfg.config_path);
}

static void unknown_and_missing(void **state) {
  (void)state;
  assert_int_equal(parse("--bogus", "1", NULL), SPOKE_EINVAL);
  assert_non_null(strstr(err, "--bogus"));
  assert_int_equal(parse("--bogus=1", NULL), SPOKE_EINVAL);
  assert_non_null(strstr(err, "--bogus"));
  assert_null(strstr(err, "=1"));
  assert_int_equal(parse("plugins", NULL), SPOKE_EINVAL);
  assert_non_null(strstr(err, "plugins"));
  assert_int_equal(parse("-x", NULL), SPOKE_EINVAL);

  /* Missing values. */
  assert_int_equal(parse("--listen", NULL), SPOKE_EINVAL);
  assert_non_null(strstr(err, "--listen"));
  assert_non_null(strstr(err, "value"));
  assert_int_equal(parse("--plugins", "/p", "--workers", NULL), SPOKE_EINVAL);
  assert_non_null(strstr(err, "--workers"));
  /* The first error stops parsing: later options are not applied. */
  assert_int_equal(parse("--workers", "0", "--loops", "7", NULL),
                   SPOKE_EINVAL);
  assert_int_equal(cfg.loops == 7, 0);
}

/* Runs parse() on the arguments with stdout captured; returns parse's
 * result and leaves what was printed in OUT. */
#define PARSE_CAPTURED(out, ...) parse_captured((out), sizeof(out), __VA_ARGS__)
static int parse_captured(char *out, size_t outlen, const char *first, ...) {
  FILE *tmp = tmpfile();
  int saved, rc;
  size_t n;
  char *argv[8];
  const char *a;
  va_list ap;
  int argc = 0;

  assert_non_null(tmp);
  va_start(ap, first);
  for (a = first; a != NULL && argc < 7; a = va_arg(ap, const char *))
    argv[argc++] = (char *)a;
  va_end(ap);
  argv[argc] = NULL;

  fflush(stdout);
  saved = dup(STDOUT_FILENO);
  assert_true(saved >= 0);
  assert_true(dup2(fileno(tmp), STDOUT_FILENO) >= 0);
  switch (argc) {
    case 1: rc = parse(argv[0], NULL); break;
    case 2: rc = parse(argv[0], argv[1], NULL); break;
    case 3: rc = parse(argv[0], argv[1], argv[2], NULL); break;
    default: rc = parse(argv[0], argv[1], argv[2], argv[3], NULL); break;
  }
  fflush(stdout);
  dup2(saved, STDOUT_FILENO);
  close(saved);
  rewind(tmp);
  n = fread(out, 1, outlen - 1, tmp);
  out[n] = '\0';
  fclose(tmp);
  return rc;
}

static void help_and_version(void **state) {
  char out[4096];
  char want[64];
  (void)state;

  assert_int_equal(PARSE_CAPTURED(out, "--help", NULL), 1);
  assert_true(strncmp(out, "usage: spoke", 12) == 0);
  assert_non_null(strstr(out, "--listen"));
  assert_non_null(strstr(out, "--max-body"));
  assert_int_equal(PARSE_CAPTURED(out, "-h", NULL), 1);
  assert_true(strncmp(out, "usage: spoke", 12) == 0);

  assert_int_equal(PARSE_CAPTURED(out, "--version", NULL), 1);
  snprintf(want, sizeof(want), "spoke %s (plugin SDK ABI %d.%d)\n",
           SPOKE_BUILD_VERSION, SPOKE_ABI_MAJOR, SPOKE_ABI_MINOR);
  assert_string_equal(out, want);

  /* Anywhere on the line, and before a later bad option. */
  assert_int_equal(
      PARSE_CAPTURED(out, "--listen", ":1", "--version", "--bogus", NULL), 1);
  assert_string_equal(out, want);
  assert_int_equal(PARSE_CAPTURED(out, "--workers=2", "--help", NULL), 1);
  assert_true(strncmp(out, "usage: spoke", 12) == 0);
}

/* ---- --config FILE (core/conffile.c) ---- */

/* Writes TEXT to a fresh temporary file; its path goes to PATH. */
static void write_conf(char *path, size_t cap, const char *text) {
  int fd;
  snprintf(path, cap, "/tmp/spoke-test-conf-XXXXXX");
  fd = mkstemp(path);
  assert_true(fd >= 0);
  assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
  close(fd);
}

static void config_file(void **state) {
  char path[64];
  (void)state;
  write_conf(path, sizeof(path),
             "# settings, as the flags without --\n"
             "listen = 0.0.0.0:9090\n"
             "  loops=5  \n"
             "; another comment\n"
             "max-body = 4m\n"
             "admin = 127.0.0.1:9901\n"
             "access-log = -\n"
             "\n"
             "[plugin static]\n"
             "root = /srv/www\n"
             "prefix = /files\n"
             "prefix = /assets\n"
             "[ plugin  other ]\n"
             "root = /elsewhere\n");
  /* The command line wins, before or after --config. */
  assert_int_equal(parse("--loops", "3", "--config", path, NULL), 0);
  assert_string_equal(cfg.listen_host, "0.0.0.0");
  assert_int_equal(cfg.listen_port, 9090);
  assert_int_equal(cfg.loops, 3);
  assert_int_equal(cfg.max_body, 4 * 1024 * 1024);
  assert_int_equal(cfg.admin_on, 1);
  assert_string_equal(cfg.admin_host, "127.0.0.1");
  assert_int_equal(cfg.admin_port, 9901);
  assert_string_equal(cfg.access_log, "-");
  /* Plugin sections: by plugin name, the last repeat wins. */
  assert_string_equal(spoke__conffile_lookup("static", "root"), "/srv/www");
  assert_string_equal(spoke__conffile_lookup("static", "prefix"), "/assets");
  assert_string_equal(spoke__conffile_lookup("other", "root"), "/elsewhere");
  assert_null(spoke__conffile_lookup("static", "index"));
  assert_null(spoke__conffile_lookup("nobody", "root"));
  spoke__conffile_free(&cfg.conf);
  assert_null(spoke__conffile_lookup("static", "root"));

  assert_int_equal(parse("--config", path, "--listen", ":7000", NULL), 0);
  assert_int_equal(cfg.loops, 5);
  assert_int_equal(cfg.listen_port, 7000);
  spoke__conffile_free(&cfg.conf);
  unlink(path);
}

/* Every mistake names the file and the line. */
static void config_file_errors(void **state) {
  static const struct {
    const char *text, *want;
  } bad[] = {
    {"loops = 2\nno equals sign\n", ":2: expected KEY = VALUE"},
    {"\n\nmax-body = lots\n", ":3: --max-body wants a number"},
    {"colour = blue\n", ":1: unknown option \"--colour\""},
    {"[static]\nroot = /x\n", ":1: a section must read [plugin NAME]"},
    {"[plugin]\n", ":1: a section must read [plugin NAME]"},
    {" = 3\n", ":1: a key is missing"},
    {"config = other.conf\n", ":1: a config file cannot name another"},
  };
  char path[64];
  (void)state;
  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
    write_conf(path, sizeof(path), bad[i].text);
    assert_int_equal(parse("--config", path, NULL), SPOKE_EINVAL);
    if (strncmp(err, path, strlen(path)) != 0 ||
        strstr(err, bad[i].want) == NULL)
      fail_msg("config \"%s\": got \"%s\", want \"%s\" after the path",
               bad[i].text, err, bad[i].want);
    unlink(path);
  }
  assert_int_equal(parse("--config", "/nonexistent/spoke.conf", NULL),
                   SPOKE_EINVAL);
  assert_non_null(strstr(err, "No such file"));
  assert_int_equal(parse("--config", "a", "--config", "b", NULL),
                   SPOKE_EINVAL);
}

int main(void) {
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(defaults),
    cmocka_unit_test(listen_forms),
    cmocka_unit_test(listen_bad),
    cmocka_unit_test(table_of_cases),
    cmocka_unit_test(table_invariants),
    cmocka_unit_test(table_bounds),
    cmocka_unit_test(set_refuses),
    cmocka_unit_test(unknown_and_missing),
    cmocka_unit_test(help_and_version),
    cmocka_unit_test(config_file),
    cmocka_unit_test(config_file_errors),
  };
  return cmocka_run_group_tests_name("config", tests, NULL, NULL);
}
