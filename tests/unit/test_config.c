/* test_config.c: defaults and command-line parsing (core/config.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "ctl/ctl.h"

static spoke__config_t cfg;
static char err[256];

/* Parses the NULL-terminated list of arguments after the program name
 * into cfg (which starts from the defaults). */
static int parse(const char *first, ...) {
  char *argv[32];
  int argc = 0;
  va_list ap;

  spoke__config_defaults(&cfg);
  err[0] = '\0';
  argv[argc++] = "spoke";
  va_start(ap, first);
  for (const char *a = first; a != NULL; a = va_arg(ap, const char *)) {
    assert_true(argc < 31);
    argv[argc++] = (char *)a;
  }
  va_end(ap);
  argv[argc] = NULL;
  return spoke__config_parse(&cfg, argc, argv, err, sizeof(err));
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

static void equals_form(void **state) {
  (void)state;
  assert_int_equal(parse("--listen=127.0.0.2:81", "--plugins=/srv/p",
                         "--loops=3", "--log-level=debug",
                         "--runtime-dir=/run/spoke", NULL),
                   0);
  assert_string_equal(cfg.listen_host, "127.0.0.2");
  assert_int_equal(cfg.listen_port, 81);
  assert_string_equal(cfg.plugins_dir, "/srv/p");
  assert_string_equal(cfg.runtime_dir, "/run/spoke");
  assert_int_equal(cfg.loops, 3);
  assert_int_equal(cfg.log_level, SPOKE_LOG_DEBUG);

  /* The value may itself contain '='; an empty value is a value. */
  assert_int_equal(parse("--plugins=a=b", NULL), 0);
  assert_string_equal(cfg.plugins_dir, "a=b");
  assert_int_equal(parse("--plugins=", NULL), 0);
  assert_string_equal(cfg.plugins_dir, "");

  /* Separate-argument form for the same options. */
  assert_int_equal(parse("--plugins", "/x", "--loops", "2", "--log-level",
                         "error", NULL),
                   0);
  assert_string_equal(cfg.plugins_dir, "/x");
  assert_int_equal(cfg.loops, 2);
  assert_int_equal(cfg.log_level, SPOKE_LOG_ERROR);
}

static void sizes(void **state) {
  (void)state;
  assert_int_equal(parse("--max-body", "512", NULL), 0);
  assert_int_equal(cfg.max_body, 512);
  assert_int_equal(parse("--max-body", "64k", NULL), 0);
  assert_int_equal(cfg.max_body, 64 * 1024);
  assert_int_equal(parse("--max-body=2K", NULL), 0);
  assert_int_equal(cfg.max_body, 2 * 1024);
  assert_int_equal(parse("--max-body", "3m", NULL), 0);
  assert_int_equal(cfg.max_body, 3 * 1024 * 1024);
  assert_int_equal(parse("--max-body", "1g", NULL), 0);
  assert_int_equal(cfg.max_body, 1024ULL * 1024 * 1024);
  assert_int_equal(parse("--max-body", "0", NULL), 0);
  assert_int_equal(cfg.max_body, 0);
  assert_int_equal(parse("--max-header", "32k", NULL), 0);
  assert_int_equal(cfg.max_header, 32 * 1024);
  assert_int_equal(parse("--max-queue", "0", NULL), 0);
  assert_int_equal(cfg.max_queue, 0);
  assert_int_equal(parse("--shutdown-timeout", "5", NULL), 0);
  assert_int_equal(cfg.shutdown_timeout_ms, 5000);

  assert_int_equal(parse("--max-body", "10x", NULL), SPOKE_EINVAL);
  assert_non_null(strstr(err, "--max-body"));
  assert_int_equal(parse("--max-body", "k", NULL), SPOKE_EINVAL);
  assert_int_equal(parse("--max-body", "-5", NULL), SPOKE_EINVAL);
  assert_int_equal(parse("--max-body", "1.5m", NULL), SPOKE_EINVAL);
  assert_int_equal(parse("--max-body", "1kk", NULL), SPOKE_EINVAL);
  assert_int_equal(parse("--max-body", "", NULL), SPOKE_EINVAL);
  assert_int_equal(parse("--max-body", "2048g", NULL), SPOKE_EINVAL);
  assert_int_equal(parse("--max-header", "255", NULL), SPOKE_EINVAL);
  assert_int_equal(parse("--shutdown-timeout", "86401", NULL), SPOKE_EINVAL);
}

static void size_overflow(void **state) {
  (void)state;
  /* 2^54 + 1 kibibytes is 2^64 + 1024 bytes: it must be refused as too
   * large, not wrap around to 1024. */
  assert_int_equal(parse("--max-body", "18014398509481985k", NULL),
                   SPOKE_EINVAL);
  assert_int_equal(cfg.max_body, 1024 * 1024);
  assert_int_equal(parse("--max-body", "99999999999999999999", NULL),
                   SPOKE_EINVAL);
}

static void ranges(void **state) {
  (void)state;
  assert_int_equal(parse("--workers", "0", NULL), SPOKE_EINVAL);
  assert_non_null(strstr(err, "--workers"));
  assert_non_null(strstr(err, "1024"));
  assert_int_equal(cfg.workers, 16);
  assert_int_equal(parse("--workers", "1025", NULL), SPOKE_EINVAL);
  assert_int_equal(parse("--workers", "1", NULL), 0);
  assert_int_equal(cfg.workers, 1);
  assert_int_equal(parse("--workers", "1024", NULL), 0);
  assert_int_equal(cfg.workers, 1024);
  assert_int_equal(parse("--workers", "many", NULL), SPOKE_EINVAL);
  assert_int_equal(parse("--loops", "0", NULL), SPOKE_EINVAL);
  assert_int_equal(parse("--loops", "1025", NULL), SPOKE_EINVAL);
  assert_int_equal(parse("--log-level", "verbose", NULL), SPOKE_EINVAL);
  assert_non_null(strstr(err, "--log-level"));
  assert_int_equal(parse("--log-level", "warn", NULL), 0);
  assert_int_equal(cfg.log_level, SPOKE_LOG_WARN);
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
    cmocka_unit_test(equals_form),
    cmocka_unit_test(sizes),
    cmocka_unit_test(size_overflow),
    cmocka_unit_test(ranges),
    cmocka_unit_test(unknown_and_missing),
    cmocka_unit_test(help_and_version),
    cmocka_unit_test(config_file),
    cmocka_unit_test(config_file_errors),
  };
  return cmocka_run_group_tests_name("config", tests, NULL, NULL);
}
