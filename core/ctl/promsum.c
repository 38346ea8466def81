/* promsum.c: sums Prometheus text documents (format 0.0.4) into one.
 *
 * Under a master (--processes N), the worker that takes an admin
 * /metrics request answers with every worker's figures added up: each
 * worker writes its own document (metrics.c), this turns them into one
 * (admin.c). The declaration (ctl.h):
 *
 *   int spoke__prom_sum(const char *const *docs, const size_t *lens,
 *                       size_t n, spoke__buf_t *out);
 *
 * Sums the N documents DOCS (LENS bytes each, NUL not needed) and
 * appends the result to OUT: the metric families in the order they first
 * appear, each family's "# HELP" and "# TYPE" lines once (the first
 * seen), then its samples. Samples of the same series (the text before
 * the last space: name and label set, byte for byte) are summed into one
 * line, in order of first appearance. Returns 0, SPOKE_ENOMEM, or
 * SPOKE_EINVAL for a line that is not blank, a comment, or "SERIES
 * VALUE"; on an error OUT is as it was.
 *
 * The invariants:
 * - A sample belongs to the family its document last named in a HELP or
 *   TYPE line (histogram NAME_bucket, NAME_sum, NAME_count to NAME);
 *   before any, to the family of its own metric name. Families merge
 *   across documents by name; a series stays in the family it was first
 *   seen in.
 * - Nothing is copied: families and series point into DOCS, which
 *   outlive the call; every allocation is freed before it returns.
 * - A value is a double; the sum prints as an integer when it is one
 *   below 2^53, else in the fewest digits that read back the same (at
 *   most "%.17g"); infinities and NaN as Prometheus spells them.
 * - Lookups are by hash (FNV-1a, open addressing, at most half full).
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctl/ctl.h"

#define NONE SIZE_MAX
#define TWO_53 9007199254740992.0

typedef struct span_s {
  const char *s;
  size_t len;
} span_t;

/* Both kinds of entry start with their key (an index finds either). */
typedef struct family_s {
  span_t name;
  span_t help, type;  /* the whole first line of each, or len 0 */
  size_t first, last; /* its series, listed through series_t.next */
} family_t;

typedef struct series_s {
  span_t key; /* name and labels */
  double v;
  size_t next; /* the family's next series, or NONE */
} series_t;

/* Open addressing over an entry array: a slot holds entry + 1, 0 free. */
typedef struct index_s {
  size_t *slots;
  size_t cap, n; /* cap: 0 or a power of two */
} index_t;

typedef struct sum_s {
  family_t *fams;
  size_t nfams, fams_cap;
  series_t *series;
  size_t nseries, series_cap;
  index_t fam_ix, ser_ix;
} sum_t;

/* ---- the index ---- */

static uint64_t hash(span_t k) {
  return spoke__fnv1a(SPOKE__FNV64_OFFSET, k.s, k.len);
}

static span_t key_at(const void *base, size_t stride, size_t i) {
  return *(const span_t *)((const char *)base + i * stride);
}

/* The slot holding K among the entries at BASE, or the free one where it
 * would go. The index has a free slot (ix_reserve). */
static size_t *ix_slot(index_t *ix, const void *base, size_t stride,
                       span_t k) {
  size_t mask = ix->cap - 1, i = (size_t)hash(k) & mask;
  for (;; i = (i + 1) & mask) {
    size_t *slot = &ix->slots[i];
    span_t e;
    if (*slot == 0)
      return slot;
    e = key_at(base, stride, *slot - 1);
    if (e.len == k.len && memcmp(e.s, k.s, k.len) == 0)
      return slot;
  }
}

/* Room for one more entry, the index at most half full after it. */
static int ix_reserve(index_t *ix, const void *base, size_t stride) {
  index_t big;
  if ((ix->n + 1) * 2 <= ix->cap)
    return 0;
  big.cap = ix->cap ? ix->cap * 2 : 16;
  big.n = ix->n;
  big.slots = calloc(big.cap, sizeof(*big.slots));
  if (big.slots == NULL)
    return SPOKE_ENOMEM;
  for (size_t i = 0; i < ix->cap; i++)
    if (ix->slots[i] != 0)
      *ix_slot(&big, base, stride, key_at(base, stride, ix->slots[i] - 1)) =
          ix->slots[i];
  free(ix->slots);
  *ix = big;
  return 0;
}

/* ---- families and series ---- */

