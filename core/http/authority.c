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

static int is_hex(unsigned char c) { return spoke__hexval(c) >= 0; }

/* unreserved / sub-delims as a 256-bit set, bit C of word C / 32: a
 * reg-name is checked on every request (a Host is in each), so one load
 * per byte rather than a chain of comparisons. The words are
 * ALPHA DIGIT "-._~" and "!$&'()*+,;=" (test_authority.c checks the
 * classes against the grammar). */
static const uint32_t reg_chars[8] = {
    0x00000000u, 0x2bff7fd2u, 0x87fffffeu, 0x47fffffeu,
    0x00000000u, 0x00000000u, 0x00000000u, 0x00000000u};

static int is_reg_char(unsigned char c) {
  return (reg_chars[c >> 5] >> (c & 31)) & 1u;
}

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
      if (!is_reg_char(c) && c != ':')
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

/* The length of the reg-name at V[0..n), which ends at ':' or at N, or
 * -1 when a byte before that is not allowed in one. */
static long reg_name_len(const char *v, size_t n) {
  size_t i;
  for (i = 0; i < n && v[i] != ':'; i++) {
    unsigned char c = (unsigned char)v[i];
    if (is_reg_char(c))
      continue;
    if (c != '%' || i + 2 >= n || !is_hex((unsigned char)v[i + 1]) ||
        !is_hex((unsigned char)v[i + 2]))
      return -1; /* not allowed, or "%" without two hex digits */
    i += 2;
  }
  return (long)i;
}

int spoke__host_value_ok(const char *v, size_t n) {
  size_t host_len;

  if (n > 0 && v[0] == '[') {
    const char *close = memchr(v, ']', n);
    if (close == NULL || !ip_literal_ok(v + 1, (size_t)(close - v - 1)))
      return 0;
    host_len = (size_t)(close - v + 1);
    if (host_len < n && v[host_len] != ':')
      return 0;
  } else {
    long len = reg_name_len(v, n);
    if (len < 0)
      return 0;
    host_len = (size_t)len;
  }
  for (size_t i = host_len + 1; i < n; i++) /* the port: digits only */
    if (v[i] < '0' || v[i] > '9')
      return 0;
  return 1;
}
