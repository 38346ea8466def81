/* new.c: `spoke new NAME [DIR]` writes a plugin project.
 *
 * DIR (default ./NAME) gets NAME.c (one SPOKE_SYNC and one SPOKE_ASYNC
 * route, commented), CMakeLists.txt (find_package(spoke) and
 * spoke_add_plugin) and README.md (build, check, deploy, reload). The
 * texts are the .in files of sdk/template, embedded at build time;
 * @NAME@, @PREFIX@ and @SPOKE@ in them become the plugin's name, the SDK prefix to pass
 * as CMAKE_PREFIX_PATH, and this binary's path.
 *
 * The project must build and load the first time, so NAME is held to
 * what the loader accepts (descriptor.c: 1-64 of [a-z0-9_-]) and what
 * CMake accepts as a target name, and the SDK prefix is the one this very
 * binary belongs to: PREFIX when it runs as PREFIX/bin/spoke next to
 * PREFIX/lib/cmake/spoke, or its build directory, which carries a
 * spokeConfig.cmake of its own. Nothing is overwritten: DIR must be new
 * or empty, files are created with O_EXCL, and a failure half-way
 * removes what was written.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli/cli.h"
#include "base/base.h"
#include "spoke_templates.h"

#define NAME_MAX_LEN 64 /* as descriptor.c */
#define PATH_LEN 4096

/* Names CMake reserves for its own targets (policy CMP0037; test and
 * package once a project enables testing or CPack). */
static const char *const cmake_reserved[] = {
    "all",        "clean",          "help",          "install",
    "preinstall", "edit_cache",     "rebuild_cache", "depend",
    "test",       "package",        "package_source",
    "list_install_components",      NULL};

static int name_ok(const char *name, char *why, size_t whylen) {
  size_t n = strlen(name);
  if (n == 0 || n > NAME_MAX_LEN) {
    snprintf(why, whylen, "it must be 1 to %d characters long", NAME_MAX_LEN);
    return 0;
  }
  for (size_t i = 0; i < n; i++) {
    char c = name[i];
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' ||
          c == '-')) {
      char shown[8];
      if (c >= ' ' && c < 0x7f)
        snprintf(shown, sizeof(shown), "'%c'", c);
      else
        snprintf(shown, sizeof(shown), "0x%02x", (unsigned char)c);
      snprintf(why, whylen,
               "%s is not allowed: plugin names are lowercase letters, "
               "digits, _ and - (the server refuses others)",
               shown);
      return 0;
    }
  }
  if (name[0] == '-' || name[0] == '_') {
    snprintf(why, whylen, "it must start with a letter or a digit");
    return 0;
  }
  for (size_t i = 0; cmake_reserved[i] != NULL; i++)
    if (strcmp(name, cmake_reserved[i]) == 0) {
      snprintf(why, whylen, "CMake reserves \"%s\" as a target name", name);
      return 0;
    }
  return 1;
}

