/* test_admit.c: the admission rule (spoke__admit, core/plugin/admit.c)
 * on real plugin files.
 *
 * The rule is what both the server's reload path and `spoke check` ask,
 * so these tests pin its verdicts and reasons: a good plugin is admitted
 * with a candidate snapshot that lists it after those already serving;
 * each broken fixture is refused with its loader code and reason; a name
 * or route clash with a serving instance refuses the newcomer, never the
 * one serving. Each test gets a fresh runtime directory under
 * SPOKE_UNIT_TMPDIR, and after every refusal nothing of the newcomer is
 * left in it (teardown checks it ends empty). No reaper is installed, so
 * a refused newcomer is finalized at once. The refused hook must be
 * called exactly once per refusal, with the text left in ERR.
 *
 * A quarantined newcomer (spoke__admit_t.quarantine) is admitted by the
 * same rule but none of its code runs: initcount.so logs whenever its
 * init, handover or fini runs, and a recording host table catches the
 * lines. spoke__admit_t.file renames what the instance reports (and its
 * private copy), not what is loaded.
 */
#include <dirent.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "rundir.h"

#include "http/http.h"
#include "plugin/plugin.h"



/* What the refused hook saw. */
static int hook_calls;
static char hook_why[512];

static void on_refused(void *ctx, const char *why) {
  assert_ptr_equal(ctx, &hook_calls);
  hook_calls++;
  snprintf(hook_why, sizeof(hook_why), "%s", why);
}


static int setup(void **state) {
  (void)state;
  return rundir_setup("admit");
}

static int teardown(void **state) {
  (void)state;
  return rundir_teardown();
}

/* Admits PATH at GEN beside SERVING[0..n), replacing PREV (or NULL). The
 * outputs are poisoned first: spoke__admit must set them either way. */
static int admit(const char *path, uint64_t gen, spoke__instance_t *prev,
                 spoke__instance_t **serving, size_t n,
                 spoke__instance_t **inst, spoke__snapshot_t **snap) {
  spoke__admit_t in = {
    .path = path,
    .runtime_dir = rt,
    .generation = gen,
    .prev = prev,
    .host = spoke__host_table(),
    .serving = serving,
    .nserving = n,
    .refused = on_refused,
    .ctx = &hook_calls,
  };
  *inst = (spoke__instance_t *)&err;
  if (snap != NULL)
    *snap = (spoke__snapshot_t *)&err;
  err[0] = '\0';
  hook_calls = 0;
  hook_why[0] = '\0';
  return spoke__admit(&in, inst, snap, err, sizeof(err));
}

/* The last admit refused with WANT and a reason containing WHY (or equal
 * to it when EXACT), told once to the hook, with no outputs and no file
 * of the newcomer left: the runtime directory holds KEEP files (the
 * serving instances' copies). */
static void assert_refused(int rc, int want, const char *why, int exact,
                           spoke__instance_t *inst, spoke__snapshot_t *snap,
                           int keep) {
  if (rc != want)
    fail_msg("got %s (%s), want %s", spoke_err_name(rc), err,
             spoke_err_name(want));
  assert_null(inst);
  assert_null(snap);
  if (exact)
    assert_string_equal(err, why);
  else if (strstr(err, why) == NULL)
    fail_msg("reason \"%s\" does not say \"%s\"", err, why);
  assert_int_equal(hook_calls, 1);
  assert_string_equal(hook_why, err);
  assert_int_equal(count_files(rt), keep);
}

/* ---- the file name rule ---- */

static void plugin_names(void **state) {
  static const struct {
    const char *name;
    int want;
  } cases[] = {
    {"hello.so", 1},   {"a.so", 1},        {"x.y.so", 1},
    {".so", 0},        {".hello.so", 0},   {"hello", 0},
    {"hello.so.1", 0}, {"hello.SO", 0},    {"hello.so~", 0},
    {"so", 0},         {"", 0},
  };
  (void)state;
  for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
    if (spoke__admit_is_plugin_name(cases[i].name) != cases[i].want)
      fail_msg("\"%s\": want %d", cases[i].name, cases[i].want);
}

/* ---- admitted ---- */

