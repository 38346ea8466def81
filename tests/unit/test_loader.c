/* test_loader.c: loading real plugin .so files in-process
 * (spoke__instance_load and spoke__instance_finalize, core/instance.c).
 *
 * Uses the shipped examples (SPOKE_EXAMPLE_DIR) and the broken-on-purpose
 * fixtures (SPOKE_FIXTURE_DIR), both built before this test. Each test
 * gets a fresh runtime directory under SPOKE_UNIT_TMPDIR and checks that
 * whatever happens, nothing is left in it once instances are finalized
 * or refused. No server runs: where a handler is called, the instance's
 * own host table is patched so response calls are recorded instead of
 * sent. Build ids (inst->build, spoke__build_id_of_file) are checked
 * against FNV-1a 64 test vectors and against each other.
 */
#include <dirent.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "rundir.h"

#include "http/http.h"
#include "plugin/plugin.h"



/* Number of entries (other than . and ..) in DIR. */

static int exists(const char *path) {
  struct stat st;
  return stat(path, &st) == 0;
}

static int setup(void **state) {
  (void)state;
  return rundir_setup("loader");
}

static int teardown(void **state) {
  (void)state;
  return rundir_teardown();
}

static int load(const char *path, uint64_t gen, spoke__instance_t **out) {
  *out = (spoke__instance_t *)&err; /* must be reset, also on failure */
  err[0] = '\0';
  return spoke__instance_load(path, rt, gen, NULL, spoke__host_table(), NULL, out,
                              err, sizeof(err));
}

/* Loading PATH is refused with WANT; nothing is left behind. */
static void assert_refused(const char *path, int want, const char *why) {
  spoke__instance_t *inst;
  int rc = load(path, 1, &inst);
  if (rc != want)
    fail_msg("%s: got %s (%s), want %s", path, spoke_err_name(rc), err,
             spoke_err_name(want));
  assert_null(inst);
  if (why != NULL && strstr(err, why) == NULL)
    fail_msg("%s: message \"%s\" does not say \"%s\"", path, err, why);
  assert_int_equal(count_files(rt), 0);
}

/* ---- recording response calls ---- */

typedef struct {
  int calls;
  char body[256];
  size_t len;
  char content_type[64];
} record_t;

static record_t rec_a, rec_b;

static int record(record_t *r, const void *body, size_t len) {
  assert_true(len < sizeof(r->body));
  memcpy(r->body, body, len);
  r->body[len] = '\0';
  r->len = len;
  r->calls++;
  return 0;
}

static int send_a(spoke_request_t *req, const void *body, size_t len) {
  (void)req;
  return record(&rec_a, body, len);
}

static int send_b(spoke_request_t *req, const void *body, size_t len) {
  (void)req;
  return record(&rec_b, body, len);
}

static int header_a(spoke_request_t *req, const char *name,
                    const char *value) {
  (void)req;
  if (strcmp(name, "Content-Type") == 0)
    snprintf(rec_a.content_type, sizeof(rec_a.content_type), "%s", value);
  return 0;
}

static int header_b(spoke_request_t *req, const char *name,
                    const char *value) {
  (void)req;
  if (strcmp(name, "Content-Type") == 0)
    snprintf(rec_b.content_type, sizeof(rec_b.content_type), "%s", value);
  return 0;
}

/* Routes INST's response calls to recorder A or B. */
static void patch_host(spoke__instance_t *inst, int which) {
  inst->host.response_send = which == 0 ? send_a : send_b;
  inst->host.response_header = which == 0 ? header_a : header_b;
}

/* Calls INST's first route with a request that belongs to INST. */
static int call(spoke__instance_t *inst) {
  spoke_request_t *req = calloc(1, sizeof(*req));
  int rc;
  assert_non_null(req);
  req->inst = inst;
  req->status = 200;
  rc = inst->desc->routes[0].handler(req);
  free(req);
  return rc;
}

/* ---- tests ---- */

