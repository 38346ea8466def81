/* reload.c: every change to the set of loaded plugins goes through here.
 *
 * Start-up, the directory watcher, SIGHUP and POST /reload all end in
 * reload_one(): one file of the plugins directory has (maybe) changed.
 * Each file is a slot keyed by its name; a slot serves one instance at a
 * time, or none when its file was refused.
 *
 *   file gone        -> a snapshot without the slot's instance
 *   file (re)written -> load a new instance from a private copy; on
 *                       success a snapshot with the new instance in the
 *                       slot's place, else the old one keeps serving
 *
 * Whether a new or changed file may serve is plugin/admit.c's rule
 * (spoke__admit, shared with `spoke check`): it loads the file and builds
 * the candidate snapshot beside the other slots' instances with the
 * newcomer placed last, so a route conflict always refuses the newcomer,
 * never a plugin that is already serving. This file keeps the slots, the
 * log lines and the publishing: an admitted snapshot is published: the
 * control thread keeps one reference and sends one to every I/O loop,
 * which swaps its own pointer on its own thread. The replaced instance
 * retires: it is in no current snapshot, its in-flight requests finish on
 * its code, and the last of them hands it to the reaper (fini, dlclose,
 * private copy removed). Control thread only.
 *
 * A refused file keeps its slot (no instance, or the older one serving)
 * and is tried again without being touched:
 *
 *   - after any change that may lift a conflict, i.e. a slot's instance
 *     removed or replaced, the slots refused for a conflict (name or
 *     route: spoke__admit's SPOKE_ECONFLICT) are retried. Only those: a
 *     broken ELF, a failed init or a wrong ABI does not depend on the
 *     other plugins, and retrying it on every removal would only repeat
 *     its refusal line;
 *   - on a rescan (SIGHUP, POST /reload, the watcher's overflow) every
 *     refused slot is retried, whatever the reason, as the operator asked
 *     to look again (a missing library installed since, say); one that
 *     is still refused logs its refusal again, one line per rescan.
 *
 * In a supervised worker a file whose build the master quarantined is
 * served from its rollback build, or quarantined (rollback.c); a slot
 * serving a build quarantined since counts as changed.
 *
 * Retries go in file name order, as the start-up scan does, each against
 * the table as the previous one left it; after a lift a slot is retried
 * once, and again only after another lift. spoke__admit also calls a
 * route declared twice in one plugin a conflict: such a file is refused
 * again on each lift, one line each time, which is harmless.
 *
 * status.json is rewritten before the log line that announces a change,
 * so whoever reads that line finds the change in the file.
 */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "ctl/ctl.h"

static spoke__slot_t *slot_find(spoke__server_t *srv, const char *file) {
  for (size_t i = 0; i < srv->nslots; i++)
    if (strcmp(srv->slots[i].file, file) == 0)
      return &srv->slots[i];
  return NULL;
}

/* Keeps the slots sorted by file name: snapshots list plugins in that
 * order, which is the start-up rule for route conflicts. */
static int slot_cmp(const void *a, const void *b) {
  return strcmp(((const spoke__slot_t *)a)->file,
                ((const spoke__slot_t *)b)->file);
}

static spoke__slot_t *slot_add(spoke__server_t *srv, const char *file) {
  spoke__slot_t *s;
  if (spoke__array_grow(&srv->slots, &srv->slots_cap, srv->nslots,
                        sizeof(*srv->slots)) != 0)
    return NULL;
  s = &srv->slots[srv->nslots];
  memset(s, 0, sizeof(*s));
  s->file = strdup(file);
  if (s->file == NULL)
    return NULL;
  srv->nslots++;
  qsort(srv->slots, srv->nslots, sizeof(*s), slot_cmp);
  return slot_find(srv, file);
}

