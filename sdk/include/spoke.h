/* spoke.h: the one public header of the spoke plugin SDK.
 *
 * A plugin is a shared object that exports exactly one symbol, its
 * descriptor, written with SPOKE_PLUGIN(...). The descriptor names the
 * plugin, its version string and its routes; each route says whether its
 * handler runs SPOKE_SYNC (on a worker-pool thread: it may block) or
 * SPOKE_ASYNC (on the event-loop thread: it must not block, and completes
 * now or later). Everything a plugin asks of the server goes through a
 * const function table, spoke_host_t, that the server hands over before
 * init; the static inline wrappers below (spoke_request_path(),
 * spoke_response_send(), ...) call through it. The server exports no
 * symbols, so plugins link with -Wl,--no-undefined.
 *
 *   #include <spoke.h>
 *
 *   static int hello(spoke_request_t *req) {
 *     spoke_response_header(req, "Content-Type", "text/plain");
 *     return spoke_response_send(req, "Hello, World!", 13);
 *   }
 *   static const spoke_route_t routes[] = {
 *     { "GET", "/hello", SPOKE_ASYNC, hello },
 *   };
 *   SPOKE_PLUGIN(.name = "hello", .version = "1.0.0", SPOKE_ROUTES(routes));
 *
 * Versioning promise. SPOKE_ABI_MAJOR changes only when a compiled plugin
 * could no longer work; the host then refuses it by name. Minor versions
 * only append: members are added at the end of spoke_host_t and of
 * spoke_plugin_t, never moved or removed, and both structs carry their
 * size. A plugin built against SDK 1.x loads on every host 1.y with y >= x;
 * a plugin that wants a member newer than its floor asks first with
 * SPOKE_HOST_HAS(member).
 *
 * Threads and memory. Strings and buffers the request accessors return are
 * borrowed: they stay valid until the request is completed, and belong to
 * the server. Handlers of one plugin run concurrently (async ones on every
 * I/O loop, sync ones on every pool thread), so state shared across
 * requests must be thread-safe. A request is handled by one thread at a
 * time: the handler's, then whichever thread the plugin hands it to. The
 * completion calls (spoke_response_send/write/end) are safe from any
 * thread; after the completing call returns, the request must not be
 * touched again.
 */
#ifndef SPOKE_H
#define SPOKE_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define SPOKE_ABI_MAJOR 1
#define SPOKE_ABI_MINOR 5

#define SPOKE_VERSION_STRING "0.1.0"

#if defined(__GNUC__)
#define SPOKE__EXPORT __attribute__((visibility("default")))
#define SPOKE__HIDDEN __attribute__((visibility("hidden")))
#define SPOKE__PRINTF(f, a) __attribute__((format(printf, f, a)))
#else
#define SPOKE__EXPORT
#define SPOKE__HIDDEN
#define SPOKE__PRINTF(f, a)
#endif

/* ---- Errors ---------------------------------------------------------- */

/* Every SDK call that can fail returns 0 or one of these negative codes.
 * spoke_strerror() and spoke_err_name() turn a code into text. */
#define SPOKE_ERRNO_MAP(XX)                                                  \
  XX(EINVAL, -1, "invalid argument")                                         \
  XX(ENOMEM, -2, "out of memory")                                            \
  XX(EALREADY, -3, "request already completed")                              \
  XX(ESTATE, -4, "not allowed once the response has started")               \
  XX(ECANCELED, -5, "client went away")                                      \
  XX(ENOTSUP, -6, "not supported by this host")                              \
  XX(ETHREAD, -7, "must be called on the request's loop thread")            \
  XX(EBUSY, -8, "too busy")                                                  \
  XX(EIO, -9, "i/o error")                                                   \
  XX(ENOTELF, -10, "not an ELF shared object")                               \
  XX(EDLOPEN, -11, "cannot load shared object")                              \
  XX(ENODESC, -12, "no spoke_plugin descriptor (missing SPOKE_PLUGIN?)")     \
  XX(EABI, -13, "SDK ABI version mismatch")                                  \
  XX(EDESC, -14, "invalid plugin descriptor")                                \
  XX(EINIT, -15, "plugin init failed")                                       \
  XX(ECONFLICT, -16, "route already taken")                                  \
  XX(EHANDLER, -17, "handler failed")