static void loads_hello(void **state) {
  spoke__instance_t *inst;
  char want_copy[8192], *copy;
  (void)state;

  assert_int_equal(load(EXAMPLE("hello"), 5, &inst), 0);
  assert_non_null(inst);
  assert_string_equal(inst->name, "hello");
  assert_string_equal(inst->version, "1.0.0");
  assert_int_equal(inst->generation, 5);
  assert_string_equal(inst->src_path, EXAMPLE("hello"));
  assert_int_equal(atomic_load(&inst->refs), 1);
  assert_int_equal(inst->initialized, 1);
  assert_non_null(inst->dl);
  assert_null(inst->state); /* hello has no init */

  /* The descriptor came through the check, and the plugin's host slot
   * points at this instance's table. */
  assert_non_null(inst->desc);
  assert_int_equal(inst->desc->nroutes, 2);
  assert_string_equal(inst->desc->routes[0].path, "/hello");
  assert_string_equal(inst->desc->routes[1].path, "/hello/sync");
  assert_ptr_equal(*inst->desc->host, &inst->host);
  assert_int_equal(inst->host.struct_size, sizeof(spoke_host_t));
  assert_int_equal(inst->host.abi_major, SPOKE_ABI_MAJOR);
  assert_non_null(inst->host.response_send);

  /* Mapped from a private copy named NAME.GEN.so, not from the source. */
  snprintf(want_copy, sizeof(want_copy), "%s/hello.5.so", rt);
  assert_string_equal(inst->copy_path, want_copy);
  assert_true(exists(want_copy));
  assert_int_equal(count_files(rt), 1);

  /* Its handler runs and calls back through its table. */
  memset(&rec_a, 0, sizeof(rec_a));
  patch_host(inst, 0);
  assert_int_equal(call(inst), 0);
  assert_int_equal(rec_a.calls, 1);
  assert_string_equal(rec_a.body, "Hello, World!");
  assert_string_equal(rec_a.content_type, "text/plain");

  /* The last unref (no reaper installed) finalizes: copy removed. */
  copy = strdup(inst->copy_path);
  spoke__instance_unref(inst);
  assert_false(exists(copy));
  free(copy);
  assert_int_equal(count_files(rt), 0);
}

static void finalize_removes_copy(void **state) {
  spoke__instance_t *inst;
  char copy[8192];
  (void)state;

  assert_int_equal(load(EXAMPLE("hello"), 9, &inst), 0);
  snprintf(copy, sizeof(copy), "%s", inst->copy_path);
  assert_true(exists(copy));
  spoke__instance_finalize(inst);
  assert_false(exists(copy));
  /* The source is untouched. */
  assert_true(exists(EXAMPLE("hello")));
}

static void same_file_twice(void **state) {
  spoke__instance_t *one, *two;
  (void)state;

  assert_int_equal(load(EXAMPLE("hello"), 1, &one), 0);
  assert_int_equal(load(EXAMPLE("hello"), 2, &two), 0);
  /* Two private copies, mapped separately. */
  assert_string_not_equal(one->copy_path, two->copy_path);
  assert_int_equal(count_files(rt), 2);
  assert_ptr_not_equal(one->dl, two->dl);
  assert_ptr_not_equal(one->desc, two->desc);
  assert_ptr_not_equal(one->desc->routes[0].handler,
                       two->desc->routes[0].handler);
  /* Each copy's spoke_host points at its own instance's table. */
  assert_ptr_equal(*one->desc->host, &one->host);
  assert_ptr_equal(*two->desc->host, &two->host);

  memset(&rec_a, 0, sizeof(rec_a));
  memset(&rec_b, 0, sizeof(rec_b));
  patch_host(one, 0);
  patch_host(two, 1);
  assert_int_equal(call(one), 0);
  assert_int_equal(rec_a.calls, 1);
  assert_int_equal(rec_b.calls, 0);
  assert_int_equal(call(two), 0);
  assert_int_equal(rec_a.calls, 1);
  assert_int_equal(rec_b.calls, 1);
  assert_string_equal(rec_a.body, "Hello, World!");
  assert_string_equal(rec_b.body, "Hello, World!");

  /* Unloading one leaves the other working. */
  spoke__instance_unref(one);
  assert_int_equal(count_files(rt), 1);
  assert_int_equal(call(two), 0);
  assert_int_equal(rec_b.calls, 2);
  spoke__instance_unref(two);
}