static void slot_remove(spoke__server_t *srv, spoke__slot_t *s) {
  size_t i = (size_t)(s - srv->slots);
  free(s->file);
  memmove(&srv->slots[i], &srv->slots[i + 1],
          (srv->nslots - i - 1) * sizeof(*s));
  srv->nslots--;
}

static int same_file(const struct stat *a, const struct stat *b) {
  return a->st_dev == b->st_dev && a->st_ino == b->st_ino &&
         a->st_size == b->st_size &&
         a->st_mtim.tv_sec == b->st_mtim.tv_sec &&
         a->st_mtim.tv_nsec == b->st_mtim.tv_nsec;
}

/* Makes SNAP current and sends it to every running loop. */
static void publish(spoke__server_t *srv, spoke__snapshot_t *snap) {
  spoke__snapshot_t *old = srv->current;
  srv->current = snap;
  srv->generation = snap->generation;
  for (int i = 0; i < srv->nloops; i++) {
    if (spoke__loop_publish(&srv->loops[i], snap) != 0)
      spoke__error("out of memory: loop %d keeps generation %llu", i,
                   (unsigned long long)old->generation);
  }
  spoke__snapshot_unref(old);
}

/* The instances serving now, in slot order, but SKIP's; NULL when out
 * of memory. */
static spoke__instance_t **serving(spoke__server_t *srv,
                                   const spoke__slot_t *skip, size_t *n) {
  spoke__instance_t **list = calloc(srv->nslots + 1, sizeof(*list));
  *n = 0;
  if (list == NULL)
    return NULL;
  for (size_t i = 0; i < srv->nslots; i++)
    if (&srv->slots[i] != skip && srv->slots[i].inst != NULL)
      list[(*n)++] = srv->slots[i].inst;
  return list;
}

static void on_left_out(void *ctx, spoke__instance_t *inst, const char *why) {
  (void)ctx;
  /* Cannot happen: they were serving together a moment ago. */
  spoke__error("plugin %s left out of generation: %s", inst->name, why);
}

static void log_routes(const spoke__instance_t *inst) {
  const spoke_plugin_t *d = inst->desc;
  for (size_t i = 0; i < d->nroutes; i++)
    spoke__info("  route %-6s %-24s %s", d->routes[i].method,
                d->routes[i].path,
                d->routes[i].mode == SPOKE_SYNC ? "sync" : "async");
}

typedef struct refusing_s {
  spoke__server_t *srv;
  spoke__slot_t *slot;
} refusing_t;

static void refuse(spoke__server_t *srv, spoke__slot_t *s, const char *why) {
  srv->load_failures++;
  snprintf(s->error, sizeof(s->error), "%s", why);
  s->refused = SPOKE__REFUSED_OTHER; /* load_slot tells a conflict */
  spoke__status_write(srv);
  if (s->inst != NULL)
    spoke__error("refused plugin %s: %s; %s %s (generation %llu) keeps "
                 "serving",
                 s->file, why, s->inst->name, s->inst->version,
                 (unsigned long long)s->inst->generation);
  else
    spoke__error("refused plugin %s: %s", s->file, why);
}

/* spoke__admit's refused hook: the newcomer is still loaded, so the
 * refusal is logged before its fini and "unloaded" line. */
static void on_admit_refused(void *ctx, const char *why) {
  refusing_t *r = ctx;
  refuse(r->srv, r->slot, why);
}

static void retire(spoke__instance_t *old, const char *how) {
  spoke__info("retiring plugin %s %s (generation %llu, %s): %ld request%s "
              "in flight",
              old->name, old->version, (unsigned long long)old->generation,
              how, spoke__instance_inflight(old),
              spoke__instance_inflight(old) == 1 ? "" : "s");
}

