/* status.c: what is loaded, as JSON, for operators and tests.
 *
 * Written to RUNTIME_DIR/status.json after every change (load, refusal,
 * retirement, unload), through a temporary file and rename(2), so a
 * reader never sees half of it. In-flight counts are a reading taken at
 * the moment of writing. Control thread only.
 *
 *   {"generation": 7, "plugins_dir": "...",
 *    "instances": [{"name", "version", "file", "build", "quarantined"
 *                   (null or why), "generation",
 *                   "state": "current"|"retiring", "in_flight",
 *                   "routes": [{"method", "path", "mode"}]}],
 *    "files": [{"file", "plugin", "error"}],
 *    "quarantine": [{"plugin", "version", "build", "crashes", "reason",
 *                    "rollback": {"version", "build"} or null}]}
 * (quarantine: a supervised worker's, from its master's ledger; [] else)
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctl/ctl.h"

void spoke__json_str(spoke__buf_t *b, const char *s) {
  spoke__buf_append(b, "\"", 1);
  for (; s != NULL && *s; s++) {
    unsigned char c = (unsigned char)*s;
    if (c == '"' || c == '\\')
      spoke__buf_appendf(b, "\\%c", c);
    else if (c < 0x20)
      spoke__buf_appendf(b, "\\u%04x", c);
    else
      spoke__buf_append(b, s, 1);
  }
  spoke__buf_append(b, "\"", 1);
}

static void instance_json(spoke__buf_t *b, spoke__server_t *srv,
                          spoke__instance_t *inst) {
  const spoke_plugin_t *d = inst->desc;
  spoke__buf_appendf(b, "{\"name\": ");
  spoke__json_str(b, inst->name);
  spoke__buf_appendf(b, ", \"version\": ");
  spoke__json_str(b, inst->version);
  spoke__buf_appendf(b, ", \"file\": ");
  spoke__json_str(b, inst->file);
  spoke__buf_appendf(b, ", \"build\": ");
  spoke__json_str(b, inst->build);
  spoke__buf_appendf(b, ", \"quarantined\": ");
  if (inst->quarantined != NULL)
    spoke__json_str(b, inst->quarantined);
  else
    spoke__buf_appendf(b, "null");
  uint64_t retired = atomic_load(&inst->retired_at);
  int current = spoke__snapshot_has(srv->current, inst);
  long holds = atomic_load(&inst->holds);
  spoke__buf_appendf(b,
                     ", \"generation\": %llu, \"state\": \"%s\", "
                     "\"in_flight\": %ld, \"holds\": %ld, "
                     "\"retiring_s\": %.3f, \"routes\": [",
                     (unsigned long long)inst->generation,
                     current ? "current" : "retiring",
                     spoke__instance_inflight(inst), holds > 0 ? holds : 0,
                     current || retired == 0
                         ? 0.0
                         : (double)(uv_hrtime() - retired) / 1e9);
  for (size_t i = 0; i < d->nroutes; i++) {
    spoke__buf_appendf(b, "%s{\"method\": ", i ? ", " : "");
    spoke__json_str(b, d->routes[i].method);
    spoke__buf_appendf(b, ", \"path\": ");
    spoke__json_str(b, d->routes[i].path);
    spoke__buf_appendf(b, ", \"mode\": \"%s\"}",
                       d->routes[i].mode == SPOKE_SYNC ? "sync" : "async");
  }
  spoke__buf_appendf(b, "]}");
}

/* The builds the master quarantined (its ledger; none without one),
 * each with the build its workers roll back to, or null (503s). */
static void quarantine_json(spoke__buf_t *b) {
  spoke__ledger_t *l = spoke__ledger_copy();
  int first = 1;
  if (l == NULL)
    return;
  spoke__buf_appendf(b, ", \"quarantine\": [");
  for (size_t i = 0; i < l->nbuilds; i++) {
    const spoke__build_t *q = &l->builds[i], *t;
    if (!q->quarantined)
      continue;
    spoke__buf_appendf(b, "%s{\"plugin\": ", first ? "" : ", ");
    spoke__json_str(b, q->plugin);
    spoke__buf_appendf(b, ", \"version\": ");
    spoke__json_str(b, q->version);
    spoke__buf_appendf(b, ", \"build\": ");
    spoke__json_str(b, q->build);
    spoke__buf_appendf(b, ", \"crashes\": %u, \"reason\": ", q->crashes);
    spoke__json_str(b, q->reason);
    spoke__buf_appendf(b, ", \"rollback\": ");
    if ((t = spoke__ledger_rollback(l, q->plugin, q->build)) != NULL) {
      spoke__buf_appendf(b, "{\"version\": ");
      spoke__json_str(b, t->version);
      spoke__buf_appendf(b, ", \"build\": ");
      spoke__json_str(b, t->build);
      spoke__buf_appendf(b, "}");
    } else {
      spoke__buf_appendf(b, "null");
    }
    spoke__buf_appendf(b, "}");
    first = 0;
  }
  spoke__buf_appendf(b, "]");
  free(l);
}

int spoke__status_json(spoke__server_t *srv, spoke__buf_t *b) {
  int first = 1;
  spoke__buf_appendf(b, "{\"generation\": %llu, \"plugins_dir\": ",
                     (unsigned long long)srv->generation);
  spoke__json_str(b, srv->cfg.plugins_dir);
  spoke__buf_appendf(b, ", \"instances\": [");
  for (spoke__instance_t *i = spoke__instance_live_first(); i != NULL;
       i = i->live_next) {
    spoke__buf_appendf(b, "%s", first ? "" : ", ");
    instance_json(b, srv, i);
    first = 0;
  }
  spoke__buf_appendf(b, "], \"files\": [");
  for (size_t i = 0; i < srv->nslots; i++) {
    const spoke__slot_t *s = &srv->slots[i];
    spoke__buf_appendf(b, "%s{\"file\": ", i ? ", " : "");
    spoke__json_str(b, s->file);
    spoke__buf_appendf(b, ", \"plugin\": ");
    if (s->inst)
      spoke__json_str(b, s->inst->name);
    else
      spoke__buf_appendf(b, "null");
    spoke__buf_appendf(b, ", \"error\": ");
    if (s->error[0])
      spoke__json_str(b, s->error);
    else
      spoke__buf_appendf(b, "null");
    spoke__buf_appendf(b, "}");
  }
  spoke__buf_appendf(b, "]");
  quarantine_json(b);
  return spoke__buf_appendf(b, "}\n");
}

void spoke__status_write(spoke__server_t *srv) {
  spoke__buf_t b = {0};
  char path[4096], tmp[4096];
  FILE *f;

  if (srv->runtime_dir == NULL)
    return;
  snprintf(path, sizeof(path), "%s/status.json", srv->runtime_dir);
  snprintf(tmp, sizeof(tmp), "%s/.status.json.tmp", srv->runtime_dir);
  if (spoke__status_json(srv, &b) != 0 || (f = fopen(tmp, "w")) == NULL) {
    spoke__buf_free(&b);
    return;
  }
  fwrite(b.data, 1, b.len, f);
  if (fclose(f) == 0)
    rename(tmp, path);
  else
    remove(tmp);
  spoke__buf_free(&b);
}
