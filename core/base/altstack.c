/* altstack.c: what a thread needs so that a crash on it can be reported.
 *
 * The fatal-signal handler (ctl/crash.c) is installed with SA_ONSTACK:
 * the kernel puts its frame on the faulting thread's alternate signal
 * stack when the thread has one. Without one, a plugin that overflows
 * its stack faults on the guard page and the kernel, with nowhere to put
 * the handler's frame, kills the process without a word. So every thread
 * that runs plugin code calls spoke__crash_thread_init when it starts:
 * the control thread (ctl/crash.c, at start-up), each I/O loop
 * (http/loop.c) and each worker (http/pool.c); and
 * spoke__crash_thread_fini before it ends.
 *
 * init maps a stack of its own (with a guard page below it, so a handler
 * that overflows faults instead of writing over other memory) unless the
 * thread already has an alternate stack: a sanitizer runtime installs
 * one on every thread, and that one is left alone and never freed here.
 * It also keeps the thread's name for the report in a thread-local
 * buffer, which the handler reads without any call (async-signal-safe);
 * a thread that never called init has no name there, which is how the
 * report tells the threads spoke started from the others (a plugin's own
 * threads, a library's).
 */
#include <signal.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <unistd.h>

#include "base/base.h"

#define ALTSTACK_SIZE (64 * 1024)

static _Thread_local char thread_name[16]; /* "" until init */
static _Thread_local char *own_map;        /* guard page + stack, or NULL */
static _Thread_local size_t own_map_size;

void spoke__crash_thread_init(const char *name) {
  stack_t cur, ss;
  size_t page = (size_t)sysconf(_SC_PAGESIZE);
  size_t size = ALTSTACK_SIZE;
  char *map;

  char got[17] = ""; /* PR_GET_NAME writes up to 16 bytes */
  size_t i;

  if (name == NULL) {
    prctl(PR_GET_NAME, got, 0, 0, 0);
    name = got;
  }
  for (i = 0; i + 1 < sizeof(thread_name) && name[i] != '\0'; i++)
    thread_name[i] = name[i];
  thread_name[i] = '\0';
  if (thread_name[0] == '\0')
    strcpy(thread_name, "?");

  if (own_map != NULL)
    return; /* init twice on one thread: the stack is in place */
  if (sigaltstack(NULL, &cur) == 0 && !(cur.ss_flags & SS_DISABLE))
    return; /* someone else's (a sanitizer's): theirs to keep */
#ifdef _SC_SIGSTKSZ
  {
    long min = sysconf(_SC_SIGSTKSZ); /* large vector registers */
    if (min > 0 && (size_t)min * 4 > size)
      size = ((size_t)min * 4 + page - 1) / page * page;
  }
#endif
  map = mmap(NULL, page + size, PROT_READ | PROT_WRITE,
             MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK, -1, 0);
  if (map == MAP_FAILED) {
    spoke__warn("thread %s: no alternate signal stack (out of memory): "
                "a stack overflow on it will not be reported", thread_name);
    return;
  }
  (void)mprotect(map, page, PROT_NONE); /* the guard page */
  memset(&ss, 0, sizeof(ss));
  ss.ss_sp = map + page;
  ss.ss_size = size;
  if (sigaltstack(&ss, NULL) != 0) {
    munmap(map, page + size);
    spoke__warn("thread %s: sigaltstack failed: a stack overflow on it "
                "will not be reported", thread_name);
    return;
  }
  own_map = map;
  own_map_size = page + size;
}

void spoke__crash_thread_fini(void) {
  if (own_map != NULL) {
    stack_t ss;
    memset(&ss, 0, sizeof(ss));
    ss.ss_flags = SS_DISABLE;
    if (sigaltstack(&ss, NULL) == 0)
      munmap(own_map, own_map_size);
    /* else: the thread is on it (cannot be: fini is no handler's) */
    own_map = NULL;
    own_map_size = 0;
  }
  thread_name[0] = '\0';
}

const char *spoke__crash_thread_name(void) {
  return thread_name[0] != '\0' ? thread_name : NULL;
}