static void admits_hello(void **state) {
  spoke__instance_t *inst;
  spoke__snapshot_t *snap;
  (void)state;

  assert_int_equal(admit(EXAMPLE("hello"), 3, NULL, NULL, 0, &inst, &snap),
                   0);
  assert_int_equal(hook_calls, 0);
  assert_non_null(inst);
  assert_string_equal(inst->name, "hello");
  assert_int_equal(inst->generation, 3);
  /* The candidate snapshot lists it, unpublished, at the same
   * generation; the caller holds one reference and the snapshot one. */
  assert_non_null(snap);
  assert_int_equal(snap->generation, 3);
  assert_int_equal(snap->ninst, 1);
  assert_true(spoke__snapshot_has(snap, inst));
  assert_int_equal(atomic_load(&snap->refs), 1);
  assert_int_equal(atomic_load(&inst->refs), 2);
  assert_int_equal(atomic_load(&inst->snaps), 1);
  assert_int_equal(count_files(rt), 1);

  spoke__snapshot_unref(snap);
  assert_int_equal(atomic_load(&inst->refs), 1);
  spoke__instance_unref(inst);
}

static void admits_without_snapshot(void **state) {
  spoke__instance_t *inst;
  (void)state;

  /* `spoke check` asks for the verdict only: the snapshot is dropped. */
  assert_int_equal(admit(EXAMPLE("hello"), 1, NULL, NULL, 0, &inst, NULL),
                   0);
  assert_non_null(inst);
  assert_int_equal(atomic_load(&inst->refs), 1);
  assert_int_equal(atomic_load(&inst->snaps), 0);
  spoke__instance_unref(inst);
}

static void admits_beside_serving_newcomer_last(void **state) {
  spoke__instance_t *hello, *counter;
  spoke__snapshot_t *s1, *s2;
  (void)state;

  assert_int_equal(admit(EXAMPLE("hello"), 1, NULL, NULL, 0, &hello, &s1),
                   0);
  assert_int_equal(admit(EXAMPLE("counter"), 2, NULL, &hello, 1, &counter,
                         &s2),
                   0);
  assert_int_equal(s2->ninst, 2);
  assert_ptr_equal(s2->inst[0], hello);
  assert_ptr_equal(s2->inst[1], counter);
  spoke__snapshot_unref(s2);
  spoke__snapshot_unref(s1);
  spoke__instance_unref(counter);
  spoke__instance_unref(hello);
}

static void replacing_is_no_name_clash(void **state) {
  spoke__instance_t *v1, *v2;
  spoke__snapshot_t *snap;
  (void)state;

  /* The version being replaced is PREV, not among the serving: a new
   * version of hello is admitted although its name is hello's. */
  assert_int_equal(admit(EXAMPLE("hello"), 1, NULL, NULL, 0, &v1, NULL), 0);
  assert_int_equal(admit(EXAMPLE("hello"), 2, v1, NULL, 0, &v2, &snap), 0);
  assert_int_equal(snap->ninst, 1);
  assert_ptr_equal(snap->inst[0], v2);
  spoke__snapshot_unref(snap);
  spoke__instance_unref(v2);
  spoke__instance_unref(v1);
}

/* ---- refused by the loader ---- */

static void refuses_broken_fixtures(void **state) {
  static const struct {
    const char *path;
    int want;
    const char *why;
  } cases[] = {
    {FIXTURE("bad_abi"), SPOKE_EABI, "99"},
    {FIXTURE("bad_nodesc"), SPOKE_ENODESC, "spoke_plugin"},
    {FIXTURE("bad_small"), SPOKE_EDESC, "too small"},
    {FIXTURE("bad_initfail"), SPOKE_EINIT, "init failed"},
  };
  (void)state;
  for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    spoke__instance_t *inst;
    spoke__snapshot_t *snap;
    int rc = admit(cases[i].path, i + 1, NULL, NULL, 0, &inst, &snap);
    print_message("%s: %s\n", cases[i].path, err);
    assert_refused(rc, cases[i].want, cases[i].why, 0, inst, snap, 0);
  }
}

/* ---- refused beside a serving instance ---- */

static void refuses_clashes(void **state) {
  /* SERVING is admitted first and kept; NEWCOMER must be refused with
   * exactly WHY, and the one serving is untouched. */
  static const struct {
    const char *serving, *newcomer;
    const char *why;
  } cases[] = {
    {EXAMPLE("hello"), FIXTURE("twin_hello"),
     "route GET /hello already taken by plugin hello (GET /hello)"},
    {FIXTURE("twin_hello"), EXAMPLE("hello"),
     "route GET /hello already taken by plugin twin_hello (GET /hello)"},
    {EXAMPLE("hello"), EXAMPLE("hello"),
     "name \"hello\" is already used by hello.so"},
  };
  (void)state;
  for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    spoke__instance_t *old, *inst;
    spoke__snapshot_t *s1, *snap;
    int rc;

    assert_int_equal(admit(cases[i].serving, 1, NULL, NULL, 0, &old, &s1),
                     0);
    rc = admit(cases[i].newcomer, 2, NULL, &old, 1, &inst, &snap);
    print_message("%s beside %s: %s\n", cases[i].newcomer,
                  cases[i].serving, err);
    assert_refused(rc, SPOKE_ECONFLICT, cases[i].why, 1, inst, snap, 1);
    /* The serving instance is as it was: its own and its snapshot's
     * references, in one snapshot. */
    assert_int_equal(atomic_load(&old->refs), 2);
    assert_int_equal(atomic_load(&old->snaps), 1);
    spoke__snapshot_unref(s1);
    spoke__instance_unref(old);
    assert_int_equal(count_files(rt), 0);
  }
}

