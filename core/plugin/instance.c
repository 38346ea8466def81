/* instance.c: loading one version of one plugin, and finalizing it.
 *
 * glibc keys loaded objects by path and by (device, inode), so dlopen of
 * a file that is already loaded returns the old handle even if the file
 * changed, and overwriting a mapped .so in place crashes the process
 * that maps it. So spoke never maps the watched file: every load copies
 * it to the server's private runtime directory as NAME.GEN.so and opens
 * the copy with RTLD_NOW | RTLD_LOCAL (never RTLD_GLOBAL: two versions'
 * globals would bind together). The copy is removed when the instance is
 * finalized.
 *
 * While copying, the bytes are hashed (FNV-1a 64) into the instance's
 * build id, so a build is known by its content: two copies of the same
 * bytes have the same id, and spoke__build_id_of_file gives it for a file
 * without loading it.
 *
 * A quarantined load (spoke__load_opts_t) maps the copy and checks the
 * descriptor like any other but runs none of the plugin's code: no init,
 * no handover, hence no fini; the core answers its routes (dispatch.c).
 * Only what dlopen itself runs (the object's constructors) cannot be
 * avoided. A quarantined instance is never handed over from: the next
 * version of its name starts with init.
 *
 * Refcount: snapshots listing the instance plus requests pinned in it.
 * The last unref hands the instance to the reaper (the control thread),
 * which calls fini and dlclose; fini therefore never runs on a loop or a
 * pool thread, and never while a handler of this version is on a stack.
 */
#include <dlfcn.h>
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <link.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "plugin/plugin.h"

int spoke__stats_nloops;

static spoke__reaper_cb reaper;
static void (*unloaded_hook)(const spoke__instance_t *inst);
static spoke__instance_t *live_head, *live_tail; /* control thread */

spoke__instance_t *spoke__instance_live_first(void) { return live_head; }

long spoke__instance_inflight(spoke__instance_t *inst) {
  long n = atomic_load_explicit(&inst->requests, memory_order_relaxed);
  return n > 0 ? n : 0;
}

void spoke__instance_pin(spoke__instance_t *inst) {
  atomic_fetch_add_explicit(&inst->requests, 1, memory_order_relaxed);
  spoke__instance_ref(inst);
}

void spoke__instance_unpinned(spoke__instance_t *inst) {
  atomic_fetch_sub_explicit(&inst->requests, 1, memory_order_relaxed);
}

static void live_add(spoke__instance_t *inst) {
  inst->live_prev = live_tail;
  inst->live_next = NULL;
  if (live_tail)
    live_tail->live_next = inst;
  else
    live_head = inst;
  live_tail = inst;
}

static void live_remove(spoke__instance_t *inst) {
  if (inst->live_prev)
    inst->live_prev->live_next = inst->live_next;
  else
    live_head = inst->live_next;
  if (inst->live_next)
    inst->live_next->live_prev = inst->live_prev;
  else
    live_tail = inst->live_prev;
}

void spoke__instance_set_reaper(spoke__reaper_cb cb) { reaper = cb; }

void spoke__instance_set_unloaded_hook(
    void (*hook)(const spoke__instance_t *inst)) {
  unloaded_hook = hook;
}

static const char *base_name(const char *path) {
  const char *slash = strrchr(path, '/');
  return slash ? slash + 1 : path;
}

/* The file must be an ELF shared object of our class whose loadable
 * segments lie inside the file: dlopen maps segments past the end of a
 * truncated file, and touching them then kills the process with SIGBUS. */
static int check_elf(int fd, char *err, size_t errlen) {
  ElfW(Ehdr) eh;
  struct stat st;
  ssize_t n = pread(fd, &eh, sizeof(eh), 0);

  if (n != (ssize_t)sizeof(eh) || memcmp(eh.e_ident, ELFMAG, SELFMAG) != 0) {
    snprintf(err, errlen, "not an ELF shared object%s",
             n >= 0 && n < (ssize_t)sizeof(eh) ? " (file too short)" : "");
    return SPOKE_ENOTELF;
  }
  if (eh.e_type != ET_DYN) {
    snprintf(err, errlen, "not an ELF shared object (an ELF file of type %u)",
             (unsigned)eh.e_type);
    return SPOKE_ENOTELF;
  }
  if (eh.e_ident[EI_CLASS] != (sizeof(void *) == 8 ? ELFCLASS64 : ELFCLASS32) ||
      eh.e_phentsize != sizeof(ElfW(Phdr)) || fstat(fd, &st) != 0) {
    snprintf(err, errlen, "not an ELF shared object for this machine");
    return SPOKE_ENOTELF;
  }
  for (unsigned i = 0; i < eh.e_phnum; i++) {
    ElfW(Phdr) ph;
    off_t at = (off_t)eh.e_phoff + (off_t)i * (off_t)sizeof(ph);
    if (pread(fd, &ph, sizeof(ph), at) != (ssize_t)sizeof(ph) ||
        (ph.p_type == PT_LOAD &&
         ph.p_offset + ph.p_filesz > (ElfW(Off))st.st_size)) {
      snprintf(err, errlen,
               "truncated ELF file (%lld bytes; its segments need more)",
               (long long)st.st_size);
      return SPOKE_ENOTELF;
    }
  }
  return 0;
}

