/* loader.c: the start-up scan of the plugins directory.
 *
 * Every regular file named *.so, in name order, is loaded from a private
 * copy (instance.c). A file that cannot be loaded is refused with one log
 * line naming it and the reason, and the others go on. So is a plugin
 * whose name an earlier file already uses, and one whose routes collide
 * with an earlier plugin's (snapshot.c). What loads becomes snapshot 1.
 * Control thread only, before any loop starts.
 */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "server.h"

static int name_cmp(const void *a, const void *b) {
  return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The *.so files of DIR, sorted; *n gets the count. */
static char **list_plugins(const char *dir, size_t *n) {
  DIR *d = opendir(dir);
  struct dirent *de;
  char **names = NULL;
  size_t cap = 0;

  *n = 0;
  if (d == NULL)
    return NULL;
  while ((de = readdir(d)) != NULL) {
    size_t len = strlen(de->d_name);
    char path[4096];
    struct stat st;
    if (len < 4 || strcmp(de->d_name + len - 3, ".so") != 0 ||
        de->d_name[0] == '.')
      continue;
    snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
    if (stat(path, &st) != 0 || !S_ISREG(st.st_mode))
      continue;
    if (*n == cap) {
      char **p = realloc(names, (cap ? cap * 2 : 16) * sizeof(*p));
      if (p == NULL)
        break;
      names = p;
      cap = cap ? cap * 2 : 16;
    }
    names[(*n)++] = strdup(de->d_name);
  }
  closedir(d);
  if (*n > 1)
    qsort(names, *n, sizeof(*names), name_cmp);
  return names;
}

static void log_loaded(const spoke__instance_t *inst, const char *file) {
  const spoke_plugin_t *d = inst->desc;
  spoke__info("loaded plugin %s %s from %s (generation %llu, %zu route%s)",
              inst->name, inst->version, file,
              (unsigned long long)inst->generation, d->nroutes,
              d->nroutes == 1 ? "" : "s");
  for (size_t i = 0; i < d->nroutes; i++)
    spoke__info("  route %-6s %-24s %s", d->routes[i].method,
                d->routes[i].path,
                d->routes[i].mode == SPOKE_SYNC ? "sync" : "async");
}

int spoke__loader_scan(spoke__server_t *srv) {
  const char *dir = srv->cfg.plugins_dir;
  size_t nfiles, nloaded = 0, nrefused = 0, *refused;
  char **files = list_plugins(dir, &nfiles);
  spoke__instance_t **loaded;
  uint64_t gen = ++srv->generation;

  if (files == NULL && nfiles == 0) {
    DIR *d = opendir(dir);
    if (d == NULL) {
      spoke__error("cannot open plugins directory %s", dir);
      return SPOKE_EIO;
    }
    closedir(d);
  }
  loaded = calloc(nfiles ? nfiles : 1, sizeof(*loaded));
  refused = calloc(nfiles ? nfiles : 1, sizeof(*refused));
  if (loaded == NULL || refused == NULL) {
    free(loaded);
    free(refused);
    return SPOKE_ENOMEM;
  }
  for (size_t i = 0; i < nfiles; i++) {
    char path[4096], err[512];
    spoke__instance_t *inst;
    int rc;
    snprintf(path, sizeof(path), "%s/%s", dir, files[i]);
    rc = spoke__instance_load(path, srv->runtime_dir, gen, &inst, err,
                              sizeof(err));
    if (rc != 0) {
      spoke__error("refused plugin %s: %s", files[i], err);
      continue;
    }
    for (size_t j = 0; j < nloaded; j++) {
      if (strcmp(loaded[j]->name, inst->name) == 0) {
        spoke__error("refused plugin %s: name \"%s\" is already used by %s",
                     files[i], inst->name, loaded[j]->src_path);
        spoke__instance_unref(inst);
        inst = NULL;
        break;
      }
    }
    if (inst != NULL)
      loaded[nloaded++] = inst;
  }

  srv->current = spoke__snapshot_build(gen, loaded, nloaded, refused,
                                       &nrefused);
  for (size_t i = 0, r = 0; i < nloaded; i++) {
    if (r < nrefused && refused[r] == i) {
      r++;
    } else {
      const char *slash = strrchr(loaded[i]->src_path, '/');
      log_loaded(loaded[i], slash ? slash + 1 : loaded[i]->src_path);
    }
    spoke__instance_unref(loaded[i]); /* the snapshot holds its own */
  }
  for (size_t i = 0; i < nfiles; i++)
    free(files[i]);
  free(files);
  free(loaded);
  free(refused);
  if (srv->current == NULL)
    return SPOKE_ENOMEM;
  spoke__info("%zu plugin%s serving from %s (generation %llu)",
              srv->current->ninst, srv->current->ninst == 1 ? "" : "s", dir,
              (unsigned long long)gen);
  return 0;
}
