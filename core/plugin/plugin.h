/* plugin.h: loaded plugin versions (instances) and route-table snapshots.
 *
 * An instance is one loaded version of one .so: its dl handle, descriptor,
 * init state, generation and private copy. Its refcount counts the
 * snapshots that list it (also counted apart, in snaps) plus the requests
 * dispatched into it, so refs - snaps is its in-flight count. When the
 * count reaches zero the instance is finalized (fini, dlclose, private
 * copy removed) by the reaper: on the control thread when one is
 * installed, else by whoever dropped the last reference. Every instance
 * not yet finalized is on a list the control thread walks for status.
 *
 * A snapshot is an immutable route table over instances with a
 * generation number. Each I/O loop holds one reference to its current
 * snapshot; the snapshot holds one reference to each of its instances.
 * Snapshots are built on the control thread and never change afterwards,
 * so loops read them without locks.
 */
#ifndef SPOKE_PLUGIN_H
#define SPOKE_PLUGIN_H

#include <stdatomic.h>
#include <stdint.h>

#include "base/base.h"
#include "plugin/router.h"
#include "plugin/counts.h"

/* One loop's view of an instance whose plugin has per-loop hooks (SDK
 * 1.4 loop_init/loop_fini; perloop.c). Each slot is written by its own
 * loop's thread only; it starts zeroed (IDLE) before the instance is
 * published. One reader from elsewhere: spoke_loop_state from a sync
 * handler on a pool thread reads STATE; that is safe because the
 * handler's request is pinned here (REQUESTS > 0), and the loop clears
 * STATE only in loop_fini, which waits for REQUESTS to reach 0. */
typedef enum {
  SPOKE__PERLOOP_IDLE = 0,    /* loop_init not run on this loop yet */
  SPOKE__PERLOOP_RUNNING,     /* loop_init succeeded: loop_fini is owed */
  SPOKE__PERLOOP_FAILED,      /* loop_init failed: routes answer 503 here */
  SPOKE__PERLOOP_DONE         /* loop_fini ran (or is not owed): retired */
} spoke__perloop_phase_t;

typedef struct spoke__perloop_s {
  void *state;                /* what loop_init stored */
  uint32_t requests;          /* requests pinned in the instance here */
  uint8_t phase;              /* spoke__perloop_phase_t */
  uint8_t retired;            /* this loop routes to it no more */
} spoke__perloop_t;

typedef struct spoke__instance_s {
  /* The host table handed to this instance. First member: logv() finds
   * the instance from the table pointer the plugin passes back. */
  spoke_host_t host;
  atomic_long refs;
  atomic_long snaps;          /* snapshots listing it */
  atomic_long holds;          /* the plugin's own spoke_plugin_hold()s:
                                 any thread changes it, each a reference */
  atomic_long requests;       /* requests pinned in it (dispatch to free):
                                 loops change it, the control thread reads */
  _Atomic uint64_t retired_at; /* uv_hrtime() when the last snapshot
                                  listing it let go; 0 while listed */
  int warned_retiring;        /* control thread: "still retiring" said */
  const spoke_plugin_t *desc; /* inside the mapped .so */
  void *dl;
  void *state;                /* what init stored */
  char *name;                 /* copies: valid after dlclose */
  char *version;
  char *src_path;             /* the file loaded (the watched file, or an
                                 archived build: see spoke__load_opts_t) */
  char *file;                 /* the base name it reports (status, logs,
                                 the private copy's stem): src_path's, or
                                 the one the loader was told; a copy */
  char *copy_path;            /* the private copy that is mapped */
  char build[17];             /* build id: FNV-1a 64 of the file's bytes
                                 as copied, 16 lowercase hex digits (the
                                 same as spoke__build_id_of_file gives) */
  char *quarantined;          /* NULL, or why this instance is loaded but
                                 never run: no init, handover or fini, and
                                 its routes answer 503 (http/dispatch.c)
                                 without calling its code; a copy */
  uint64_t generation;
  int initialized;            /* init ran and succeeded: fini is owed */
  int handed_over;            /* state came from the previous version */
  struct spoke__instance_s *live_next, *live_prev; /* control thread */
  /* Requests answered per route and status class: [loop][route], each
   * row written by its loop only (counts.h). NULL outside a server. */
  spoke__route_counts_t *counts;
  size_t counts_nroutes;
  /* Per-loop hook slots, [loop id], when the plugin declares loop_init
   * or loop_fini, is not quarantined and runs in a server; else NULL.
   * Each slot is its loop's alone (spoke__perloop_t). */
  spoke__perloop_t *perloop;
} spoke__instance_t;

