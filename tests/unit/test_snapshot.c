/* test_snapshot.c: route-table snapshots over plugin instances and the
 * references they hold (core/snapshot.c, refcounting in core/instance.c).
 *
 * Instances are made by hand from static descriptors: no .so is loaded.
 * A test reaper collects instances whose count reaches zero (the real
 * finalize would dlclose a NULL handle); the test then frees them.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "plugin/plugin.h"

/* Records which instances spoke__snapshot_build refused, by index into
 * the list it was given, and the last reason. */
typedef struct refusals_s {
  spoke__instance_t **list;
  size_t *idx;
  size_t n;
  char why[256];
} refusals_t;

static void record_refusal(void *ctx, spoke__instance_t *inst,
                           const char *why) {
  refusals_t *r = ctx;
  size_t i = 0;
  while (r->list[i] != inst)
    i++;
  r->idx[r->n++] = i;
  snprintf(r->why, sizeof(r->why), "%s", why);
}

static refusals_t last_refusals;

static spoke__snapshot_t *build(uint64_t gen, spoke__instance_t **list,
                                size_t n, size_t *refused, size_t *nrefused) {
  spoke__snapshot_t *s;
  last_refusals.list = list;
  last_refusals.idx = refused;
  last_refusals.n = 0;
  last_refusals.why[0] = '\0';
  s = spoke__snapshot_build(gen, list, n, record_refusal, &last_refusals);
  *nrefused = last_refusals.n;
  return s;
}

static int handler_a(spoke_request_t *req) { (void)req; return 0; }
static int handler_b(spoke_request_t *req) { (void)req; return 0; }

static const spoke_host_t *host_slot;

#define DESC(var, plugin_name, table)                                  \
  static const spoke_plugin_t var = {                                  \
    .abi_major = SPOKE_ABI_MAJOR,                                      \
    .abi_minor = SPOKE_ABI_MINOR,                                      \
    .struct_size = sizeof(spoke_plugin_t),                             \
    .host = &host_slot,                                                \
    .name = plugin_name,                                               \
    .version = "1",                                                    \
    .routes = table,                                                   \
    .nroutes = sizeof(table) / sizeof(table[0]),                       \
  }

static const spoke_route_t users_routes[] = {
  { "GET", "/users/:id", SPOKE_ASYNC, handler_a },
  { "GET", "/users/me", SPOKE_SYNC, handler_a },
};
DESC(users_desc, "users", users_routes);

/* Its second route collides with users' first (other parameter name);
 * its first route is free on its own. */
static const spoke_route_t rival_routes[] = {
  { "POST", "/rival", SPOKE_ASYNC, handler_b },
  { "GET", "/users/:name", SPOKE_ASYNC, handler_b },
};
DESC(rival_desc, "rival", rival_routes);

static const spoke_route_t files_routes[] = {
  { "*", "/files/*", SPOKE_SYNC, handler_b },
};
DESC(files_desc, "files", files_routes);

/* Declares one route twice. */
static const spoke_route_t twice_routes[] = {
  { "GET", "/twice", SPOKE_ASYNC, handler_a },
  { "GET", "/twice", SPOKE_ASYNC, handler_b },
};
DESC(twice_desc, "twice", twice_routes);

/* "*" on a path users already serves with GET. */
static const spoke_route_t any_routes[] = {
  { "*", "/users/me", SPOKE_ASYNC, handler_b },
};
DESC(any_desc, "any", any_routes);

/* A route that does not compile (descriptor_check would have caught it;
 * the snapshot must not trust that). */
static const spoke_route_t broken_routes[] = {
  { "GET", "/ok", SPOKE_ASYNC, handler_a },
  { "GET", "no-slash", SPOKE_ASYNC, handler_a },
};
DESC(broken_desc, "broken", broken_routes);

/* ---- instances and the reaper ---- */

static spoke__instance_t *reaped[16];
static size_t nreaped;

static void test_reaper(spoke__instance_t *inst) {
  assert_true(nreaped < 16);
  assert_int_equal(atomic_load(&inst->refs), 0);
  reaped[nreaped++] = inst;
}