/* ---- build ids: FNV-1a 64 over a file's bytes ---- */

void spoke__build_id_hex(uint64_t h, char out[17]) {
  static const char digits[] = "0123456789abcdef";
  for (int i = 15; i >= 0; i--, h >>= 4)
    out[i] = digits[h & 0xf];
  out[16] = '\0';
}

int spoke__build_id_of_file(const char *path, char out[17]) {
  unsigned char buf[65536];
  uint64_t h = SPOKE__FNV64_OFFSET;
  int fd = open(path, O_RDONLY | O_CLOEXEC);

  out[0] = '\0';
  if (fd < 0)
    return SPOKE_EIO;
  for (;;) {
    ssize_t n = read(fd, buf, sizeof(buf));
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0) {
      close(fd);
      return SPOKE_EIO;
    }
    if (n == 0)
      break;
    h = spoke__fnv1a(h, buf, (size_t)n);
  }
  close(fd);
  spoke__build_id_hex(h, out);
  return 0;
}

/* Copies IN to OUT, folding the bytes into *HASH (FNV-1a 64). */
static int copy_fd(int in, int out, uint64_t *hash) {
  char buf[65536];
  for (;;) {
    ssize_t n = read(in, buf, sizeof(buf)), off = 0;
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0)
      return -1;
    if (n == 0)
      return 0;
    *hash = spoke__fnv1a(*hash, buf, (size_t)n);
    while (off < n) {
      ssize_t w = write(out, buf + off, (size_t)(n - off));
      if (w < 0 && errno == EINTR)
        continue;
      if (w < 0)
        return -1;
      off += w;
    }
  }
}

/* Copies SRC to a fresh private file; *copy gets its malloc'd path and
 * BUILD the build id of the bytes copied. */
static int make_private_copy(int src, const char *runtime_dir,
                             const char *stem, uint64_t gen, char **copy,
                             char build[17], char *err, size_t errlen) {
  char path[4096];
  uint64_t hash = SPOKE__FNV64_OFFSET;
  int out;

  snprintf(path, sizeof(path), "%s/%s.%llu.so", runtime_dir, stem,
           (unsigned long long)gen);
  out = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0700);
  if (out < 0) {
    snprintf(err, errlen, "cannot create private copy %s: %s", path,
             strerror(errno));
    return SPOKE_EIO;
  }
  if (copy_fd(src, out, &hash) != 0) {
    snprintf(err, errlen, "cannot copy to %s: %s", path, strerror(errno));
    close(out);
    unlink(path);
    return SPOKE_EIO;
  }
  if (close(out) != 0) {
    snprintf(err, errlen, "cannot copy to %s: %s", path, strerror(errno));
    unlink(path);
    return SPOKE_EIO;
  }
  spoke__build_id_hex(hash, build);
  *copy = strdup(path);
  if (*copy == NULL) {
    unlink(path);
    return SPOKE_ENOMEM;
  }
  return 0;
}

/* dlsym the descriptor and make sure the symbol covers what it claims. */
static int find_descriptor(void *dl, const spoke_plugin_t **out, char *err,
                           size_t errlen) {
  const spoke_plugin_t *d = dlsym(dl, SPOKE_PLUGIN_SYMBOL);
  Dl_info info;
  ElfW(Sym) *sym = NULL;

  if (d == NULL) {
    snprintf(err, errlen,
             "no " SPOKE_PLUGIN_SYMBOL " descriptor (missing SPOKE_PLUGIN?)");
    return SPOKE_ENODESC;
  }
  if (dladdr1(d, &info, (void **)&sym, RTLD_DL_SYMENT) && sym != NULL &&
      sym->st_size != 0) {
    if (sym->st_size < 8) {
      snprintf(err, errlen, "descriptor symbol is only %zu bytes",
               (size_t)sym->st_size);
      return SPOKE_EDESC;
    }
    if (d->abi_major == SPOKE_ABI_MAJOR && d->struct_size > sym->st_size) {
      snprintf(err, errlen,
               "descriptor claims %u bytes but its symbol has %zu",
               d->struct_size, (size_t)sym->st_size);
      return SPOKE_EDESC;
    }
  }
  *out = d;
  return 0;
}

static void instance_free(spoke__instance_t *inst) {
  free(inst->perloop);
  free(inst->counts);
  free(inst->name);
  free(inst->version);
  free(inst->src_path);
  free(inst->file);
  free(inst->quarantined);
  free(inst->copy_path);
  free(inst);
}

