/* retire.c: says so when a replaced plugin version will not go away.
 *
 * A version that stops serving (replaced or removed) is unloaded once
 * its last request is done and the plugin has released every hold it
 * took (spoke_plugin_hold). A request that never ends, or a hold never
 * released, keeps it loaded: memory, file descriptors and its private
 * copy stay. That is not wrong (the code might still run), but it should
 * not be silent: once a second the control thread looks at the retiring
 * versions and logs, once per version, any that has been retiring longer
 * than --retire-warn, with what still holds it. /status (retiring_s,
 * in_flight, holds) and /metrics (spoke_plugin_holds,
 * spoke_plugin_versions_retiring) show the same at any time.
 *
 * Control thread only; the timer never keeps the control loop alive.
 */
#include "ctl/ctl.h"

static uv_timer_t timer;
static int running;

static void look(uv_timer_t *t) {
  spoke__server_t *srv = t->data;
  uint64_t now = uv_hrtime(), limit = srv->cfg.retire_warn_ms * 1000000ull;

  for (spoke__instance_t *i = spoke__instance_live_first(); i != NULL;
       i = i->live_next) {
    uint64_t since = atomic_load(&i->retired_at);
    long holds = atomic_load(&i->holds);
    if (i->warned_retiring || since == 0 || now - since < limit ||
        spoke__snapshot_has(srv->current, i))
      continue;
    i->warned_retiring = 1;
    spoke__warn("plugin %s %s (generation %llu) still loaded %.1f s after "
                "it stopped serving: %ld request%s in flight, %ld plugin "
                "hold%s not released",
                i->name, i->version, (unsigned long long)i->generation,
                (double)(now - since) / 1e9, spoke__instance_inflight(i),
                spoke__instance_inflight(i) == 1 ? "" : "s",
                holds > 0 ? holds : 0, holds == 1 ? "" : "s");
  }
}

void spoke__retire_watch_start(spoke__server_t *srv) {
  uint64_t every;
  if (srv->cfg.retire_warn_ms == 0 || running)
    return;
  every = srv->cfg.retire_warn_ms < 1000 ? srv->cfg.retire_warn_ms : 1000;
  uv_timer_init(srv->control, &timer);
  timer.data = srv;
  uv_timer_start(&timer, look, every, every);
  uv_unref((uv_handle_t *)&timer);
  running = 1;
}

void spoke__retire_watch_stop(void) {
  if (running && !uv_is_closing((uv_handle_t *)&timer))
    uv_close((uv_handle_t *)&timer, NULL);
  running = 0;
}