/* ---- quarantined newcomers ---- */

/* What initcount.so said on its log (its code ran), one line each. */
static char said[1024];

static void record_logv(const spoke_host_t *host, int level, const char *fmt,
                        va_list ap) {
  size_t len = strlen(said);
  (void)host;
  (void)level;
  vsnprintf(said + len, sizeof(said) - len, fmt, ap);
  len = strlen(said);
  snprintf(said + len, sizeof(said) - len, "\n");
}

/* The server's table, but the plugin's log lines go to SAID. */
static spoke_host_t recording_host;

static const spoke_host_t *recording(void) {
  recording_host = *spoke__host_table();
  recording_host.logv = record_logv;
  said[0] = '\0';
  return &recording_host;
}

/* Admits PATH at GEN with QUARANTINE and FILE (each may be NULL) and the
 * recording host, replacing PREV, beside SERVING[0..n). */
static int admit_as(const char *path, uint64_t gen, const char *quarantine,
                    const char *file, spoke__instance_t *prev,
                    spoke__instance_t **serving, size_t n,
                    spoke__instance_t **inst, spoke__snapshot_t **snap) {
  spoke__admit_t in = {
    .path = path,
    .runtime_dir = rt,
    .generation = gen,
    .prev = prev,
    .host = &recording_host,
    .serving = serving,
    .nserving = n,
    .refused = on_refused,
    .ctx = &hook_calls,
    .quarantine = quarantine,
    .file = file,
  };
  *inst = (spoke__instance_t *)&err;
  if (snap != NULL)
    *snap = (spoke__snapshot_t *)&err;
  err[0] = '\0';
  hook_calls = 0;
  return spoke__admit(&in, inst, snap, err, sizeof(err));
}

static void quarantined_runs_none_of_its_code(void **state) {
  spoke__instance_t *inst;
  spoke__snapshot_t *snap;
  spoke__match_t m;
  (void)state;

  /* The recorder works: a normal load says init, its end fini. */
  recording();
  assert_int_equal(admit_as(FIXTURE("initcount"), 1, NULL, NULL, NULL, NULL,
                            0, &inst, NULL),
                   0);
  assert_string_equal(said, "initcount: init\n");
  assert_null(inst->quarantined);
  assert_int_equal(inst->initialized, 1);
  spoke__instance_unref(inst);
  assert_string_equal(said, "initcount: init\ninitcount: fini\n");

  /* Quarantined: admitted, routes and all, but nothing of it runs. */
  recording();
  assert_int_equal(admit_as(FIXTURE("initcount"), 2, "crashed 3 times",
                            NULL, NULL, NULL, 0, &inst, &snap),
                   0);
  assert_int_equal(hook_calls, 0);
  assert_string_equal(said, "");
  assert_non_null(inst->quarantined);
  assert_string_equal(inst->quarantined, "crashed 3 times");
  assert_int_equal(inst->initialized, 0);
  assert_int_equal(inst->handed_over, 0);
  assert_null(inst->state);
  assert_string_equal(inst->name, "initcount");
  assert_string_equal(inst->version, "7");
  assert_string_equal(inst->file, "initcount.so");
  assert_true(spoke__snapshot_has(snap, inst));
  assert_int_equal(spoke__router_match(&snap->router, "GET", "/initcount",
                                       10, &m),
                   SPOKE__MATCH_FOUND);
  assert_ptr_equal(m.route->inst, inst);
  assert_int_equal(count_files(rt), 1);
  spoke__snapshot_unref(snap);
  spoke__instance_unref(inst);
  /* No fini was owed, and none ran. */
  assert_string_equal(said, "");
  assert_int_equal(count_files(rt), 0);
}

