/* internal.h: what the files of the static plugin share, and nothing more.
 *
 *   static.c       descriptor, configuration, init/fini, the handler
 *   resolve.c      finding the file: the walk below ROOT
 *   conditional.c  ETag, Last-Modified, If-None-Match, If-Modified-Since,
 *                  If-Range and Range; HTTP dates
 *   mime.c         Content-Type from the extension
 *   cache.c        the open-file cache: fds and their validators, by path
 *   gzip.c         FILE.gz for FILE, when the client takes gzip
 *   reply.c        status pages, redirects, a file's headers
 *   send.c         a file's response: 304/412/416, or its bytes handed
 *                  to the server (sendfile)
 *   readsend.c     the bytes read and sent by the plugin, for a host
 *                  older than SDK 1.5
 *
 * Private to the plugin: every name declared here starts with static_ (or
 * is a type or constant of this header) and none is exported. The plugin
 * is built with -fvisibility=hidden (sdk/cmake/SpokePlugin.cmake), so the
 * .so exports its descriptor, spoke_plugin, and nothing else; anything a
 * single file needs alone stays `static` in that file.
 */
#ifndef SPOKE_PLUGIN_STATIC_H
#define SPOKE_PLUGIN_STATIC_H

#include <limits.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include <spoke.h>

typedef struct static_cache static_cache_t;

/* The plugin's state: written by init, only read afterwards, so every
 * worker shares it, root fd included, without a lock. The cache it
 * points to is the one shared thing that changes; it has its own lock. */
typedef struct {
  int root_fd;        /* O_PATH directory fd of ROOT, shared by all threads */
  int index;          /* serve DIR/index.html for a directory */
  int gzip_static;    /* serve FILE.gz for FILE (gzip.c) */
  int async;          /* the route is SPOKE_ASYNC (a host with SDK 1.5
                         files and 1.4 offload): hits on the loop, the
                         walk on the pool; else all of it on a worker */
  const char *prefix; /* route_path: its first prefix_len bytes */
  size_t prefix_len;  /* length of the prefix in a request path; 0 for "/" */
  static_cache_t *cache; /* NULL when off (cache_valid = 0) */
  char root[PATH_MAX]; /* resolved, for the logs */
} static_state_t;

/* A file found for a request, and what its response says about it. */
typedef struct {
  int fd;                  /* open for reading; whose it is, each user says */
  struct stat sb;          /* of fd */
  char name[NAME_MAX + 1]; /* its last component, for the Content-Type */
  int err;                 /* errno behind a 500 */
  /* Set by static_file_describe from sb and name, once per open: */
  const char *type;        /* Content-Type (a string of mime.c's table) */
  char etag[96];           /* strong, quoted */
  char modified[64];       /* Last-Modified, an IMF-fixdate */
  const char *encoding;    /* Content-Encoding, NULL for none (gzip.c) */
} static_file_t;


/* strerror_r's message for ERR (BUF, N bytes, may hold it): the GNU
 * strerror_r, which returns the message. */
static inline const char *static_errstr(int err, char *buf, size_t n) {
  return strerror_r(err, buf, n);
}

/* resolve.c */
/* Finds REL (the request path after the prefix: "" or "/...", still
 * percent-encoded) below ROOT. 200 with F->fd open, 301 for a directory
 * that needs its slash, or an error status (F->err set for a 500). F is
 * zeroed with fd -1 by the caller. */
int static_open_beneath(const static_state_t *st, const char *rel,
                        static_file_t *f);

/* conditional.c */
enum { STATIC_RANGE_NONE, STATIC_RANGE_ONE, STATIC_RANGE_UNSATISFIABLE };

/* T as an IMF-fixdate, "Sun, 06 Nov 1994 08:49:37 GMT" (no locale). */
void static_http_date(time_t t, char *out, size_t n);
/* The strong, quoted ETag of the file SB describes. */
void static_make_etag(const struct stat *sb, char *out, size_t n);
/* Fills F's type, etag and modified from its sb and name. */
void static_file_describe(static_file_t *f);
/* Whether If-Match, else If-Unmodified-Since, holds for the file (ETAG,
 * MTIME); when it does not, the answer is 412 (RFC 9110 §13.2.2). */
