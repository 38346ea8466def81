/* test_crash.c: the crash report (core/ctl/crash.c) and the per-thread
 * preparation behind it (core/base/altstack.c).
 *
 * The line and the record are built from hand-filled call records over a
 * hand-made instance (no .so). The handler itself runs in forked
 * children that crash for real, once by a fault and once by a sent
 * signal: the parent reads the line from the child's stderr and the
 * record from the report fd, and checks that the child died by the
 * signal. Those two are skipped in sanitizer builds, where the sanitizer
 * keeps the fatal signals.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <pthread.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "ctl/ctl.h"


static int noop(spoke_request_t *req) {
  (void)req;
  return 0;
}

static const spoke_route_t routes[] = {
  {"GET", "/bad/crash", SPOKE_SYNC, noop},
  {"POST", "/bad/:id", SPOKE_ASYNC, noop},
};

static spoke_plugin_t desc = {
  .name = "bad", .version = "1.0.0", .routes = routes, .nroutes = 2,
};

static spoke__instance_t inst;

static void make_instance(void) {
  memset(&inst, 0, sizeof(inst));
  inst.desc = &desc;
  inst.name = "bad";
  inst.version = "1.0.0";
  inst.generation = 4;
}

static void set_call(spoke__call_t *c, const spoke__instance_t *in,
                     const char *what, uint32_t route) {
  memset(c, 0, sizeof(*c));
  atomic_store(&c->inst, in);
  atomic_store(&c->what, what);
  atomic_store(&c->route, route);
  atomic_store(&c->depth, in != NULL);
}

static const char *format(int signo, const spoke__instance_t *in,
                          const char *what, uint32_t route,
                          const char *thread) {
  static char buf[512];
  spoke__call_t c;
  size_t n;
  set_call(&c, in, what, route);
  n = spoke__crash_format(buf, sizeof(buf), signo, &c, thread);
  assert_int_equal(n, strlen(buf));
  return buf;
}

static void handler_lines(void **st) {
  (void)st;
  make_instance();
  assert_string_equal(
      format(SIGSEGV, &inst, "handler", 0, "spoke-worker-3"),
      "SIGSEGV in plugin bad 1.0.0 (generation 4, GET /bad/crash, sync) "
      "on thread spoke-worker-3; the server stops (core dump as usual)");
  assert_string_equal(
      format(SIGABRT, &inst, "handler", 1, "spoke-loop-0"),
      "SIGABRT in plugin bad 1.0.0 (generation 4, POST /bad/:id, async) "
      "on thread spoke-loop-0; the server stops (core dump as usual)");
}

static void callback_and_lifecycle_lines(void **st) {
  (void)st;
  make_instance();
  assert_string_equal(
      format(SIGBUS, &inst, "abort callback", 1, "spoke-loop-1"),
      "SIGBUS in plugin bad 1.0.0 (generation 4, POST /bad/:id, abort "
      "callback) on thread spoke-loop-1; the server stops (core dump as "
      "usual)");
  assert_string_equal(
      format(SIGFPE, &inst, "init", SPOKE__CALL_NO_ROUTE, "control"),
      "SIGFPE in plugin bad 1.0.0 (generation 4, init) on thread control; "
      "the server stops (core dump as usual)");
  /* A route index the table does not have: said as no route. */
  assert_string_equal(
      format(SIGILL, &inst, "fini", 7, "control"),
      "SIGILL in plugin bad 1.0.0 (generation 4, fini) on thread control; "
      "the server stops (core dump as usual)");
}

static void lines_without_a_plugin(void **st) {
  (void)st;
  assert_string_equal(
      format(SIGSEGV, NULL, NULL, SPOKE__CALL_NO_ROUTE, "spoke-loop-0"),
      "SIGSEGV in the core (no plugin code on this thread: a bug in spoke) "
      "on thread spoke-loop-0; the server stops (core dump as usual)");
  assert_string_equal(
      format(SIGSEGV, NULL, NULL, SPOKE__CALL_NO_ROUTE, NULL),
      "SIGSEGV outside any plugin call, on a thread spoke did not start (a "
      "plugin's own thread, or a library's); the server stops (core dump "
      "as usual)");
  assert_string_equal(
      format(SIGUSR1, NULL, NULL, SPOKE__CALL_NO_ROUTE, "control"),
      "signal 10 in the core (no plugin code on this thread: a bug in "
      "spoke) on thread control; the server stops (core dump as usual)");
}

