/* reply.c: what the routes share and that calls nothing else of the
 * plugin: a small JSON builder, the JSON replies, and reading ?ms=N.
 *
 * Every other file of the plugin may call these; these call only the
 * SDK and libc, so the plugin's files call each other in one direction
 * (tools/check_layers.py refuses a circle).
 *
 * Threads: any; a pg_json_t belongs to the caller.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pg.h"

#define DEFAULT_MS 1000UL
#define MAX_MS 60000UL

void pg_json_put(pg_json_t *j, const char *s, size_t n) {
  if (j->failed)
    return;
  if (j->len + n + 1 > j->cap) {
    size_t cap = (j->len + n + 1) * 2;
    char *p = realloc(j->p, cap);
    if (p == NULL) {
      j->failed = 1;
      return;
    }
    j->p = p;
    j->cap = cap;
  }
  memcpy(j->p + j->len, s, n);
  j->len += n;
}

void pg_json_lit(pg_json_t *j, const char *s) {
  pg_json_put(j, s, strlen(s));
}

/* S as a JSON string. UTF-8 passes through (PostgreSQL has checked it). */
void pg_json_str(pg_json_t *j, const char *s) {
  pg_json_put(j, "\"", 1);
  for (; *s != '\0'; s++) {
    unsigned char ch = (unsigned char)*s;
    char esc[8];
    if (ch == '"' || ch == '\\') {
      esc[0] = '\\';
      esc[1] = (char)ch;
      pg_json_put(j, esc, 2);
    } else if (ch < 0x20) {
      snprintf(esc, sizeof(esc), "\\u%04x", ch);
      pg_json_put(j, esc, 6);
    } else {
      pg_json_put(j, s, 1);
    }
  }
  pg_json_put(j, "\"", 1);
}

int pg_json_reply(spoke_request_t *req, int status, pg_json_t *j) {
  int rc;

  if (j->failed) {
    free(j->p);
    spoke_response_status(req, 500);
    return spoke_response_send(req, "out of memory\n", 14);
  }
  spoke_response_status(req, status);
  spoke_response_header(req, "Content-Type", "application/json");
  if (status == 503)
    spoke_response_header(req, "Retry-After", "1");
  rc = spoke_response_send(req, j->p, j->len); /* copies the body */
  free(j->p);
  return rc;
}

int pg_reply_slept(spoke_request_t *req, unsigned long ms, const char *mode) {
  char body[64];
  int n = snprintf(body, sizeof(body), "{\"slept_ms\":%lu,\"mode\":\"%s\"}",
                   ms, mode);

  spoke_response_header(req, "Content-Type", "application/json");
  return spoke_response_send(req, body, (size_t)n);
}

int pg_reply_error(spoke_request_t *req, int status, const char *msg) {
  pg_json_t j = { 0 };

  pg_json_lit(&j, "{\"error\":");
  pg_json_str(&j, msg);
  pg_json_lit(&j, "}");
  return pg_json_reply(req, status, &j);
}

int pg_parse_ms(spoke_request_t *req, unsigned long *ms) {
  const char *s = spoke_request_query_param(req, "ms");
  char *end;

  if (s == NULL) {
    *ms = DEFAULT_MS;
    return 0;
  }
  /* strtoul alone would take " 5", "+5" and "-5" (as a huge value). */
  if (*s < '0' || *s > '9')
    return -1;
  errno = 0;
  *ms = strtoul(s, &end, 10);
  if (*end != '\0')
    return -1;
  if (errno == ERANGE || *ms > MAX_MS)
    *ms = MAX_MS;
  return 0;
}

void pg_seconds(char *buf, size_t size, unsigned long ms) {
  snprintf(buf, size, "%lu.%03lu", ms / 1000, ms % 1000);
}