static void quarantined_initfail_is_admitted(void **state) {
  spoke__instance_t *inst;
  (void)state;

  /* Its init would refuse it: quarantined, init is never asked. */
  recording();
  assert_int_equal(admit_as(FIXTURE("bad_initfail"), 1, "rolled back", NULL,
                            NULL, NULL, 0, &inst, NULL),
                   0);
  assert_string_equal(inst->quarantined, "rolled back");
  spoke__instance_unref(inst);
}

static void quarantined_still_obeys_the_rule(void **state) {
  spoke__instance_t *hello, *inst;
  spoke__snapshot_t *s1, *snap;
  int rc;
  (void)state;

  recording();
  assert_int_equal(admit_as(EXAMPLE("hello"), 1, NULL, NULL, NULL, NULL, 0,
                            &hello, &s1),
                   0);
  rc = admit_as(FIXTURE("twin_hello"), 2, "held back", NULL, NULL, &hello, 1,
                &inst, &snap);
  assert_refused(rc, SPOKE_ECONFLICT,
                 "route GET /hello already taken by plugin hello (GET /hello)",
                 1, inst, snap, 1);
  spoke__snapshot_unref(s1);
  spoke__instance_unref(hello);
}

static void no_handover_to_or_from_quarantine(void **state) {
  spoke__instance_t *v1, *v2, *v3;
  (void)state;

  recording();
  assert_int_equal(admit_as(FIXTURE("initcount"), 1, NULL, NULL, NULL, NULL,
                            0, &v1, NULL),
                   0);
  /* Quarantined over a running version: no handover either. */
  assert_int_equal(admit_as(FIXTURE("initcount"), 2, "bad build", NULL, v1,
                            NULL, 0, &v2, NULL),
                   0);
  assert_string_equal(said, "initcount: init\n");
  assert_int_equal(v2->handed_over, 0);
  /* Over a quarantined version (whose init never ran): init, not a
   * handover of a state that never was. */
  said[0] = '\0';
  assert_int_equal(admit_as(FIXTURE("initcount"), 3, NULL, NULL, v2, NULL, 0,
                            &v3, NULL),
                   0);
  assert_string_equal(said, "initcount: init\n");
  assert_int_equal(v3->handed_over, 0);
  assert_int_equal(v3->initialized, 1);
  spoke__instance_unref(v3);
  spoke__instance_unref(v2);
  spoke__instance_unref(v1);
  assert_string_equal(said, "initcount: init\ninitcount: fini\n"
                            "initcount: fini\n");
}

/* ---- the file an instance reports ---- */

static void reports_the_file_it_was_told(void **state) {
  spoke__instance_t *inst, *other, *none;
  spoke__snapshot_t *snap;
  char want[17];
  const char *copy;
  int rc;
  (void)state;

  /* A rollback build from an archive shows as the file it stands for,
   * and its private copy is named after it; what was loaded stays in
   * src_path, and its build id is the archived file's. */
  recording();
  assert_int_equal(admit_as(EXAMPLE("hello"), 4, "rolled back",
                            "/plugins/bad.so", NULL, NULL, 0, &inst, &snap),
                   0);
  assert_string_equal(inst->file, "bad.so");
  assert_string_equal(inst->src_path, EXAMPLE("hello"));
  copy = strrchr(inst->copy_path, '/');
  assert_non_null(copy);
  assert_string_equal(copy, "/bad.4.so");
  assert_int_equal(spoke__build_id_of_file(EXAMPLE("hello"), want), 0);
  assert_string_equal(inst->build, want);
  /* Others are told of it by that name. */
  rc = admit_as(EXAMPLE("hello"), 5, NULL, NULL, NULL, &inst, 1, &other,
                NULL);
  assert_refused(rc, SPOKE_ECONFLICT,
                 "name \"hello\" is already used by bad.so", 1, other, NULL,
                 1);
  /* Without it, the path's own base name. */
  assert_int_equal(admit_as(EXAMPLE("counter"), 6, NULL, NULL, NULL, NULL, 0,
                            &none, NULL),
                   0);
  assert_string_equal(none->file, "counter.so");
  assert_null(none->quarantined);
  spoke__instance_unref(none);
  spoke__snapshot_unref(snap);
  spoke__instance_unref(inst);
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

int main(void) {
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(plugin_names),
    T(admits_hello),
    T(admits_without_snapshot),
    T(admits_beside_serving_newcomer_last),
    T(replacing_is_no_name_clash),
    T(refuses_broken_fixtures),
    T(refuses_clashes),
    T(quarantined_runs_none_of_its_code),
    T(quarantined_initfail_is_admitted),
    T(quarantined_still_obeys_the_rule),
    T(no_handover_to_or_from_quarantine),
    T(reports_the_file_it_was_told),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