/* descriptor.c: checks a descriptor before anything in it is trusted.
 * Pure: no I/O, so unit tests hand it crafted descriptors. Returns 0 to
 * accept, with ERR then holding the descriptor's warning (below) or "";
 * else a SPOKE_E* code with the reason in ERR. */
int spoke__descriptor_check(const spoke_plugin_t *d, char *err,
                            size_t errlen);

/* The one warning an accepted descriptor may earn: built for a newer
 * minor SDK than this host's (host functions may be missing), or larger
 * than this host's spoke_plugin_t (members the host ignores). Writes it
 * into BUF and returns 1, or writes "" and returns 0. Only for a
 * descriptor spoke__descriptor_check accepted. */
int spoke__descriptor_warning(const spoke_plugin_t *d, char *buf,
                              size_t buflen);



/* instance.c */

/* How to load (spoke__instance_load); NULL, or a zeroed struct, is a
 * normal load. */
typedef struct spoke__load_opts_s {
  /* Non-NULL: load the file (private copy, dlopen, descriptor checked)
   * but run none of its code: no init, no handover, so no fini is owed.
   * The instance is marked quarantined with a copy of this reason and
   * its routes are answered 503 by the core. */
  const char *quarantine;
  /* Non-NULL: the base name the instance reports as its file (and the
   * stem of its private copy) instead of PATH's: a rollback build loaded
   * from an archive (DIR/builds/0123abcd.so) shows as the file it
   * stands for (bad.so). Only the part after the last '/' is used. */
  const char *file;
} spoke__load_opts_t;

/* Copies PATH into RUNTIME_DIR as STEM.GEN.so (STEM: the reported file
 * name without ".so"), hashing its bytes into inst->build, dlopens the
 * copy, checks the descriptor and runs init, or handover when PREV (the
 * version being replaced, or NULL) has the same name, was not
 * quarantined, and the new descriptor offers one; a quarantined load
 * (OPTS->quarantine) runs neither. On failure returns a SPOKE_E* code,
 * writes the reason into ERR and leaves nothing behind. HOST is the
 * function table the plugin is handed (http/host.c's, or a test's): the
 * instance keeps a copy of its own. OPTS may be NULL. Control thread. */
int spoke__instance_load(const char *path, const char *runtime_dir,
                         uint64_t generation, spoke__instance_t *prev,
                         const spoke_host_t *host,
                         const spoke__load_opts_t *opts,
                         spoke__instance_t **out, char *err, size_t errlen);

/* The build id of the file at PATH into OUT: FNV-1a 64 of its bytes as
 * 16 lowercase hex digits and a NUL, the same as inst->build of an
 * instance loaded from the same bytes. 0, or SPOKE_EIO (OUT is then "").
 * Any thread. */
int spoke__build_id_of_file(const char *path, char out[17]);
/* The build id of bytes whose FNV-1a 64 (spoke__fnv1a from
 * SPOKE__FNV64_OFFSET) is HASH, into OUT: for ids of bytes already in
 * hand (an upload as it streams in, a file downloaded by rollout). */
void spoke__build_id_hex(uint64_t hash, char out[17]);

/* In-flight requests pinned in INST (a momentary reading). */
long spoke__instance_inflight(spoke__instance_t *inst);

/* A request pins INST (a reference, counted as a request), and later
 * lets go of the count; the reference itself goes back through
 * spoke__instance_unref, at once or deferred (http/mailbox.c). */
void spoke__instance_pin(spoke__instance_t *inst);
void spoke__instance_unpinned(spoke__instance_t *inst);

/* The instances not yet finalized, oldest first (control thread). */
spoke__instance_t *spoke__instance_live_first(void);

