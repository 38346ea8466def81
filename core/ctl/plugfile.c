/* plugfile.c: the plugin files of the plugins directory, as the admin
 * listener's /plugins/NAME.so endpoints read, write and remove them.
 *
 * An upload is written beside its destination under a name the server
 * never loads (".NAME.so.upload.PID": a plugin file may not start with
 * a dot), flushed to disk, then renamed over NAME.so: the directory
 * holds the old file or the new one, never a part, whatever happens to
 * the process or the connection meanwhile. One upload per name at a
 * time in a process (a second gets SPOKE_EBUSY); two worker processes
 * uploading one name write two temporary files, and the later rename
 * wins whole. An upload that fails or is cut removes its temporary file.
 *
 * Read and remove answer 0, 1 when there is no such plugin file, or a
 * negative code (SPOKE_EINVAL: not a plugin file name).
 *
 * Runs on the control thread only; the writes are plain blocking
 * write(2)s to the page cache (a plugin is a few MiB at most, and
 * SPOKE__UPLOAD_MAX bounds it), then one fsync before the rename.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ctl/ctl.h"

struct spoke__upload_s {
  int fd;
  char tmp[1024], dest[1024];
  size_t want, got;
  uint64_t hash;            /* FNV-1a 64 of the bytes written so far */
  spoke__upload_t *next;
};

static spoke__upload_t *open_uploads; /* control thread */

static int join(char *out, size_t cap, const char *dir, const char *prefix,
                const char *name, const char *suffix) {
  int n = snprintf(out, cap, "%s/%s%s%s", dir, prefix, name, suffix);
  return n > 0 && (size_t)n < cap ? 0 : SPOKE_EINVAL;
}

/* DIR/NAME into OUT when NAME is a plugin file name (and no path): 0,
 * or SPOKE_EINVAL. */
static int plugin_path(char *out, size_t cap, const char *dir,
                       const char *name) {
  if (!spoke__admit_is_plugin_name(name) || strchr(name, '/') != NULL)
    return SPOKE_EINVAL;
  return join(out, cap, dir, "", name, "");
}

int spoke__upload_open(const char *dir, const char *name, size_t length,
                       spoke__upload_t **out) {
  spoke__upload_t *u;
  char suffix[32];

  *out = NULL;
  if (length > SPOKE__UPLOAD_MAX)
    return SPOKE_ENOMEM;
  if ((u = calloc(1, sizeof(*u))) == NULL)
    return SPOKE_ENOMEM;
  snprintf(suffix, sizeof(suffix), ".upload.%d", (int)getpid());
  if (plugin_path(u->dest, sizeof(u->dest), dir, name) != 0 ||
      join(u->tmp, sizeof(u->tmp), dir, ".", name, suffix) != 0) {
    free(u);
    return SPOKE_EINVAL;
  }
  for (spoke__upload_t *o = open_uploads; o != NULL; o = o->next)
    if (strcmp(o->tmp, u->tmp) == 0) {
      free(u);
      return SPOKE_EBUSY;
    }
  u->fd = open(u->tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (u->fd < 0) {
    free(u);
    return SPOKE_EIO;
  }
  u->want = length;
  u->hash = SPOKE__FNV64_OFFSET;
  u->next = open_uploads;
  open_uploads = u;
  *out = u;
  return 0;
}

static void upload_free(spoke__upload_t *u) {
  spoke__upload_t **p = &open_uploads;
  while (*p != NULL && *p != u)
    p = &(*p)->next;
  if (*p == u)
    *p = u->next;
  if (u->fd >= 0)
    close(u->fd);
  free(u);
}

size_t spoke__upload_missing(const spoke__upload_t *u) {
  return u->want - u->got;
}

int spoke__upload_write(spoke__upload_t *u, const char *data, size_t len) {
  if (len > u->want - u->got)
    len = u->want - u->got; /* bytes past the body are not the file's */
  while (len > 0) {
    ssize_t n = write(u->fd, data, len);
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0)
      return SPOKE_EIO;
    u->hash = spoke__fnv1a(u->hash, data, (size_t)n);
    data += n;
    len -= (size_t)n;
    u->got += (size_t)n;
  }
  return 0;
}

int spoke__upload_commit(spoke__upload_t *u, char build[17]) {
  int rc = 0;
  spoke__build_id_hex(u->hash, build);
  if (u->got != u->want || fsync(u->fd) != 0 || close(u->fd) != 0)
    rc = SPOKE_EIO;
  u->fd = -1;
  if (rc == 0 && rename(u->tmp, u->dest) != 0)
    rc = SPOKE_EIO;
  if (rc != 0)
    unlink(u->tmp);
  upload_free(u);
  return rc;
}

void spoke__upload_abort(spoke__upload_t *u) {
  if (u == NULL)
    return;
  unlink(u->tmp);
  upload_free(u);
}

int spoke__plugfile_read(const char *dir, const char *name,
                         spoke__buf_t *out) {
  char path[1024], chunk[65536];
  int fd, rc = 0;
  struct stat st;

  if (plugin_path(path, sizeof(path), dir, name) != 0)
    return SPOKE_EINVAL;
  if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
    return errno == ENOENT ? 1 : SPOKE_EIO;
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    close(fd);
    return 1;
  }
  for (;;) {
    ssize_t n = read(fd, chunk, sizeof(chunk));
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0) {
      rc = n < 0 ? SPOKE_EIO : 0;
      break;
    }
    if (spoke__buf_append(out, chunk, (size_t)n) != 0) {
      rc = SPOKE_ENOMEM;
      break;
    }
  }
  close(fd);
  return rc;
}

int spoke__plugfile_remove(const char *dir, const char *name) {
  char path[1024];
  if (plugin_path(path, sizeof(path), dir, name) != 0)
    return SPOKE_EINVAL;
  if (unlink(path) != 0)
    return errno == ENOENT ? 1 : SPOKE_EIO;
  return 0;
}
