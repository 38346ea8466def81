/* resolve.c: finding the file for a request, the walk below ROOT.
 *
 * What is guaranteed about paths (the invariants):
 *   - Nothing outside ROOT is ever opened. ROOT is opened once, at init,
 *     as a directory fd. Every request walks its path from that fd one
 *     component at a time with openat(O_NOFOLLOW), so the kernel never
 *     resolves a ".." or a symbolic link on our behalf. (A directory
 *     moved into ROOT's place later is not seen before a reload.)
 *   - No symbolic link below ROOT is ever followed, wherever it points
 *     (outside ROOT or inside it): a link is 404. The strict rule is the
 *     simple one to trust. ROOT itself may be a link: init resolves it.
 *   - The server has already normalized the path (core/path.c: "." and
 *     ".." resolved, also as %2E; %00 refused; encoded unreserved
 *     characters decoded; %2F kept encoded). Components are percent-
 *     decoded here, each on its own, and one that decodes to "", "." or
 *     "..", or contains '/' or NUL, is 404: an encoded slash or dot can
 *     never form a path the walk did not check component by component.
 *     Backslashes and other bytes are ordinary characters of a name.
 *   - Only regular files are served. Directories (but for index.html),
 *     fifos, sockets and devices are 404; a special file is not even
 *     opened (fstatat first, and fstat again on what was opened).
 *   - The root fd belongs to the state and is never closed here. Every
 *     other fd the walk opens is closed before it returns; only a 200
 *     leaves one open, the file's (F->fd), for the caller to close.
 */
#define _GNU_SOURCE /* O_PATH, strchrnul */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "internal.h"

static int hexval(unsigned char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

/* HTTP status for a failed open/stat; ERR kept in F for a 500's log. */
static int errno_status(int err, static_file_t *f) {
  switch (err) {
    case ENOENT: case ENOTDIR: case ELOOP: case ENAMETOOLONG:
      return 404; /* ELOOP: a symbolic link met with O_NOFOLLOW */
    case EACCES: case EPERM:
      return 403;
    default:
      f->err = err;
      return 500;
  }
}

/* Percent-decodes the path component S (N bytes) into OUT (NAME_MAX + 1
 * bytes). -1 for a component no file can be named by: empty, ".", "..",
 * too long, or holding '/' or NUL once decoded. */
static int decode_component(const char *s, size_t n, char *out) {
  size_t w = 0;
  for (size_t r = 0; r < n; r++) {
    int c = (unsigned char)s[r];
    if (c == '%') {
      int hi, lo;
      if (n - r < 3 || (hi = hexval((unsigned char)s[r + 1])) < 0 ||
          (lo = hexval((unsigned char)s[r + 2])) < 0)
        return -1;
      c = hi * 16 + lo;
      r += 2;
    }
    if (c == '\0' || c == '/' || w == NAME_MAX)
      return -1;
    out[w++] = (char)c;
  }
  out[w] = '\0';
  if (w == 0 || strcmp(out, ".") == 0 || strcmp(out, "..") == 0)
    return -1;
  return 0;
}

/* Opens NAME in DIR for reading when it is a regular file, never through
 * a symbolic link. A directory sets *IS_DIR and opens nothing. */
static int open_file(int dir, const char *name, static_file_t *f,
                     int *is_dir) {
  struct stat sb;
  int fd;

  *is_dir = 0;
  if (fstatat(dir, name, &sb, AT_SYMLINK_NOFOLLOW) != 0)
    return errno_status(errno, f);
  if (S_ISDIR(sb.st_mode)) {
    *is_dir = 1;
    return 200;
  }
  if (!S_ISREG(sb.st_mode))
    return 404; /* a link, fifo, socket or device: never opened */
  /* O_NONBLOCK: should a fifo be swapped in since the fstatat, opening it
   * does not wait for a writer; the fstat below then refuses it. */
  fd = openat(dir, name,
              O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
  if (fd < 0)
    return errno_status(errno, f);
  if (fstat(fd, &f->sb) != 0 || !S_ISREG(f->sb.st_mode)) {
    close(fd);
    return 404;
  }
  f->fd = fd;
  if (name != f->name)
    snprintf(f->name, sizeof(f->name), "%s", name);
  return 200;
}

/* DIR was asked for: its index.html, a redirect to "DIR/", or 404. */
static int open_index(const static_state_t *st, int dir, int slash,
                      static_file_t *f) {
  int is_dir, status;
  if (!st->index)
    return 404;
  if (!slash)
    return 301;
  status = open_file(dir, "index.html", f, &is_dir);
  return status == 200 && is_dir ? 404 : status;
}

int static_open_beneath(const static_state_t *st, const char *rel,
                        static_file_t *f) {
  size_t len = strlen(rel);
  int slash = len > 0 && rel[len - 1] == '/'; /* names a directory */
  int dir = st->root_fd;                      /* ours to close if not root */
  const char *p = rel;
  int status, is_dir;

  for (;;) {
    const char *end;
    int next;

    while (*p == '/')
      p++;
    if (*p == '\0') { /* REL is ROOT itself */
      status = open_index(st, dir, slash, f);
      break;
    }
    end = strchrnul(p, '/');
    if (decode_component(p, (size_t)(end - p), f->name) != 0) {
      status = 404;
      break;
    }
    for (p = end; *p == '/'; p++)
      ;
    if (*p == '\0') { /* the last component */
      status = open_file(dir, f->name, f, &is_dir);
      if (status == 200 && is_dir) {
        next = openat(dir, f->name,
                      O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (next < 0) {
          status = errno_status(errno, f);
          break;
        }
        status = open_index(st, next, slash, f);
        close(next);
      } else if (status == 200 && slash) { /* "file/" */
        close(f->fd);
        status = 404;
      }
      break;
    }
    /* A directory on the way: a real one, not a link to one. */
    next = openat(dir, f->name, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (next < 0) {
      status = errno_status(errno, f);
      break;
    }
    if (dir != st->root_fd)
      close(dir);
    dir = next;
  }
  if (dir != st->root_fd)
    close(dir);
  return status;
}
