/* crash.c: the fatal-signal handler: a crash names its culprit.
 *
 * A plugin that dereferences a bad pointer, overflows its stack, divides
 * by zero or calls abort() takes the whole process with it (plugins run
 * in the server's address space). Until spoke runs its plugins in worker
 * processes a supervisor restarts, the least it owes the operator is
 * one line saying whose code it was. The forms of that line (after
 * "TIMESTAMP spoke[PID] fatal: "):
 *
 *   SIGSEGV in plugin bad 1.0.0 (generation 4, GET /bad/crash, sync)
 *     on thread spoke-worker-3; the server stops (core dump as usual)
 *       a handler: the route's method, path and mode
 *   SIGSEGV in plugin bad 1.0.0 (generation 4, GET /x, abort callback)
 *     on thread spoke-loop-0; ...
 *       a callback of a request: its route, then what was called
 *   SIGSEGV in plugin bad 1.0.0 (generation 4, init) on thread control; ...
 *       init, handover or fini: no route
 *   SIGSEGV in the core (no plugin code on this thread: a bug in spoke)
 *     on thread spoke-loop-0; ...
 *   SIGSEGV outside any plugin call, on a thread spoke did not start (a
 *     plugin's own thread, or a library's); ...
 *
 * each on one line. The handler runs on the thread that faulted (on its
 * alternate stack: base/altstack.c) and uses async-signal-safe means
 * only: its own thread's call record (plugin/call.c: relaxed atomic
 * loads of a thread-local), the instance's name and version (the core's
 * copies) and its route table (read-only memory of the mapped .so), the
 * formatting below (no printf, no malloc), clock_gettime, getpid and
 * write(2). It then restores the default action and lets the signal act:
 * a fault raised by an instruction (si_code > 0) is simply returned
 * from, so the instruction faults again, now fatally, and the core shows
 * the original fault; a sent signal (abort(), kill) is raised again and
 * delivered as the handler returns. Either way the exit status is death
 * by that signal and cores are dumped as the system dumps them.
 *
 * One report per process: the five signals are blocked while the handler
 * runs (a fault inside it kills at once, the kernel's way), and a second
 * thread crashing meanwhile waits for the first to end the process.
 */
#include <errno.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "ctl/ctl.h"


static const int fatal_signals[] = {SIGSEGV, SIGBUS, SIGFPE, SIGILL,
                                    SIGABRT};

static atomic_int report_fd = -1;

void spoke__crash_set_report_fd(int fd) { atomic_store(&report_fd, fd); }

/* ---- formatting, async-signal-safe ---- */

typedef struct out_s {
  char *buf;
  size_t len, n; /* capacity (with the NUL), used */
} out_t;

static void put(out_t *o, const char *s) {
  if (s == NULL)
    return;
  for (; *s != '\0' && o->n + 1 < o->len; s++)
    o->buf[o->n++] = *s;
  if (o->len > 0)
    o->buf[o->n] = '\0';
}

/* V in decimal, at least WIDTH digits. */
static void put_uint(out_t *o, uint64_t v, int width) {
  char digits[24];
  int n = 0;
  do {
    digits[n++] = (char)('0' + v % 10);
    v /= 10;
  } while (v != 0 && n < (int)sizeof(digits));
  while (n < width && n < (int)sizeof(digits))
    digits[n++] = '0';
  while (n > 0 && o->n + 1 < o->len)
    o->buf[o->n++] = digits[--n];
  if (o->len > 0)
    o->buf[o->n] = '\0';
}

/* SRC into the fixed array DST[0..size), cut to fit, NUL-ended. */
static void copy_fixed(char *dst, size_t size, const char *src) {
  size_t i = 0;
  if (src != NULL)
    for (; i + 1 < size && src[i] != '\0'; i++)
      dst[i] = src[i];
  dst[i] = '\0';
}

static int same(const char *a, const char *b) {
  while (*a != '\0' && *a == *b)
    a++, b++;
  return *a == *b;
}

