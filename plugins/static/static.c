/* static.c: serves the files of one directory under a URL prefix.
 *
 *   GET|HEAD PREFIX/REL  ->  the regular file ROOT/REL
 *
 * This file is the plugin's front: its descriptor, configuration, init
 * and fini, and the handler that ties the other files together
 * (internal.h lists them): resolve.c finds the file below ROOT and holds
 * the path invariants (nothing outside ROOT is opened, no symbolic link
 * below it is followed, only regular files are served); conditional.c
 * does ETag, Last-Modified, 304s, 412s and Range; mime.c the Content-Type;
 * cache.c keeps files open between requests; gzip.c picks FILE.gz for a
 * client that takes it; send.c writes the response
 * and hands the file to the server, which sends it (readsend.c reads and
 * sends it instead on a host older than SDK 1.5).
 *
 * Configuration, from the [plugin static] section of the server's config
 * file (spoke_config; every key optional, unknown keys ignored):
 *   root   = DIR     the directory served; default "static", relative to
 *                    the server's working directory. Resolved once at init
 *                    (realpath) and logged; init fails, with one log line,
 *                    when it is not a directory.
 *   prefix = /PATH   the URL prefix; default /static. Letters, digits,
 *                    "-._~" and '/' only; "/" serves the whole site.
 *   index  = on|off  default off. On: a directory serves its index.html
 *                    ("/dir" is first redirected to "/dir/" so relative
 *                    links work). Never a generated listing. Off, or
 *                    without index.html, a directory is 404.
 *   gzip_static = on|off  default off. On: a request that accepts gzip
 *                    gets FILE.gz, when there is one not older than FILE,
 *                    with Content-Encoding: gzip, and every file response
 *                    says Vary: Accept-Encoding (gzip.c).
 *   cache_entries = N  default 1024: the open-file cache (cache.c) keeps
 *                    at most N files open, the least recently used going
 *                    first; at most a quarter of the fd limit
 *                    (RLIMIT_NOFILE), lowered to that with a log line.
 *   cache_valid = S  default 1: seconds a cached file is trusted before
 *                    its path is walked and opened again, so a file
 *                    changed, replaced or deleted on disk is seen at most
 *                    S seconds late. 0 turns the cache off (every request
 *                    walks and opens), as does cache_entries = 0.
 *
 * GET and HEAD only: the router answers other methods 405 (HEAD is
 * routed to GET's handler by the server).
 *
 * Threading. The walk, open and stat may block on a disk, so they run on
 * the worker pool; the transfer never does (the server sends the file).
 * On a host with SDK 1.5 (files) and 1.4 (spoke_offload), init makes the
 * route SPOKE_ASYNC: a file the cache holds is answered right on the
 * loop (a hash lookup and a dup, no I/O), so a hot file costs no trip to
 * the pool; a miss hands the walk to the pool with spoke_offload and
 * answers from its done callback. On an older host the route stays
 * SPOKE_SYNC and every request runs on the pool. The state is written by
 * init and only read afterwards, so every thread shares it, root fd
 * included, without a lock; the cache has its own.
 */
#define _GNU_SOURCE /* O_PATH, GNU strerror_r */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <sys/resource.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "internal.h"

#define PREFIX_MAX 512

static int serve(spoke_request_t *req);

/* The route's pattern, the configured prefix then "/" "*", written by init
 * on the control thread before the server reads the table (it does so
 * again after init). Static rather than allocated: it then lives exactly
 * as long as the descriptor pointing at it, as a string literal would,
 * whatever the server reads during unload. Every loaded version is its
 * own copy of the .so, so a reload starts again from the default. */
static char route_path[PREFIX_MAX + 3];

/* Not const: init points routes[0].path at route_path. */
static spoke_route_t routes[] = {
  { "GET", "/static/*", SPOKE_SYNC, serve },
};

/* A lookup handed to the pool (the async route): in the request's
 * memory, so it lives as long as the request. find_job reads only what
 * is here, never the request (spoke_offload's rule): what the request's
 * headers say was read on the loop first. */
typedef struct {
  const static_state_t *st;
  const char *path;       /* the request's own */
  int gzip;               /* look for FILE.gz: on, and the client takes it */
  int looked;             /* the loop already missed in the cache */
  static_file_t f;
  int status;
} lookup_t;

/* The answer once F was looked for (STATUS from static_find). */
static int answer(spoke_request_t *req, const static_state_t *st,
                  const char *path, static_file_t *f, int status) {
  if (status == 301)
    return static_redirect_dir(req, path);
  if (status != 200) {
    if (status == 500) {
      char buf[128];
      spoke_log(SPOKE_LOG_ERROR, "%s %s: open below %s: %s",
                spoke_request_method(req), path, st->root,
                static_errstr(f->err, buf, sizeof(buf)));
    }
    return static_reply_status(req, status);
  }
  return static_respond_file(req, f, st->gzip_static); /* takes f->fd */
}

