/* check.c: `spoke check FILE.so...` gives the verdict a load would.
 *
 * Each file goes through the server's own admission rule, spoke__admit
 * (plugin/admit.c, which reload.c asks too): private copy, ELF check,
 * dlopen, descriptor check, init; then its name must differ from those
 * of the files accepted before it and its routes must fit in one route
 * table beside theirs. So a file checks "ok" exactly when a server
 * handed these files in this order would serve it, and a refusal
 * carries the very reason the server would log. init runs
 * because a failing init refuses a load; so fini runs too, once every
 * verdict is printed, as an unload would.
 *
 * --plugins DIR puts the plugins directory's files first, as the server
 * has them (every plugin file name in DIR, in name order, those the
 * server would refuse left out), so the given files are checked beside
 * what already serves: a clash with them refuses the given file, as the
 * server would. A given file with the same file name as one in DIR is a
 * replacement of it (the server reloads that file), so DIR's file of
 * that name is left out. Without --plugins a file is checked alone and
 * beside the other files given, and a note on stderr says so.
 *
 * The private copies go to a fresh directory under --runtime-dir (or
 * $TMPDIR, or /tmp), removed at the end. The loading happens in a child
 * process: a plugin that crashes while loading takes down the child, not
 * the report; the parent names the file that was loading (the child
 * writes each file's index to a pipe before loading it) and cleans up.
 *
 * Exit status: 0 every file would load, 1 some would not (or crashed),
 * 2 usage error.
 */
#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cli/cli.h"
#include "ctl/ctl.h"

typedef struct check_s {
  char **files;                /* DIR's files (nbeside), then the given */
  int nfiles;
  int nbeside;                 /* --plugins DIR's files, first in files */
  const char *rundir;
  int progress_fd;             /* child: write end of the pipe */
  spoke__instance_t **accepted; /* loaded and fitting, in order */
  size_t naccepted;
} check_t;

/* spoke__admit's refused hook: the verdict line, flushed before the
 * newcomer's fini may write anything of its own. */
static void on_refused(void *ctx, const char *why) {
  printf("%s: refused: %s\n", (const char *)ctx, why);
  fflush(stdout);
}

static void print_plugin(const char *path, const spoke__instance_t *inst) {
  const spoke_plugin_t *d = inst->desc;
  int mw = 0, pw = 0;

  printf("%s: plugin %s %s, SDK ABI %u.%u\n", path, inst->name,
         inst->version[0] ? inst->version : "(no version)", d->abi_major,
         d->abi_minor);
  for (size_t i = 0; i < d->nroutes; i++) {
    int m = (int)strlen(d->routes[i].method);
    int p = (int)strlen(d->routes[i].path);
    mw = m > mw ? m : mw;
    pw = p > pw ? p : pw;
  }
  for (size_t i = 0; i < d->nroutes; i++)
    printf("  %-*s  %-*s  %s\n", mw, d->routes[i].method, pw,
           d->routes[i].path,
           d->routes[i].mode == SPOKE_SYNC ? "sync" : "async");
  if (d->init != NULL)
    printf("  init: ok (check runs init, and fini at the end, as a load "
           "and an unload would)\n");
  if (d->struct_size >=
          offsetof(spoke_plugin_t, handover) + sizeof(d->handover) &&
      d->handover != NULL)
    printf("  handover: yes (a reload hands it the running version's "
           "state)\n");
}

/* Refused hook for a file of --plugins DIR: it does not serve. */
static void on_beside_refused(void *ctx, const char *why) {
  printf("%s: left out, the server refuses it too: %s\n", (const char *)ctx,
         why);
  fflush(stdout);
}

/* One file: 0 when it would be served (then it stays loaded, as the
 * server keeps it), 1 with the reason printed when refused. */