/* The descriptor's handover, if its size covers the member (SDK 1.1). */
static int (*handover_of(const spoke_plugin_t *d))(const spoke_host_t *,
                                                   void *, const char *,
                                                   void **) {
  if (d->struct_size < offsetof(spoke_plugin_t, handover) + sizeof(d->handover))
    return NULL;
  return d->handover;
}

/* The plugin's fini, marked as a call into it (crash reports). */
static void call_fini(spoke__instance_t *inst) {
  spoke__call_save_t save;
  if (inst->desc->fini == NULL)
    return;
  spoke__call_enter(&save, inst, "fini", SPOKE__CALL_NO_ROUTE);
  inst->desc->fini(inst->state);
  spoke__call_leave(&save);
}

int spoke__instance_load(const char *path, const char *runtime_dir,
                         uint64_t generation, spoke__instance_t *prev,
                         const spoke_host_t *host,
                         const spoke__load_opts_t *opts,
                         spoke__instance_t **out, char *err, size_t errlen) {
  static const spoke__load_opts_t normal = {0};
  spoke__call_save_t save;
  spoke__instance_t *inst;
  char stem[256];
  const char *base;
  size_t blen;
  int fd, rc = 0;

  *out = NULL;
  if (opts == NULL)
    opts = &normal;
  base = base_name(opts->file != NULL ? opts->file : path);
  blen = strlen(base);
  if (blen > 3 && strcmp(base + blen - 3, ".so") == 0)
    blen -= 3;
  snprintf(stem, sizeof(stem), "%.*s", (int)blen, base);

  inst = calloc(1, sizeof(*inst));
  if (inst == NULL)
    return SPOKE_ENOMEM;
  inst->generation = generation;
  inst->src_path = strdup(path);
  inst->file = strdup(base);
  if (opts->quarantine != NULL)
    inst->quarantined = strdup(opts->quarantine);
  if (inst->src_path == NULL || inst->file == NULL ||
      (opts->quarantine != NULL && inst->quarantined == NULL)) {
    instance_free(inst);
    return SPOKE_ENOMEM;
  }

  fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    snprintf(err, errlen, "cannot open: %s", strerror(errno));
    instance_free(inst);
    return SPOKE_EIO;
  }
  /* Check the copy, not the watched file: the copy is what gets mapped,
   * and the watched file may change under us at any time. */
  rc = make_private_copy(fd, runtime_dir, stem, generation, &inst->copy_path,
                         inst->build, err, errlen);
  close(fd);
  if (rc != 0) {
    instance_free(inst);
    return rc;
  }
  fd = open(inst->copy_path, O_RDONLY | O_CLOEXEC);
  rc = fd < 0 ? SPOKE_EIO : check_elf(fd, err, errlen);
  if (fd >= 0)
    close(fd);
  if (rc != 0) {
    if (rc == SPOKE_EIO)
      snprintf(err, errlen, "cannot reopen private copy: %s", strerror(errno));
    unlink(inst->copy_path);
    instance_free(inst);
    return rc;
  }

  dlerror();
  inst->dl = dlopen(inst->copy_path, RTLD_NOW | RTLD_LOCAL);
  if (inst->dl == NULL) {
    const char *why = dlerror();
    snprintf(err, errlen, "cannot load: %s%s", why ? why : "unknown error",
             why && strstr(why, "failed to map segment")
                 ? " (is the runtime directory on a noexec mount? "
                   "choose another with --runtime-dir)"
                 : "");
    rc = SPOKE_EDLOPEN;
    goto fail;
  }
  rc = find_descriptor(inst->dl, &inst->desc, err, errlen);
  if (rc == 0)
    rc = spoke__descriptor_check(inst->desc, err, errlen);
  if (rc != 0)
    goto fail;
  /* Accepted, perhaps with a warning (built for a newer minor SDK, or a
   * descriptor larger than ours: descriptor.c says why that still
   * loads). Logged here, once per load and before init, so that an init
   * failing for want of a newer host function follows its explanation;
   * the check after init finds the same warning and logs nothing. */
  if (errlen > 0 && err[0] != '\0')
    spoke__warn("%s", err);

  inst->name = strdup(inst->desc->name);
  inst->version = strdup(inst->desc->version ? inst->desc->version : "");
  if (inst->name == NULL || inst->version == NULL) {
    rc = SPOKE_ENOMEM;
    goto fail;
  }
  inst->host = *host;
  *inst->desc->host = &inst->host;
  atomic_init(&inst->refs, 1);
  atomic_init(&inst->snaps, 0);
  atomic_init(&inst->holds, 0);
  atomic_init(&inst->requests, 0);
  atomic_init(&inst->retired_at, 0);

  if (inst->quarantined != NULL) {
    /* None of its code runs: no init, and no fini owed. The descriptor
     * was checked above; nothing ran since that could change it. */
    goto loaded;
  }
  if (prev != NULL && prev->quarantined == NULL &&
      strcmp(prev->name, inst->name) == 0 &&
      handover_of(inst->desc) != NULL) {
    spoke__call_enter(&save, inst, "handover", SPOKE__CALL_NO_ROUTE);
    rc = handover_of(inst->desc)(&inst->host, prev->state, prev->version,
                                 &inst->state);
    spoke__call_leave(&save);
    inst->handed_over = 1;
  } else if (inst->desc->init != NULL) {
    spoke__call_enter(&save, inst, "init", SPOKE__CALL_NO_ROUTE);
    rc = inst->desc->init(&inst->host, &inst->state);
    spoke__call_leave(&save);
  }
  if (rc != 0) {
    snprintf(err, errlen, "%s failed: %s (%s)",
             inst->handed_over ? "handover" : "init", spoke_err_name(rc),
             spoke_strerror(rc));
    rc = SPOKE_EINIT;
    goto fail;
  }
  inst->initialized = 1;
  /* Init may have filled its routes in from its config (a path prefix):
   * the table is read after init, so it is checked again. */
  rc = spoke__descriptor_check(inst->desc, err, errlen);
  if (rc != 0) {
    char why[256];
    snprintf(why, sizeof(why), "%s", err);
    snprintf(err, errlen, "after init: %s", why);
    call_fini(inst);
    inst->initialized = 0;
    goto fail;
  }