/* The blocking part: the walk (or the cache, unless LOOKED: the caller
 * just missed there), and FILE.gz when GZIP. */
static void find_file(const static_state_t *st, const char *path, int gzip,
                      int looked, static_file_t *f, int *status) {
  const char *rel = path + st->prefix_len;
  memset(f, 0, sizeof(*f));
  f->fd = -1;
  *status = looked ? static_find_uncached(st, rel, f)
                   : static_find(st, rel, f);
  if (*status == 200 && gzip)
    static_gzip_sibling(st, rel, f);
}

static void find_job(void *arg) { /* a pool thread: may block */
  lookup_t *l = arg;
  find_file(l->st, l->path, l->gzip, l->looked, &l->f, &l->status);
}

static void found(spoke_request_t *req, void *arg, int status) {
  lookup_t *l = arg;
  (void)status; /* a client that left: answered all the same, discarded */
  answer(req, l->st, l->path, &l->f, l->status);
}

/* GET|HEAD PREFIX/...: the handler. */
static int serve(spoke_request_t *req) {
  const static_state_t *st = spoke_plugin_state(req);
  const char *path = spoke_request_path(req);
  static_file_t f;
  lookup_t *l;
  int status, rc, gzip;

  /* The router matched the prefix and its wildcard, so the path starts
   * with the prefix; check anyway rather than trust an offset. */
  if (strncmp(path, st->prefix, st->prefix_len) != 0 ||
      (path[st->prefix_len] != '\0' && path[st->prefix_len] != '/'))
    return static_reply_status(req, 404);
  gzip = st->gzip_static && static_accepts_gzip(req);
  if (!st->async) { /* a worker: all of it here */
    find_file(st, path, gzip, 0, &f, &status);
    return answer(req, st, path, &f, status);
  }
  /* The loop: a cached file at once (FILE.gz needs a look at the disk) */
  if (!gzip && static_find_cached(st, path + st->prefix_len, &f))
    return static_respond_file(req, &f, st->gzip_static);
  l = spoke_request_alloc(req, sizeof(*l));
  if (l == NULL)
    return SPOKE_ENOMEM;
  l->st = st;
  l->path = path;
  l->gzip = gzip;
  l->looked = !gzip;
  rc = spoke_offload(req, find_job, l, found);
  if (rc == SPOKE_EBUSY) { /* the pool's queue is full */
    spoke_response_header(req, "Retry-After", "1");
    return static_reply_status(req, 503);
  }
  return rc;
}

/* ---- configuration ---- */

static int unreserved(unsigned char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
         (c >= '0' && c <= '9') || c == '-' || c == '.' || c == '_' ||
         c == '~';
}

/* PREFIX in the form the server's normalized paths use ("/a/b": repeated
 * and trailing slashes dropped, "/" becomes "") then "/" "*" into OUT
 * (PREFIX_MAX + 3 bytes); *LEN gets the prefix's length. 0, or -1 if it
 * is not a plain path. */
static int make_pattern(const char *prefix, char *out, size_t *len) {
  const char *p = prefix;
  size_t w = 0;

  if (p[0] != '/')
    return -1;
  for (;;) {
    const char *seg;
    size_t n;
    while (*p == '/')
      p++;
    if (*p == '\0')
      break;
    for (seg = p; *p != '\0' && *p != '/'; p++)
      if (!unreserved((unsigned char)*p))
        return -1;
    n = (size_t)(p - seg);
    if ((n == 1 && seg[0] == '.') ||
        (n == 2 && seg[0] == '.' && seg[1] == '.') || w + 1 + n > PREFIX_MAX)
      return -1;
    out[w++] = '/';
    memcpy(out + w, seg, n);
    w += n;
  }
  *len = w;
  memcpy(out + w, "/*", 3);
  return 0;
}

static int parse_switch(const char *v, int *out) {
  if (strcasecmp(v, "on") == 0 || strcasecmp(v, "yes") == 0 ||
      strcasecmp(v, "true") == 0 || strcmp(v, "1") == 0)
    *out = 1;
  else if (strcasecmp(v, "off") == 0 || strcasecmp(v, "no") == 0 ||
           strcasecmp(v, "false") == 0 || strcmp(v, "0") == 0)
    *out = 0;
  else
    return -1;
  return 0;
}

/* A decimal number from 0 to MAX into *OUT. 0, or -1. */
static int parse_count(const char *v, unsigned long max, unsigned long *out) {
  char *end;
  unsigned long n;
  if (*v < '0' || *v > '9')
    return -1;
  errno = 0;
  n = strtoul(v, &end, 10);
  if (errno != 0 || *end != '\0' || n > max)
    return -1;
  *out = n;
  return 0;
}

/* cache_entries and cache_valid: st->cache, or NULL for none. 0, or -1
 * after a log line. */