typedef enum {
#define SPOKE__ERR_ENUM(name, value, msg) SPOKE_##name = (value),
  SPOKE_ERRNO_MAP(SPOKE__ERR_ENUM)
#undef SPOKE__ERR_ENUM
  SPOKE__ERR_MIN = -18
} spoke_errno_t;

/* Human-readable message for an error code; "unknown error" for others. */
static inline const char *spoke_strerror(int err) {
  switch (err) {
    case 0: return "success";
#define SPOKE__ERR_MSG(name, value, msg) case (value): return msg;
    SPOKE_ERRNO_MAP(SPOKE__ERR_MSG)
#undef SPOKE__ERR_MSG
    default: return "unknown error";
  }
}

/* Symbolic name ("SPOKE_EINVAL") of an error code. */
static inline const char *spoke_err_name(int err) {
  switch (err) {
    case 0: return "OK";
#define SPOKE__ERR_NAME(name, value, msg) case (value): return "SPOKE_" #name;
    SPOKE_ERRNO_MAP(SPOKE__ERR_NAME)
#undef SPOKE__ERR_NAME
    default: return "SPOKE_EUNKNOWN";
  }
}

/* ---- Types ----------------------------------------------------------- */

/* One HTTP request and its response. Opaque: use the accessors. */
typedef struct spoke_request_s spoke_request_t;

/* The server's function table; see the end of this header. */
typedef struct spoke_host_s spoke_host_t;

/* libuv's loop, for async handlers that use libuv directly. */
struct uv_loop_s;

typedef enum {
  SPOKE_SYNC = 1,  /* runs on a worker-pool thread; may block */
  SPOKE_ASYNC = 2  /* runs on the I/O loop thread; must not block */
} spoke_mode_t;

typedef enum {
  SPOKE_LOG_ERROR = 0,
  SPOKE_LOG_WARN = 1,
  SPOKE_LOG_INFO = 2,
  SPOKE_LOG_DEBUG = 3
} spoke_log_level_t;

/* A route handler. Return 0, or a negative code if the handler failed
 * before completing (the client then gets 500). A SPOKE_SYNC handler must
 * complete the request before it returns; one that does not gets a 500.
 * A SPOKE_ASYNC handler may complete later, from any thread. */
typedef int (*spoke_handler_cb)(spoke_request_t *req);

/* Called on the request's loop thread when a timer started with
 * spoke_timer_start() fires. */
typedef void (*spoke_timer_cb)(spoke_request_t *req);

/* Called on the request's loop thread when the client goes away before the
 * request is completed. The request stays valid: complete it as usual
 * (the response is discarded). */
typedef void (*spoke_abort_cb)(spoke_request_t *req);

/* Called on the request's loop thread when a response streamed from the
 * loop has drained below the low-water mark (SDK 1.3). */
typedef void (*spoke_drain_cb)(spoke_request_t *req);

/* spoke_offload() (SDK 1.4): FN(ARG) runs on a worker-pool thread and may
 * block; DONE then runs on the request's loop thread with STATUS 0, or
 * SPOKE_ECANCELED when the client went away meanwhile (complete the
 * request anyway; the response is discarded). One offload per request at
 * a time, DONE included: spoke_offload from inside DONE answers
 * SPOKE_EBUSY. */
typedef void (*spoke_offload_cb)(void *arg);
typedef void (*spoke_offload_done_cb)(spoke_request_t *req, void *arg,
                                      int status);

typedef struct spoke_route_s {
  const char *method;       /* "GET", "POST", ...; "*" for any method */
  const char *path;         /* "/users/:id", or "/static/" then "*" */
  spoke_mode_t mode;        /* SPOKE_SYNC or SPOKE_ASYNC */
  spoke_handler_cb handler;
} spoke_route_t;