/* The family NAME, added (last) if new: its index in *F. */
static int family_get(sum_t *s, span_t name, size_t *f) {
  size_t *slot;
  family_t *fam;
  int rc = ix_reserve(&s->fam_ix, s->fams, sizeof(*s->fams));
  if (rc != 0)
    return rc;
  slot = ix_slot(&s->fam_ix, s->fams, sizeof(*s->fams), name);
  if (*slot != 0) {
    *f = *slot - 1;
    return 0;
  }
  if (spoke__array_grow(&s->fams, &s->fams_cap, s->nfams, sizeof(*s->fams)))
    return SPOKE_ENOMEM;
  fam = &s->fams[s->nfams];
  memset(fam, 0, sizeof(*fam));
  fam->name = name;
  fam->first = fam->last = NONE;
  *f = s->nfams++;
  *slot = *f + 1;
  s->fam_ix.n++;
  return 0;
}

/* Adds V to the series KEY; a new one goes last in family CUR, or, when
 * CUR is NONE, in the family of its metric name NAME. */
static int series_add(sum_t *s, span_t key, span_t name, size_t cur,
                      double v) {
  size_t *slot, i;
  int rc = ix_reserve(&s->ser_ix, s->series, sizeof(*s->series));
  if (rc != 0)
    return rc;
  slot = ix_slot(&s->ser_ix, s->series, sizeof(*s->series), key);
  if (*slot != 0) {
    s->series[*slot - 1].v += v;
    return 0;
  }
  if (cur == NONE && (rc = family_get(s, name, &cur)) != 0)
    return rc;
  if (spoke__array_grow(&s->series, &s->series_cap, s->nseries,
                        sizeof(*s->series)))
    return SPOKE_ENOMEM;
  i = s->nseries++;
  s->series[i] = (series_t){key, v, NONE};
  if (s->fams[cur].last == NONE)
    s->fams[cur].first = i;
  else
    s->series[s->fams[cur].last].next = i;
  s->fams[cur].last = i;
  *slot = i + 1;
  s->ser_ix.n++;
  return 0;
}

static void sum_free(sum_t *s) {
  free(s->fams);
  free(s->series);
  free(s->fam_ix.slots);
  free(s->ser_ix.slots);
}

/* ---- lines ---- */

static int name_start(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
}

static int name_char(char c) {
  return name_start(c) || (c >= '0' && c <= '9');
}

/* The length of the name at S (LEN bytes), ':' allowed if COLON; 0 for
 * none. */
static size_t name_len(const char *s, size_t len, int colon) {
  size_t i = 0;
  while (i < len && ((i == 0 ? name_start(s[i]) : name_char(s[i])) ||
                     (colon && s[i] == ':')))
    i++;
  return i;
}

/* A label set from S[0] == '{' to its '}', which must end S: the offset
 * past '}', or 0 when it is not one. Values are quoted, with \ escaping
 * the next byte; a comma may trail the last label. */
static size_t labels_len(const char *s, size_t len) {
  size_t i = 1;
  while (i < len && s[i] != '}') {
    size_t n = name_len(s + i, len - i, 0);
    if (n == 0 || i + n + 1 >= len || s[i + n] != '=' || s[i + n + 1] != '"')
      return 0;
    for (i += n + 2; i < len && s[i] != '"'; i++)
      if (s[i] == '\\')
        i++;
    if (i >= len)
      return 0;
    if (++i < len && s[i] == ',')
      i++;
    else if (i < len && s[i] != '}')
      return 0;
  }
  return i + 1 == len ? len : 0;
}

/* The metric name's length if S (LEN bytes) is NAME or NAME{LABELS},
 * else 0. */
static size_t series_name(const char *s, size_t len) {
  size_t n = name_len(s, len, 1);
  if (n == 0 || n == len)
    return n;
  return s[n] == '{' && labels_len(s + n, len - n) == len - n ? n : 0;
}

/* The value V at S (LEN bytes, the whole of it): a number, "+Inf",
 * "-Inf" or "NaN" (strtod reads them all). */
static int value_parse(const char *s, size_t len, double *v) {
  char tmp[128], *end;
  if (len == 0 || len >= sizeof(tmp) || s[0] == ' ' || s[0] == '\t')
    return SPOKE_EINVAL;
  memcpy(tmp, s, len);
  tmp[len] = '\0';
  *v = strtod(tmp, &end);
  return end == tmp + len ? 0 : SPOKE_EINVAL;
}

static int blank(const char *s, size_t len) {
  for (size_t i = 0; i < len; i++)
    if (s[i] != ' ' && s[i] != '\t')
      return 0;
  return 1;
}

