/* initcount.c: a fixture that says, on the host's log, whenever any of
 * its code runs: "initcount: init", "initcount: handover", "initcount:
 * fini", "initcount: handler". The quarantine tests (test_admit) hand it
 * a host table whose logv records those lines: a quarantined load must
 * log none of them, a normal one init then fini.
 *
 *   GET /initcount   ASYNC, answers "initcount\n"
 */
#include <spoke.h>

static int handler(spoke_request_t *req) {
  spoke_log(SPOKE_LOG_INFO, "initcount: handler");
  spoke_response_header(req, "Content-Type", "text/plain");
  return spoke_response_send(req, "initcount\n", 10);
}

static int init(const spoke_host_t *host, void **state) {
  (void)host;
  *state = NULL;
  spoke_log(SPOKE_LOG_INFO, "initcount: init");
  return 0;
}

static int handover(const spoke_host_t *host, void *prev_state,
                    const char *prev_version, void **state) {
  (void)host;
  (void)prev_version;
  *state = prev_state;
  spoke_log(SPOKE_LOG_INFO, "initcount: handover");
  return 0;
}

static void fini(void *state) {
  (void)state;
  spoke_log(SPOKE_LOG_INFO, "initcount: fini");
}

static const spoke_route_t routes[] = {
  { "GET", "/initcount", SPOKE_ASYNC, handler },
};

SPOKE_PLUGIN(.name = "initcount", .version = "7", SPOKE_ROUTES(routes),
             .init = init, .handover = handover, .fini = fini);
