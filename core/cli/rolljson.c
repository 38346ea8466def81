/* rolljson.c: reads the one entry `spoke rollout` needs from an admin
 * PUT or DELETE answer.
 *
 * The answer is a JSON object such as
 *   {"generation": 12, "build": "a1b2...", "changed": [
 *     {"file": "hello.so", "change": "refused", "plugin": "hello",
 *      "version": "2.0.0", "error": "SDK ABI version mismatch: ..."}]}
 * and what matters is the entry of the top-level "changed" array whose
 * "file" is ours: its "change", "error" and "version". This is a small
 * recursive-descent reader of the whole text: every value is checked as
 * JSON (strings with all their escapes, \uXXXX and surrogate pairs to
 * UTF-8; numbers; literals; nesting up to 32 deep) and skipped, except
 * the string members of the entries of "changed", which are decoded.
 * A text that is not one JSON value with nothing after it is refused,
 * so a truncated answer never passes for "no entry". Strings too long
 * for their field are cut (the cut never splits a UTF-8 sequence mid-
 * way; what matters is that "refused" stays "refused"). Pure; nothing
 * allocated.
 */
#include <string.h>

#include "cli/rollout.h"

#define DEPTH_MAX 32

typedef struct reader_s {
  const char *p, *end;
  int depth;
} reader_t;

static void blanks(reader_t *r) {
  while (r->p < r->end && (*r->p == ' ' || *r->p == '\t' || *r->p == '\n' ||
                           *r->p == '\r'))
    r->p++;
}

static int eat(reader_t *r, char c) {
  blanks(r);
  if (r->p < r->end && *r->p == c) {
    r->p++;
    return 1;
  }
  return 0;
}

static int hex4(reader_t *r, unsigned *u) {
  *u = 0;
  if (r->end - r->p < 4)
    return SPOKE_EINVAL;
  for (int i = 0; i < 4; i++) {
    int h = spoke__hexval((unsigned char)*r->p++);
    if (h < 0)
      return SPOKE_EINVAL;
    *u = *u * 16 + (unsigned)h;
  }
  return 0;
}

/* Appends the UTF-8 of U to OUT[*n] if it fits whole in CAP - 1: 1 if
 * it did. */
static int put_utf8(char *out, size_t cap, size_t *n, unsigned u) {
  char b[4];
  size_t k;
  if (u < 0x80) {
    b[0] = (char)u, k = 1;
  } else if (u < 0x800) {
    b[0] = (char)(0xc0 | u >> 6), b[1] = (char)(0x80 | (u & 0x3f)), k = 2;
  } else if (u < 0x10000) {
    b[0] = (char)(0xe0 | u >> 12), b[1] = (char)(0x80 | ((u >> 6) & 0x3f));
    b[2] = (char)(0x80 | (u & 0x3f)), k = 3;
  } else {
    b[0] = (char)(0xf0 | u >> 18), b[1] = (char)(0x80 | ((u >> 12) & 0x3f));
    b[2] = (char)(0x80 | ((u >> 6) & 0x3f)), b[3] = (char)(0x80 | (u & 0x3f));
    k = 4;
  }
  if (out == NULL || *n + k >= cap)
    return 0;
  memcpy(out + *n, b, k);
  *n += k;
  return 1;
}

/* OUT[0..n) cut to end on a whole UTF-8 sequence: the new length. */
static size_t whole_utf8(const char *out, size_t n) {
  size_t lead = n, want;
  unsigned char c;
  while (lead > 0 && ((unsigned char)out[lead - 1] & 0xc0) == 0x80)
    lead--;
  if (lead == 0)
    return n;
  c = (unsigned char)out[lead - 1];
  want = c >= 0xf0 ? 4 : c >= 0xe0 ? 3 : c >= 0xc0 ? 2 : 1;
  return n - (lead - 1) >= want ? n : lead - 1;
}

/* A string at the reader (after blanks), decoded into OUT (CAP bytes,
 * NUL-terminated, cut to fit) unless OUT is NULL. */
static int string(reader_t *r, char *out, size_t cap) {
  size_t n = 0, cut = 0;
  if (!eat(r, '"'))
    return SPOKE_EINVAL;
  while (r->p < r->end && *r->p != '"') {
    unsigned char c = (unsigned char)*r->p++;
    unsigned u = c;
    if (c < 0x20)
      return SPOKE_EINVAL;
    if (c == '\\') {
      const char *esc = "\"\"\\\\//b\bf\fn\nr\rt\t", *hit;
      if (r->p >= r->end)
        return SPOKE_EINVAL;
      c = (unsigned char)*r->p++;
      if (c == 'u') {
        unsigned lo;
        if (hex4(r, &u) != 0)
          return SPOKE_EINVAL;
        if (u >= 0xd800 && u < 0xdc00 && r->end - r->p >= 6 &&
            r->p[0] == '\\' && r->p[1] == 'u') {
          reader_t peek = {r->p + 2, r->end, 0};
          if (hex4(&peek, &lo) == 0 && lo >= 0xdc00 && lo < 0xe000) {
            u = 0x10000 + ((u - 0xd800) << 10) + (lo - 0xdc00);
            r->p = peek.p;
          }
        }
        if (u >= 0xd800 && u < 0xe000)
          u = 0xfffd; /* a lone surrogate */
        if (!put_utf8(cut ? NULL : out, cap, &n, u))
          cut = 1;
        continue;
      }
      for (hit = esc; *hit && *hit != (char)c; hit += 2)
        ;
      if (*hit == '\0')
        return SPOKE_EINVAL;
      c = (unsigned char)hit[1];
    }
    /* Raw bytes are copied as they come; a cut UTF-8 sequence at the
     * end is dropped below. */
    if (out != NULL && !cut && n + 1 < cap)
      out[n++] = (char)c;
    else
      cut = 1;
  }
  if (r->p >= r->end)
    return SPOKE_EINVAL;
  r->p++;
  if (out != NULL && cap > 0)
    out[cut ? whole_utf8(out, n) : n] = '\0';
  return 0;
}

