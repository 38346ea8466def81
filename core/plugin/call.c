/* call.c: which plugin code each thread is running right now.
 *
 * Every call from the core into a plugin (a handler, init, handover,
 * fini, an abort, timer or drain callback) is bracketed by
 * spoke__call_enter / spoke__call_leave, which mark the calling thread's
 * record with the instance (so: plugin, version, generation), what is
 * being called and, for handlers, the route. Two readers use it:
 *
 * - the fatal-signal handler (ctl/crash.c) runs on the thread that
 *   faulted and reads its own record, to name the culprit of a crash;
 * - the stall watchdog (http/watchdog.c) reads a loop thread's record
 *   from its own thread: it sees `seq` and `depth` stay put while the
 *   loop does not turn, and marks the record stalled; the loop thread
 *   itself reports the stall when the call returns (spoke__call_leave
 *   calls the stall hook), so no other thread ever follows the record's
 *   pointers.
 *
 * Cost on the request path: a handful of relaxed stores to a
 * thread-local record per plugin call, no clock read, no lock.
 *
 * A record lives as long as its thread (thread-local storage); a reader
 * on another thread may use a record's address only while that thread
 * runs (the watchdog stops before the loops end). Calls nest (plugin code
 * calling the core that calls plugin code): enter saves what leave
 * restores.
 */
#include "plugin/plugin.h"

static _Thread_local spoke__call_t mine;
static spoke__stall_hook_cb stall_hook;

spoke__call_t *spoke__call_mine(void) { return &mine; }

void spoke__call_set_stall_hook(spoke__stall_hook_cb cb) { stall_hook = cb; }

#ifndef SPOKE__NO_CALL_MARKER /* else plugin.h's no-ops (benchmarks) */
void spoke__call_enter(spoke__call_save_t *save,
                       const spoke__instance_t *inst, const char *what,
                       uint32_t route) {
  save->inst = atomic_load_explicit(&mine.inst, memory_order_relaxed);
  save->what = atomic_load_explicit(&mine.what, memory_order_relaxed);
  save->route = atomic_load_explicit(&mine.route, memory_order_relaxed);
  atomic_store_explicit(&mine.inst, inst, memory_order_relaxed);
  atomic_store_explicit(&mine.what, what, memory_order_relaxed);
  atomic_store_explicit(&mine.route, route, memory_order_relaxed);
  atomic_store_explicit(&mine.seq,
                        atomic_load_explicit(&mine.seq, memory_order_relaxed) +
                            1,
                        memory_order_relaxed);
  atomic_store_explicit(&mine.depth,
                        atomic_load_explicit(&mine.depth,
                                             memory_order_relaxed) +
                            1,
                        memory_order_release);
}

void spoke__call_leave(const spoke__call_save_t *save) {
  uint64_t stalled = atomic_load_explicit(&mine.stalled_at,
                                          memory_order_acquire);
  if (stalled != 0) {
    /* The watchdog saw this call hold its loop: say so now that it is
     * over, on this thread, while the instance is surely still there. */
    atomic_store_explicit(&mine.stalled_at, 0, memory_order_relaxed);
    if (stall_hook != NULL)
      stall_hook(&mine, stalled);
  }
  atomic_store_explicit(&mine.depth,
                        atomic_load_explicit(&mine.depth,
                                             memory_order_relaxed) -
                            1,
                        memory_order_release);
  atomic_store_explicit(&mine.inst, save->inst, memory_order_relaxed);
  atomic_store_explicit(&mine.what, save->what, memory_order_relaxed);
  atomic_store_explicit(&mine.route, save->route, memory_order_relaxed);
}
#endif /* SPOKE__NO_CALL_MARKER */
