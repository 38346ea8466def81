/* test_watchdog.c: the stall watchdog's hard limit (core/http/watchdog.c,
 * spoke__watchdog_start's KILL_MS and ON_KILL, for --stall-kill).
 *
 * - Fake loops: three loop structs that no thread runs, whose call
 *   records and heartbeats the test sets itself (the watchdog reads only
 *   those). Loops 0 and 1 sit idle outside any call; the test's thread
 *   enters a call as loop 2 and blocks past KILL_MS: ON_KILL is called
 *   exactly once, with loop id 2, that very record and stalled_ms >=
 *   KILL_MS, although WARN_MS is far larger (the watchdog ticks at the
 *   smaller one). With only the hard limit on (WARN_MS 0) it works the
 *   same.
 * - A real loop (loopkit.h) whose async handler blocks past KILL_MS:
 *   ON_KILL once, loop id 0, its record naming the handler's instance,
 *   "handler" and the route; the request is still answered.
 * - KILL_MS 0 (warnings only): the same blocking never calls ON_KILL.
 *
 * Blocking times are several times KILL_MS and the ticks a quarter of
 * it, so a busy machine makes a blocked call look longer, never shorter.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include <cmocka.h>

#include "loopkit.h"

#define KILL_MS 40
#define BLOCK_MS 250

static void sleep_ms(long ms) {
  struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L}, rem;
  while (nanosleep(&ts, &rem) != 0)
    ts = rem;
}

/* ---- what on_kill saw ---- */

static atomic_int kills;
static atomic_int killed_loop = -1;
static _Atomic(const spoke__call_t *) killed_call;
static _Atomic(const spoke__instance_t *) killed_inst;
static _Atomic(const char *) killed_what;
static _Atomic uint32_t killed_route;
static _Atomic uint64_t killed_ms;

static void on_kill(int loop_id, const spoke__call_t *call,
                    uint64_t stalled_ms) {
  atomic_fetch_add(&kills, 1);
  atomic_store(&killed_loop, loop_id);
  atomic_store(&killed_call, call);
  /* The call is in progress: its record, and the instance, are there. */
  atomic_store(&killed_inst, atomic_load(&call->inst));
  atomic_store(&killed_what, atomic_load(&call->what));
  atomic_store(&killed_route, atomic_load(&call->route));
  atomic_store(&killed_ms, stalled_ms);
}

static void reset_kills(void) {
  atomic_store(&kills, 0);
  atomic_store(&killed_loop, -1);
  atomic_store(&killed_call, NULL);
  atomic_store(&killed_inst, NULL);
  atomic_store(&killed_what, NULL);
  atomic_store(&killed_route, 0);
  atomic_store(&killed_ms, 0);
}

/* ---- fake loops ---- */

/* Loop 2 is held by one call on this thread for BLOCK_MS; loops 0 and 1
 * have records outside any call and heartbeats that never move. */
static void fake_loops_block(uint64_t warn_ms, uint64_t kill_ms) {
  static spoke__call_t idle[2];
  spoke__loop_t *loops = calloc(3, sizeof(*loops));
  spoke__instance_t inst = {0};
  spoke__call_save_t save;

  assert_non_null(loops);
  for (int i = 0; i < 3; i++)
    loops[i].id = i;
  atomic_store(&loops[0].call, &idle[0]);
  atomic_store(&loops[1].call, &idle[1]);
  atomic_store(&loops[2].call, spoke__call_mine());
  reset_kills();
  assert_int_equal(spoke__watchdog_start(loops, 3, warn_ms, kill_ms,
                                         on_kill),
                   0);
  sleep_ms(3 * KILL_MS); /* a few ticks of nothing held */
  assert_int_equal(atomic_load(&kills), 0);

  spoke__call_enter(&save, &inst, "timer callback", 3);
  sleep_ms(BLOCK_MS);
  spoke__call_leave(&save);
  sleep_ms(3 * KILL_MS); /* the loop "turned": nothing more */
  spoke__watchdog_stop();
  for (int i = 0; i < 3; i++)
    atomic_store(&loops[i].call, NULL);

  assert_int_equal(atomic_load(&kills), 1);
  assert_int_equal(atomic_load(&killed_loop), 2);
  assert_ptr_equal(atomic_load(&killed_call), spoke__call_mine());
  assert_ptr_equal(atomic_load(&killed_inst), &inst);
  assert_string_equal(atomic_load(&killed_what), "timer callback");
  assert_int_equal(atomic_load(&killed_route), 3);
  assert_true(atomic_load(&killed_ms) >= kill_ms);
  assert_true(atomic_load(&killed_ms) <= BLOCK_MS + 100);
  free(loops);
}