int static_preconditions_hold(spoke_request_t *req, const char *etag,
                              time_t mtime);
/* Whether If-None-Match, else If-Modified-Since, says the client's copy
 * (ETAG, MTIME) is current: a 304. */
int static_not_modified(spoke_request_t *req, const char *etag,
                        time_t mtime);
/* Whether If-Range, if any, lets a Range be honoured. */
int static_if_range_holds(spoke_request_t *req, const char *etag,
                          time_t mtime);
/* The Range value H against SIZE bytes: STATIC_RANGE_ONE with [*FIRST,
 * *LAST], STATIC_RANGE_NONE for the whole body, or
 * STATIC_RANGE_UNSATISFIABLE for a 416. */
int static_parse_range(const char *h, uint64_t size, uint64_t *first,
                       uint64_t *last);

/* mime.c */
/* Content-Type by the extension of NAME; application/octet-stream when
 * it has none or an unknown one. */
const char *static_content_type(const char *name);

/* cache.c */
/* A cache of at most ENTRIES open files, each trusted for VALID_S
 * seconds after it was opened. NULL when out of memory. */
static_cache_t *static_cache_new(size_t entries, unsigned valid_s);
/* Closes every cached fd and frees C (fini: no request is running). */
void static_cache_free(static_cache_t *c);
/* The file REL names below ROOT, through ST's cache when it has one:
 * 200 with F described and F->fd the caller's (a dup of the cached fd,
 * or the one just opened), or another status (static_open_beneath's). */
int static_find(const static_state_t *st, const char *rel, static_file_t *f);
/* Only the cache: 1 with *F (F->fd a dup, the caller's) when REL is
 * cached and still trusted, else 0. No I/O: safe on a loop thread. */
int static_find_cached(const static_state_t *st, const char *rel,
                       static_file_t *f);
/* static_find's other half, for a caller that static_find_cached just
 * told "not cached": the walk, and the cache told what it found. */
int static_find_uncached(const static_state_t *st, const char *rel,
                         static_file_t *f);

/* gzip.c */
/* Whether the request's Accept-Encoding takes gzip. Reads REQ's
 * headers: on the request's own thread (the loop, or the sync handler's
 * worker), never in a spoke_offload job. */
int static_accepts_gzip(spoke_request_t *req);
/* When REL.gz is a regular file below ROOT not older than F: F becomes
 * it (F's fd closed), with F's type and encoding "gzip". Else F is left
 * alone. No request: safe in a spoke_offload job. */
void static_gzip_sibling(const static_state_t *st, const char *rel,
                         static_file_t *f);

/* reply.c */
/* A short text response, "404 Not Found\n", for 301, 403, 404, 412, 416,
 * 500, 503. */
int static_reply_status(spoke_request_t *req, int status);
/* "/dir" -> 301 to "/dir/", the query kept. */
int static_redirect_dir(spoke_request_t *req, const char *path);
/* Status and headers of a file's 200 or 206 (CONTENT_RANGE, for a 206). */
void static_file_headers(spoke_request_t *req, const static_file_t *f,
                         int status, const char *content_range, int vary);

/* send.c */
/* The response for the open, described file F: 304, 412, 206, 416 or
 * 200, with Vary: Accept-Encoding when VARY. Takes F->fd: it is closed,
 * or given to the server, whatever happens. */
int static_respond_file(spoke_request_t *req, const static_file_t *f,
                        int vary);

/* readsend.c */
/* The 200 or 206 for F, COUNT bytes from FIRST, read and sent by the
 * plugin: for a host without spoke_response_file. Sets the headers
 * itself (static_file_headers) once the first bytes are in hand, so a
 * read error up to then is a clean 500. F->fd stays the caller's. */
int static_read_and_send(spoke_request_t *req, const static_file_t *f,
                         int status, const char *content_range, int vary,
                         uint64_t first, uint64_t count);

#endif