static void record_fields(void **st) {
  spoke__crash_record_t r;
  spoke__call_t c;
  (void)st;
  make_instance();
  set_call(&c, &inst, "handler", 1);
  spoke__crash_record(&r, SIGSEGV, &c, "spoke-loop-2");
  assert_int_equal(r.magic, SPOKE__CRASH_MAGIC);
  assert_int_equal(r.kind, SPOKE__REC_CRASH);
  assert_string_equal(r.build, inst.build);
  assert_int_equal(r.size, sizeof(r));
  assert_int_equal(r.signo, SIGSEGV);
  assert_int_equal(r.pid, 0);
  assert_int_equal(r.generation, 4);
  assert_int_equal(r.in_plugin, 1);
  assert_int_equal(r.known_thread, 1);
  assert_int_equal(r.route, 1);
  assert_int_equal(r.mode, SPOKE_ASYNC);
  assert_string_equal(r.plugin, "bad");
  assert_string_equal(r.version, "1.0.0");
  assert_string_equal(r.what, "handler");
  assert_string_equal(r.method, "POST");
  assert_string_equal(r.path, "/bad/:id");
  assert_string_equal(r.thread, "spoke-loop-2");
  assert_true(sizeof(r) <= 4096); /* PIPE_BUF on Linux: one whole write */

  set_call(&c, NULL, NULL, SPOKE__CALL_NO_ROUTE);
  spoke__crash_record(&r, SIGABRT, &c, NULL);
  assert_int_equal(r.in_plugin, 0);
  assert_int_equal(r.known_thread, 0);
  assert_int_equal(r.route, SPOKE__CALL_NO_ROUTE);
  assert_int_equal(r.mode, 0);
  assert_int_equal(r.generation, 0);
  assert_string_equal(r.plugin, "");
  assert_string_equal(r.what, "");
  assert_string_equal(r.thread, "");

  spoke__crash_record(&r, SIGABRT, NULL, "control"); /* no record at all */
  assert_int_equal(r.in_plugin, 0);
  assert_string_equal(r.thread, "control");
}

static void long_texts_are_cut(void **st) {
  char version[300], buf[40];
  spoke__crash_record_t r;
  spoke__call_t c;
  size_t n;
  (void)st;
  make_instance();
  memset(version, 'v', sizeof(version) - 1);
  version[sizeof(version) - 1] = '\0';
  inst.version = version;
  set_call(&c, &inst, "handler", 0);
  spoke__crash_record(&r, SIGSEGV, &c, "a-thread-name-longer-than-15");
  assert_int_equal(strlen(r.version), sizeof(r.version) - 1);
  assert_int_equal(strlen(r.thread), sizeof(r.thread) - 1);
  n = spoke__crash_describe(buf, sizeof(buf), &r);
  assert_int_equal(n, sizeof(buf) - 1);
  assert_int_equal(strlen(buf), n);
  assert_memory_equal(buf, "SIGSEGV in plugin bad vvv", 25);
  assert_int_equal(spoke__crash_describe(buf, 1, &r), 0);
  assert_string_equal(buf, "");
}

