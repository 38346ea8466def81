/* counter.c: per-plugin state, created in init, freed in fini, shared by
 * every request.
 *
 *   GET /counter  ->  200 "1\n", then "2\n", "3\n", ... (text/plain)
 *
 * Lifetime: init runs once on the server's control thread before any
 * handler; what it stores in *state is what spoke_plugin_state(req) returns
 * in handlers. fini runs once, also on the control thread, after the last
 * request of this loaded version has completed, so it may free the state
 * without racing a handler. A hot reload loads the new .so as a separate
 * instance with its own init and its own state, so the count starts again
 * at 1 there while the old version's requests finish on the old state.
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

typedef struct {
  atomic_ulong hits;
} counter_t;

static int counter_init(const spoke_host_t *host, void **state) {
  counter_t *c = malloc(sizeof(*c));

  (void)host;
  if (c == NULL)
    return SPOKE_ENOMEM; /* refuses the load; the log says why */
  atomic_init(&c->hits, 0);
  *state = c;
  return 0;
}

static void counter_fini(void *state) {
  free(state);
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
             .init = counter_init, .fini = counter_fini);