static int check_one(check_t *c, int index) {
  const char *path = c->files[index];
  const char *base = strrchr(path, '/') ? strrchr(path, '/') + 1 : path;
  spoke__instance_t *inst;
  spoke__admit_t in = {0};
  struct stat st;
  char err[512];

  if (index < c->nbeside && (stat(path, &st) != 0 || !S_ISREG(st.st_mode)))
    return 0; /* the server ignores it */
  if (!spoke__admit_is_plugin_name(base)) {
    printf("%s: refused: not a plugin file name: the server loads only "
           "files named *.so (and not starting with '.') and would "
           "ignore this one\n",
           path);
    return 1;
  }
  if (stat(path, &st) == 0 && !S_ISREG(st.st_mode)) {
    printf("%s: refused: not a regular file (the server would ignore it)\n",
           path);
    return 1;
  }
  fflush(stdout);
  (void)!write(c->progress_fd, &index, sizeof(index));
  in.path = path;
  in.runtime_dir = c->rundir;
  in.generation = (uint64_t)index + 1;
  in.prev = NULL;
  in.host = spoke__host_table();
  in.serving = c->accepted;
  in.nserving = c->naccepted;
  in.refused = index < c->nbeside ? on_beside_refused : on_refused;
  in.ctx = (void *)path;
  if (spoke__admit(&in, &inst, NULL, err, sizeof(err)) != 0)
    return index < c->nbeside ? 0 : 1; /* printed by the refused hook */
  if (index < c->nbeside) {
    printf("%s: serving beside: plugin %s %s\n", path, inst->name,
           inst->version[0] ? inst->version : "(no version)");
    c->accepted[c->naccepted++] = inst;
    return 0;
  }
  print_plugin(path, inst);
  /* The warning the server logs when it loads this file (a newer minor
   * SDK, a larger descriptor), word for word, then the verdict. */
  if (spoke__descriptor_warning(inst->desc, err, sizeof(err)))
    printf("%s: warning: %s\n", path, err);
  printf("ok\n");
  c->accepted[c->naccepted++] = inst;
  return 0;
}

/* In the child: every file in order, then every fini. */
static int check_all(check_t *c) {
  int failed = 0;
  c->accepted = calloc((size_t)c->nfiles, sizeof(*c->accepted));
  if (c->accepted == NULL) {
    fprintf(stderr, "spoke check: out of memory\n");
    return SPOKE__CLI_FAILED;
  }
  for (int i = 0; i < c->nfiles; i++)
    failed |= check_one(c, i);
  fflush(stdout);
  for (size_t i = 0; i < c->naccepted; i++)
    spoke__instance_unref(c->accepted[i]);
  free(c->accepted);
  return failed ? SPOKE__CLI_FAILED : SPOKE__CLI_OK;
}

/* Removes DIR and whatever a crashed child left in it. */
static void remove_rundir(const char *dir) {
  DIR *d = opendir(dir);
  struct dirent *de;
  char path[4096 + 256 + 2];
  if (d != NULL) {
    while ((de = readdir(d)) != NULL) {
      if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
        continue;
      snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
      unlink(path);
    }
    closedir(d);
  }
  rmdir(dir);
}

/* Forks, runs check_all in the child, and turns a crash into a verdict. */
static int run_checked(check_t *c) {
  int fds[2], status, last = -1, idx;
  pid_t pid;
  ssize_t n;

  if (pipe(fds) != 0) {
    fprintf(stderr, "spoke check: pipe: %s\n", strerror(errno));
    return SPOKE__CLI_FAILED;
  }
  fflush(NULL);
  pid = fork();
  if (pid < 0) {
    fprintf(stderr, "spoke check: fork: %s\n", strerror(errno));
    close(fds[0]);
    close(fds[1]);
    return SPOKE__CLI_FAILED;
  }
  if (pid == 0) {
    int rc;
    close(fds[0]);
    c->progress_fd = fds[1];
    rc = check_all(c);
    close(fds[1]);
    fflush(NULL);
    exit(rc); /* exit, not _exit: LeakSanitizer checks the child too */
  }
  close(fds[1]);
  for (;;) {
    n = read(fds[0], &idx, sizeof(idx));
    if (n < 0 && errno == EINTR)
      continue;
    if (n != (ssize_t)sizeof(idx))
      break;
    last = idx;
  }
  close(fds[0]);
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (WIFEXITED(status))
    return WEXITSTATUS(status) == 0 ? SPOKE__CLI_OK : SPOKE__CLI_FAILED;
  printf("%s: crashed: %s while loading or unloading it (the server would "
         "crash the same way)\n",
         last >= 0 ? c->files[last] : "spoke check",
         WIFSIGNALED(status) ? strsignal(WTERMSIG(status)) : "died");
  return SPOKE__CLI_FAILED;
}

