/* test_ledger.c: the master's ledger of crashes and builds
 * (core/ctl/ledger.c), in one process: the master's writes and the
 * reads a worker makes.
 *
 * - Before open, reads give an empty ledger and writes are ignored
 *   (--processes 0).
 * - Crashes count per plugin version and signal (a stall as "stall");
 *   one outside plugin code counts nothing.
 * - A build is quarantined at the AFTER-th crash within the window, not
 *   before, and only once; crashes spread wider than the window never
 *   quarantine it; AFTER 0 never does.
 * - Rollback: the newest build of the plugin that was archived and never
 *   crashed, not the quarantined one, not another plugin's; none when
 *   only crashed builds were archived.
 * - A full table makes room by dropping the oldest build that is not
 *   quarantined, removing its archived copy.
 */
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

#define S 1000000000ull /* a second in ns */

static spoke__ledger_t l;

static spoke__crash_record_t rec(const char *plugin, const char *version,
                                 const char *build, int kind, int signo) {
  spoke__crash_record_t r;
  memset(&r, 0, sizeof(r));
  r.magic = SPOKE__CRASH_MAGIC;
  r.size = sizeof(r);
  r.in_plugin = plugin[0] != '\0';
  r.kind = (uint32_t)kind;
  r.signo = signo;
  snprintf(r.plugin, sizeof(r.plugin), "%s", plugin);
  snprintf(r.version, sizeof(r.version), "%s", version);
  snprintf(r.build, sizeof(r.build), "%s", build);
  return r;
}

static int crash(const char *plugin, const char *version, const char *build,
                 int after, uint64_t now, spoke__build_t *q) {
  spoke__crash_record_t r =
      rec(plugin, version, build, SPOKE__REC_CRASH, SIGSEGV);
  return spoke__ledger_crash(&r, after, 60 * S, now, q);
}

static void loaded(const char *plugin, const char *version,
                   const char *build) {
  spoke__crash_record_t r = rec(plugin, version, build, SPOKE__REC_LOADED, 0);
  spoke__ledger_loaded(&r);
}

static char archive[] = "/tmp/spoke-test-ledger.XXXXXX";

/* Must run first: nothing is mapped yet. */
static void test_unopened_is_empty(void **state) {
  spoke__build_t q;
  (void)state;
  assert_int_equal(crash("bad", "2", "00000000000000b2", 1, S, &q), 0);
  spoke__ledger_restart();
  spoke__ledger_read(&l);
  assert_int_equal(l.restarts, 0);
  assert_int_equal(l.ncrashes, 0);
  assert_int_equal(l.nbuilds, 0);
  assert_non_null(mkdtemp(archive));
  assert_int_equal(spoke__ledger_open(archive), 0);
}

static void test_counts(void **state) {
  spoke__build_t q;
  spoke__crash_record_t stall =
      rec("slow", "1", "000000000000051a", SPOKE__REC_STALL, SIGKILL);
  spoke__crash_record_t core = rec("", "", "", SPOKE__REC_CRASH, SIGSEGV);
  (void)state;
  spoke__ledger_restart();
  spoke__ledger_restart();
  assert_int_equal(crash("bad", "2", "00000000000000b2", 0, S, &q), 0);
  assert_int_equal(crash("bad", "2", "00000000000000b2", 0, 2 * S, &q), 0);
  assert_int_equal(spoke__ledger_crash(&stall, 0, 60 * S, 3 * S, &q), 0);
  assert_int_equal(spoke__ledger_crash(&core, 3, 60 * S, 3 * S, &q), 0);
  spoke__ledger_read(&l);
  assert_int_equal(l.restarts, 2);
  assert_int_equal(l.ncrashes, 2);
  assert_string_equal(l.crashes[0].plugin, "bad");
  assert_string_equal(l.crashes[0].signal, "SIGSEGV");
  assert_int_equal(l.crashes[0].n, 2);
  assert_string_equal(l.crashes[1].plugin, "slow");
  assert_string_equal(l.crashes[1].signal, "stall");
  assert_int_equal(l.crashes[1].n, 1);
  assert_int_equal(spoke__ledger_find(&l, "00000000000000b2")->crashes, 2);
  assert_false(spoke__ledger_find(&l, "00000000000000b2")->quarantined);
  assert_null(spoke__ledger_find(&l, "0000000000000000"));
}