void spoke__instance_ref(spoke__instance_t *inst);
void spoke__instance_unref(spoke__instance_t *inst);
/* Drops the last reference of an instance that was never published (a
 * refused newcomer): no loop saw it and none of its code is on a stack,
 * so it is finalized now, on the calling (control) thread, rather than
 * through the reaper. Its private copy is gone when this returns, so a
 * retry at the same generation can make its own. */
void spoke__instance_discard(spoke__instance_t *inst);

/* The plugin's own hold on its version (spoke_plugin_hold, any thread):
 * a reference, counted apart so status can say what keeps a version.
 * drop_hold un-counts one and returns 0, or SPOKE_EINVAL (and changes
 * nothing) for a release without a hold; the caller then gives the
 * reference back with spoke__instance_unref, at once or deferred to a
 * moment no code of the plugin is on its stack (http/mailbox.c). */
void spoke__instance_hold(spoke__instance_t *inst);
int spoke__instance_drop_hold(spoke__instance_t *inst);

/* Runs fini, dlcloses, removes the private copy, frees. */
void spoke__instance_finalize(spoke__instance_t *inst);

/* Where instances whose count reached zero go. NULL (the default)
 * finalizes on the spot. Set once before any loop starts. */
typedef void (*spoke__reaper_cb)(spoke__instance_t *inst);
void spoke__instance_set_reaper(spoke__reaper_cb cb);

/* Called by finalize once the instance is off the live list, before its
 * fini and dlclose (its route table is still readable: its counters can
 * be kept) and before its "unloaded" log line (so status can be
 * rewritten first). */
void spoke__instance_set_unloaded_hook(
    void (*hook)(const spoke__instance_t *inst));

/* perloop.c: the SDK 1.4 per-loop hooks of one instance, run on the
 * loop thread LOOP_ID with UV that loop's libuv loop. Both are no-ops
 * for an instance without slots. */

/* The descriptor's loop_init / loop_fini, if its size covers them. */
int (*spoke__perloop_init_of(const spoke_plugin_t *d))(
    const spoke_host_t *, struct uv_loop_s *, void *, void **);
void (*spoke__perloop_fini_of(const spoke_plugin_t *d))(struct uv_loop_s *,
                                                        void *, void *);
/* Runs loop_init once on this loop (IDLE -> RUNNING, or FAILED with one
 * log line); later calls do nothing. */
void spoke__perloop_start(spoke__instance_t *inst, int loop_id,
                          struct uv_loop_s *uv);
/* Runs loop_fini if owed (RUNNING -> DONE); marks the slot DONE. */
void spoke__perloop_stop(spoke__instance_t *inst, int loop_id,
                         struct uv_loop_s *uv);

/* snapshot.c */

typedef struct spoke__snapshot_s {
  atomic_long refs;
  uint64_t generation;
  spoke__router_t router;
  size_t ninst;
  spoke__instance_t **inst; /* each holds a reference */
} spoke__snapshot_t;

/* Told of each instance left out of a snapshot, with why. */
typedef void (*spoke__refused_cb)(void *ctx, spoke__instance_t *inst,
                                  const char *why);

/* Builds a snapshot over INST[0..n) in that order. An instance whose
 * routes conflict with an earlier one's is left out whole and REFUSED is
 * called for it. The snapshot starts with one reference (the caller's).
 * NULL when out of memory. */
spoke__snapshot_t *spoke__snapshot_build(uint64_t generation,
                                         spoke__instance_t **inst, size_t n,
                                         spoke__refused_cb refused,
                                         void *ctx);

/* 1 if S lists INST. */
int spoke__snapshot_has(const spoke__snapshot_t *s,
                        const spoke__instance_t *inst);
void spoke__snapshot_ref(spoke__snapshot_t *s);
void spoke__snapshot_unref(spoke__snapshot_t *s);

/* ---- admit.c: whether a plugin file may serve ----------------------
 * The one admission rule, shared by the server's reload path and
 * `spoke check` so both give the same verdict with the same reason. */

/* 1 if NAME (a base name) is a plugin file name: "*.so", longer than
 * ".so", not starting with '.'. Other files are ignored, not refused. */
int spoke__admit_is_plugin_name(const char *name);