#define SHORT_USAGE                                                    \
  "usage: spoke check [--plugins DIR] [--config FILE] [--runtime-dir DIR] " \
  "[-v] FILE.so... (spoke help check)\n"

static const char *base_name(const char *path) {
  const char *slash = strrchr(path, '/');
  return slash ? slash + 1 : path;
}

static int plugin_file_filter(const struct dirent *de) {
  return spoke__admit_is_plugin_name(de->d_name);
}

/* Puts DIR's plugin files, in name order, before C's NGIVEN given files
 * (C->files holds those): C->files becomes the one array, C->nbeside
 * its first part. A file of DIR whose name a given file has is left out
 * (the given file replaces it). Returns 0, or -1 with a message. */
static int add_beside(check_t *c, const char *dir) {
  struct dirent **names = NULL;
  char **files;
  int n = scandir(dir, &names, plugin_file_filter, alphasort), k = 0;

  if (n < 0) {
    fprintf(stderr, "spoke check: --plugins %s: %s\n", dir, strerror(errno));
    return -1;
  }
  files = calloc((size_t)n + (size_t)c->nfiles + 1, sizeof(*files));
  for (int i = 0; i < n; i++) {
    int replaced = 0;
    for (int j = 0; j < c->nfiles; j++)
      replaced |= strcmp(base_name(c->files[j]), names[i]->d_name) == 0;
    if (files != NULL && !replaced) {
      size_t len = strlen(dir) + strlen(names[i]->d_name) + 2;
      if ((files[k] = malloc(len)) != NULL)
        snprintf(files[k++], len, "%s/%s", dir, names[i]->d_name);
    }
    free(names[i]);
  }
  free(names);
  if (files == NULL) {
    fprintf(stderr, "spoke check: out of memory\n");
    return -1;
  }
  for (int j = 0; j < c->nfiles; j++)
    files[k + j] = c->files[j];
  free(c->files);
  c->files = files;
  c->nbeside = k;
  c->nfiles += k;
  return 0;
}

static void free_files(check_t *c) {
  for (int i = 0; i < c->nbeside; i++)
    free(c->files[i]);
  free(c->files);
}

void spoke__cli_check_usage(FILE *out) {
  fprintf(out,
"usage: spoke check [--plugins DIR] [--config FILE] [--runtime-dir DIR] [-v]\n"
"                   FILE.so...\n"
"\n"
"Loads each plugin the way the server would, without serving: private\n"
"copy, ELF check, dlopen, descriptor check, init; then its name and routes\n"
"against the files before it. Prints its name, version, SDK ABI and routes,\n"
"\"FILE: warning: TEXT\" if the server would log a warning about it, and\n"
"\"ok\", or \"FILE: refused: REASON\" with the reason the server would\n"
"log. init runs (a failing init refuses a load), and so does fini.\n"
"Without --plugins a file is checked alone and beside the other files\n"
"given, not beside what a server already serves.\n"
"\n"
"  --plugins DIR      check beside DIR's plugin files, as a server serving\n"
"                     DIR has them: a route or name clash with one of them\n"
"                     refuses the file; a file named as one in DIR is\n"
"                     checked as its replacement (a reload)\n"
"  --config FILE      the server's config file, for plugins that read\n"
"                     their [plugin NAME] section in init\n"
"  --runtime-dir DIR  where the private copies go (default $TMPDIR or /tmp)\n"
"  -v                 show the plugins' info and debug log lines\n"
"\n"
"Exit status: 0 every file would load, 1 one or more would be refused,\n"
"2 usage error.\n");
}

