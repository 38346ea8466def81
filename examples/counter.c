/* counter.c: per-plugin state, created in init, freed in fini, shared by
 * every request.
 *
 *   GET /counter  ->  200 "1\n", then "2\n", "3\n", ... (text/plain)
 *
 * Lifetime: init runs once on the server's control thread before any
 * handler; what it stores in *state is what spoke_plugin_state(req) returns
 * in handlers. fini runs once, also on the control thread, after the last
 * request of this loaded version has completed.
 *
 * Hot reload: replacing counter.so loads the new .so beside the old one;
 * new requests go to the new version while the old one finishes the
 * requests it has. Without handover the new version would start again at
 * 1. With it, the new version is handed the old version's state and here
 * shares it: both versions count on the same atomic, so no number is
 * skipped or given twice, even while the old version drains. Sharing
 * means two owners, so the state carries a reference count: handover
 * takes a reference, each version's fini drops one, the last frees.
 *
 * Threading: the route is SPOKE_ASYNC, yet two requests can still run at
 * the same time: the server runs one I/O loop per thread (--loops), and
 * each loop calls the handler on its own thread. A plain "n++" from two
 * threads is a data race (two requests could both read 4 and both answer
 * 5). atomic_fetch_add makes the read-and-increment one indivisible step,
 * without a lock, so every request gets its own number.
 */
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>

#include <spoke.h>

/* The layout every 1.x version of this plugin agrees on. */
typedef struct {
  atomic_ulong hits;
  atomic_int refs; /* versions sharing this state */
} counter_t;

static int counter_init(const spoke_host_t *host, void **state) {
  counter_t *c = malloc(sizeof(*c));

  (void)host;
  if (c == NULL)
    return SPOKE_ENOMEM; /* refuses the load; the log says why */
  atomic_init(&c->hits, 0);
  atomic_init(&c->refs, 1);
  *state = c;
  return 0;
}

/* Hot reload: take over the running version's state instead of init. */
static int counter_handover(const spoke_host_t *host, void *prev_state,
                            const char *prev_version, void **state) {
  counter_t *c = prev_state;

  /* Only a version with the same state layout may be shared. */
  if (prev_version == NULL || prev_version[0] != '1' || prev_version[1] != '.')
    return counter_init(host, state);
  atomic_fetch_add(&c->refs, 1);
  *state = c;
  spoke_log(SPOKE_LOG_INFO, "took over the count at %lu from version %s",
            atomic_load(&c->hits), prev_version);
  return 0;
}

static void counter_fini(void *state) {
  counter_t *c = state;
  /* fetch_sub returns the value before: 1 means we were the last. */
  if (atomic_fetch_sub(&c->refs, 1) == 1)
    free(c);
}

static int counter_get(spoke_request_t *req) {
  counter_t *c = spoke_plugin_state(req);
  /* fetch_add returns the value before the increment. */
  unsigned long n = atomic_fetch_add(&c->hits, 1) + 1;
  char body[32];
  int len = snprintf(body, sizeof(body), "%lu\n", n);

  spoke_response_header(req, "Content-Type", "text/plain");
  /* send copies the body, so a stack buffer is fine. */
  return spoke_response_send(req, body, (size_t)len);
}

static const spoke_route_t routes[] = {
  { "GET", "/counter", SPOKE_ASYNC, counter_get },
};

SPOKE_PLUGIN(.name = "counter", .version = "1.0.0", SPOKE_ROUTES(routes),
             .init = counter_init, .fini = counter_fini,
             .handover = counter_handover);
