/* cache.c: the open-file cache (nginx's open_file_cache, smaller).
 *
 * Without it every request walks its path below ROOT, opens the file and
 * stats it, and computes its ETag, Last-Modified and Content-Type. With
 * it, a path asked for again within cache_valid seconds is one hash
 * lookup and a dup(2). static_find is the way in for the rest of the
 * plugin: from the cache, else resolve.c's walk (and the result stored).
 *
 *   key      the request path below the prefix (REL in static.c), as the
 *            server normalized it: the walk from ROOT is a function of
 *            REL alone, so REL names exactly one path below ROOT.
 *   entry    the open fd, and the static_file_t found with it: the stat,
 *            the name, the ETag, Last-Modified and Content-Type strings.
 *   bound    at most ENTRIES entries; when full, a new one pushes out
 *            one not used lately: the oldest stored whose "used" mark
 *            is clear, marks being cleared as the search passes them,
 *            which then go back to the young end (CLOCK, second chance:
 *            LRU's choice nearly, without a list move per hit).
 *   validity an entry is trusted for VALID_S seconds from when it was
 *            stored; after that cache_get misses and static_find
 *            walks and opens again, as without the cache, then stores
 *            what it found (a changed file: new fd, new stat, new ETag;
 *            the same file: the same again) or drops the key (a file
 *            gone, or no longer a regular file, or unreadable). So a
 *            change on disk is served at most VALID_S seconds late, and
 *            so are the path rules of resolve.c: a symbolic link swapped
 *            in is refused at the next walk; until then the cached fd is
 *            still the regular file below ROOT it was when opened. Only
 *            successful opens are cached: a 404 costs a walk every time.
 *
 * Threads: every loop (hits) and every worker thread (misses) use the
 * cache, so the table and the list are behind a read-write lock. A hit
 * takes it to read: the hash lookup, copying the entry out, one
 * syscall, dup(2) (the process's fd table, never a disk), and setting
 * the entry's used mark (atomic: the one thing readers write). Readers
 * never wait for each other, so two loops serving hot files do not
 * queue on a mutex (they did: a futex call every other request). A
 * store or a drop takes it to write. No walk, open, stat or close is
 * done under it; allocation for a new entry happens before it is
 * taken, and what an update or eviction pushed out is closed and freed
 * after it is released. Entries are immutable once stored, but for the
 * mark.
 *
 * Ownership: the cache owns its entries' fds. A response never gets one
 * of them, only a dup made under the lock (the server closes what it is
 * given, when it likes). So an entry's fd may be closed (evicted,
 * replaced, fini) while transfers from it are in flight: each transfer
 * has its own descriptor for the same open file, and closing ours does
 * not touch theirs. That makes "never close a cached fd while a dup is
 * in flight" hold by construction, without reference counts. The dup is
 * made under the lock so the fd cannot be closed between lookup and dup.
 * Each state (each loaded version of the plugin) has its own cache;
 * static_cache_free, from fini, closes every fd it still holds.
 */
#define _GNU_SOURCE /* F_DUPFD_CLOEXEC, CLOCK_MONOTONIC_COARSE */
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"

typedef struct entry entry_t;
struct entry {
  char *key;
  uint64_t hash;
  entry_t *chain;            /* next in the bucket */
  entry_t *newer, *older;    /* the list, by when stored (or spared) */
  atomic_int used;           /* hit since stored or last spared */
  uint64_t stored_ns;        /* monotonic time of cache_put */
  static_file_t f;           /* f.fd is the cache's */
};

struct static_cache {
  pthread_rwlock_t lock;
  size_t max, count;
  uint64_t valid_ns;
  size_t mask;               /* buckets - 1, a power of two minus one */
  entry_t **buckets;
  entry_t lru;               /* sentinel: lru.older is the youngest */
};

static uint64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static uint64_t hash_key(const char *s) { /* FNV-1a */
  uint64_t h = 14695981039346656037u;
  for (; *s; s++)
    h = (h ^ (unsigned char)*s) * 1099511628211u;
  return h;
}

static void free_entry(entry_t *e) {
  if (e == NULL)
    return;
  close(e->f.fd);
  free(e->key);
  free(e);
}

/* ---- under the lock ---- */

static entry_t **slot_of(static_cache_t *c, const char *key, uint64_t h) {
  entry_t **p = &c->buckets[h & c->mask];
  while (*p != NULL && ((*p)->hash != h || strcmp((*p)->key, key) != 0))
    p = &(*p)->chain;
  return p;
}

static void list_unlink(entry_t *e) {
  e->newer->older = e->older;
  e->older->newer = e->newer;
}

static void list_push(static_cache_t *c, entry_t *e) { /* most recent */
  e->newer = &c->lru;
  e->older = c->lru.older;
  c->lru.older->newer = e;
  c->lru.older = e;
}

/* The entry to push out: from the oldest on, the first whose mark is
 * clear; a marked one is spared once (mark cleared, moved to the young
 * end). Ends within one pass plus one: the pass clears every mark. */
static entry_t *victim(static_cache_t *c) {
  entry_t *e;
  while (atomic_exchange_explicit(&(e = c->lru.newer)->used, 0,
                                  memory_order_relaxed)) {
    list_unlink(e);
    list_push(c, e);
  }
  return e;
}