static const char *signal_name(int signo) {
  switch (signo) {
    case SIGSEGV: return "SIGSEGV";
    case SIGBUS: return "SIGBUS";
    case SIGFPE: return "SIGFPE";
    case SIGILL: return "SIGILL";
    case SIGABRT: return "SIGABRT";
    case SIGKILL: return "SIGKILL";
    case SIGTERM: return "SIGTERM";
    default: return NULL;
  }
}

const char *spoke__signal_name(int signo) {
  static char other[16]; /* the master's thread only */
  if (signal_name(signo) != NULL)
    return signal_name(signo);
  snprintf(other, sizeof(other), "signal %d", signo);
  return other;
}

void spoke__crash_record(spoke__crash_record_t *rec, int signo,
                         const spoke__call_t *call,
                         const char *thread_name) {
  const spoke__instance_t *inst = NULL;
  const char *what = NULL;
  uint32_t route = SPOKE__CALL_NO_ROUTE;

  memset(rec, 0, sizeof(*rec)); /* a builtin: no libc call, in practice */
  rec->magic = SPOKE__CRASH_MAGIC;
  rec->size = (uint32_t)sizeof(*rec);
  rec->signo = signo;
  rec->route = SPOKE__CALL_NO_ROUTE;
  rec->known_thread = thread_name != NULL;
  copy_fixed(rec->thread, sizeof(rec->thread), thread_name);
  if (call != NULL) {
    inst = atomic_load_explicit(&call->inst, memory_order_relaxed);
    what = atomic_load_explicit(&call->what, memory_order_relaxed);
    route = atomic_load_explicit(&call->route, memory_order_relaxed);
  }
  if (inst == NULL)
    return;
  rec->in_plugin = 1;
  rec->generation = inst->generation;
  copy_fixed(rec->plugin, sizeof(rec->plugin), inst->name);
  copy_fixed(rec->version, sizeof(rec->version), inst->version);
  copy_fixed(rec->build, sizeof(rec->build), inst->build);
  copy_fixed(rec->what, sizeof(rec->what), what != NULL ? what : "?");
  if (route != SPOKE__CALL_NO_ROUTE && inst->desc != NULL &&
      inst->desc->routes != NULL && route < inst->desc->nroutes) {
    const spoke_route_t *r = &inst->desc->routes[route];
    rec->route = route;
    rec->mode = (int32_t)r->mode;
    copy_fixed(rec->method, sizeof(rec->method), r->method);
    copy_fixed(rec->path, sizeof(rec->path), r->path);
  }
}

size_t spoke__crash_cause(char *buf, size_t len,
                          const spoke__crash_record_t *rec) {
  out_t o = {buf, len, 0};
  const char *sig = signal_name(rec->signo);

  if (len > 0)
    buf[0] = '\0';
  if (sig != NULL) {
    put(&o, sig);
  } else {
    put(&o, "signal ");
    put_uint(&o, rec->signo < 0 ? 0 : (uint64_t)rec->signo, 1);
  }
  if (rec->in_plugin) {
    put(&o, " in plugin ");
    put(&o, rec->plugin);
    if (rec->version[0] != '\0') {
      put(&o, " ");
      put(&o, rec->version);
    }
    put(&o, " (generation ");
    put_uint(&o, rec->generation, 1);
    put(&o, ", ");
    if (rec->route != SPOKE__CALL_NO_ROUTE) {
      put(&o, rec->method);
      put(&o, " ");
      put(&o, rec->path);
      put(&o, ", ");
      if (same(rec->what, "handler"))
        put(&o, rec->mode == SPOKE_SYNC    ? "sync"
                : rec->mode == SPOKE_ASYNC ? "async"
                                           : "handler");
      else
        put(&o, rec->what);
    } else {
      put(&o, rec->what);
    }
    put(&o, ")");
  } else if (rec->known_thread) {
    put(&o, " in the core (no plugin code on this thread: a bug in spoke)");
  } else {
    put(&o, " outside any plugin call,");
  }
  if (rec->known_thread) {
    put(&o, " on thread ");
    put(&o, rec->thread);
  } else {
    put(&o, " on a thread spoke did not start (a plugin's own thread, or "
            "a library's)");
  }
  return o.n;
}

