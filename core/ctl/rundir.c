/* rundir.c: the server's private runtime directory: make and remove.
 *
 * The directory is PARENT/spoke.PID.XXXXXX (PARENT: --runtime-dir, else
 * $TMPDIR, else /tmp) and holds the private plugin copies (NAME.GEN.so)
 * and status.json (written through .status.json.tmp). Every exit that
 * can removes the directory: the normal one, and the two _exit paths of
 * server.c (the shutdown deadline, a second signal), where other threads
 * may still run plugin code: unlinking a mapped copy is safe on Linux.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ctl/ctl.h"

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
}

int spoke__rundir_make(spoke__server_t *srv) {
  const char *parent = parent_of(srv);
  char tmpl[4096];
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
  return 0;
}