/* Takes E out of the table and the list. */
static void remove_entry(static_cache_t *c, entry_t *e) {
  entry_t **p = slot_of(c, e->key, e->hash);
  *p = e->chain;
  list_unlink(e);
  c->count--;
}

/* ---- life ---- */

static_cache_t *static_cache_new(size_t entries, unsigned valid_s) {
  static_cache_t *c = calloc(1, sizeof(*c));
  size_t n = 16;

  if (c == NULL)
    return NULL;
  while (n < entries)
    n <<= 1;
  c->buckets = calloc(n, sizeof(*c->buckets));
  if (c->buckets == NULL || pthread_rwlock_init(&c->lock, NULL) != 0) {
    free(c->buckets);
    free(c);
    return NULL;
  }
  c->mask = n - 1;
  c->max = entries;
  c->valid_ns = (uint64_t)valid_s * 1000000000u;
  c->lru.newer = c->lru.older = &c->lru;
  return c;
}

void static_cache_free(static_cache_t *c) {
  entry_t *e, *next;
  if (c == NULL)
    return;
  for (e = c->lru.older; e != &c->lru; e = next) {
    next = e->older;
    free_entry(e);
  }
  pthread_rwlock_destroy(&c->lock);
  free(c->buckets);
  free(c);
}

/* When KEY was stored less than VALID_S seconds ago: 1, with *F a copy
 * of what was found and F->fd a dup(2) of the cached fd, the caller's to
 * close. Else 0. */
static int cache_get(static_cache_t *c, const char *key, static_file_t *f) {
  uint64_t h = hash_key(key), now = now_ns();
  entry_t *e;
  int hit = 0;

  pthread_rwlock_rdlock(&c->lock);
  e = *slot_of(c, key, h);
  if (e != NULL && now - e->stored_ns < c->valid_ns) {
    int fd = fcntl(e->f.fd, F_DUPFD_CLOEXEC, 0);
    if (fd >= 0) {
      *f = e->f;
      f->fd = fd;
      if (!atomic_load_explicit(&e->used, memory_order_relaxed))
        atomic_store_explicit(&e->used, 1, memory_order_relaxed);
      hit = 1;
    }
  }
  pthread_rwlock_unlock(&c->lock);
  return hit;
}

/* Remembers F (just opened) for KEY, replacing what KEY had: the cache
 * keeps a dup of F->fd; F->fd stays the caller's. */
static void cache_put(static_cache_t *c, const char *key,
                      const static_file_t *f) {
  entry_t *e = malloc(sizeof(*e)), **p, *out = NULL;

  if (e == NULL)
    return;
  e->key = strdup(key);
  e->f = *f;
  e->f.fd = fcntl(f->fd, F_DUPFD_CLOEXEC, 0);
  if (e->key == NULL || e->f.fd < 0) {
    if (e->f.fd >= 0)
      close(e->f.fd);
    free(e->key);
    free(e);
    return; /* not cached; the request goes on with its own fd */
  }
  e->hash = hash_key(key);
  e->stored_ns = now_ns();
  atomic_init(&e->used, 0);

  pthread_rwlock_wrlock(&c->lock);
  if ((out = *slot_of(c, key, e->hash)) != NULL)
    remove_entry(c, out); /* the key's older entry */
  else if (c->count == c->max)
    remove_entry(c, out = victim(c)); /* one not used lately */
  p = &c->buckets[e->hash & c->mask]; /* KEY is absent now: at the head */
  e->chain = *p;
  *p = e;
  list_push(c, e);
  c->count++;
  pthread_rwlock_unlock(&c->lock);
  free_entry(out);
}

/* Forgets KEY (its file is gone, or is no longer a regular file). */
static void cache_drop(static_cache_t *c, const char *key) {
  uint64_t h = hash_key(key);
  entry_t *e;

  /* Most drops are of keys never cached (every 404 asks): look first
   * under the read lock, so they do not stop the loops' hits. */
  pthread_rwlock_rdlock(&c->lock);
  e = *slot_of(c, key, h);
  pthread_rwlock_unlock(&c->lock);
  if (e == NULL)
    return;
  pthread_rwlock_wrlock(&c->lock);
  if ((e = *slot_of(c, key, h)) != NULL)
    remove_entry(c, e);
  pthread_rwlock_unlock(&c->lock);
  free_entry(e);
}

/* ---- the front door ---- */

int static_find_cached(const static_state_t *st, const char *rel,
                       static_file_t *f) {
  return st->cache != NULL && cache_get(st->cache, rel, f);
}

int static_find(const static_state_t *st, const char *rel, static_file_t *f) {
  if (static_find_cached(st, rel, f))
    return 200;
  return static_find_uncached(st, rel, f);
}

int static_find_uncached(const static_state_t *st, const char *rel,
                         static_file_t *f) {
  int status = static_open_beneath(st, rel, f);
  if (status == 200)
    static_file_describe(f);
  if (st->cache != NULL) {
    if (status == 200)
      cache_put(st->cache, rel, f);
    else
      cache_drop(st->cache, rel);
  }
  return status;
}