/* The descriptor. Write it with SPOKE_PLUGIN(); never by hand. */
typedef struct spoke_plugin_s {
  uint16_t abi_major;       /* SPOKE_ABI_MAJOR the plugin was built with */
  uint16_t abi_minor;       /* SPOKE_ABI_MINOR the plugin was built with */
  uint32_t struct_size;     /* sizeof(spoke_plugin_t) at build time */
  const spoke_host_t **host; /* where the server stores its table */
  const char *name;         /* [a-z0-9_-]+, unique per server */
  const char *version;      /* free text, logged and shown in status */
  const spoke_route_t *routes;
  size_t nroutes;
  /* Optional. Called once, on the control thread, before any handler.
   * Store per-plugin state in *state; spoke_plugin_state() returns it.
   * Return 0, or a negative code to refuse loading. */
  int (*init)(const spoke_host_t *host, void **state);
  /* Optional. Called once, on the control thread, after the last handler
   * of this loaded version has returned and every request it took has
   * completed. */
  void (*fini)(void *state);

  /* -- SDK 1.1 -- */

  /* Optional. Hot reload: when this version replaces a running version
   * of the same plugin (same .name), the server calls handover instead of
   * init. PREV_STATE is what the running version's init (or handover)
   * stored, PREV_VERSION its .version string. The running version keeps
   * its state and keeps serving the requests it already has until they
   * finish, then its fini runs: so copy what you need (it may still be
   * changing, read it as any concurrent reader would), or share it
   * through a reference count of your own. Check PREV_VERSION before
   * trusting PREV_STATE's layout. Return 0, or a negative code to refuse
   * the new version (the running one keeps serving). Without handover a
   * new version starts fresh with init. */
  int (*handover)(const spoke_host_t *host, void *prev_state,
                  const char *prev_version, void **state);

  /* -- SDK 1.4 -- */

  /* Optional. Per-loop resources (database connections, client handles,
   * poll watchers): called on each I/O loop's thread, on that thread,
   * before that loop gives this version its first request: when the
   * loop starts, or when a reload publishes this version. LOOP is the
   * loop, STATE what init (or handover) stored; store the loop's own
   * state in *LOOP_STATE (spoke_loop_state() finds it from a request).
   * It must not block: start connections, do not wait for them. Return
   * 0, or a negative code: the version's routes then answer 503 on that
   * loop (one log line says why), and loop_fini is not called there. */
  int (*loop_init)(const spoke_host_t *host, struct uv_loop_s *loop,
                   void *state, void **loop_state);
  /* Optional. Called on each loop whose loop_init succeeded, on that
   * loop's thread, once this version no longer takes requests there (a
   * reload replaced it, or the server is draining) and its last request
   * on that loop has completed; always before fini, and never from
   * inside a call of yours (it runs on a later turn of the loop, so a
   * callback that completes the last request may go on using the
   * loop's state until it returns). Close what
   * loop_init opened: libuv handles closed here have their close
   * callbacks run before the version's code is unmapped; anything that
   * calls back later must take a spoke_plugin_hold(). */
  void (*loop_fini)(struct uv_loop_s *loop, void *state, void *loop_state);
  /* -- append members below this line, never above (the host reads
   * only what .struct_size covers) -- */
} spoke_plugin_t;

/* The table the server handed over; set before init, never changes. */
extern SPOKE__HIDDEN const spoke_host_t *spoke_host;

#ifdef __cplusplus
#define SPOKE__EXTERN_C extern "C"
#else
#define SPOKE__EXTERN_C
#endif

/* Declares the plugin. Arguments are designated initializers: .name,
 * .version, SPOKE_ROUTES(table), .init, .fini, .handover. In C any order
 * works; C++ (before C++20 designated initializers relax it) wants them
 * in this order. */
#define SPOKE_PLUGIN(...)                                                    \
  SPOKE__HIDDEN const spoke_host_t *spoke_host;                             \
  SPOKE__EXTERN_C SPOKE__EXPORT const spoke_plugin_t spoke_plugin = {       \
      .abi_major = SPOKE_ABI_MAJOR,                                          \
      .abi_minor = SPOKE_ABI_MINOR,                                          \
      .struct_size = sizeof(spoke_plugin_t),                                 \
      .host = &spoke_host,                                                   \
      __VA_ARGS__}

/* The route table and its length, for SPOKE_PLUGIN(). */
#define SPOKE_ROUTES(table) \
  .routes = (table), .nroutes = sizeof(table) / sizeof((table)[0])