static void kills_below_a_larger_warning(void **state) {
  (void)state;
  fake_loops_block(10000, KILL_MS);
}

static void kills_without_warnings(void **state) {
  (void)state;
  fake_loops_block(0, KILL_MS);
}

/* ---- a real loop and a blocking async handler ---- */

static int blocking(spoke_request_t *req) {
  sleep_ms(BLOCK_MS);
  return spoke__response_send(req, "late", 4);
}

static int quick(spoke_request_t *req) {
  return spoke__response_send(req, "ok", 2);
}

static const spoke_route_t routes[] = {
  {"GET", "/quick", SPOKE_ASYNC, quick},
  {"GET", "/block", SPOKE_ASYNC, blocking},
};
LK_PLUGIN(plugin, "stall", routes);

static int setup(void **state) {
  lk_t *k = lk_new();
  if (k == NULL)
    return -1;
  *state = k;
  return 0;
}

static int teardown(void **state) {
  lk_t *k = *state;
  spoke__watchdog_stop();
  atomic_store(&k->loop.call, NULL);
  lk_stop(k);
  lk_free(k);
  return 0;
}

/* Serves GET /quick then GET /block on K's loop under a watchdog with
 * WARN_MS and KILL_MS; both are answered. */
static void serve_block(lk_t *k, uint64_t warn_ms, uint64_t kill_ms) {
  lk_client_t *c;
  lk_resp_t r[2];

  lk_start(k, &plugin);
  /* What loop.c does for a loop thread while its uv_run runs. */
  atomic_store(&k->loop.call, spoke__call_mine());
  reset_kills();
  assert_int_equal(spoke__watchdog_start(&k->loop, 1, warn_ms, kill_ms,
                                         on_kill),
                   0);
  c = lk_connect(k, 0);
  lk_send_str(c, "GET /quick HTTP/1.1\r\nHost: t\r\n\r\n");
  lk_wait_responses(k, c, r, 1);
  assert_int_equal(r[0].status, 200);
  assert_int_equal(atomic_load(&kills), 0);
  lk_send_str(c, "GET /block HTTP/1.1\r\nHost: t\r\n\r\n");
  lk_wait_responses(k, c, r, 2);
  assert_int_equal(r[1].status, 200);
  assert_memory_equal(r[1].body, "late", 4);
  sleep_ms(3 * KILL_MS);
  spoke__watchdog_stop();
  atomic_store(&k->loop.call, NULL);
}

static void kills_a_blocking_handler(void **state) {
  lk_t *k = *state;
  serve_block(k, 0, KILL_MS);
  assert_int_equal(atomic_load(&kills), 1);
  assert_int_equal(atomic_load(&killed_loop), 0);
  assert_ptr_equal(atomic_load(&killed_inst), k->loop.snap->inst[0]);
  assert_string_equal(atomic_load(&killed_what), "handler");
  assert_int_equal(atomic_load(&killed_route), 1); /* GET /block */
  assert_true(atomic_load(&killed_ms) >= KILL_MS);
}

static void kill_off_never_kills(void **state) {
  lk_t *k = *state;
  /* Warnings on (the hook logs the stall), the hard limit off. */
  serve_block(k, KILL_MS / 2, 0);
  assert_int_equal(atomic_load(&kills), 0);
  assert_int_equal(atomic_load(&killed_loop), -1);
}

int main(void) {
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(kills_below_a_larger_warning),
    cmocka_unit_test(kills_without_warnings),
    cmocka_unit_test_setup_teardown(kills_a_blocking_handler, setup,
                                    teardown),
    cmocka_unit_test_setup_teardown(kill_off_never_kills, setup, teardown),
  };
  return cmocka_run_group_tests_name("watchdog", tests, NULL, NULL);
}
