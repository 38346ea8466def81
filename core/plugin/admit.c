/* admit.c: the one rule for whether a plugin file may serve.
 *
 * Two places ask it: the server's reload path (ctl/reload.c), before a
 * new or changed file serves, and `spoke check` (cli/check.c), which must
 * give the very verdict and reason the server would log. Both ask here so
 * the rule cannot drift apart between them:
 *
 *   1. only a plugin file name is looked at (spoke__admit_is_plugin_name;
 *      the server ignores other files rather than refusing them, so the
 *      callers filter names themselves, each with its own words);
 *   2. the file loads (spoke__instance_load: private copy, ELF check,
 *      dlopen, descriptor and ABI check, init or hand-over; neither for
 *      a quarantined newcomer, IN->quarantine, which is otherwise
 *      admitted by the same rule and whose routes the core answers 503);
 *   3. its name differs from every instance already serving;
 *   4. its routes fit beside theirs: a candidate snapshot is built with
 *      the serving instances in their order and the newcomer last, so a
 *      conflict always refuses the newcomer, never one already serving.
 *
 * Invariants: on success the caller gets the instance (one reference,
 * its own) and, if it asked, the candidate snapshot (one reference);
 * nothing is published here. On refusal the reason is in ERR and nothing
 * is left behind: the instance, if it loaded, is unreffed (fini runs, the
 * private copy goes, at once or through the installed reaper), and no
 * snapshot survives. Nothing is logged about the newcomer: only the
 * caller knows whether an older version keeps serving, so the caller is
 * told of a refusal (its refused hook) while the newcomer still exists,
 * and its report precedes the newcomer's fini, as before this file
 * existed. Control thread.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "plugin/plugin.h"

int spoke__admit_is_plugin_name(const char *name) {
  size_t len = strlen(name);
  return len > 3 && name[0] != '.' && strcmp(name + len - 3, ".so") == 0;
}

typedef struct refusal_s {
  spoke__instance_t *newcomer;
  char why[256];
} refusal_t;

static void on_refused(void *ctx, spoke__instance_t *inst, const char *why) {
  refusal_t *r = ctx;
  if (inst == r->newcomer)
    snprintf(r->why, sizeof(r->why), "%s", why);
  else
    /* Cannot happen: the others were serving together a moment ago. */
    spoke__error("plugin %s left out of generation: %s", inst->name, why);
}

/* Builds the candidate snapshot, IN's serving instances then INST, into
 * *OUT. On refusal returns SPOKE_ECONFLICT or SPOKE_ENOMEM with the
 * reason in R->why and *OUT NULL. */
static int candidate(const spoke__admit_t *in, spoke__instance_t *inst,
                     refusal_t *r, spoke__snapshot_t **out) {
  spoke__instance_t **list = calloc(in->nserving + 1, sizeof(*list));
  spoke__snapshot_t *snap;

  *out = NULL;
  r->newcomer = inst;
  r->why[0] = '\0';
  if (list == NULL) {
    snprintf(r->why, sizeof(r->why), "out of memory");
    return SPOKE_ENOMEM;
  }
  for (size_t i = 0; i < in->nserving; i++)
    list[i] = in->serving[i];
  list[in->nserving] = inst;
  snap = spoke__snapshot_build(in->generation, list, in->nserving + 1,
                               on_refused, r);
  free(list);
  if (snap == NULL) {
    snprintf(r->why, sizeof(r->why), "out of memory");
    return SPOKE_ENOMEM;
  }
  if (r->why[0] != '\0') {
    spoke__snapshot_unref(snap);
    return SPOKE_ECONFLICT;
  }
  *out = snap;
  return 0;
}

int spoke__admit(const spoke__admit_t *in, spoke__instance_t **inst_out,
                 spoke__snapshot_t **snap_out, char *err, size_t errlen) {
  spoke__load_opts_t opts;
  spoke__instance_t *inst;
  spoke__snapshot_t *snap = NULL;
  refusal_t r;
  int rc;

  *inst_out = NULL;
  if (snap_out != NULL)
    *snap_out = NULL;
  opts.quarantine = in->quarantine;
  opts.file = in->file;
  rc = spoke__instance_load(in->path, in->runtime_dir, in->generation,
                            in->prev, in->host, &opts, &inst, err, errlen);
  if (rc != 0) {
    if (in->refused != NULL)
      in->refused(in->ctx, err);
    return rc;
  }
  for (size_t i = 0; i < in->nserving && rc == 0; i++) {
    const spoke__instance_t *other = in->serving[i];
    if (strcmp(other->name, inst->name) == 0) {
      snprintf(err, errlen, "name \"%s\" is already used by %s", inst->name,
               other->file);
      rc = SPOKE_ECONFLICT;
    }
  }
  if (rc == 0 && (rc = candidate(in, inst, &r, &snap)) != 0)
    snprintf(err, errlen, "%s", r.why);
  if (rc != 0) {
    if (in->refused != NULL)
      in->refused(in->ctx, err);
    spoke__instance_discard(inst); /* fini runs now: never served */
    return rc;
  }
  if (snap_out != NULL)
    *snap_out = snap;
  else
    spoke__snapshot_unref(snap);
  *inst_out = inst;
  return 0;
}
