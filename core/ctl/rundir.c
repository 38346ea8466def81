/* rundir.c: the server's private runtime directory: make, remove, and
 * sweep the stale ones of dead servers.
 *
 * The directory is PARENT/spoke.PID.XXXXXX (PARENT: --runtime-dir, else
 * $TMPDIR, else /tmp) and holds the private plugin copies (NAME.GEN.so)
 * and status.json (written through .status.json.tmp). While the server
 * runs it holds an exclusive flock on the directory, which the kernel
 * drops however the process ends. Every exit that can removes the
 * directory: the normal one, and the two _exit paths of server.c (the
 * shutdown deadline, a second signal), where other threads may still run
 * plugin code: unlinking a mapped copy is safe on Linux.
 *
 * A server killed outright (SIGKILL, a crash) leaves its directory; the
 * next server started with the same parent removes it. Stale means all
 * of: the name is spoke.PID.XXXXXX; it is a directory (not a link) owned
 * by our uid; PID is not a live spoke (kill(PID, 0) fails with ESRCH, or
 * the process there now is another program: /proc/PID/cmdline's argv[0]
 * is not named "spoke"; our own PID counts as dead, we have no directory
 * yet); and nobody holds the directory's flock. When in doubt (cannot
 * read /proc, cannot lock) the directory is left alone. Only what spoke
 * writes is removed (*.so, status.json, .status.json.tmp, regular files
 * directly inside); a directory that holds anything else keeps it.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ctl/ctl.h"

static int lock_fd = -1; /* our directory, flocked while we run */

static const char *parent_of(const spoke__server_t *srv) {
  const char *parent = srv->cfg.runtime_dir;
  if (parent == NULL)
    parent = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
  return parent;
}

/* Whether NAME is a file spoke writes into its runtime directory. */
static int ours(const char *name) {
  size_t n = strlen(name);
  return strcmp(name, "status.json") == 0 ||
         strcmp(name, ".status.json.tmp") == 0 ||
         (n > 3 && strcmp(name + n - 3, ".so") == 0);
}

/* Unlinks spoke's regular files directly inside the directory DFD.
 * Returns how many were removed. Closes DFD. */
static int remove_files(int dfd) {
  DIR *d = fdopendir(dfd);
  struct dirent *de;
  struct stat st;
  int n = 0;
  if (d == NULL) {
    close(dfd);
    return 0;
  }
  while ((de = readdir(d)) != NULL) {
    if (!ours(de->d_name))
      continue;
    if (fstatat(dfd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0 ||
        !S_ISREG(st.st_mode))
      continue;
    if (unlinkat(dfd, de->d_name, 0) == 0)
      n++;
  }
  closedir(d);
  return n;
}

void spoke__rundir_remove(const char *dir) {
  int dfd;
  if (dir == NULL)
    return;
  dfd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (dfd >= 0)
    remove_files(dfd);
  rmdir(dir);
  if (lock_fd >= 0)
    close(lock_fd);
  lock_fd = -1;
}

/* Parses spoke.PID.XXXXXX (what make writes: %d, mkdtemp's six letters
 * and digits); returns PID, or 0 when NAME is not one. */
static pid_t stale_name_pid(const char *name) {
  const char *p = name + 6, *x;
  long pid = 0;
  if (strncmp(name, "spoke.", 6) != 0 || *p < '1' || *p > '9')
    return 0;
  for (; *p >= '0' && *p <= '9'; p++) {
    pid = pid * 10 + (*p - '0');
    if (pid > INT_MAX)
      return 0;
  }
  if (*p != '.')
    return 0;
  for (x = p + 1; *x != '\0'; x++)
    if (!((*x >= 'a' && *x <= 'z') || (*x >= 'A' && *x <= 'Z') ||
          (*x >= '0' && *x <= '9')))
      return 0;
  return x - (p + 1) == 6 ? (pid_t)pid : 0;
}

/* 1 when PID is a live spoke (or we cannot tell), 0 when it is not: no
 * such process, our own PID (we have no directory yet), or a process
 * whose argv[0] is not named spoke (the PID was reused). */
static int live_spoke(pid_t pid) {
  char path[64], argv0[4096];
  const char *base;
  ssize_t n;
  int fd;
  if (pid == getpid())
    return 0;
  if (kill(pid, 0) != 0 && errno == ESRCH)
    return 0;
  snprintf(path, sizeof(path), "/proc/%d/cmdline", (int)pid);
  fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return errno == ENOENT ? 0 : 1; /* gone meanwhile : cannot tell */
  n = read(fd, argv0, sizeof(argv0) - 1);
  close(fd);
  if (n < 0)
    return 1;
  argv0[n] = '\0'; /* argv[0] ends at its NUL; a zombie has none */
  base = strrchr(argv0, '/');
  base = base ? base + 1 : argv0;
  return strcmp(base, "spoke") == 0;
}

/* Removes PARENT/NAME if it is stale (see the top). */
static void sweep_one(int pfd, const char *parent, const char *name) {
  struct stat st, st2;
  pid_t pid = stale_name_pid(name);
  int dfd, n;
  if (pid == 0)
    return;
  if (fstatat(pfd, name, &st, AT_SYMLINK_NOFOLLOW) != 0 ||
      !S_ISDIR(st.st_mode) || st.st_uid != geteuid())
    return;
  if (live_spoke(pid))
    return;
  dfd = openat(pfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (dfd < 0)
    return;
  /* The same directory we looked at, and no live server holds it. */
  if (fstat(dfd, &st2) != 0 || st2.st_dev != st.st_dev ||
      st2.st_ino != st.st_ino || flock(dfd, LOCK_EX | LOCK_NB) != 0) {
    close(dfd);
    return;
  }
  n = remove_files(dfd); /* closes dfd, and so drops the lock */
  /* "runtime directory" is never followed by a space and a word here:
   * that is how the line naming our own directory is found. */
  if (unlinkat(pfd, name, AT_REMOVEDIR) == 0)
    spoke__info("removed stale runtime directory: %s/%s of dead process %d",
                parent, name, (int)pid);
  else if (n > 0)
    spoke__warn("removed %d stale file%s from %s/%s of dead process %d; "
                "it holds other files and stays",
                n, n == 1 ? "" : "s", parent, name, (int)pid);
}

void spoke__rundir_sweep(const char *parent) {
  int pfd = open(parent, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  DIR *d;
  struct dirent *de;
  if (pfd < 0)
    return; /* make says why */
  d = fdopendir(pfd);
  if (d == NULL) {
    close(pfd);
    return;
  }
  while ((de = readdir(d)) != NULL)
    sweep_one(pfd, parent, de->d_name);
  closedir(d);
}

int spoke__rundir_make(spoke__server_t *srv) {
  const char *parent = parent_of(srv);
  char tmpl[4096];
  spoke__rundir_sweep(parent);
  snprintf(tmpl, sizeof(tmpl), "%s/spoke.%d.XXXXXX", parent, (int)getpid());
  if (mkdtemp(tmpl) == NULL) {
    spoke__error("cannot create a runtime directory under %s: %m "
                 "(choose another with --runtime-dir)",
                 parent);
    return SPOKE_EIO;
  }
  srv->runtime_dir = strdup(tmpl);
  if (srv->runtime_dir == NULL) {
    rmdir(tmpl);
    return SPOKE_ENOMEM;
  }
  /* Held until we exit, however we exit: the sweep's proof of life. */
  lock_fd = open(tmpl, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (lock_fd >= 0 && flock(lock_fd, LOCK_EX | LOCK_NB) != 0) {
    close(lock_fd);
    lock_fd = -1;
  }
  return 0;
}