static spoke__instance_t *inst_new(const spoke_plugin_t *desc,
                                   uint64_t generation) {
  spoke__instance_t *inst = calloc(1, sizeof(*inst));
  char path[128];
  assert_non_null(inst);
  inst->desc = desc;
  inst->name = strdup(desc->name);
  snprintf(path, sizeof(path), "/plugins/%s.so", desc->name);
  inst->src_path = strdup(path);
  inst->generation = generation;
  atomic_init(&inst->refs, 1);
  return inst;
}

static void inst_free(spoke__instance_t *inst) {
  free(inst->name);
  free(inst->src_path);
  free(inst);
}

static long refs(const spoke__instance_t *inst) {
  return atomic_load(&((spoke__instance_t *)inst)->refs);
}

static int was_reaped(const spoke__instance_t *inst) {
  for (size_t i = 0; i < nreaped; i++)
    if (reaped[i] == inst)
      return 1;
  return 0;
}

static int setup(void **state) {
  (void)state;
  nreaped = 0;
  spoke__instance_set_reaper(test_reaper);
  return 0;
}

static int teardown(void **state) {
  (void)state;
  spoke__instance_set_reaper(NULL);
  for (size_t i = 0; i < nreaped; i++)
    inst_free(reaped[i]);
  nreaped = 0;
  return 0;
}

/* Drops the caller's reference on each of INST[0..n). */
static void unref_all(spoke__instance_t **inst, size_t n) {
  for (size_t i = 0; i < n; i++)
    spoke__instance_unref(inst[i]);
}

static spoke__match_result_t match(const spoke__snapshot_t *s,
                                   const char *method, const char *path,
                                   spoke__match_t *m) {
  return spoke__router_match(&s->router, method, path, strlen(path), m);
}

/* ---- tests ---- */

static void builds_and_counts_refs(void **state) {
  spoke__instance_t *inst[2] = {inst_new(&users_desc, 1),
                                inst_new(&files_desc, 1)};
  size_t refused[2] = {99, 99}, nrefused = 99;
  spoke__snapshot_t *s;
  spoke__match_t m;
  (void)state;

  s = build(7, inst, 2, refused, &nrefused);
  assert_non_null(s);
  assert_int_equal(nrefused, 0);
  assert_int_equal(s->generation, 7);
  assert_int_equal(atomic_load(&s->refs), 1);
  assert_int_equal(s->ninst, 2);
  assert_ptr_equal(s->inst[0], inst[0]);
  assert_ptr_equal(s->inst[1], inst[1]);
  assert_int_equal(s->router.n, 3);
  /* One reference each for the snapshot, besides the caller's. */
  assert_int_equal(refs(inst[0]), 2);
  assert_int_equal(refs(inst[1]), 2);

  /* The router is finished and its routes point at their instances. */
  assert_int_equal(match(s, "GET", "/users/me", &m), SPOKE__MATCH_FOUND);
  assert_string_equal(m.route->pattern, "/users/me");
  assert_ptr_equal(m.route->inst, inst[0]);
  assert_int_equal(m.route->mode, SPOKE_SYNC);
  assert_ptr_equal(m.route->handler, handler_a);
  assert_int_equal(match(s, "GET", "/users/5", &m), SPOKE__MATCH_FOUND);
  assert_int_equal(m.route->mode, SPOKE_ASYNC);
  assert_int_equal(match(s, "DELETE", "/files/a/b", &m), SPOKE__MATCH_FOUND);
  assert_ptr_equal(m.route->inst, inst[1]);
  assert_ptr_equal(m.route->handler, handler_b);

  /* More holders of the snapshot; only the last unref lets go. */
  spoke__snapshot_ref(s);
  spoke__snapshot_ref(s);
  spoke__snapshot_unref(s);
  spoke__snapshot_unref(s);
  assert_int_equal(refs(inst[0]), 2);
  spoke__snapshot_unref(s);
  assert_int_equal(refs(inst[0]), 1);
  assert_int_equal(refs(inst[1]), 1);
  assert_int_equal(nreaped, 0);

  /* The caller's references are the last: the reaper gets both. */
  unref_all(inst, 2);
  assert_int_equal(nreaped, 2);
  assert_true(was_reaped(inst[0]));
  assert_true(was_reaped(inst[1]));
}