static int value(reader_t *r);

static int number(reader_t *r) {
  const char *s = r->p;
  if (r->p < r->end && *r->p == '-')
    r->p++;
  while (r->p < r->end && ((*r->p >= '0' && *r->p <= '9') || *r->p == '.' ||
                           *r->p == 'e' || *r->p == 'E' || *r->p == '+' ||
                           *r->p == '-'))
    r->p++;
  return r->p > s && (r->p[-1] >= '0' && r->p[-1] <= '9') ? 0 : SPOKE_EINVAL;
}

static int literal(reader_t *r, const char *word) {
  size_t n = strlen(word);
  if ((size_t)(r->end - r->p) < n || memcmp(r->p, word, n) != 0)
    return SPOKE_EINVAL;
  r->p += n;
  return 0;
}

/* The members of an object, after its '{'; FN (if not NULL) sees each
 * key, and reads the value itself. */
typedef int (*member_fn)(reader_t *r, const char *key, void *ctx);

static int object(reader_t *r, member_fn fn, void *ctx) {
  char key[32];
  int rc;
  if (eat(r, '}'))
    return 0;
  do {
    if ((rc = string(r, key, sizeof(key))) != 0 || !eat(r, ':'))
      return SPOKE_EINVAL;
    rc = fn != NULL ? fn(r, key, ctx) : value(r);
    if (rc != 0)
      return rc;
  } while (eat(r, ','));
  return eat(r, '}') ? 0 : SPOKE_EINVAL;
}

static int array(reader_t *r, int (*fn)(reader_t *r, void *ctx), void *ctx) {
  int rc;
  if (eat(r, ']'))
    return 0;
  do {
    if ((rc = fn != NULL ? fn(r, ctx) : value(r)) != 0)
      return rc;
  } while (eat(r, ','));
  return eat(r, ']') ? 0 : SPOKE_EINVAL;
}

/* Any value, checked and skipped. */
static int value(reader_t *r) {
  int rc;
  blanks(r);
  if (r->p >= r->end)
    return SPOKE_EINVAL;
  switch (*r->p) {
    case '"':
      return string(r, NULL, 0);
    case '{':
    case '[':
      if (++r->depth > DEPTH_MAX)
        return SPOKE_EINVAL;
      r->p++;
      rc = r->p[-1] == '{' ? object(r, NULL, NULL) : array(r, NULL, NULL);
      r->depth--;
      return rc;
    case 't':
      return literal(r, "true");
    case 'f':
      return literal(r, "false");
    case 'n':
      return literal(r, "null");
    default:
      return number(r);
  }
}

/* ---- the "changed" array ---- */

typedef struct find_s {
  const char *file;
  spoke__roll_change_t *out;
  spoke__roll_change_t cur;
  int is_ours, found;
} find_t;

static int entry_member(reader_t *r, const char *key, void *ctx) {
  find_t *f = ctx;
  char file[512];
  blanks(r);
  if (r->p >= r->end || *r->p != '"')
    return value(r);
  if (strcmp(key, "file") == 0) {
    int rc = string(r, file, sizeof(file));
    f->is_ours = rc == 0 && strcmp(file, f->file) == 0;
    return rc;
  }
  if (strcmp(key, "change") == 0)
    return string(r, f->cur.change, sizeof(f->cur.change));
  if (strcmp(key, "error") == 0)
    return string(r, f->cur.error, sizeof(f->cur.error));
  if (strcmp(key, "version") == 0)
    return string(r, f->cur.version, sizeof(f->cur.version));
  return string(r, NULL, 0);
}

static int entry(reader_t *r, void *ctx) {
  find_t *f = ctx;
  int rc;
  if (!eat(r, '{'))
    return value(r);
  memset(&f->cur, 0, sizeof(f->cur));
  f->is_ours = 0;
  r->depth++;
  rc = object(r, entry_member, f);
  r->depth--;
  if (rc == 0 && f->is_ours && !f->found) {
    *f->out = f->cur;
    f->found = 1;
  }
  return rc;
}

static int top_member(reader_t *r, const char *key, void *ctx) {
  if (strcmp(key, "changed") == 0 && eat(r, '[')) {
    int rc;
    r->depth++;
    rc = array(r, entry, ctx);
    r->depth--;
    return rc;
  }
  return value(r);
}

int spoke__roll_json_change(const char *json, size_t len, const char *file,
                            spoke__roll_change_t *out) {
  reader_t r = {json, json + len, 1};
  find_t f;
  int rc;

  memset(out, 0, sizeof(*out));
  memset(&f, 0, sizeof(f));
  f.file = file;
  f.out = out;
  if (!eat(&r, '{'))
    return SPOKE_EINVAL;
  if ((rc = object(&r, top_member, &f)) != 0)
    return rc;
  blanks(&r);
  if (r.p != r.end)
    return SPOKE_EINVAL;
  return f.found;
}
