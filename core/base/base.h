/* base.h: the bottom floor, what every core module shares and no plugin sees.
 *
 * Logging, the per-request arena, the growable buffer, small string
 * helpers, path normalization, status reasons. The settings struct is
 * beside it (config.h). Everything here is private to core/ and prefixed
 * spoke__; it calls nothing above it. Each floor above has its own
 * header (plugin/plugin.h, http/http.h, ctl/ctl.h, cli/cli.h).
 *
 * Error convention: functions return 0 or a negative SPOKE_E* code from
 * spoke.h; spoke_strerror() is the one place codes become messages. A
 * function that fails never calls its callback.
 */
#ifndef SPOKE_BASE_H
#define SPOKE_BASE_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include "spoke.h"

#ifndef SPOKE_BUILD_VERSION
#define SPOKE_BUILD_VERSION "dev"
#endif

/* 1 in a build with AddressSanitizer or ThreadSanitizer (gcc or clang),
 * which own the fatal signals: the crash handler steps aside there. */
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define SPOKE__SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define SPOKE__SANITIZED 1
#endif
#endif
#ifndef SPOKE__SANITIZED
#define SPOKE__SANITIZED 0
#endif

#define SPOKE__ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))
#define SPOKE__CONTAINER_OF(ptr, type, member) \
  ((type *)((char *)(ptr)-offsetof(type, member)))

/* ---- log.c: one line per event on stderr, safe from any thread ---- */

/* Messages above this level are dropped. Set once at start-up. */
extern int spoke__log_level;

void spoke__log(int level, const char *fmt, ...) SPOKE__PRINTF(2, 3);
/* Like spoke__log, with "TAG: " before the message (plugin logs). */
void spoke__logv_tagged(int level, const char *tag, const char *fmt,
                        va_list ap);

#define spoke__error(...) spoke__log(SPOKE_LOG_ERROR, __VA_ARGS__)
#define spoke__warn(...) spoke__log(SPOKE_LOG_WARN, __VA_ARGS__)
#define spoke__info(...) spoke__log(SPOKE_LOG_INFO, __VA_ARGS__)
#define spoke__debug(...) spoke__log(SPOKE_LOG_DEBUG, __VA_ARGS__)

/* ---- arena.c: bump allocator freed all at once with its request ----
 * Owned by one request; touched by whichever single thread handles the
 * request at the time (see http.h). Not thread-safe by itself. */

typedef struct spoke__arena_chunk_s spoke__arena_chunk_t;
typedef struct spoke__arena_s {
  spoke__arena_chunk_t *chunks; /* newest first */
  char *cur;
  size_t left;
  void *lent;                   /* the owner's storage, used first */
  size_t lent_size;
} spoke__arena_t;

void spoke__arena_init(spoke__arena_t *a);
/* Allocates from STORAGE[0..size) (the caller's, outliving the arena)
 * before any chunk; spoke__arena_free rewinds to it. */
void spoke__arena_init_with(spoke__arena_t *a, void *storage, size_t size);
void *spoke__arena_alloc(spoke__arena_t *a, size_t size);
char *spoke__arena_strndup(spoke__arena_t *a, const char *s, size_t n);
void spoke__arena_free(spoke__arena_t *a); /* frees chunks, rewinds */

/* ---- buf.c: growable byte buffer, always NUL-terminated when non-empty ---- */

typedef struct spoke__buf_s {
  char *data;
  size_t len;
  size_t cap;
} spoke__buf_t;

int spoke__buf_append(spoke__buf_t *b, const void *data, size_t len);
/* Makes room for item N (N + 1 items of SIZE bytes) in the array *ITEMS
 * (a T **, passed as void *) of *CAP items, doubling it: 0, or
 * SPOKE_ENOMEM with the array and *CAP unchanged. */
int spoke__array_grow(void *items, size_t *cap, size_t n, size_t size);
int spoke__buf_appendf(spoke__buf_t *b, const char *fmt, ...)
    SPOKE__PRINTF(2, 3);
int spoke__buf_reserve(spoke__buf_t *b, size_t extra);
void spoke__buf_reset(spoke__buf_t *b); /* len = 0, keeps memory */
void spoke__buf_free(spoke__buf_t *b);

/* ---- strutil.c ---- */

/* The value of hex digit C, or -1. */
int spoke__hexval(unsigned char c);
/* 1 if S[0..n) is an RFC 9110 token (header names, methods). */
int spoke__is_token(const char *s, size_t n);
/* Decodes %XX and (if PLUS) '+' in place; returns the new length, or -1
 * for an invalid escape. */
long spoke__percent_decode(char *s, size_t n, int plus);
int spoke__strcaseeq(const char *a, const char *b);
/* FNV-1a 64 of P[0..n) folded into H; start from SPOKE__FNV64_OFFSET.
 * Build ids (plugin/instance.c), the metrics sum's index (ctl/promsum.c). */
#define SPOKE__FNV64_OFFSET 0xcbf29ce484222325ULL
uint64_t spoke__fnv1a(uint64_t h, const void *p, size_t n);

/* The current second in UTC, formatted with strftime's FMT, redone only
 * when the second changes. Each caller keeps its own TB (thread-local:
 * `static _Thread_local spoke__timebuf_t tb = {-1, ""};`). */
typedef struct spoke__timebuf_s {
  long long at;               /* the second TEXT shows, -1 for none */
  char text[48];
} spoke__timebuf_t;
const char *spoke__time_now(spoke__timebuf_t *tb, const char *fmt);

/* ---- path.c ---- */

/* Normalizes a request path in place (see path.c): valid and canonical
 * percent-encodings, merged slashes, dot segments resolved without
 * climbing above the root. SPOKE_EINVAL for a path to refuse with 400. */
int spoke__path_normalize(char *path, size_t len, size_t *out_len);

/* ---- reason.c ---- */

/* Reason phrase for an HTTP status ("Not Found"); "Unknown" otherwise. */
const char *spoke__status_reason(int status);

/* ---- altstack.c: a thread ready for a crash report ----
 * Every thread that runs plugin code (control, each loop, each worker)
 * calls init when it starts and fini before it ends: an alternate signal
 * stack, so the fatal-signal handler (ctl/crash.c) runs even after a
 * stack overflow, and the thread's NAME for the report (NULL: the name
 * prctl gives it). */
void spoke__crash_thread_init(const char *name);
void spoke__crash_thread_fini(void);
/* The name init kept, or NULL on a thread that never called init (one
 * spoke did not start). Async-signal-safe: no call, a thread-local. */
const char *spoke__crash_thread_name(void);

#endif /* SPOKE_BASE_H */