static void snapshot_outlives_caller(void **state) {
  spoke__instance_t *inst[1] = {inst_new(&users_desc, 1)};
  size_t refused[1], nrefused;
  spoke__snapshot_t *s;
  spoke__match_t m;
  (void)state;

  s = build(1, inst, 1, refused, &nrefused);
  assert_non_null(s);
  /* The loader drops its own reference: the snapshot keeps it alive. */
  spoke__instance_unref(inst[0]);
  assert_int_equal(nreaped, 0);
  assert_int_equal(refs(inst[0]), 1);
  assert_int_equal(match(s, "GET", "/users/1", &m), SPOKE__MATCH_FOUND);
  /* A request pins it past the snapshot. */
  spoke__instance_ref(inst[0]);
  spoke__snapshot_unref(s);
  assert_int_equal(nreaped, 0);
  spoke__instance_unref(inst[0]);
  assert_int_equal(nreaped, 1);
  assert_ptr_equal(reaped[0], inst[0]);
}

static void conflicting_instance_refused(void **state) {
  spoke__instance_t *inst[3] = {inst_new(&users_desc, 1),
                                inst_new(&rival_desc, 1),
                                inst_new(&files_desc, 1)};
  size_t refused[3] = {99, 99, 99}, nrefused = 99;
  spoke__snapshot_t *s;
  spoke__match_t m;
  (void)state;

  s = build(2, inst, 3, refused, &nrefused);
  assert_non_null(s);
  assert_int_equal(nrefused, 1);
  assert_int_equal(refused[0], 1);
  assert_int_equal(s->ninst, 2);
  assert_ptr_equal(s->inst[0], inst[0]);
  assert_ptr_equal(s->inst[1], inst[2]);
  /* The refused one holds no snapshot reference... */
  assert_int_equal(refs(inst[0]), 2);
  assert_int_equal(refs(inst[1]), 1);
  assert_int_equal(refs(inst[2]), 2);
  /* ...and none of its routes, not even the one that did not collide. */
  assert_int_equal(s->router.n, 3);
  for (size_t i = 0; i < s->router.n; i++)
    assert_ptr_not_equal(s->router.routes[i].inst, inst[1]);
  assert_int_equal(match(s, "POST", "/rival", &m), SPOKE__MATCH_NOT_FOUND);
  /* The earlier instance keeps the contested route. */
  assert_int_equal(match(s, "GET", "/users/9", &m), SPOKE__MATCH_FOUND);
  assert_ptr_equal(m.route->inst, inst[0]);

  spoke__snapshot_unref(s);
  assert_int_equal(refs(inst[0]), 1);
  assert_int_equal(refs(inst[2]), 1);
  unref_all(inst, 3);
  assert_int_equal(nreaped, 3);
}

static void order_decides_who_wins(void **state) {
  spoke__instance_t *inst[2] = {inst_new(&rival_desc, 1),
                                inst_new(&users_desc, 1)};
  size_t refused[2], nrefused;
  spoke__snapshot_t *s;
  spoke__match_t m;
  (void)state;

  s = build(3, inst, 2, refused, &nrefused);
  assert_non_null(s);
  assert_int_equal(nrefused, 1);
  assert_int_equal(refused[0], 1);
  assert_int_equal(s->ninst, 1);
  assert_int_equal(match(s, "GET", "/users/9", &m), SPOKE__MATCH_FOUND);
  assert_ptr_equal(m.route->inst, inst[0]);
  assert_int_equal(match(s, "POST", "/rival", &m), SPOKE__MATCH_FOUND);
  /* users' /users/me went with it. */
  assert_int_equal(match(s, "GET", "/users/me", &m), SPOKE__MATCH_FOUND);
  assert_ptr_equal(m.route->inst, inst[0]);
  spoke__snapshot_unref(s);
  unref_all(inst, 2);
  assert_int_equal(nreaped, 2);
}

