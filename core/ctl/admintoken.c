/* admintoken.c: the admin listener's bearer token (--admin-token-file).
 *
 * The token is read once, at start-up, while the settings are parsed
 * (before any thread or fork): the file's first line, trailing spaces,
 * tabs and CR cut, 16 to 1024 bytes, each a visible ASCII character
 * (RFC 6750's b64token is narrower; any visible byte is allowed, so a
 * hex or base64 secret from any tool fits). A file that breaks the rule
 * fails the start with the reason: a server that would silently open
 * its write endpoints, or shut them for good, is worse than one that
 * does not start.
 *
 * Checking a request (admin.c): its Authorization field must be
 * "Bearer TOKEN" (scheme in any case). The comparison takes the same
 * time whatever the bytes, and depends only on the configured token's
 * length, so a client timing answers learns nothing of the secret's
 * content. Immutable once loaded: any thread may read it.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "ctl/ctl.h"

#define TOKEN_MIN 16
#define TOKEN_MAX 1024

int spoke__admin_token_load(const char *path, char **out, char *err,
                            size_t errlen) {
  char line[TOKEN_MAX + 2];
  size_t n;
  FILE *f = fopen(path, "re");

  *out = NULL;
  if (f == NULL) {
    snprintf(err, errlen, "--admin-token-file %s: %s", path, strerror(errno));
    return SPOKE_EIO;
  }
  if (fgets(line, sizeof(line), f) == NULL)
    line[0] = '\0';
  fclose(f);
  n = strcspn(line, "\n");
  if (n > TOKEN_MAX) {
    snprintf(err, errlen, "--admin-token-file %s: the token is longer than "
             "%d bytes", path, TOKEN_MAX);
    return SPOKE_EINVAL;
  }
  while (n > 0 && (line[n - 1] == ' ' || line[n - 1] == '\t' ||
                   line[n - 1] == '\r'))
    n--;
  line[n] = '\0';
  for (size_t i = 0; i < n; i++)
    if ((unsigned char)line[i] <= 0x20 || (unsigned char)line[i] >= 0x7f) {
      snprintf(err, errlen, "--admin-token-file %s: the token has a space "
               "or a byte that is not visible ASCII at offset %zu", path, i);
      return SPOKE_EINVAL;
    }
  if (n < TOKEN_MIN) {
    snprintf(err, errlen, "--admin-token-file %s: the token (first line) "
             "has %zu bytes; at least %d are needed", path, n, TOKEN_MIN);
    return SPOKE_EINVAL;
  }
  if ((*out = strdup(line)) == NULL) {
    snprintf(err, errlen, "out of memory");
    return SPOKE_ENOMEM;
  }
  return 0;
}

int spoke__admin_token_ok(const char *token, const char *value,
                          size_t len) {
  size_t want = strlen(token), i;
  volatile unsigned char diff;

  /* "Bearer", then at least one space, then the token, then nothing but
   * spaces (field values arrive with the line's CRLF already cut). */
  if (len < 7 || strncasecmp(value, "Bearer ", 7) != 0)
    return 0;
  value += 7;
  len -= 7;
  while (len > 0 && *value == ' ') {
    value++;
    len--;
  }
  while (len > 0 && (value[len - 1] == ' ' || value[len - 1] == '\t'))
    len--;
  diff = (unsigned char)(len != want);
  for (i = 0; i < want; i++)
    diff |= (unsigned char)(token[i] ^ (i < len ? value[i] : 0));
  return diff == 0;
}