static void test_quarantine_window(void **state) {
  spoke__build_t q;
  uint64_t t = 1000 * S;
  (void)state;
  /* Spread wider than 60 s: never three within the window. */
  for (int i = 0; i < 6; i++)
    assert_int_equal(crash("w", "1", "00000000000000a1", 3, t + i * 31 * S,
                           &q), 0);
  /* The third within 60 s quarantines, once. */
  t = 2000 * S;
  assert_int_equal(crash("w", "2", "00000000000000a2", 3, t, &q), 0);
  assert_int_equal(crash("w", "2", "00000000000000a2", 3, t + 10 * S, &q), 0);
  assert_int_equal(crash("w", "2", "00000000000000a2", 3, t + 59 * S, &q), 1);
  assert_string_equal(q.build, "00000000000000a2");
  assert_string_equal(q.version, "2");
  assert_int_equal(q.crashes, 3);
  assert_string_equal(q.reason,
                      "build 00000000000000a2 crashed 3 times within 60 s");
  assert_int_equal(crash("w", "2", "00000000000000a2", 3, t + 60 * S, &q), 0);
  spoke__ledger_read(&l);
  assert_true(spoke__ledger_find(&l, "00000000000000a2")->quarantined);
  assert_false(spoke__ledger_find(&l, "00000000000000a1")->quarantined);
}

static void test_rollback(void **state) {
  const spoke__build_t *t;
  spoke__build_t q;
  (void)state;
  loaded("r", "1", "00000000000000c1");
  loaded("r", "2", "00000000000000c2");
  loaded("other", "9", "00000000000000d9");
  loaded("r", "3", "00000000000000c3");
  loaded("r", "4", "00000000000000c4");
  assert_int_equal(crash("r", "3", "00000000000000c3", 5, S, &q), 0);
  for (int i = 0; i < 3; i++)
    crash("r", "4", "00000000000000c4", 3, S, &q);
  spoke__ledger_read(&l);
  /* Not 4 (quarantined), not 3 (crashed once), not other's 9. */
  t = spoke__ledger_rollback(&l, "r", "00000000000000c4");
  assert_non_null(t);
  assert_string_equal(t->version, "2");
  /* A build is never its own rollback. */
  t = spoke__ledger_rollback(&l, "r", "00000000000000c2");
  assert_string_equal(t->version, "1");
  /* Only crashed builds archived: none. */
  loaded("z", "1", "00000000000000e1");
  crash("z", "1", "00000000000000e1", 0, S, &q);
  loaded("z", "2", "00000000000000e2");
  spoke__ledger_read(&l);
  assert_null(spoke__ledger_rollback(&l, "z", "00000000000000e2"));
}

static void test_full_table_drops_the_oldest(void **state) {
  char build[17], path[256];
  FILE *f;
  (void)state;
  spoke__ledger_read(&l);
  /* The oldest entry, and not quarantined: b2 (test_counts). Give it an
   * archived copy to see it removed when it is dropped. */
  snprintf(path, sizeof(path), "%s/00000000000000b2.so", archive);
  loaded("bad", "2", "00000000000000b2");
  assert_non_null(f = fopen(path, "w"));
  fclose(f);
  for (size_t i = l.nbuilds; i <= SPOKE__LEDGER_BUILDS; i++) {
    snprintf(build, sizeof(build), "%016zx", 0x1000 + i);
    loaded("many", "1", build);
  }
  spoke__ledger_read(&l);
  assert_int_equal(l.nbuilds, SPOKE__LEDGER_BUILDS);
  assert_null(spoke__ledger_find(&l, "00000000000000b2"));
  assert_int_equal(access(path, F_OK), -1);
  /* The quarantined ones stay. */
  assert_non_null(spoke__ledger_find(&l, "00000000000000a2"));
  assert_non_null(spoke__ledger_find(&l, "00000000000000c4"));
  rmdir(archive);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_unopened_is_empty),
      cmocka_unit_test(test_counts),
      cmocka_unit_test(test_quarantine_window),
      cmocka_unit_test(test_rollback),
      cmocka_unit_test(test_full_table_drops_the_oldest),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