static void other_refusals(void **state) {
  spoke__instance_t *inst[4] = {
      inst_new(&users_desc, 1), inst_new(&twice_desc, 1),
      inst_new(&any_desc, 1), inst_new(&broken_desc, 1)};
  size_t refused[4] = {99, 99, 99, 99}, nrefused = 99;
  spoke__snapshot_t *s;
  spoke__match_t m;
  (void)state;

  s = build(4, inst, 4, refused, &nrefused);
  assert_non_null(s);
  /* A route declared twice; "*" over a taken GET; a route that does not
   * compile. Indexes in order. */
  assert_int_equal(nrefused, 3);
  assert_int_equal(refused[0], 1);
  assert_int_equal(refused[1], 2);
  assert_int_equal(refused[2], 3);
  assert_int_equal(s->ninst, 1);
  assert_int_equal(s->router.n, 2);
  assert_int_equal(match(s, "GET", "/twice", &m), SPOKE__MATCH_NOT_FOUND);
  assert_int_equal(match(s, "GET", "/ok", &m), SPOKE__MATCH_NOT_FOUND);
  assert_int_equal(match(s, "PUT", "/users/me", &m),
                   SPOKE__MATCH_METHOD_NOT_ALLOWED);
  for (size_t i = 1; i < 4; i++)
    assert_int_equal(refs(inst[i]), 1);
  spoke__snapshot_unref(s);
  unref_all(inst, 4);
  assert_int_equal(nreaped, 4);
}

static void same_plugin_two_generations(void **state) {
  /* A reload builds the new snapshot with the new instance only; both
   * snapshots may be alive at once while loops switch over. */
  spoke__instance_t *old_inst = inst_new(&users_desc, 1);
  spoke__instance_t *new_inst = inst_new(&users_desc, 2);
  size_t refused[1], nrefused;
  spoke__snapshot_t *s1, *s2;
  spoke__match_t m;
  (void)state;

  s1 = build(1, &old_inst, 1, refused, &nrefused);
  spoke__instance_unref(old_inst);
  s2 = build(2, &new_inst, 1, refused, &nrefused);
  spoke__instance_unref(new_inst);
  assert_non_null(s1);
  assert_non_null(s2);
  assert_int_equal(match(s1, "GET", "/users/1", &m), SPOKE__MATCH_FOUND);
  assert_ptr_equal(m.route->inst, old_inst);
  assert_int_equal(match(s2, "GET", "/users/1", &m), SPOKE__MATCH_FOUND);
  assert_ptr_equal(m.route->inst, new_inst);

  /* Retiring the old snapshot lets the old version go, and only it. */
  spoke__snapshot_unref(s1);
  assert_int_equal(nreaped, 1);
  assert_ptr_equal(reaped[0], old_inst);
  assert_int_equal(refs(new_inst), 1);
  spoke__snapshot_unref(s2);
  assert_int_equal(nreaped, 2);
  assert_ptr_equal(reaped[1], new_inst);
}

static void empty_snapshot(void **state) {
  size_t nrefused = 99;
  spoke__snapshot_t *s;
  spoke__match_t m;
  (void)state;

  s = build(0, NULL, 0, NULL, &nrefused);
  assert_non_null(s);
  assert_int_equal(nrefused, 0);
  assert_int_equal(s->ninst, 0);
  assert_int_equal(match(s, "GET", "/", &m), SPOKE__MATCH_NOT_FOUND);
  spoke__snapshot_unref(s);
  /* Unref of NULL is a no-op. */
  spoke__snapshot_unref(NULL);
  assert_int_equal(nreaped, 0);
}

int main(void) {
  const struct CMUnitTest tests[] = {
    cmocka_unit_test_setup_teardown(builds_and_counts_refs, setup, teardown),
    cmocka_unit_test_setup_teardown(snapshot_outlives_caller, setup,
                                    teardown),
    cmocka_unit_test_setup_teardown(conflicting_instance_refused, setup,
                                    teardown),
    cmocka_unit_test_setup_teardown(order_decides_who_wins, setup, teardown),
    cmocka_unit_test_setup_teardown(other_refusals, setup, teardown),
    cmocka_unit_test_setup_teardown(same_plugin_two_generations, setup,
                                    teardown),
    cmocka_unit_test_setup_teardown(empty_snapshot, setup, teardown),
  };
  return cmocka_run_group_tests_name("snapshot", tests, NULL, NULL);
}