static int file_exists(const char *path) {
  struct stat st;
  return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

/* This binary's path, or "spoke" when /proc cannot tell. */
static void self_path(char *buf, size_t len) {
  ssize_t n = readlink("/proc/self/exe", buf, len - 1);
  if (n <= 0 || (size_t)n >= len - 1)
    snprintf(buf, len, "spoke");
  else
    buf[n] = '\0';
}

/* The CMAKE_PREFIX_PATH under which find_package(spoke) finds this
 * binary's SDK, into PREFIX. 0 when there is none to be found. */
static int sdk_prefix(const char *self, char *prefix, size_t len) {
  const char *bindir = "/" SPOKE_INSTALL_BINDIR;
  char dir[PATH_LEN], probe[PATH_LEN + 64];
  char *slash;
  size_t n, blen = strlen(bindir);

  snprintf(dir, sizeof(dir), "%s", self);
  slash = strrchr(dir, '/');
  if (slash == NULL)
    return 0;
  *slash = '\0';
  n = strlen(dir);
  /* Installed: PREFIX/bin/spoke beside PREFIX/lib/cmake/spoke/. */
  if (n >= blen && strcmp(dir + n - blen, bindir) == 0) {
    snprintf(prefix, len, "%.*s", (int)(n - blen), dir);
    if (prefix[0] == '\0')
      snprintf(prefix, len, "/");
    snprintf(probe, sizeof(probe), "%s/%s/cmake/spoke/spokeConfig.cmake",
             strcmp(prefix, "/") == 0 ? "" : prefix, SPOKE_INSTALL_LIBDIR);
    if (file_exists(probe))
      return 1;
  }
  /* A build directory: BUILD/spoke beside BUILD/spokeConfig.cmake. */
  snprintf(probe, sizeof(probe), "%s/spokeConfig.cmake", dir);
  if (file_exists(probe)) {
    snprintf(prefix, len, "%s", dir);
    return 1;
  }
  snprintf(prefix, len, "/where/spoke/is/installed");
  return 0;
}

/* TMPL with each @KEY@ of KEYS replaced by its value, into a new buffer. */
static char *render(const char *tmpl, const char *const *keys,
                    const char *const *vals) {
  size_t cap = strlen(tmpl) + 1, len = 0;
  char *out = malloc(cap);
  const char *p = tmpl;

  while (out != NULL && *p != '\0') {
    const char *val = NULL;
    size_t skip = 1, vlen;
    if (*p == '@')
      for (size_t k = 0; keys[k] != NULL; k++) {
        size_t klen = strlen(keys[k]);
        if (strncmp(p + 1, keys[k], klen) == 0 && p[1 + klen] == '@') {
          val = vals[k];
          skip = klen + 2;
          break;
        }
      }
    vlen = val ? strlen(val) : 1;
    if (len + vlen + 1 > cap) {
      char *grown = realloc(out, (cap = 2 * cap + vlen));
      if (grown == NULL) {
        free(out);
        return NULL;
      }
      out = grown;
    }
    memcpy(out + len, val ? val : p, vlen);
    len += vlen;
    p += skip;
  }
  if (out != NULL)
    out[len] = '\0';
  return out;
}

static int write_new_file(const char *path, const char *text) {
  size_t len = strlen(text), off = 0;
  int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  if (fd < 0)
    return -1;
  while (off < len) {
    ssize_t w = write(fd, text + off, len - off);
    if (w < 0 && errno == EINTR)
      continue;
    if (w < 0) {
      int e = errno;
      close(fd);
      errno = e;
      return -1;
    }
    off += (size_t)w;
  }
  return close(fd);
}

/* mkdir -p DIR; *made gets 1 when DIR itself was created. */
static int make_dirs(const char *dir, int *made) {
  char path[PATH_LEN];
  struct stat st;

  *made = 0;
  snprintf(path, sizeof(path), "%s", dir);
  for (char *p = path + 1; *p != '\0'; p++) {
    if (*p != '/')
      continue;
    *p = '\0';
    if (mkdir(path, 0755) != 0 && errno != EEXIST)
      return -1;
    *p = '/';
  }
  if (mkdir(path, 0755) == 0) {
    *made = 1;
    return 0;
  }
  if (errno == EEXIST && stat(path, &st) == 0 && !S_ISDIR(st.st_mode))
    errno = ENOTDIR;
  return errno == EEXIST ? 0 : -1;
}

/* 1 if DIR holds anything but . and .. (or cannot be read). */
static int dir_nonempty(const char *dir) {
  DIR *d = opendir(dir);
  struct dirent *de;
  int found = 0;
  if (d == NULL)
    return 1;
  while (!found && (de = readdir(d)) != NULL)
    found = strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0;
  closedir(d);
  return found;
}

typedef struct project_file_s {
  const char *file; /* ".c" means NAME.c */
  const char *tmpl;
} project_file_t;

static const project_file_t project_files[] = {
    {".c", (const char *)spoke_tmpl_plugin_c},
    {"CMakeLists.txt", (const char *)spoke_tmpl_CMakeLists_txt},
    {"README.md", (const char *)spoke_tmpl_README_md},
};

static void project_path(char *buf, size_t len, const char *dir,
                         const char *name, const project_file_t *f) {
  if (f->file[0] == '.')
    snprintf(buf, len, "%s/%s%s", dir, name, f->file);
  else
    snprintf(buf, len, "%s/%s", dir, f->file);
}

/* S for a shell command line: as is when harmless, else 'quoted'. */
static const char *shell_word(const char *s, char *buf, size_t len) {
  size_t o = 0;
  if (s[0] != '\0' && strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmn"
                                "opqrstuvwxyz0123456789/._+-=,:@%") ==
                          strlen(s))
    return s;
  buf[o++] = '\'';
  for (; *s != '\0' && o + 6 < len; s++) {
    if (*s == '\'') {
      memcpy(buf + o, "'\\''", 4);
      o += 4;
    } else {
      buf[o++] = *s;
    }
  }
  buf[o++] = '\'';
  buf[o] = '\0';
  return buf;
}

#define SHORT_USAGE "usage: spoke new NAME [DIR] (spoke help new)\n"

void spoke__cli_new_usage(FILE *out) {
  fprintf(out,
"usage: spoke new NAME [DIR]\n"
"\n"
"Writes a plugin project into DIR (default ./NAME; it must be new or\n"
"empty): NAME.c with a sync and an async route, GET /NAME/sync and\n"
"GET /NAME/async; CMakeLists.txt (find_package(spoke) + spoke_add_plugin);\n"
"README.md (build, check, deploy, reload). NAME: 1-64 of a-z, 0-9, _ and -,\n"
"starting with a letter or digit. It builds against the SDK this spoke\n"
"binary was installed with.\n");
}