static int make_cache(static_state_t *st) {
  const char *entries_s = spoke_config("cache_entries");
  const char *valid_s = spoke_config("cache_valid");
  unsigned long entries = 1024, valid = 1;
  struct rlimit rl;

  if (entries_s != NULL && parse_count(entries_s, 1000000, &entries) != 0) {
    spoke_log(SPOKE_LOG_ERROR, "cache_entries = %s: want 0 to 1000000",
              entries_s);
    return -1;
  }
  if (valid_s != NULL && parse_count(valid_s, 86400, &valid) != 0) {
    spoke_log(SPOKE_LOG_ERROR, "cache_valid = %s: want 0 to 86400 (seconds)",
              valid_s);
    return -1;
  }
  /* Cached fds count against the process's limit, connections too. */
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY &&
      entries > rl.rlim_cur / 4) {
    spoke_log(SPOKE_LOG_WARN,
              "cache_entries = %lu: lowered to %lu, a quarter of the fd "
              "limit (ulimit -n %lu)",
              entries, (unsigned long)rl.rlim_cur / 4,
              (unsigned long)rl.rlim_cur);
    entries = (unsigned long)rl.rlim_cur / 4;
  }
  if (entries == 0 || valid == 0) {
    spoke_log(SPOKE_LOG_INFO, "open-file cache off");
    return 0;
  }
  st->cache = static_cache_new(entries, (unsigned)valid);
  if (st->cache == NULL) {
    spoke_log(SPOKE_LOG_ERROR, "open-file cache: out of memory");
    return -1;
  }
  spoke_log(SPOKE_LOG_INFO, "open-file cache: %lu files, each trusted %lu s",
            entries, valid);
  return 0;
}

static int static_init(const spoke_host_t *host, void **state) {
  const char *root = spoke_config("root");
  const char *prefix = spoke_config("prefix");
  const char *index = spoke_config("index");
  const char *gzip_static = spoke_config("gzip_static");
  static_state_t *st = calloc(1, sizeof(*st));
  char pattern[PREFIX_MAX + 3], buf[128];

  (void)host;
  if (st == NULL)
    return SPOKE_ENOMEM;
  if (root == NULL || *root == '\0')
    root = "static";
  if (prefix == NULL)
    prefix = "/static";
  if (index != NULL && parse_switch(index, &st->index) != 0) {
    spoke_log(SPOKE_LOG_ERROR, "index = %s: want on or off", index);
    goto fail;
  }
  if (gzip_static != NULL &&
      parse_switch(gzip_static, &st->gzip_static) != 0) {
    spoke_log(SPOKE_LOG_ERROR, "gzip_static = %s: want on or off",
              gzip_static);
    goto fail;
  }
  if (make_pattern(prefix, pattern, &st->prefix_len) != 0) {
    spoke_log(SPOKE_LOG_ERROR,
              "prefix = %s: want a path of letters, digits, \"-._~\" and "
              "'/' (at most %d bytes), starting with '/'",
              prefix, PREFIX_MAX);
    goto fail;
  }
  if (realpath(root, st->root) == NULL) {
    int err = errno;
    char cwd[PATH_MAX];
    spoke_log(SPOKE_LOG_ERROR, "root %s%s%s: %s; not serving", root,
              root[0] == '/' ? "" : " in ",
              root[0] == '/' ? ""
                             : getcwd(cwd, sizeof(cwd)) ? cwd : "(unknown)",
              static_errstr(err, buf, sizeof(buf)));
    goto fail;
  }
  st->root_fd = open(st->root, O_PATH | O_DIRECTORY | O_CLOEXEC);
  if (st->root_fd < 0) {
    spoke_log(SPOKE_LOG_ERROR, "root %s: %s; not serving", st->root,
              static_errstr(errno, buf, sizeof(buf)));
    goto fail;
  }
  if (make_cache(st) != 0) {
    close(st->root_fd);
    goto fail;
  }
  memcpy(route_path, pattern, sizeof(pattern));
  routes[0].path = route_path;
  st->async = SPOKE_HOST_HAS(response_file) && SPOKE_HOST_HAS(offload);
  routes[0].mode = st->async ? SPOKE_ASYNC : SPOKE_SYNC;
  st->prefix = route_path;
  spoke_log(SPOKE_LOG_INFO, "serving %s at %.*s/ (index %s); %s", st->root,
            (int)st->prefix_len, route_path, st->index ? "on" : "off",
            SPOKE_HOST_HAS(response_file)
                ? "files sent by the server (sendfile)"
                : "host older than SDK 1.5: files read and sent here");
  *state = st;
  return 0;

fail:
  free(st);
  return SPOKE_EINIT;
}

static void static_fini(void *state) {
  static_state_t *st = state;
  static_cache_free(st->cache); /* no request is running any more */
  close(st->root_fd);
  free(st);
}

SPOKE_PLUGIN(.name = "static", .version = "1.0.0", SPOKE_ROUTES(routes),
             .init = static_init, .fini = static_fini);