static void same_file_twice_own_state(void **state) {
  spoke__instance_t *one, *two;
  (void)state;

  assert_int_equal(load(EXAMPLE("counter"), 1, &one), 0);
  assert_int_equal(load(EXAMPLE("counter"), 2, &two), 0);
  /* Each ran its own init. */
  assert_non_null(one->state);
  assert_non_null(two->state);
  assert_ptr_not_equal(one->state, two->state);

  memset(&rec_a, 0, sizeof(rec_a));
  memset(&rec_b, 0, sizeof(rec_b));
  patch_host(one, 0);
  patch_host(two, 1);
  assert_int_equal(call(one), 0);
  assert_string_equal(rec_a.body, "1\n");
  assert_int_equal(call(one), 0);
  assert_string_equal(rec_a.body, "2\n");
  assert_int_equal(call(two), 0);
  assert_string_equal(rec_b.body, "1\n");
  assert_int_equal(call(one), 0);
  assert_string_equal(rec_a.body, "3\n");
  /* Finalizing runs each fini (AddressSanitizer: no leaked state). */
  spoke__instance_unref(one);
  spoke__instance_unref(two);
}

static void refuses_not_elf(void **state) {
  (void)state;
  assert_refused(FIXTURE("bad_notelf"), SPOKE_ENOTELF, "not an ELF");
}

static void refuses_no_descriptor(void **state) {
  (void)state;
  assert_refused(FIXTURE("bad_nodesc"), SPOKE_ENODESC, "spoke_plugin");
}

static void refuses_abi(void **state) {
  (void)state;
  assert_refused(FIXTURE("bad_abi"), SPOKE_EABI, "99");
}

static void refuses_small(void **state) {
  (void)state;
  assert_refused(FIXTURE("bad_small"), SPOKE_EDESC, "too small");
}

static void refuses_init_failure(void **state) {
  (void)state;
  assert_refused(FIXTURE("bad_initfail"), SPOKE_EINIT, "init failed");
}

static void refuses_missing_file(void **state) {
  (void)state;
  assert_refused(SPOKE_FIXTURE_DIR "/no_such_plugin.so", SPOKE_EIO, NULL);
}

static void refuses_truncated(void **state) {
  char dir[4096], path[8192], buf[2000];
  int in, out;
  ssize_t n;
  (void)state;

  /* The first 2000 bytes of hello.so: a valid ELF header, then nothing. */
  in = open(EXAMPLE("hello"), O_RDONLY);
  assert_true(in >= 0);
  n = read(in, buf, sizeof(buf));
  close(in);
  assert_int_equal(n, (ssize_t)sizeof(buf));
  snprintf(dir, sizeof(dir), "%s/loader-src-XXXXXX", SPOKE_UNIT_TMPDIR);
  assert_non_null(mkdtemp(dir));
  snprintf(path, sizeof(path), "%s/trunc.so", dir);
  out = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
  assert_true(out >= 0);
  assert_int_equal(write(out, buf, sizeof(buf)), (ssize_t)sizeof(buf));
  close(out);

  {
    spoke__instance_t *inst;
    int rc = load(path, 3, &inst);
    unlink(path);
    rmdir(dir);
    if (rc != SPOKE_EDLOPEN && rc != SPOKE_ENOTELF)
      fail_msg("truncated .so: got %s (%s)", spoke_err_name(rc), err);
    assert_null(inst);
    assert_true(err[0] != '\0');
  }
  assert_int_equal(count_files(rt), 0);
}

static void refuses_missing_runtime_dir(void **state) {
  spoke__instance_t *inst;
  char missing[8192];
  (void)state;
  snprintf(missing, sizeof(missing), "%s/not-there", rt);
  assert_int_equal(spoke__instance_load(EXAMPLE("hello"), missing, 1, NULL,
                                        spoke__host_table(), NULL, &inst,
                                        err, sizeof(err)),
                   SPOKE_EIO);
  assert_null(inst);
  assert_non_null(strstr(err, "not-there"));
}

static void same_generation_collides(void **state) {
  spoke__instance_t *one, *two;
  (void)state;
  /* A generation is used once: the second copy may not replace the
   * first one's mapped file. */
  assert_int_equal(load(EXAMPLE("hello"), 4, &one), 0);
  assert_int_equal(load(EXAMPLE("hello"), 4, &two), SPOKE_EIO);
  assert_null(two);
  assert_int_equal(count_files(rt), 1);
  assert_true(exists(one->copy_path));
  spoke__instance_unref(one);
}

