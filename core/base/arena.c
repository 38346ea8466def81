/* arena.c: the per-request bump allocator.
 *
 * Allocations come first from the storage the owner lends at init (a
 * request lends a block inside itself, so a small request allocates
 * nothing), then from chunks of at least 4 KiB; a large block gets a
 * chunk of its own. Nothing is freed individually: spoke__arena_free
 * releases every chunk when the request ends and rewinds to the lent
 * storage. One request's arena is used by one thread at a time (see
 * http.h), so there is no locking.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base/base.h"

#define ARENA_CHUNK 4096
#define ARENA_ALIGN 16

struct spoke__arena_chunk_s {
  spoke__arena_chunk_t *next;
  size_t size;
  _Alignas(ARENA_ALIGN) char data[];
};

void spoke__arena_init(spoke__arena_t *a) {
  spoke__arena_init_with(a, NULL, 0);
}

void spoke__arena_init_with(spoke__arena_t *a, void *storage, size_t size) {
  uintptr_t p = (uintptr_t)storage, aligned;
  a->chunks = NULL;
  a->lent = storage;
  a->lent_size = size;
  aligned = (p + ARENA_ALIGN - 1) & ~(uintptr_t)(ARENA_ALIGN - 1);
  if (storage == NULL || size < aligned - p) {
    a->cur = NULL;
    a->left = 0;
    return;
  }
  a->cur = (char *)aligned;
  a->left = (size - (aligned - p)) & ~(size_t)(ARENA_ALIGN - 1);
}

static spoke__arena_chunk_t *chunk_new(spoke__arena_t *a, size_t size) {
  spoke__arena_chunk_t *c;
  if (size > SIZE_MAX - sizeof(*c))
    return NULL;
  c = malloc(sizeof(*c) + size);
  if (c == NULL)
    return NULL;
  c->size = size;
  c->next = a->chunks;
  a->chunks = c;
  return c;
}

void *spoke__arena_alloc(spoke__arena_t *a, size_t size) {
  size_t rounded;

  if (size == 0)
    size = 1; /* a unique, valid pointer, as malloc(0) may give */
  rounded = (size + ARENA_ALIGN - 1) & ~(size_t)(ARENA_ALIGN - 1);
  spoke__arena_chunk_t *c;
  void *p;

  if (rounded < size)
    return NULL; /* overflow */
  if (rounded > ARENA_CHUNK / 2) {
    /* A large block gets a chunk of its own; bumping goes on where it
     * was (cur may point into any chunk of the list). */
    c = chunk_new(a, rounded);
    return c ? c->data : NULL;
  }
  if (rounded > a->left) {
    c = chunk_new(a, ARENA_CHUNK);
    if (c == NULL)
      return NULL;
    a->cur = c->data;
    a->left = ARENA_CHUNK;
  }
  p = a->cur;
  a->cur += rounded;
  a->left -= rounded;
  return p;
}

char *spoke__arena_strndup(spoke__arena_t *a, const char *s, size_t n) {
  char *p = spoke__arena_alloc(a, n + 1);
  if (p == NULL)
    return NULL;
  memcpy(p, s, n);
  p[n] = '\0';
  return p;
}

void spoke__arena_free(spoke__arena_t *a) {
  spoke__arena_chunk_t *c = a->chunks, *next;
  while (c != NULL) {
    next = c->next;
    free(c);
    c = next;
  }
  spoke__arena_init_with(a, a->lent, a->lent_size);
}
