/* rollback.c: a supervised worker's side of quarantine: which build a
 * plugin file is served from, and the archive of builds that served.
 *
 * The master counts crashes per build (ledger.c) and quarantines a build
 * that crashed too often. Before a worker loads a file of the plugins
 * directory it looks the file's build up in the ledger:
 *
 *   not quarantined            -> the file, as always
 *   quarantined, and an older  -> that build's archived copy, reported
 *   build of the plugin served    under the file's name (a rollback)
 *   and never crashed
 *   quarantined, no such build -> the file, loaded quarantined: none of
 *                                 its code runs, its routes answer 503
 *
 * A build loaded from the directory (not a rollback, not quarantined)
 * is hard-linked into the master's archive as BUILD.so and reported to
 * the master (a LOADED record), which makes it a rollback target for as
 * long as it never crashes. The quarantine is lifted by a different
 * build appearing in the directory: a different build id, looked up
 * afresh. Outside a supervised worker nothing here applies. Control
 * thread only.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ctl/ctl.h"

void spoke__rollback_pick(spoke__server_t *srv, const char *path,
                          spoke__pick_t *out) {
  spoke__ledger_t *l;
  const spoke__build_t *q, *t;
  char build[17];

  memset(out, 0, sizeof(*out));
  snprintf(out->path, sizeof(out->path), "%s", path);
  if (!srv->supervised || (l = spoke__ledger_copy()) == NULL)
    return;
  /* Reading the file for its build id (the load hashes it again as it
   * copies it) only when some build is quarantined at all. */
  if (spoke__ledger_any_quarantined(l) &&
      spoke__build_id_of_file(path, build) == 0 &&
      (q = spoke__ledger_find(l, build)) != NULL && q->quarantined) {
    snprintf(out->from, sizeof(out->from), "%s", q->version);
    t = spoke__ledger_rollback(l, q->plugin, q->build);
    if (t != NULL) {
      snprintf(out->path, sizeof(out->path), "%s/%s.so", srv->archive_dir,
               t->build);
      out->rollback = 1;
    } else {
      snprintf(out->quarantine, sizeof(out->quarantine), "%s", q->reason);
    }
  }
  free(l);
}

int spoke__rollback_stale(spoke__server_t *srv, const spoke__instance_t *inst) {
  spoke__ledger_t *l;
  const spoke__build_t *b;
  int stale;
  if (!srv->supervised || inst == NULL || inst->quarantined != NULL ||
      (l = spoke__ledger_copy()) == NULL)
    return 0;
  b = spoke__ledger_find(l, inst->build);
  stale = b != NULL && b->quarantined;
  free(l);
  return stale;
}

void spoke__rollback_archive(spoke__server_t *srv,
                             const spoke__instance_t *inst) {
  char path[4096];
  if (!srv->supervised || srv->archive_dir == NULL)
    return;
  snprintf(path, sizeof(path), "%s/%s.so", srv->archive_dir, inst->build);
  if (link(inst->copy_path, path) != 0 && errno != EEXIST) {
    spoke__warn("cannot archive plugin %s %s as %s: %s (it cannot be rolled "
                "back to)", inst->name, inst->version, path, strerror(errno));
    return;
  }
  spoke__crash_report_loaded(inst);
}