/* The slot's file is gone: its routes go, its requests finish. */
static void unload_slot(spoke__server_t *srv, spoke__slot_t *s) {
  spoke__instance_t *old = s->inst, **list;
  spoke__snapshot_t *snap = NULL;
  size_t n;

  if (old == NULL) {
    slot_remove(srv, s);
    return;
  }
  list = serving(srv, s, &n);
  if (list != NULL)
    snap = spoke__snapshot_build(srv->generation + 1, list, n, on_left_out,
                                 NULL);
  free(list);
  if (snap == NULL) {
    spoke__error("out of memory: %s stays loaded", s->file);
    return;
  }
  slot_remove(srv, s);
  publish(srv, snap);
  srv->lifts++;
  spoke__status_write(srv);
  spoke__info("removed plugin %s %s: %s is gone (generation %llu)",
              old->name, old->version, old->file,
              (unsigned long long)snap->generation);
  retire(old, "file removed");
}

/* Loads the slot's file as a new instance and, if it is admitted beside
 * the other slots' instances, serves it. */
static void load_slot(spoke__server_t *srv, spoke__slot_t *s,
                      const char *path) {
  spoke__instance_t *inst, *old = s->inst, **others;
  spoke__snapshot_t *snap;
  spoke__admit_t in = {0};
  refusing_t r = {srv, s};
  spoke__pick_t pick;
  char err[512], note[256] = "";
  size_t n;
  int rc;

  s->lifts_seen = srv->lifts;
  others = serving(srv, s, &n);
  if (others == NULL) {
    refuse(srv, s, "out of memory");
    return;
  }
  /* A quarantined build (supervised workers): its rollback, or 503s. */
  spoke__rollback_pick(srv, path, &pick);
  in.path = pick.path;
  if (pick.rollback) {
    in.file = s->file;
    snprintf(note, sizeof(note), ", rolled back from %s: its build is "
             "quarantined", pick.from);
  } else if (pick.quarantine[0] != '\0') {
    in.quarantine = pick.quarantine;
    snprintf(note, sizeof(note), ", quarantined: %s; its routes answer 503",
             pick.quarantine);
  }
  in.runtime_dir = srv->runtime_dir;
  in.generation = srv->generation + 1;
  in.prev = old;
  in.host = spoke__host_table();
  in.serving = others;
  in.nserving = n;
  in.refused = on_admit_refused;
  in.ctx = &r;
  rc = spoke__admit(&in, &inst, &snap, err, sizeof(err));
  free(others);
  if (rc != 0) {
    /* Logged by on_admit_refused; the old instance serves on. */
    if (rc == SPOKE_ECONFLICT)
      s->refused = SPOKE__REFUSED_CONFLICT;
    return;
  }
  s->error[0] = '\0';
  s->refused = SPOKE__ADMITTED;
  s->inst = inst;
  srv->loads++;
  publish(srv, snap);
  if (old != NULL)
    srv->lifts++; /* its name and routes may be gone */
  spoke__instance_unref(inst); /* the snapshot holds it now */
  spoke__status_write(srv);
  if (!pick.rollback && inst->quarantined == NULL)
    spoke__rollback_archive(srv, inst); /* a build that may be rolled to */
  if (old == NULL) {
    spoke__info("loaded plugin %s %s from %s (generation %llu, %zu route%s%s)",
                inst->name, inst->version, s->file,
                (unsigned long long)inst->generation, inst->desc->nroutes,
                inst->desc->nroutes == 1 ? "" : "s", note);
    log_routes(inst);
  } else {
    spoke__info("reloaded plugin %s from %s: %s -> %s (generation %llu%s%s)",
                inst->name, s->file, old->version, inst->version,
                (unsigned long long)inst->generation,
                inst->handed_over ? ", state handed over" : "", note);
    retire(old, "replaced");
  }
}

/* Acts on FILE: removes, loads or replaces. FORCE: even if unchanged;
 * REFUSED: even if unchanged when its last attempt was refused. */
