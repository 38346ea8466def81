/* rundir.h: a fresh runtime directory per test, for the unit tests that
 * load real plugins (test_loader, test_admit).
 *
 * The built plugins are found through SPOKE_EXAMPLE_DIR and
 * SPOKE_FIXTURE_DIR (tests/unit/CMakeLists.txt defines them):
 * EXAMPLE("hello"), FIXTURE("bad_abi"). Private copies go under the build
 * directory (SPOKE_UNIT_TMPDIR), not
 * /tmp, which may be mounted noexec. The teardown fails the test if
 * anything was left behind (a copy not removed is a leak of the loader),
 * after cleaning up so the next test starts empty. Include after
 * cmocka.h; the including file defines nothing of these names.
 */
#ifndef SPOKE_TEST_RUNDIR_H
#define SPOKE_TEST_RUNDIR_H

#include <dirent.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#ifndef SPOKE_EXAMPLE_DIR
#error "SPOKE_EXAMPLE_DIR must name the directory of the built examples"
#endif
#ifndef SPOKE_FIXTURE_DIR
#error "SPOKE_FIXTURE_DIR must name the directory of the fixture plugins"
#endif
#ifndef SPOKE_UNIT_TMPDIR
#define SPOKE_UNIT_TMPDIR "/tmp"
#endif

#define EXAMPLE(name) SPOKE_EXAMPLE_DIR "/" name ".so"
#define FIXTURE(name) SPOKE_FIXTURE_DIR "/" name ".so"

static char rt[4096];  /* this test's runtime directory */
static char err[512];  /* the last refusal's reason */

static int count_files(const char *dir) {
  DIR *d = opendir(dir);
  struct dirent *de;
  int n = 0;
  assert_non_null(d);
  while ((de = readdir(d)) != NULL)
    if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0)
      n++;
  closedir(d);
  return n;
}

/* A cmocka setup: makes RT as NAME-rt-XXXXXX under SPOKE_UNIT_TMPDIR. */
static int rundir_setup(const char *name) {
  snprintf(rt, sizeof(rt), "%s/%s-rt-XXXXXX", SPOKE_UNIT_TMPDIR, name);
  if (mkdtemp(rt) == NULL) {
    perror(rt);
    return -1;
  }
  err[0] = '\0';
  return 0;
}

/* A cmocka teardown: RT must be empty; it is removed either way. */
static int rundir_teardown(void) {
  int left = count_files(rt);
  if (left != 0) {
    DIR *d = opendir(rt);
    struct dirent *de;
    char path[8192];
    while (d != NULL && (de = readdir(d)) != NULL) {
      if (de->d_name[0] == '.')
        continue;
      snprintf(path, sizeof(path), "%s/%s", rt, de->d_name);
      unlink(path);
    }
    if (d != NULL)
      closedir(d);
  }
  rmdir(rt);
  assert_int_equal(left, 0);
  return 0;
}

#endif /* SPOKE_TEST_RUNDIR_H */
