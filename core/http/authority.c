/* authority.c: whether a Host header field's value is well formed.
 *
 * RFC 9112 §3.2: a server MUST answer 400 to a request whose Host field
 * has an invalid value. The value is RFC 3986's uri-host [":" port]:
 *
 *   uri-host    = IP-literal / IPv4address / reg-name
 *   IP-literal  = "[" ( IPv6address / IPvFuture ) "]"
 *   reg-name    = *( unreserved / pct-encoded / sub-delims )
 *   port        = *DIGIT
 *
 * An IPv4 address is a reg-name by its characters, so it needs no rule of
 * its own. Inside brackets only what an IPv6 address or an IPvFuture can
 * hold is let through (hex digits, ':', '.', and for "v..." forms the
 * unreserved and sub-delims characters); the address is not parsed
 * further, as spoke routes by path and never connects to it. The empty
 * value is valid (RFC 9110 §7.2: a target without an authority sends an
 * empty Host). Pure; any thread.
 */
#include <string.h>

#include "http/http.h"

static int is_unreserved(unsigned char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
         (c >= '0' && c <= '9') || c == '-' || c == '.' || c == '_' ||
         c == '~';
}

static int is_sub_delim(unsigned char c) {
  return c != '\0' && strchr("!$&'()*+,;=", c) != NULL;
}

static int is_hex(unsigned char c) { return spoke__hexval(c) >= 0; }

/* The IP-literal at V[0..n) without its brackets. */
static int ip_literal_ok(const char *v, size_t n) {
  if (n == 0)
    return 0;
  if (v[0] == 'v' || v[0] == 'V') { /* IPvFuture: "v" 1*HEXDIG "." 1*... */
    size_t i = 1;
    while (i < n && is_hex((unsigned char)v[i]))
      i++;
    if (i == 1 || i + 1 >= n || v[i] != '.')
      return 0;
    for (i++; i < n; i++) {
      unsigned char c = (unsigned char)v[i];
      if (!is_unreserved(c) && !is_sub_delim(c) && c != ':')
        return 0;
    }
    return 1;
  }
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)v[i];
    if (!is_hex(c) && c != ':' && c != '.')
      return 0;
  }
  return 1;
}

static int reg_name_ok(const char *v, size_t n) {
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)v[i];
    if (c == '%') {
      if (i + 2 >= n)
        return 0; /* "%" needs two hex digits after it */
      if (!is_hex((unsigned char)v[i + 1]) || !is_hex((unsigned char)v[i + 2]))
        return 0;
      i += 2;
    } else if (!is_unreserved(c) && !is_sub_delim(c)) {
      return 0;
    }
  }
  return 1;
}

int spoke__host_value_ok(const char *v, size_t n) {
  size_t host_len = n;
  const char *colon;

  if (n > 0 && v[0] == '[') {
    const char *close = memchr(v, ']', n);
    if (close == NULL || !ip_literal_ok(v + 1, (size_t)(close - v - 1)))
      return 0;
    host_len = (size_t)(close - v + 1);
    if (host_len < n && v[host_len] != ':')
      return 0;
  } else {
    colon = memchr(v, ':', n);
    if (colon != NULL)
      host_len = (size_t)(colon - v);
    if (!reg_name_ok(v, host_len))
      return 0;
  }
  for (size_t i = host_len + 1; i < n; i++) /* the port: digits only */
    if (v[i] < '0' || v[i] > '9')
      return 0;
  return 1;
}