/* The symbol the server looks up. */
#define SPOKE_PLUGIN_SYMBOL "spoke_plugin"

/* ---- The host's function table --------------------------------------- */

struct spoke_host_s {
  uint32_t struct_size;     /* sizeof(spoke_host_t) in the host */
  uint16_t abi_major;
  uint16_t abi_minor;

  /* -- 1.0 -- */
  const char *(*request_method)(const spoke_request_t *req);
  const char *(*request_path)(const spoke_request_t *req);
  const char *(*request_query)(const spoke_request_t *req);
  const char *(*request_query_param)(spoke_request_t *req, const char *name);
  const char *(*request_header)(const spoke_request_t *req, const char *name);
  size_t (*request_header_count)(const spoke_request_t *req);
  int (*request_header_at)(const spoke_request_t *req, size_t i,
                           const char **name, const char **value);
  const char *(*request_param)(const spoke_request_t *req, const char *name);
  const void *(*request_body)(const spoke_request_t *req, size_t *len);
  struct uv_loop_s *(*request_loop)(const spoke_request_t *req);
  void *(*request_alloc)(spoke_request_t *req, size_t size);
  void (*request_set_data)(spoke_request_t *req, void *data);
  void *(*request_data)(const spoke_request_t *req);
  int (*request_aborted)(const spoke_request_t *req);
  int (*request_on_abort)(spoke_request_t *req, spoke_abort_cb cb);
  void *(*plugin_state)(const spoke_request_t *req);
  int (*response_status)(spoke_request_t *req, int status);
  int (*response_header)(spoke_request_t *req, const char *name,
                         const char *value);
  int (*response_send)(spoke_request_t *req, const void *body, size_t len);
  int (*response_write)(spoke_request_t *req, const void *data, size_t len);
  int (*response_end)(spoke_request_t *req);
  int (*timer_start)(spoke_request_t *req, uint64_t ms, spoke_timer_cb cb);
  void (*logv)(const spoke_host_t *host, int level, const char *fmt,
               va_list ap);
  /* -- 1.2 -- */
  const char *(*config)(const spoke_host_t *host, const char *key);
  /* -- 1.3 -- */
  int (*plugin_hold)(const spoke_host_t *host);
  void (*plugin_release)(const spoke_host_t *host);
  size_t (*response_pending)(const spoke_request_t *req);
  int (*response_on_drain)(spoke_request_t *req, spoke_drain_cb cb);
  /* -- 1.4 -- */
  void *(*loop_state)(const spoke_request_t *req);
  int (*offload)(spoke_request_t *req, spoke_offload_cb fn, void *arg,
                 spoke_offload_done_cb done);
  /* -- 1.5 -- */
  int (*response_file)(spoke_request_t *req, int fd, uint64_t offset,
                       uint64_t length);
  int (*response_length)(spoke_request_t *req, uint64_t length);
  /* -- append 1.6 members below this line, never above -- */
};

/* True when the host's table has MEMBER (a member newer than the plugin's
 * floor may be missing on an older host). */
#define SPOKE_HOST_HAS(member)                                               \
  (spoke_host != NULL &&                                                     \
   offsetof(spoke_host_t, member) + sizeof(spoke_host->member) <=            \
       spoke_host->struct_size &&                                            \
   spoke_host->member != NULL)

/* ---- Request --------------------------------------------------------- */

/* "GET", "POST", ... */
static inline const char *spoke_request_method(const spoke_request_t *req) {
  return spoke_host->request_method(req);
}

/* The path without the query, as sent ("/users/42"). */
static inline const char *spoke_request_path(const spoke_request_t *req) {
  return spoke_host->request_path(req);
}

/* The raw query string without '?', "" when there is none. */
static inline const char *spoke_request_query(const spoke_request_t *req) {
  return spoke_host->request_query(req);
}

/* The percent-decoded value of query parameter NAME, "" for a bare
 * "?name", NULL when absent. The first occurrence wins. */
static inline const char *spoke_request_query_param(spoke_request_t *req,
                                                    const char *name) {
  return spoke_host->request_query_param(req, name);
}