int spoke__cli_new(int argc, char **argv) {
  static const char *const keys[] = {"NAME", "PREFIX", "SPOKE", NULL};
  const char *name = NULL, *vals[4];
  char dir[PATH_LEN], self[PATH_LEN], prefix[PATH_LEN], why[160];
  char path[PATH_LEN + 80], q1[PATH_LEN + 64], q2[PATH_LEN + 64];
  size_t written = 0, n;
  int made = 0, found;

  dir[0] = '\0';
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
      spoke__cli_new_usage(stdout);
      return SPOKE__CLI_OK;
    }
    if (argv[i][0] == '-') {
      fprintf(stderr, "spoke new: unknown option \"%s\"\n" SHORT_USAGE,
              argv[i]);
      return SPOKE__CLI_USAGE;
    }
    if (name == NULL) {
      name = argv[i];
    } else if (dir[0] == '\0') {
      snprintf(dir, sizeof(dir), "%s", argv[i]);
    } else {
      fprintf(stderr, "spoke new: unexpected argument \"%s\"\n" SHORT_USAGE,
              argv[i]);
      return SPOKE__CLI_USAGE;
    }
  }
  if (name == NULL) {
    fprintf(stderr, "spoke new: no plugin name given\n" SHORT_USAGE);
    return SPOKE__CLI_USAGE;
  }
  if (!name_ok(name, why, sizeof(why))) {
    fprintf(stderr, "spoke new: \"%s\" is not a valid plugin name: %s\n",
            name, why);
    return SPOKE__CLI_USAGE;
  }
  if (dir[0] == '\0')
    snprintf(dir, sizeof(dir), "%s", name);
  for (n = strlen(dir); n > 1 && dir[n - 1] == '/'; n--)
    dir[n - 1] = '\0';

  if (make_dirs(dir, &made) != 0) {
    fprintf(stderr, "spoke new: cannot create %s: %s\n", dir,
            strerror(errno));
    return SPOKE__CLI_FAILED;
  }
  if (!made && dir_nonempty(dir)) {
    fprintf(stderr,
            "spoke new: %s already exists and is not empty; nothing "
            "written (choose another: spoke new %s DIR)\n",
            dir, name);
    return SPOKE__CLI_FAILED;
  }

  self_path(self, sizeof(self));
  found = sdk_prefix(self, prefix, sizeof(prefix));
  vals[0] = name;
  vals[1] = prefix;
  vals[2] = self;
  vals[3] = NULL;
  for (; written < SPOKE__ARRAY_SIZE(project_files); written++) {
    const project_file_t *f = &project_files[written];
    char *text = render(f->tmpl, keys, vals);
    int rc = -1, err = ENOMEM;
    project_path(path, sizeof(path), dir, name, f);
    if (text != NULL && (rc = write_new_file(path, text)) != 0)
      err = errno;
    free(text);
    if (rc != 0) {
      fprintf(stderr, "spoke new: cannot write %s: %s\n", path,
              strerror(err));
      if (err != EEXIST)
        unlink(path);
      goto undo;
    }
  }

  printf("created plugin project \"%s\" in %s:\n", name, dir);
  printf("  %s.c  GET /%s/sync (sync) and GET /%s/async (async)\n", name,
         name, name);
  printf("  CMakeLists.txt, README.md\n");
  printf("build and serve it:\n");
  printf("  cd %s\n", shell_word(dir, q1, sizeof(q1)));
  printf("  cmake -B build -DCMAKE_PREFIX_PATH=%s && cmake --build build\n",
         shell_word(prefix, q1, sizeof(q1)));
  printf("  mkdir -p plugins && cp build/%s.so plugins/\n", name);
  printf("  %s --listen 127.0.0.1:8080 --plugins plugins\n",
         shell_word(self, q2, sizeof(q2)));
  printf("  curl localhost:8080/%s/async\n", name);
  if (!found)
    fprintf(stderr,
            "spoke new: warning: found no spoke SDK next to %s; pass "
            "-DCMAKE_PREFIX_PATH=PREFIX, the prefix spoke was installed "
            "into (cmake --install BUILD --prefix PREFIX)\n",
            self);
  return SPOKE__CLI_OK;

undo:
  while (written-- > 0) {
    project_path(path, sizeof(path), dir, name, &project_files[written]);
    unlink(path);
  }
  if (made)
    rmdir(dir);
  return SPOKE__CLI_FAILED;
}