static void reload_one(spoke__server_t *srv, const char *file, int force,
                       int refused) {
  spoke__slot_t *s = slot_find(srv, file);
  char path[4096];
  struct stat st;

  snprintf(path, sizeof(path), "%s/%s", srv->cfg.plugins_dir, file);
  if (stat(path, &st) != 0 || !S_ISREG(st.st_mode)) {
    if (s != NULL)
      unload_slot(srv, s);
    return;
  }
  if (s == NULL) {
    s = slot_add(srv, file);
    if (s == NULL) {
      spoke__error("out of memory: %s not loaded", file);
      return;
    }
  } else if (!force && !(refused && s->refused != SPOKE__ADMITTED) &&
             same_file(&s->seen, &st) && !spoke__rollback_stale(srv, s->inst)) {
    return; /* unchanged since the last attempt, and not quarantined */
  }
  s->seen = st;
  load_slot(srv, s, path);
}

/* Retries, in file name order, each slot refused for a conflict whose
 * last attempt came before the latest lift, against the table as it
 * stands. A retry that replaces an instance is a lift itself, so passes
 * repeat until one tries nothing; that ends, as such a lift clears a
 * refusal for good. A slot whose file is gone is left to the removal
 * that its event or the next rescan makes. */
static void retry_lifted(spoke__server_t *srv) {
  char path[4096];
  struct stat st;
  int tried;

  do {
    tried = 0;
    for (size_t i = 0; i < srv->nslots; i++) {
      spoke__slot_t *s = &srv->slots[i];
      if (s->refused != SPOKE__REFUSED_CONFLICT || s->lifts_seen == srv->lifts)
        continue;
      snprintf(path, sizeof(path), "%s/%s", srv->cfg.plugins_dir, s->file);
      if (stat(path, &st) != 0 || !S_ISREG(st.st_mode)) {
        s->lifts_seen = srv->lifts;
        continue;
      }
      s->seen = st;
      load_slot(srv, s, path); /* slots neither come nor go here */
      tried = 1;
    }
  } while (tried);
}

void spoke__reload_file(spoke__server_t *srv, const char *file, int force) {
  reload_one(srv, file, force, 0);
  retry_lifted(srv);
}

static int name_cmp(const void *a, const void *b) {
  return strcmp(*(char *const *)a, *(char *const *)b);
}

int spoke__reload_scan(spoke__server_t *srv, int force) {
  DIR *d = opendir(srv->cfg.plugins_dir);
  struct dirent *de;
  char **names = NULL;
  size_t n = 0, cap = 0;

  if (d == NULL) {
    spoke__error("cannot open plugins directory %s: %s", srv->cfg.plugins_dir,
                 strerror(errno));
    return SPOKE_EIO;
  }
  while ((de = readdir(d)) != NULL) {
    if (!spoke__admit_is_plugin_name(de->d_name))
      continue;
    if (spoke__array_grow(&names, &cap, n, sizeof(*names)) != 0)
      break;
    if ((names[n] = strdup(de->d_name)) != NULL)
      n++;
  }
  closedir(d);
  if (n > 1)
    qsort(names, n, sizeof(*names), name_cmp);
  /* Slots whose file left the directory first, so that a plugin renamed
   * to another file name does not meet itself as a conflict. */
  for (size_t i = srv->nslots; i-- > 0;) {
    int present = 0;
    for (size_t j = 0; j < n && !present; j++)
      present = strcmp(names[j], srv->slots[i].file) == 0;
    if (!present)
      reload_one(srv, srv->slots[i].file, force, 1);
  }
  /* Then every file in name order: changed ones and refused ones, each
   * once, then whatever a lift made in the meantime may let in. */
  for (size_t i = 0; i < n; i++) {
    reload_one(srv, names[i], force, 1);
    free(names[i]);
  }
  free(names);
  retry_lifted(srv);
  return 0;
}

void spoke__reload_free(spoke__server_t *srv) {
  for (size_t i = 0; i < srv->nslots; i++)
    free(srv->slots[i].file);
  free(srv->slots);
  srv->slots = NULL;
  srv->nslots = srv->slots_cap = 0;
}