/* ---- build ids ---- */

/* Writes LEN bytes of DATA to RT/NAME; its path into PATH. */
static void write_file(const char *name, const void *data, size_t len,
                       char *path, size_t cap) {
  FILE *f;
  snprintf(path, cap, "%s/%s", rt, name);
  f = fopen(path, "wb");
  assert_non_null(f);
  assert_int_equal(fwrite(data, 1, len, f), len);
  assert_int_equal(fclose(f), 0);
}

static void build_id_known_values(void **state) {
  static const struct {
    const char *data;
    const char *id;
  } cases[] = {
    /* FNV-1a 64: the offset basis, and the published test vectors. */
    {"", "cbf29ce484222325"},
    {"a", "af63dc4c8601ec8c"},
    {"foobar", "85944171f73967e8"},
  };
  char path[8192], id[17];
  (void)state;
  for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    write_file("vector", cases[i].data, strlen(cases[i].data), path,
               sizeof(path));
    assert_int_equal(spoke__build_id_of_file(path, id), 0);
    assert_string_equal(id, cases[i].id);
    unlink(path);
  }
  /* Past one read's worth (64 KiB): the hash runs on across reads. */
  {
    size_t n = 200000;
    char *big = malloc(n), id2[17];
    assert_non_null(big);
    for (size_t i = 0; i < n; i++)
      big[i] = (char)(i * 7);
    write_file("big", big, n, path, sizeof(path));
    assert_int_equal(spoke__build_id_of_file(path, id), 0);
    big[n - 1] ^= 1;
    write_file("big", big, n, path, sizeof(path));
    assert_int_equal(spoke__build_id_of_file(path, id2), 0);
    assert_string_not_equal(id, id2);
    unlink(path);
    free(big);
  }
}

static void build_id_missing_file(void **state) {
  char path[8192], id[17] = "poison";
  (void)state;
  snprintf(path, sizeof(path), "%s/not-there.so", rt);
  assert_int_equal(spoke__build_id_of_file(path, id), SPOKE_EIO);
  assert_string_equal(id, "");
}

static int is_build_id(const char *id) {
  if (strlen(id) != 16)
    return 0;
  for (int i = 0; i < 16; i++)
    if (!((id[i] >= '0' && id[i] <= '9') || (id[i] >= 'a' && id[i] <= 'f')))
      return 0;
  return 1;
}

static void build_id_of_loaded(void **state) {
  spoke__instance_t *one, *two, *other;
  char id[17], copy_id[17];
  (void)state;

  assert_int_equal(load(EXAMPLE("hello"), 1, &one), 0);
  assert_int_equal(load(EXAMPLE("hello"), 2, &two), 0);
  assert_int_equal(load(EXAMPLE("counter"), 3, &other), 0);
  assert_true(is_build_id(one->build));
  /* By content: the same bytes, the same id, whatever copy it is. */
  assert_string_equal(one->build, two->build);
  assert_int_equal(spoke__build_id_of_file(EXAMPLE("hello"), id), 0);
  assert_string_equal(one->build, id);
  assert_int_equal(spoke__build_id_of_file(one->copy_path, copy_id), 0);
  assert_string_equal(copy_id, id);
  /* Other bytes, another id. */
  assert_true(is_build_id(other->build));
  assert_string_not_equal(other->build, one->build);
  spoke__instance_unref(other);
  spoke__instance_unref(two);
  spoke__instance_unref(one);
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

int main(void) {
  const struct CMUnitTest tests[] = {
    T(loads_hello),
    T(finalize_removes_copy),
    T(same_file_twice),
    T(same_file_twice_own_state),
    T(refuses_not_elf),
    T(refuses_no_descriptor),
    T(refuses_abi),
    T(refuses_small),
    T(refuses_init_failure),
    T(refuses_missing_file),
    T(refuses_truncated),
    T(refuses_missing_runtime_dir),
    T(same_generation_collides),
    T(build_id_known_values),
    T(build_id_missing_file),
    T(build_id_of_loaded),
  };
  return cmocka_run_group_tests_name("loader", tests, NULL, NULL);
}