loaded:
  /* The per-loop tables a server keeps for it: route counters, and the
   * slots of its per-loop hooks (SDK 1.4) unless quarantined. */
  if (spoke__stats_nloops > 0 && inst->desc->nroutes > 0) {
    inst->counts = calloc((size_t)spoke__stats_nloops * inst->desc->nroutes,
                          sizeof(*inst->counts));
    if (inst->counts == NULL)
      goto no_memory;
    inst->counts_nroutes = inst->desc->nroutes;
  }
  if (spoke__stats_nloops > 0 && inst->quarantined == NULL &&
      (spoke__perloop_init_of(inst->desc) != NULL ||
       spoke__perloop_fini_of(inst->desc) != NULL)) {
    inst->perloop = calloc((size_t)spoke__stats_nloops,
                           sizeof(*inst->perloop));
    if (inst->perloop == NULL)
      goto no_memory;
  }
  live_add(inst);
  *out = inst;
  return 0;

no_memory:
  snprintf(err, errlen, "%s", spoke_strerror(SPOKE_ENOMEM));
  rc = SPOKE_ENOMEM;
  if (inst->initialized)
    call_fini(inst);
  inst->initialized = 0;
fail:
  if (inst->dl != NULL)
    dlclose(inst->dl);
  unlink(inst->copy_path);
  instance_free(inst);
  return rc;
}

void spoke__instance_ref(spoke__instance_t *inst) {
  atomic_fetch_add_explicit(&inst->refs, 1, memory_order_relaxed);
}

void spoke__instance_unref(spoke__instance_t *inst) {
  if (atomic_fetch_sub_explicit(&inst->refs, 1, memory_order_acq_rel) != 1)
    return;
  if (reaper != NULL)
    reaper(inst);
  else
    spoke__instance_finalize(inst);
}

void spoke__instance_discard(spoke__instance_t *inst) {
  if (atomic_fetch_sub_explicit(&inst->refs, 1, memory_order_acq_rel) != 1)
    return; /* its init took a hold of its own: the reaper will see to it */
  spoke__instance_finalize(inst);
}

void spoke__instance_hold(spoke__instance_t *inst) {
  atomic_fetch_add_explicit(&inst->holds, 1, memory_order_relaxed);
  spoke__instance_ref(inst);
}

int spoke__instance_drop_hold(spoke__instance_t *inst) {
  long n = atomic_load_explicit(&inst->holds, memory_order_relaxed);
  do {
    if (n <= 0)
      return SPOKE_EINVAL;
  } while (!atomic_compare_exchange_weak_explicit(
      &inst->holds, &n, n - 1, memory_order_relaxed, memory_order_relaxed));
  return 0;
}

void spoke__instance_finalize(spoke__instance_t *inst) {
  live_remove(inst);
  /* Before fini: the route table may point at memory fini frees (paths
   * init wrote from the config). */
  if (unloaded_hook != NULL)
    unloaded_hook(inst);
  if (inst->initialized)
    call_fini(inst);
  dlclose(inst->dl);
  unlink(inst->copy_path);
  spoke__info("unloaded plugin %s %s (generation %llu)", inst->name,
              inst->version, (unsigned long long)inst->generation);
  instance_free(inst);
}