static void prefix_is_the_log_format(void **st) {
  static const long long secs[] = {
    0, 59, 951782400 /* 2000-02-29 */, 951868799, 1709164800 /* 2024 leap */,
    1767225599, 1800000000, 4102444800 /* 2100-01-01 */,
    4107542399 /* 2100-02-28: no leap day */,
  };
  (void)st;
  for (size_t i = 0; i < SPOKE__ARRAY_SIZE(secs); i++) {
    struct timespec ts = {(time_t)secs[i], 123456789};
    char want[128], got[128], date[64];
    struct tm tm;
    time_t t = ts.tv_sec;
    size_t n;
    gmtime_r(&t, &tm);
    strftime(date, sizeof(date), "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(want, sizeof(want), "%s.123Z spoke[4121] fatal: ", date);
    n = spoke__crash_prefix(got, sizeof(got), &ts, 4121);
    assert_string_equal(got, want);
    assert_int_equal(n, strlen(want));
  }
}

/* ---- base/altstack.c ---- */

typedef struct thread_seen_s {
  const char *name_before;
  int stack_before, stack_after_init, stack_after_fini;
  char name_after_init[16], default_name[16];
  const char *name_after_fini;
} thread_seen_t;

static int has_altstack(void) {
  stack_t ss;
  return sigaltstack(NULL, &ss) == 0 && !(ss.ss_flags & SS_DISABLE);
}

static void *thread_main(void *arg) {
  thread_seen_t *s = arg;
  s->name_before = spoke__crash_thread_name();
  s->stack_before = has_altstack();
  spoke__crash_thread_init("t-1");
  s->stack_after_init = has_altstack();
  snprintf(s->name_after_init, sizeof(s->name_after_init), "%s",
           spoke__crash_thread_name());
  spoke__crash_thread_init("t-1"); /* twice: harmless */
  spoke__crash_thread_fini();
  s->stack_after_fini = has_altstack();
  s->name_after_fini = spoke__crash_thread_name();
  pthread_setname_np(pthread_self(), "named-by-me");
  spoke__crash_thread_init(NULL);
  snprintf(s->default_name, sizeof(s->default_name), "%s",
           spoke__crash_thread_name());
  spoke__crash_thread_fini();
  return NULL;
}

static void thread_init_and_fini(void **st) {
  thread_seen_t s;
  pthread_t t;
  (void)st;
  memset(&s, 0, sizeof(s));
  assert_int_equal(pthread_create(&t, NULL, thread_main, &s), 0);
  assert_int_equal(pthread_join(t, NULL), 0);
  assert_null(s.name_before);
  assert_true(s.stack_after_init);
  assert_string_equal(s.name_after_init, "t-1");
  /* Ours goes; one the thread had before (a sanitizer's) stays. */
  assert_int_equal(s.stack_after_fini, s.stack_before);
  assert_null(s.name_after_fini);
  assert_string_equal(s.default_name, "named-by-me");
}

/* ---- the handler, in children that crash ---- */

/* In the child: runs "handler" of route 0 of the hand-made instance and
 * crashes inside it, by a fault (HOW 0) or abort() (HOW 1). */
static void crash_child(int how, int report_fd, int err_fd, int report) {
  struct rlimit no_core = {0, 0};
  spoke__call_save_t save;
  setrlimit(RLIMIT_CORE, &no_core);
  dup2(err_fd, STDERR_FILENO);
  make_instance();
  spoke__crash_install();
  spoke__crash_set_report_fd(report ? report_fd : -1);
  spoke__call_enter(&save, &inst, "handler", 0);
  if (how == 0) {
    volatile int *volatile p = NULL;
    *p = 1;
  } else {
    abort();
  }
  _exit(3); /* not reached */
}

/* REPORT: the child has a report fd (a supervised worker): the record
 * goes there and nothing to stderr (its master logs the death); else the
 * line goes to stderr and no record anywhere. */
static void crash_for_real(int how, int signo, int report) {
  int rep[2], err[2], status;
  spoke__crash_record_t r;
  char line[1024];
  ssize_t n, got = 0;
  pid_t pid;

  assert_int_equal(pipe(rep), 0);
  assert_int_equal(pipe(err), 0);
  pid = fork();
  assert_true(pid >= 0);
  if (pid == 0) {
    close(rep[0]);
    close(err[0]);
    crash_child(how, rep[1], err[1], report);
  }
  close(rep[1]);
  close(err[1]);
  while ((n = read(err[0], line + got, sizeof(line) - 1 - (size_t)got)) > 0)
    got += n;
  line[got] = '\0';
  n = read(rep[0], &r, sizeof(r));
  assert_int_equal(waitpid(pid, &status, 0), pid);
  close(rep[0]);
  close(err[0]);

  assert_true(WIFSIGNALED(status));
  assert_int_equal(WTERMSIG(status), signo);
  if (!report) {
    assert_int_equal(n, 0); /* no record */
  } else {
    assert_int_equal(n, sizeof(r));
    assert_int_equal(got, 0); /* no line */
  }
  /* One line, in the log's format, for this child. */
  if (!report) {
    char head[64], *fatal = strstr(line, "] fatal: ");
    snprintf(head, sizeof(head), "Z spoke[%d] fatal: ", (int)pid);
    assert_non_null(strstr(line, head));
    assert_non_null(fatal);
    assert_int_equal(strchr(line, '\n') - line, got - 1);
    assert_int_equal(line[4], '-');
    assert_int_equal(line[10], 'T');
    assert_string_equal(fatal + strlen("] fatal: "),
                        signo == SIGSEGV
                            ? "SIGSEGV in plugin bad 1.0.0 (generation 4, "
                              "GET /bad/crash, sync) on thread control; the "
                              "server stops (core dump as usual)\n"
                            : "SIGABRT in plugin bad 1.0.0 (generation 4, "
                              "GET /bad/crash, sync) on thread control; the "
                              "server stops (core dump as usual)\n");
  }
  if (!report)
    return;
  assert_int_equal(r.magic, SPOKE__CRASH_MAGIC);
  assert_int_equal(r.kind, SPOKE__REC_CRASH);
  assert_string_equal(r.build, inst.build);
  assert_int_equal(r.size, sizeof(r));
  assert_int_equal(r.signo, signo);
  assert_int_equal(r.pid, pid);
  assert_int_equal(r.generation, 4);
  assert_string_equal(r.plugin, "bad");
  assert_string_equal(r.path, "/bad/crash");
  assert_string_equal(r.thread, "control");
}

static void handler_on_a_fault(void **st) {
  (void)st;
  if (SPOKE__SANITIZED)
    skip(); /* the sanitizer keeps the fatal signals */
  crash_for_real(0, SIGSEGV, 0);
  crash_for_real(0, SIGSEGV, 1);
}

static void handler_on_abort(void **st) {
  (void)st;
  if (SPOKE__SANITIZED)
    skip(); /* the sanitizer keeps the fatal signals */
  crash_for_real(1, SIGABRT, 0);
  crash_for_real(1, SIGABRT, 1);
}

int main(void) {
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(handler_lines),
    cmocka_unit_test(callback_and_lifecycle_lines),
    cmocka_unit_test(lines_without_a_plugin),
    cmocka_unit_test(record_fields),
    cmocka_unit_test(long_texts_are_cut),
    cmocka_unit_test(prefix_is_the_log_format),
    cmocka_unit_test(thread_init_and_fini),
    cmocka_unit_test(handler_on_a_fault),
    cmocka_unit_test(handler_on_abort),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
