/* promread.c: reads Prometheus text (format 0.0.4) sample by sample.
 *
 * `spoke rollout` reads an instance's /metrics for a handful of series;
 * this walks the text and hands out one sample at a time, and reads one
 * label's value out of a sample. ctl/promsum.c parses the same format to
 * add documents up; this one only reads, and is lenient: a line that is
 * not a sample (a comment, a blank, a broken line) is passed over, since
 * the series we look for are known by name and labels.
 *
 * A sample line is NAME, optionally {LABELS}, blanks, VALUE, and
 * optionally a timestamp (ignored). Label values are quoted, with \\,
 * \" and \n as escapes. Nothing is copied or allocated: spans point into
 * the text, which the caller keeps.
 */
#include <stdlib.h>
#include <string.h>

#include "cli/rollout.h"

static int name_char(char c, int first) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' ||
         c == ':' || (!first && c >= '0' && c <= '9');
}

/* From S at '{' to past its '}' (quotes and escapes honoured): the
 * length, or 0 when the line ends first. */
static size_t braces(const char *s, size_t len) {
  int quoted = 0;
  for (size_t i = 1; i < len; i++) {
    if (quoted && s[i] == '\\')
      i++;
    else if (s[i] == '"')
      quoted = !quoted;
    else if (!quoted && s[i] == '}')
      return i + 1;
  }
  return 0;
}

/* One line S[0..len): 1 with *L when it is a sample. */
static int parse_line(const char *s, size_t len, spoke__prom_line_t *l) {
  size_t i = 0, v;
  char tmp[64], *end;

  while (i < len && name_char(s[i], i == 0))
    i++;
  if (i == 0)
    return 0;
  l->name = s;
  l->name_len = i;
  l->labels = NULL;
  l->labels_len = 0;
  if (i < len && s[i] == '{') {
    size_t b = braces(s + i, len - i);
    if (b == 0)
      return 0;
    l->labels = s + i + 1;
    l->labels_len = b - 2;
    i += b;
  }
  if (i >= len || (s[i] != ' ' && s[i] != '\t'))
    return 0;
  while (i < len && (s[i] == ' ' || s[i] == '\t'))
    i++;
  for (v = i; i < len && s[i] != ' ' && s[i] != '\t' && s[i] != '\r'; i++)
    ;
  if (i == v || i - v >= sizeof(tmp))
    return 0;
  memcpy(tmp, s + v, i - v);
  tmp[i - v] = '\0';
  l->value = strtod(tmp, &end);
  return *end == '\0';
}

int spoke__prom_next(const char **p, const char *end, spoke__prom_line_t *l) {
  while (*p < end) {
    const char *s = *p, *nl = memchr(s, '\n', (size_t)(end - s));
    size_t len = (size_t)((nl ? nl : end) - s);
    *p = nl ? nl + 1 : end;
    if (s[0] != '#' && parse_line(s, len, l))
      return 1;
  }
  return 0;
}

int spoke__prom_is(const spoke__prom_line_t *l, const char *name) {
  return strlen(name) == l->name_len && memcmp(l->name, name, l->name_len) == 0;
}

int spoke__prom_label(const spoke__prom_line_t *l, const char *key, char *out,
                      size_t cap) {
  const char *s = l->labels, *end;
  size_t klen = strlen(key);

  if (cap > 0)
    out[0] = '\0';
  if (s == NULL)
    return 0;
  end = s + l->labels_len;
  while (s < end) {
    const char *k = s;
    size_t n = 0;
    int match;
    while (s < end && *s != '=')
      s++;
    if (s + 1 >= end || s[1] != '"')
      return 0; /* not a label set after all */
    match = (size_t)(s - k) == klen && memcmp(k, key, klen) == 0;
    for (s += 2; s < end && *s != '"'; s++) {
      char c = *s;
      if (c == '\\' && s + 1 < end)
        c = *++s == 'n' ? '\n' : *s;
      if (match && n + 1 < cap)
        out[n] = c;
      n++;
    }
    if (match) {
      if (n >= cap) {
        if (cap > 0)
          out[0] = '\0';
        return SPOKE_EINVAL;
      }
      out[n] = '\0';
      return 1;
    }
    s++; /* past the closing quote, then a comma and blanks */
    while (s < end && (*s == ',' || *s == ' '))
      s++;
  }
  return 0;
}
