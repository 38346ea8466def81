/* conffile.c: the config file (--config spoke.conf).
 *
 * The format, one setting per line:
 *
 *   # a comment (so is a line starting with ';')
 *   listen = 0.0.0.0:8080        every command-line flag, without "--"
 *   max-body = 4m
 *
 *   [plugin static]              the section of the plugin named "static"
 *   root = /srv/www              read by the plugin with spoke_config()
 *
 * Keys before the first section are server settings and go through the
 * same checks as the flags (config.c); flags on the command line win.
 * Keys in a plugin section are the plugin's: the server stores them as
 * they are. Whitespace around keys and values is dropped; a value runs
 * to the end of its line. A repeated key: the last one wins.
 *
 * Threads: loaded on the main thread before anything starts; read-only
 * afterwards, so any thread (a plugin's init, its handlers) may look up.
 */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/base.h"
#include "base/config.h"

/* The file the process runs with, for spoke__conffile_lookup. Set once
 * by spoke__conffile_load before any thread starts. */
static const spoke__conffile_t *current;

static char *trim(char *s) {
  char *end;
  while (isspace((unsigned char)*s))
    s++;
  end = s + strlen(s);
  while (end > s && isspace((unsigned char)end[-1]))
    *--end = '\0';
  return s;
}

static int add_entry(spoke__conffile_t *cf, const char *section,
                     const char *key, const char *value) {
  spoke__conf_entry_t *e;
  if (spoke__array_grow(&cf->entries, &cf->cap, cf->n, sizeof(*e)) != 0)
    return SPOKE_ENOMEM;
  e = &cf->entries[cf->n++];
  e->section = section;
  e->key = key;
  e->value = value;
  return 0;
}

/* "[plugin NAME]" -> NAME (in place), or NULL if not a plugin section. */
static char *plugin_section(char *line) {
  char *end = strchr(line, ']'), *name;
  if (end == NULL || trim(end + 1)[0] != '\0')
    return NULL;
  *end = '\0';
  name = trim(line + 1);
  if (strncmp(name, "plugin", 6) != 0 || !isspace((unsigned char)name[6]))
    return NULL;
  name = trim(name + 6);
  return name[0] != '\0' && strpbrk(name, " \t") == NULL ? name : NULL;
}

static int read_file(const char *path, char **text, char *err,
                     size_t errlen) {
  FILE *f = fopen(path, "rb");
  long size;
  size_t got;
  if (f == NULL) {
    snprintf(err, errlen, "--config %s: %s", path, strerror(errno));
    return SPOKE_EINVAL;
  }
  if (fseek(f, 0, SEEK_END) != 0 || (size = ftell(f)) < 0 ||
      size > 1024 * 1024 || fseek(f, 0, SEEK_SET) != 0) {
    fclose(f);
    snprintf(err, errlen, "--config %s: not a readable file under 1 MiB",
             path);
    return SPOKE_EINVAL;
  }
  *text = malloc((size_t)size + 1);
  if (*text == NULL) {
    fclose(f);
    return SPOKE_ENOMEM;
  }
  got = fread(*text, 1, (size_t)size, f);
  fclose(f);
  (*text)[got] = '\0';
  if (memchr(*text, '\0', got) != NULL) {
    snprintf(err, errlen, "--config %s: a NUL byte; not a text file", path);
    return SPOKE_EINVAL;
  }
  return 0;
}

static int parse(spoke__conffile_t *cf, const char *path,
                 spoke__conf_set_cb set, void *ctx, char *err,
                 size_t errlen) {
  char *line, *next, *section = NULL;
  unsigned lineno = 0;
  int rc;

  for (line = cf->text; line != NULL; line = next) {
    char *eq, *key, *value;
    next = strchr(line, '\n');
    if (next != NULL)
      *next++ = '\0';
    lineno++;
    line = trim(line);
    if (line[0] == '\0' || line[0] == '#' || line[0] == ';')
      continue;
    if (line[0] == '[') {
      section = plugin_section(line);
      if (section == NULL) {
        snprintf(err, errlen, "%s:%u: a section must read [plugin NAME]",
                 path, lineno);
        return SPOKE_EINVAL;
      }
      continue;
    }
    eq = strchr(line, '=');
    if (eq == NULL) {
      snprintf(err, errlen, "%s:%u: expected KEY = VALUE", path, lineno);
      return SPOKE_EINVAL;
    }
    *eq = '\0';
    key = trim(line);
    value = trim(eq + 1);
    if (key[0] == '\0') {
      snprintf(err, errlen, "%s:%u: a key is missing before '='", path,
               lineno);
      return SPOKE_EINVAL;
    }
    if (section != NULL) {
      if ((rc = add_entry(cf, section, key, value)) != 0)
        return rc;
      continue;
    }
    if (strcmp(key, "config") == 0) {
      snprintf(err, errlen, "%s:%u: a config file cannot name another",
               path, lineno);
      return SPOKE_EINVAL;
    }
    rc = set(ctx, key, value, err, errlen);
    if (rc != 0) {
      /* Prefix the reason with where it was found. */
      char why[256];
      snprintf(why, sizeof(why), "%s", err);
      snprintf(err, errlen, "%s:%u: %s", path, lineno, why);
      return rc;
    }
  }
  return 0;
}

int spoke__conffile_load(spoke__conffile_t *cf, const char *path,
                         spoke__conf_set_cb set, void *ctx, char *err,
                         size_t errlen) {
  int rc;
  memset(cf, 0, sizeof(*cf));
  cf->path = path;
  rc = read_file(path, &cf->text, err, errlen);
  if (rc == 0)
    rc = parse(cf, path, set, ctx, err, errlen);
  if (rc != 0) {
    spoke__conffile_free(cf);
    return rc;
  }
  current = cf;
  return 0;
}

const char *spoke__conffile_lookup(const char *section, const char *key) {
  const spoke__conffile_t *cf = current;
  const char *found = NULL;
  if (cf == NULL || section == NULL || key == NULL)
    return NULL;
  for (size_t i = 0; i < cf->n; i++) /* the last one wins */
    if (strcmp(cf->entries[i].section, section) == 0 &&
        strcmp(cf->entries[i].key, key) == 0)
      found = cf->entries[i].value;
  return found;
}

void spoke__conffile_free(spoke__conffile_t *cf) {
  if (current == cf)
    current = NULL;
  free(cf->entries);
  free(cf->text);
  memset(cf, 0, sizeof(*cf));
}