size_t spoke__crash_describe(char *buf, size_t len,
                             const spoke__crash_record_t *rec) {
  size_t n = spoke__crash_cause(buf, len, rec);
  out_t o = {buf, len, n};
  put(&o, "; the server stops (core dump as usual)");
  return o.n;
}

size_t spoke__crash_format(char *buf, size_t len, int signo,
                           const spoke__call_t *call,
                           const char *thread_name) {
  spoke__crash_record_t rec;
  spoke__crash_record(&rec, signo, call, thread_name);
  return spoke__crash_describe(buf, len, &rec);
}

/* Days since 1970-01-01 to a civil date (proleptic Gregorian): eras of
 * 400 years, each 146097 days, with years starting on March 1st so the
 * leap day comes last. */
static void civil_from_days(int64_t z, int64_t *y, unsigned *m,
                            unsigned *d) {
  int64_t era, yoe, doy, mp;
  z += 719468; /* 0000-03-01 to 1970-01-01 */
  era = (z >= 0 ? z : z - 146096) / 146097;
  int64_t doe = z - era * 146097;                         /* [0, 146096] */
  yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365; /* [0, 399] */
  doy = doe - (365 * yoe + yoe / 4 - yoe / 100);          /* [0, 365] */
  mp = (5 * doy + 2) / 153;                               /* [0, 11] */
  *d = (unsigned)(doy - (153 * mp + 2) / 5 + 1);
  *m = (unsigned)(mp < 10 ? mp + 3 : mp - 9);
  *y = yoe + era * 400 + (*m <= 2);
}

size_t spoke__crash_prefix(char *buf, size_t len, const struct timespec *now,
                           int pid) {
  out_t o = {buf, len, 0};
  int64_t secs = (int64_t)now->tv_sec, days, rem, year;
  unsigned mon, day;

  if (len > 0)
    buf[0] = '\0';
  days = secs / 86400;
  rem = secs % 86400;
  if (rem < 0) {
    rem += 86400;
    days--;
  }
  civil_from_days(days, &year, &mon, &day);
  put_uint(&o, year < 0 ? 0 : (uint64_t)year, 4);
  put(&o, "-");
  put_uint(&o, mon, 2);
  put(&o, "-");
  put_uint(&o, day, 2);
  put(&o, "T");
  put_uint(&o, (uint64_t)(rem / 3600), 2);
  put(&o, ":");
  put_uint(&o, (uint64_t)(rem / 60 % 60), 2);
  put(&o, ":");
  put_uint(&o, (uint64_t)(rem % 60), 2);
  put(&o, ".");
  put_uint(&o, (uint64_t)(now->tv_nsec / 1000000), 3);
  put(&o, "Z spoke[");
  put_uint(&o, pid < 0 ? 0 : (uint64_t)pid, 1);
  put(&o, "] fatal: ");
  return o.n;
}

/* ---- the handler ---- */

static atomic_flag reporting = ATOMIC_FLAG_INIT;
/* Static, not on the (small) alternate stack; one thread uses them. */
static spoke__crash_record_t report;
static char line[1024];

static void default_action(int signo) {
  struct sigaction sa;
  memset(&sa, 0, sizeof(sa));
  sa.sa_handler = SIG_DFL;
  sigemptyset(&sa.sa_mask);
  sigaction(signo, &sa, NULL);
}