/* The value of request header NAME (case-insensitive), NULL when absent.
 * Repeated headers: the first. */
static inline const char *spoke_request_header(const spoke_request_t *req,
                                               const char *name) {
  return spoke_host->request_header(req, name);
}

/* Number of request headers, and the I-th (0-based) in arrival order.
 * spoke_request_header_at returns SPOKE_EINVAL past the end. */
static inline size_t spoke_request_header_count(const spoke_request_t *req) {
  return spoke_host->request_header_count(req);
}
static inline int spoke_request_header_at(const spoke_request_t *req,
                                          size_t i, const char **name,
                                          const char **value) {
  return spoke_host->request_header_at(req, i, name, value);
}

/* The percent-decoded value of route parameter NAME (":id" in the route's
 * path; "*" for the trailing wildcard), NULL when the route has none. */
static inline const char *spoke_request_param(const spoke_request_t *req,
                                              const char *name) {
  return spoke_host->request_param(req, name);
}

/* The whole request body (chunked bodies already joined); *len gets its
 * size. Never NULL: an empty body is "" with *len 0. */
static inline const void *spoke_request_body(const spoke_request_t *req,
                                             size_t *len) {
  return spoke_host->request_body(req, len);
}

/* The libuv loop the request belongs to. Use it only on that loop's
 * thread, that is from an async handler or a callback the loop runs. */
static inline struct uv_loop_s *spoke_request_loop(const spoke_request_t *req) {
  return spoke_host->request_loop(req);
}

/* SIZE bytes that live as long as the request. NULL when out of memory. */
static inline void *spoke_request_alloc(spoke_request_t *req, size_t size) {
  return spoke_host->request_alloc(req, size);
}

/* One pointer of the plugin's own per-request data. */
static inline void spoke_request_set_data(spoke_request_t *req, void *data) {
  spoke_host->request_set_data(req, data);
}
static inline void *spoke_request_data(const spoke_request_t *req) {
  return spoke_host->request_data(req);
}

/* 1 once the client has gone away, else 0. */
static inline int spoke_request_aborted(const spoke_request_t *req) {
  return spoke_host->request_aborted(req);
}

/* CB runs once, on the request's loop thread, if the client goes away
 * before completion, or when an async handler has not started its
 * response within --handler-timeout (the server answered 504). Call it
 * from the handler (from another thread CB may run while your code
 * still does). SPOKE_ECANCELED when the client has already gone: do not
 * count on CB then. */
static inline int spoke_request_on_abort(spoke_request_t *req,
                                         spoke_abort_cb cb) {
  return spoke_host->request_on_abort(req, cb);
}

/* The state this plugin's init stored (NULL without init). */
static inline void *spoke_plugin_state(const spoke_request_t *req) {
  return spoke_host->plugin_state(req);
}

/* ---- Response -------------------------------------------------------- */

/* Status code, 200..599 (default 200). Before the response starts. */
static inline int spoke_response_status(spoke_request_t *req, int status) {
  return spoke_host->response_status(req, status);
}

/* Adds a response header. NAME must be a token, VALUE free of CR, LF and
 * other control bytes. Content-Length, Transfer-Encoding and Date belong
 * to the server (SPOKE_EINVAL). Before the response starts. */
static inline int spoke_response_header(spoke_request_t *req, const char *name,
                                        const char *value) {
  return spoke_host->response_header(req, name, value);
}

/* Sends the whole response with BODY (copied) and completes the request.
 * Safe from any thread. SPOKE_EALREADY if already completed. */
static inline int spoke_response_send(spoke_request_t *req, const void *body,
                                      size_t len) {
  return spoke_host->response_send(req, body, len);
}

/* Streams: the first write sends status and headers with chunked
 * encoding (close-delimited for HTTP/1.0); each write sends DATA (copied)
 * as one chunk. Finish with spoke_response_end(). Safe from any thread.
 * Off the loop thread (sync handlers, your own threads) a write waits
 * while more than 1 MiB of this response is still unsent, so a slow
 * client slows the writer instead of filling memory; it returns
 * SPOKE_ECANCELED once the client is gone. On the loop thread it never
 * waits. */