/* "# HELP NAME ..." or "# TYPE NAME ...": the family it names becomes
 * the document's current one (*CUR); other comments are dropped. */
static int comment(sum_t *s, const char *line, size_t len, size_t *cur) {
  int is_help = len > 7 && memcmp(line, "# HELP ", 7) == 0;
  int is_type = len > 7 && memcmp(line, "# TYPE ", 7) == 0;
  span_t name = {line + 7, 0};
  family_t *f;
  int rc;
  if (!is_help && !is_type)
    return 0;
  while (7 + name.len < len && line[7 + name.len] != ' ')
    name.len++;
  if (name.len == 0)
    return 0;
  if ((rc = family_get(s, name, cur)) != 0)
    return rc;
  f = &s->fams[*cur];
  if (is_help && f->help.len == 0)
    f->help = (span_t){line, len};
  if (is_type && f->type.len == 0)
    f->type = (span_t){line, len};
  return 0;
}

static int sample(sum_t *s, const char *line, size_t len, size_t cur) {
  const char *sp = NULL;
  span_t key, name;
  double v;
  for (size_t i = len; i > 0 && sp == NULL; i--)
    if (line[i - 1] == ' ')
      sp = line + i - 1;
  if (sp == NULL)
    return SPOKE_EINVAL;
  key = (span_t){line, (size_t)(sp - line)};
  name = (span_t){line, series_name(key.s, key.len)};
  if (name.len == 0 || value_parse(sp + 1, len - key.len - 1, &v) != 0)
    return SPOKE_EINVAL;
  return series_add(s, key, name, cur, v);
}

static int doc_sum(sum_t *s, const char *d, size_t len) {
  const char *p = d, *end = d + len;
  size_t cur = NONE; /* the family last named in this document */
  while (p < end) {
    const char *nl = memchr(p, '\n', (size_t)(end - p));
    size_t n = (size_t)((nl ? nl : end) - p);
    int rc = 0;
    if (p[0] == '#')
      rc = comment(s, p, n, &cur);
    else if (!blank(p, n))
      rc = sample(s, p, n, cur);
    if (rc != 0)
      return rc;
    p = nl ? nl + 1 : end;
  }
  return 0;
}

/* ---- the sum's text ---- */

static int value_put(spoke__buf_t *b, double v) {
  char tmp[32];
  if (isnan(v))
    return spoke__buf_append(b, "NaN", 3);
  if (isinf(v))
    return spoke__buf_append(b, v > 0 ? "+Inf" : "-Inf", 4);
  if (v > -TWO_53 && v < TWO_53 && v == (double)(int64_t)v)
    return spoke__buf_appendf(b, "%.0f", v == 0 ? 0.0 : v);
  for (int prec = 15; prec < 17; prec++) {
    snprintf(tmp, sizeof(tmp), "%.*g", prec, v);
    if (strtod(tmp, NULL) == v)
      return spoke__buf_append(b, tmp, strlen(tmp));
  }
  return spoke__buf_appendf(b, "%.17g", v);
}

static int line_put(spoke__buf_t *b, span_t line) {
  if (line.len == 0)
    return 0;
  if (spoke__buf_append(b, line.s, line.len) != 0)
    return SPOKE_ENOMEM;
  return spoke__buf_append(b, "\n", 1);
}

static int family_put(spoke__buf_t *b, const sum_t *s, const family_t *f) {
  if (line_put(b, f->help) != 0 || line_put(b, f->type) != 0)
    return SPOKE_ENOMEM;
  for (size_t i = f->first; i != NONE; i = s->series[i].next) {
    const series_t *e = &s->series[i];
    if (spoke__buf_append(b, e->key.s, e->key.len) != 0 ||
        spoke__buf_append(b, " ", 1) != 0 || value_put(b, e->v) != 0 ||
        spoke__buf_append(b, "\n", 1) != 0)
      return SPOKE_ENOMEM;
  }
  return 0;
}

int spoke__prom_sum(const char *const *docs, const size_t *lens, size_t n,
                    spoke__buf_t *out) {
  sum_t s;
  size_t was = out->len;
  int rc = 0;
  memset(&s, 0, sizeof(s));
  for (size_t i = 0; i < n && rc == 0; i++)
    if (lens[i] != 0)
      rc = doc_sum(&s, docs[i], lens[i]);
  for (size_t f = 0; f < s.nfams && rc == 0; f++)
    rc = family_put(out, &s, &s.fams[f]);
  if (rc != 0 && out->data != NULL) {
    out->len = was;
    out->data[was] = '\0';
  }
  sum_free(&s);
  return rc;
}