static void on_fatal(int signo, siginfo_t *si, void *uctx) {
  int saved_errno = errno;
  (void)uctx;
  if (atomic_flag_test_and_set(&reporting)) {
    /* Another thread is reporting its crash and will end the process
     * (this thread's signal stays blocked meanwhile). */
    for (;;)
      pause();
  }
  {
    struct timespec now = {0, 0};
    size_t n, len;
    int fd = atomic_load(&report_fd);

    clock_gettime(CLOCK_REALTIME, &now);
    spoke__crash_record(&report, signo, spoke__call_mine(),
                        spoke__crash_thread_name());
    report.pid = (int32_t)getpid();
    n = spoke__crash_prefix(line, sizeof(line), &now, (int)report.pid);
    n += spoke__crash_describe(line + n, sizeof(line) - n - 1, &report);
    for (len = 0; len < n; len++) /* one event, one line */
      if (line[len] == '\n' || line[len] == '\r')
        line[len] = ' ';
    line[n++] = '\n';
    /* A supervised worker hands the record to its master, which logs
     * the death with what it did about it; alone, the process says it. */
    if (fd < 0 || write(fd, &report, sizeof(report)) != sizeof(report))
      (void)!write(STDERR_FILENO, line, n);
  }
  default_action(signo);
  if (si == NULL || si->si_code <= 0)
    raise(signo); /* sent (abort, kill): acts when the handler returns */
  /* else a fault: returning runs the faulting instruction again */
  errno = saved_errno;
}

/* An empty record of KIND from this process into REC; the report fd, or
 * -1 when there is none (nothing to send). Not for the handler. */
static int report_start(spoke__crash_record_t *rec, uint32_t kind) {
  spoke__crash_record(rec, 0, NULL, NULL);
  rec->kind = kind;
  rec->pid = (int32_t)getpid();
  return atomic_load(&report_fd);
}

void spoke__crash_report_ready(void) {
  spoke__crash_record_t rec;
  int fd = report_start(&rec, SPOKE__REC_READY);
  if (fd >= 0)
    (void)!write(fd, &rec, sizeof(rec));
}

void spoke__crash_report_loaded(const spoke__instance_t *inst) {
  spoke__crash_record_t rec;
  int fd = report_start(&rec, SPOKE__REC_LOADED);
  if (fd < 0)
    return;
  rec.generation = inst->generation;
  snprintf(rec.plugin, sizeof(rec.plugin), "%s", inst->name);
  snprintf(rec.version, sizeof(rec.version), "%s", inst->version);
  snprintf(rec.build, sizeof(rec.build), "%s", inst->build);
  (void)!write(fd, &rec, sizeof(rec));
}

void spoke__crash_stall_kill(int loop_id, const spoke__call_t *call,
                             uint64_t stalled_ms) {
  char thread[16] = "spoke-loop-";
  out_t o = {thread, sizeof(thread), strlen(thread)};
  int fd = atomic_load(&report_fd);
  put_uint(&o, loop_id < 0 ? 0 : (uint64_t)loop_id, 1);
  if (!atomic_flag_test_and_set(&reporting)) {
    spoke__crash_record(&report, SIGKILL, call, thread);
    report.kind = SPOKE__REC_STALL;
    report.pid = (int32_t)getpid();
    report.stalled_ms = stalled_ms > UINT32_MAX ? UINT32_MAX
                                                : (uint32_t)stalled_ms;
    if (fd >= 0)
      (void)!write(fd, &report, sizeof(report));
  }
  kill(getpid(), SIGKILL);
}

void spoke__crash_install(void) {
  struct sigaction sa;
  spoke__crash_thread_init("control");
  if (SPOKE__SANITIZED) {
    /* The sanitizer's own handlers report these signals, with a stack. */
    spoke__debug("fatal signals are left to the sanitizer");
    return;
  }
  memset(&sa, 0, sizeof(sa));
  sa.sa_sigaction = on_fatal;
  sa.sa_flags = SA_SIGINFO | SA_ONSTACK;
  sigemptyset(&sa.sa_mask);
  for (size_t i = 0; i < SPOKE__ARRAY_SIZE(fatal_signals); i++)
    sigaddset(&sa.sa_mask, fatal_signals[i]);
  for (size_t i = 0; i < SPOKE__ARRAY_SIZE(fatal_signals); i++)
    sigaction(fatal_signals[i], &sa, NULL);
}