static inline int spoke_response_write(spoke_request_t *req, const void *data,
                                       size_t len) {
  return spoke_host->response_write(req, data, len);
}

/* Ends a streamed response (or sends an empty one) and completes the
 * request. Safe from any thread. */
static inline int spoke_response_end(spoke_request_t *req) {
  return spoke_host->response_end(req);
}

/* ---- Helpers --------------------------------------------------------- */

/* Calls CB(req) on the request's loop after MS milliseconds: the C form
 * of `await asyncio.sleep()`. Call it on the loop thread (async handlers).
 * The request stays valid until CB has run, even if the client left. */
static inline int spoke_timer_start(spoke_request_t *req, uint64_t ms,
                                    spoke_timer_cb cb) {
  return spoke_host->timer_start(req, ms, cb);
}

/* One log line on the server's log, tagged with the plugin's name. */
static inline SPOKE__PRINTF(2, 3) void spoke_log(int level, const char *fmt,
                                                 ...) {
  va_list ap;
  va_start(ap, fmt);
  spoke_host->logv(spoke_host, level, fmt, ap);
  va_end(ap);
}

/* The value of KEY in this plugin's section of the server's config file
 * (`[plugin NAME]`, NAME the descriptor's .name), or NULL when the key is
 * absent, there is no config file, or the host predates SDK 1.2. Safe
 * from any thread, from init on; the string stays valid while the
 * plugin is loaded. A reload (SIGHUP, POST /reload) does not re-read the
 * file: the values are the ones the server started with. */
static inline const char *spoke_config(const char *key) {
  return SPOKE_HOST_HAS(config) ? spoke_host->config(spoke_host, key) : NULL;
}

/* ---- Plugin-owned work (SDK 1.3) ------------------------------------- */

/* Keeps this loaded version of the plugin (its code and its state) alive
 * until the matching spoke_plugin_release(), even after a reload has
 * replaced it and its last request has finished. Take a hold before you
 * start anything of your own that will call back into your code later
 * (a uv_timer_t, a uv_tcp_t, a uv_work_t, a curl or libpq handle on the
 * request's loop) and release it from the last callback (for a libuv
 * handle: its close callback). On the loop thread a release takes effect
 * once your callback has returned to the loop, so releasing and then
 * returning is safe. A version is unloaded (fini, then its code
 * unmapped) only when it serves no route, its requests are done and
 * every hold is released. Any thread. 0, or SPOKE_ENOTSUP on a host
 * older than SDK 1.3 (then nothing keeps the code mapped: avoid reloads
 * while such work is pending). */
static inline int spoke_plugin_hold(void) {
  return SPOKE_HOST_HAS(plugin_hold) ? spoke_host->plugin_hold(spoke_host)
                                     : SPOKE_ENOTSUP;
}

/* Gives back one spoke_plugin_hold(). */
static inline void spoke_plugin_release(void) {
  if (SPOKE_HOST_HAS(plugin_release))
    spoke_host->plugin_release(spoke_host);
}

/* Bytes of REQ's response handed to the server and not yet written to
 * the client. Any thread; 0 on a host older than SDK 1.3. */
static inline size_t spoke_response_pending(const spoke_request_t *req) {
  return SPOKE_HOST_HAS(response_pending) ? spoke_host->response_pending(req)
                                          : 0;
}

/* Back-pressure for a response streamed from the loop thread (an async
 * handler or its callbacks), where spoke_response_write() never waits:
 * CB runs once, on the request's loop thread, when the bytes still
 * pending fall to the low-water mark (half of the 1 MiB high-water
 * mark), or on the loop's next turn if they already have (never from
 * inside spoke_response_on_drain or your own write). Write until
 * spoke_response_pending() passes what you are willing to buffer, then
 * ask for the callback and continue writing from it. Not called if the
 * client goes away (the abort callback is). Call on the loop thread:
 * SPOKE_ETHREAD otherwise. SPOKE_EALREADY once the request is completed,
 * SPOKE_ECANCELED once the client is gone, SPOKE_EINVAL for a NULL CB,
 * SPOKE_ENOTSUP on a host older than 1.3. */
