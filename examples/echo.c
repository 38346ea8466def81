/* echo.c: reading the request: body, headers, and building a response
 * in memory that lives as long as the request.
 *
 *   POST /echo          ->  200, the request body back, with the request's
 *                           Content-Type (application/octet-stream if none)
 *   GET  /echo/headers  ->  200, the request headers as a JSON object
 *                           (application/json)
 *
 * JSON shape: {"Host":"localhost:8080","Cookie":["a=1","b=2"]}.
 * Keys keep the spelling of their first occurrence, in arrival order. A
 * header sent once maps to a string; a name sent more than once (compared
 * case-insensitively, as HTTP does) maps to an array of its values in
 * arrival order, so nothing is lost and the object has no duplicate keys.
 * Strings are escaped so the output is always valid JSON in plain ASCII:
 * '"' and '\' get a backslash, every other byte below 0x20, 0x7f and every
 * byte from 0x80 up becomes \u00XX (HTTP's obs-text read as ISO-8859-1,
 * its historical charset; UTF-8 values therefore come out as escaped bytes).
 *
 * Threading: both routes are SPOKE_ASYNC and complete at once; they only
 * read the request and keep no state, so they run safely on every loop.
 * Strings from the request accessors are borrowed from the server and valid
 * until the request completes. The JSON buffer comes from
 * spoke_request_alloc(), so it is freed with the request: no free() needed.
 */
#include <string.h>

#include <spoke.h>

static int echo_body(spoke_request_t *req) {
  size_t len;
  const void *body = spoke_request_body(req, &len);
  const char *type = spoke_request_header(req, "Content-Type");

  /* The server already refused heads with control bytes, so this cannot
   * fail for a value it let through; fall back anyway rather than guess. */
  if (type == NULL || spoke_response_header(req, "Content-Type", type) != 0)
    spoke_response_header(req, "Content-Type", "application/octet-stream");
  /* send copies the body, so handing it the request's own buffer is fine. */
  return spoke_response_send(req, body, len);
}

/* ASCII case-insensitive equality, independent of the C locale. */
static int name_eq(const char *a, const char *b) {
  for (;; a++, b++) {
    unsigned char x = (unsigned char)*a, y = (unsigned char)*b;
    if (x >= 'A' && x <= 'Z')
      x = (unsigned char)(x - 'A' + 'a');
    if (y >= 'A' && y <= 'Z')
      y = (unsigned char)(y - 'A' + 'a');
    if (x != y)
      return 0;
    if (x == '\0')
      return 1;
  }
}

/* The writers below all take OUT == NULL to mean "only count": the JSON is
 * built in two passes, one to size the buffer and one to fill it. AT() is
 * where the next byte goes, or NULL while counting. */
#define AT(out, n) ((out) != NULL ? (out) + (n) : NULL)

static size_t put(char *out, const char *s, size_t n) {
  if (out != NULL)
    memcpy(out, s, n);
  return n;
}

static size_t put_string(char *out, const char *s) {
  static const char hex[] = "0123456789abcdef";
  size_t n = put(out, "\"", 1);

  for (; *s != '\0'; s++) {
    unsigned char c = (unsigned char)*s;
    char *at = AT(out, n);
    if (c == '"' || c == '\\') {
      char esc[2] = { '\\', (char)c };
      n += put(at, esc, 2);
    } else if (c < 0x20 || c >= 0x7f) {
      char esc[6] = { '\\', 'u', '0', '0', hex[c >> 4], hex[c & 15] };
      n += put(at, esc, 6);
    } else {
      n += put(at, (const char *)&c, 1);
    }
  }
  return n + put(AT(out, n), "\"", 1);
}

static size_t put_headers(const spoke_request_t *req, char *out) {
  size_t count = spoke_request_header_count(req);
  size_t n = put(out, "{", 1);
  int first = 1;

  for (size_t i = 0; i < count; i++) {
    const char *name, *value, *other, *v;
    size_t j, seen = 0;

    spoke_request_header_at(req, i, &name, &value);
    for (j = 0; j < i; j++) { /* already written with an earlier one? */
      spoke_request_header_at(req, j, &other, &v);
      if (name_eq(name, other))
        break;
    }
    if (j < i)
      continue;
    for (j = i; j < count; j++) { /* how many carry this name */
      spoke_request_header_at(req, j, &other, &v);
      if (name_eq(name, other))
        seen++;
    }

    if (!first)
      n += put(AT(out, n), ",", 1);
    first = 0;
    n += put_string(AT(out, n), name);
    n += put(AT(out, n), ":", 1);
    if (seen == 1) {
      n += put_string(AT(out, n), value);
      continue;
    }
    n += put(AT(out, n), "[", 1);
    for (j = i; j < count; j++) {
      spoke_request_header_at(req, j, &other, &v);
      if (!name_eq(name, other))
        continue;
      if (j > i)
        n += put(AT(out, n), ",", 1);
      n += put_string(AT(out, n), v);
    }
    n += put(AT(out, n), "]", 1);
  }
  return n + put(AT(out, n), "}\n", 2);
}

static int echo_headers(spoke_request_t *req) {
  size_t len = put_headers(req, NULL);
  char *json = spoke_request_alloc(req, len);

  if (json == NULL)
    return SPOKE_ENOMEM; /* the handler failed: the client gets 500 */
  put_headers(req, json);
  spoke_response_header(req, "Content-Type", "application/json");
  return spoke_response_send(req, json, len);
}

static const spoke_route_t routes[] = {
  { "POST", "/echo", SPOKE_ASYNC, echo_body },
  { "GET", "/echo/headers", SPOKE_ASYNC, echo_headers },
};

SPOKE_PLUGIN(.name = "echo", .version = "1.0.0", SPOKE_ROUTES(routes));