int spoke__cli_check(int argc, char **argv) {
  spoke__config_t cfg;
  check_t c;
  const char *runtime_parent = NULL, *config_path = NULL;
  const char *plugins_dir = NULL;
  char err[512], rundir[4096];
  int verbose = 0, rc;

  memset(&c, 0, sizeof(c));
  c.files = calloc((size_t)argc, sizeof(*c.files));
  if (c.files == NULL)
    return SPOKE__CLI_FAILED;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
      spoke__cli_check_usage(stdout);
      free(c.files);
      return SPOKE__CLI_OK;
    } else if (strcmp(a, "-v") == 0 || strcmp(a, "--verbose") == 0) {
      verbose = 1;
    } else if (strcmp(a, "--config") == 0 && i + 1 < argc) {
      config_path = argv[++i];
    } else if (strcmp(a, "--runtime-dir") == 0 && i + 1 < argc) {
      runtime_parent = argv[++i];
    } else if (strcmp(a, "--plugins") == 0 && i + 1 < argc) {
      plugins_dir = argv[++i];
    } else if (strncmp(a, "--plugins=", 10) == 0) {
      plugins_dir = a + 10;
    } else if (strncmp(a, "--config=", 9) == 0) {
      config_path = a + 9;
    } else if (strncmp(a, "--runtime-dir=", 14) == 0) {
      runtime_parent = a + 14;
    } else if (a[0] == '-') {
      fprintf(stderr, "spoke check: unknown option or missing value: %s\n",
              a);
      fprintf(stderr, SHORT_USAGE);
      free(c.files);
      return SPOKE__CLI_USAGE;
    } else {
      c.files[c.nfiles++] = argv[i];
    }
  }
  if (c.nfiles == 0) {
    fprintf(stderr, "spoke check: no plugin file given\n" SHORT_USAGE);
    free(c.files);
    return SPOKE__CLI_USAGE;
  }
  if (plugins_dir != NULL && add_beside(&c, plugins_dir) != 0) {
    free(c.files);
    return SPOKE__CLI_USAGE;
  }

  spoke__config_defaults(&cfg);
  if (config_path != NULL &&
      spoke__config_load_file(&cfg, config_path, err, sizeof(err)) != 0) {
    fprintf(stderr, "spoke check: %s\n", err);
    free_files(&c);
    return SPOKE__CLI_USAGE;
  }
  if (runtime_parent == NULL)
    runtime_parent = cfg.runtime_dir;
  if (runtime_parent == NULL)
    runtime_parent = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
  snprintf(rundir, sizeof(rundir), "%s/spoke-check.%d.XXXXXX",
           runtime_parent, (int)getpid());
  if (mkdtemp(rundir) == NULL) {
    fprintf(stderr,
            "spoke check: cannot create a runtime directory under %s: %s "
            "(choose another with --runtime-dir)\n",
            runtime_parent, strerror(errno));
    spoke__conffile_free(&cfg.conf);
    free_files(&c);
    return SPOKE__CLI_FAILED;
  }
  c.rundir = rundir;
  /* The plugins' own warnings and errors still show (on stderr); the
   * loader's info lines ("unloaded plugin ...") are noise here. */
  spoke__log_level = verbose ? SPOKE_LOG_DEBUG : SPOKE_LOG_WARN;

  rc = run_checked(&c);
  remove_rundir(rundir);
  spoke__conffile_free(&cfg.conf);
  free_files(&c);
  if (rc == SPOKE__CLI_OK && plugins_dir == NULL)
    fprintf(stderr,
            "spoke check: checked alone and beside the other files given; "
            "add --plugins DIR to check beside what a server serving DIR "
            "already has\n");
  return rc;
}