static inline int spoke_response_on_drain(spoke_request_t *req,
                                          spoke_drain_cb cb) {
  return SPOKE_HOST_HAS(response_on_drain)
             ? spoke_host->response_on_drain(req, cb)
             : SPOKE_ENOTSUP;
}

/* ---- Loop-bound resources and blocking calls (SDK 1.4) ---------------- */

/* What this plugin version's loop_init stored for REQ's loop; NULL
 * without loop_init, when it failed, or on a host older than 1.4. Use
 * what it points to on the loop thread only (an async handler and the
 * callbacks its loop runs): a sync handler runs on a pool thread. */
static inline void *spoke_loop_state(const spoke_request_t *req) {
  return SPOKE_HOST_HAS(loop_state) ? spoke_host->loop_state(req) : NULL;
}

/* Python's `await loop.run_in_executor(...)`, Quart's run_sync: runs
 * FN(ARG) on a worker-pool thread (--workers), where it may block, then
 * DONE(req, ARG, status) on REQ's loop thread, where the handler goes on
 * and completes the request. The request stays valid until DONE has
 * run, even if the client leaves (STATUS is then SPOKE_ECANCELED, and
 * DONE still runs: free what ARG holds there). FN must not touch REQ.
 * One offload per request at a time. Call on the loop thread (an async
 * handler or its callbacks). 0; SPOKE_EBUSY when the pool's queue is
 * full (--max-queue; answer 503) or this request already has one
 * pending; SPOKE_EALREADY once completed; SPOKE_ETHREAD off the loop
 * thread; SPOKE_EINVAL for a NULL FN or DONE; SPOKE_ENOTSUP on a host
 * older than 1.4. On any error neither callback runs. */
static inline int spoke_offload(spoke_request_t *req, spoke_offload_cb fn,
                                void *arg, spoke_offload_done_cb done) {
  return SPOKE_HOST_HAS(offload) ? spoke_host->offload(req, fn, arg, done)
                                 : SPOKE_ENOTSUP;
}

/* ---- Files and bodies of known length (SDK 1.5) ----------------------- */

/* Completes the request with LENGTH bytes of the open file FD, from
 * OFFSET, as its body: the status and headers set so far, then
 * Content-Length: LENGTH, then the bytes, which the kernel copies from
 * the page cache to the socket (sendfile(2)) on the request's loop as
 * the client reads them: no thread waits and no buffer fills, however
 * slow the client. The server owns FD from this call on, whatever it
 * returns: it closes it once the body is sent, when the client goes
 * away, or at once (HEAD, a 204 or 304, an error). To keep a descriptor
 * of your own (a cache), pass dup(fd). FD should be a regular file open
 * for reading; if it holds fewer bytes than promised when they are
 * sent, the connection is closed (the length was already declared).
 * Any thread, like spoke_response_send. 0; SPOKE_EALREADY if completed;
 * SPOKE_ESTATE once a streamed response has started; SPOKE_EINVAL for a
 * negative FD; SPOKE_ENOTSUP on a host older than 1.5, and only then is
 * FD still yours to close. */
static inline int spoke_response_file(spoke_request_t *req, int fd,
                                      uint64_t offset, uint64_t length) {
  return SPOKE_HOST_HAS(response_file)
             ? spoke_host->response_file(req, fd, offset, length)
             : SPOKE_ENOTSUP;
}

/* Declares the length of a body about to be streamed with
 * spoke_response_write, before the first write: the response then
 * carries Content-Length instead of chunked encoding (and an HTTP/1.0
 * client's connection may stay open). A write past LENGTH fails with
 * SPOKE_EINVAL and sends nothing of it; a response ended short of LENGTH
 * is cut off (the connection closes; the client sees a short body) with
 * one log line. The thread handling the request, before the response
 * starts: SPOKE_ESTATE afterwards; SPOKE_ENOTSUP on a host older than
 * 1.5. */
static inline int spoke_response_length(spoke_request_t *req,
                                        uint64_t length) {
  return SPOKE_HOST_HAS(response_length)
             ? spoke_host->response_length(req, length)
             : SPOKE_ENOTSUP;
}

#ifdef __cplusplus
}
#endif

#endif /* SPOKE_H */