typedef struct spoke__admit_s {
  const char *path;          /* the plugin file */
  const char *runtime_dir;   /* where its private copy goes */
  uint64_t generation;       /* of the new instance and the snapshot */
  spoke__instance_t *prev;   /* the version it replaces (hand-over), or
                                NULL; not among SERVING */
  const spoke_host_t *host;  /* the table handed to the plugin */
  spoke__instance_t *const *serving; /* already serving, in order */
  size_t nserving;
  /* Told of a refusal, with the reason, before a loaded newcomer is let
   * go (so the caller's report comes before its fini and "unloaded"
   * line, as it always has). May be NULL. */
  void (*refused)(void *ctx, const char *why);
  void *ctx;
  /* Optional (NULL: a normal load), passed to the loader as its
   * spoke__load_opts_t: QUARANTINE loads the file without running any of
   * its code and marks the instance (its routes answer 503); FILE is the
   * base name the instance reports instead of PATH's. A quarantined
   * newcomer is admitted by the same name and route rule. */
  const char *quarantine;
  const char *file;
} spoke__admit_t;

/* Loads IN->path (spoke__instance_load) and checks that it fits beside
 * IN->serving: a distinct name, and routes that go into a snapshot of
 * IN->serving followed by the newcomer, last. On success returns 0,
 * *INST_OUT holds one reference (the caller's) and, when SNAP_OUT is not
 * NULL, *SNAP_OUT is that candidate snapshot (one reference, not
 * published; it holds its own reference on every instance in it). On
 * refusal returns the loader's SPOKE_E* code, SPOKE_ECONFLICT (name or
 * route) or SPOKE_ENOMEM, writes the reason the server logs into ERR,
 * calls IN->refused with it, sets the outputs to NULL and leaves nothing
 * behind: a loaded newcomer is unreffed (fini, private copy removed, now
 * or by the reaper). Logs nothing about the newcomer. Control thread. */
int spoke__admit(const spoke__admit_t *in, spoke__instance_t **inst_out,
                 spoke__snapshot_t **snap_out, char *err, size_t errlen);

/* ---- call.c: which plugin code a thread is running ---- */

#define SPOKE__CALL_NO_ROUTE UINT32_MAX

/* One per thread (thread-local). Written by its own thread only; the
 * watchdog reads seq and depth and writes stalled_at. */
typedef struct spoke__call_s {
  _Atomic(const spoke__instance_t *) inst; /* NULL: no plugin code */
  _Atomic(const char *) what;   /* "handler", "init", "abort callback" ... */
  _Atomic uint32_t route;       /* index in inst's routes, or NO_ROUTE */
  atomic_uint seq;              /* bumped by every enter */
  atomic_int depth;             /* > 0 while inside plugin code */
  _Atomic uint64_t stalled_at;  /* watchdog: uv_hrtime() it first saw this
                                   call hold its loop; 0 when not */
} spoke__call_t;

typedef struct spoke__call_save_s {
  const spoke__instance_t *inst;
  const char *what;
  uint32_t route;
} spoke__call_save_t;

/* Brackets a call into INST's code on this thread (any thread). */
#ifndef SPOKE__NO_CALL_MARKER
void spoke__call_enter(spoke__call_save_t *save,
                       const spoke__instance_t *inst, const char *what,
                       uint32_t route);
void spoke__call_leave(const spoke__call_save_t *save);
#else /* -DSPOKE_CALL_MARKER=OFF: no marker, for measuring its cost only */
static inline void spoke__call_enter(spoke__call_save_t *save,
                                     const spoke__instance_t *inst,
                                     const char *what, uint32_t route) {
  (void)save, (void)inst, (void)what, (void)route;
}
static inline void spoke__call_leave(const spoke__call_save_t *save) {
  (void)save;
}
#endif
/* This thread's record (valid while the thread lives). */
spoke__call_t *spoke__call_mine(void);
/* Run by spoke__call_leave, on the stalled thread, when a call the
 * watchdog marked as stalled returns; STALLED_AT as the watchdog set it.
 * Set once at start-up (a higher floor logs and counts). */
typedef void (*spoke__stall_hook_cb)(const spoke__call_t *call,
                                     uint64_t stalled_at);
void spoke__call_set_stall_hook(spoke__stall_hook_cb cb);

#endif /* SPOKE_PLUGIN_H */
