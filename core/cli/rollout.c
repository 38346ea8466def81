/* rollout.c: `spoke rollout FILE.so --to ADMIN...` puts a plugin file on
 * a row of running instances, one at a time, and takes it back off them
 * all when one does badly.
 *
 *   1. locally: `spoke check FILE.so` (this very binary, as a child):
 *      its verdict must be "ok", and its first line names the plugin and
 *      its version; the file's bytes give the new build id. A refusal
 *      here touches no instance.
 *   2. the plan: a /metrics reading of every instance, saying what each
 *      serves of the plugin now. One that cannot be read fails the plan,
 *      before anything changed. --dry-run stops here.
 *   3. each instance in order (rollstep.c, rollbake.c): keep its file,
 *      upload the new one, wait until every process serves it, bake.
 *      An instance that already serves the new build on every process is
 *      left as it is.
 *   4. on a failure: undo the failed instance (if its file may have
 *      changed) and every one done before it, the latest first; then a
 *      report: which failed, at which step, what the bake saw, which
 *      were rolled back (and whether that worked), which were not
 *      touched.
 *
 * The invariants: the instances are changed strictly one at a time, in
 * the order given; no instance is changed before the check and the plan
 * succeeded; an instance touched is rolled back whenever a later step
 * (of it or of any instance) fails, or SIGINT or SIGTERM comes.
 *
 * Exit status: 0 rolled out, 1 failed (nothing changed, or everything
 * rolled back, or the report says what could not be), 2 usage error.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cli/cli.h"
#include "cli/rollout.h"
#include "plugin/plugin.h"

#define SHORT_USAGE                                                     \
  "usage: spoke rollout FILE.so --to HOST:PORT[,...] --token-file FILE " \
  "[options] (spoke help rollout)\n"

void spoke__cli_rollout_usage(FILE *out) {
  fprintf(out,
"usage: spoke rollout FILE.so --to HOST:PORT[,HOST:PORT...] --token-file FILE\n"
"                     [--bake SECONDS] [--max-5xx-rate R] [--max-p99 MS]\n"
"                     [--ready-timeout SECONDS] [--dry-run]\n"
"\n"
"Rolls a plugin file out to running instances through their admin\n"
"listeners, one instance at a time, and back off every instance it\n"
"reached when one of them does badly.\n"
"\n"
"First FILE.so is checked here as `spoke check FILE.so` would (refused:\n"
"no instance is touched); then every instance is read for a plan, its\n"
"/metrics and, with the token, its file of FILE.so's name (one that\n"
"cannot be used: nothing is touched). Then, per instance in order: its\n"
"current file is kept, the new one is uploaded under FILE.so's base name\n"
"(PUT /plugins/NAME.so), and once every process of it serves the new\n"
"build it bakes: a crash of the new version, a process not serving the\n"
"new build, too many 5xx or a slow p99 (judged from 20 requests on) fail\n"
"it. A failure, or SIGINT or SIGTERM, puts the old file back (or deletes\n"
"the new one) on the failed instance and on every one done before it,\n"
"the latest first, and prints a report. An instance that serves the new\n"
"build on every process already is left as it is.\n"
"\n"
"  --to ADDRS           the instances' admin listeners (--admin), in order:\n"
"                       HOST:PORT or [IPV6]:PORT, comma-separated; may be\n"
"                       given more than once; @FILE reads them from FILE,\n"
"                       one a line (# comments and blank lines skipped)\n"
"  --token-file FILE    the admin token: FILE's first line\n"
"  --bake SECONDS       how long each instance is watched (default 30)\n"
"  --max-5xx-rate R     the largest share of the plugin's requests answered\n"
"                       5xx during a bake (default 0.01)\n"
"  --max-p99 MS         the largest p99 of the plugin's requests during a\n"
"                       bake, from the duration histogram (default 1000)\n"
"  --ready-timeout SECONDS\n"
"                       how long an instance may take to serve the new\n"
"                       build on every process, or the old one again on a\n"
"                       rollback (default 30)\n"
"  --dry-run            check and print the plan; change nothing\n"
"\n"
"Exit status: 0 rolled out, 1 failed (refused, unreachable, or rolled\n"
"back; the report says which), 2 usage error.\n");
}

/* ---- step 1: the local check ---- */

/* Runs `/proc/self/exe check FILE` and collects its output (stdout and
 * stderr) into OUT: the child's exit status, or -1. */
static int run_check(const char *file, spoke__buf_t *out) {
  int fds[2], status;
  char chunk[4096];
  ssize_t n;
  pid_t pid;

  if (pipe(fds) != 0)
    return -1;
  fflush(NULL);
  if ((pid = fork()) < 0) {
    close(fds[0]);
    close(fds[1]);
    return -1;
  }
  if (pid == 0) {
    char *argv[] = {"spoke", "check", (char *)file, NULL};
    dup2(fds[1], 1);
    dup2(fds[1], 2);
    close(fds[0]);
    close(fds[1]);
    execv("/proc/self/exe", argv);
    fprintf(stderr, "cannot run /proc/self/exe: %s\n", strerror(errno));
    _exit(127);
  }
  close(fds[1]);
  while ((n = read(fds[0], chunk, sizeof(chunk))) != 0) {
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0 || spoke__buf_append(out, chunk, (size_t)n) != 0)
      break;
  }
  close(fds[0]);
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

/* Name and version from "FILE: plugin NAME VERSION, SDK ABI X.Y". */
static int parse_verdict(spoke__roll_t *r, const char *text) {
  const char *p = text, *ver, *end;
  size_t flen = strlen(r->opts.file);
  while (p != NULL && *p != '\0') {
    if (strncmp(p, r->opts.file, flen) == 0 &&
        strncmp(p + flen, ": plugin ", 9) == 0)
      break;
    p = strchr(p, '\n');
    p = p ? p + 1 : NULL;
  }
  if (p == NULL || *p == '\0')
    return -1;
  p += flen + 9;
  ver = strchr(p, ' ');
  end = strstr(p, ", SDK ABI ");
  if (ver == NULL || end == NULL || ver > end ||
      (size_t)(ver - p) >= sizeof(r->name) ||
      (size_t)(end - ver - 1) >= sizeof(r->version))
    return -1;
  snprintf(r->name, sizeof(r->name), "%.*s", (int)(ver - p), p);
  snprintf(r->version, sizeof(r->version), "%.*s", (int)(end - ver - 1),
           ver + 1);
  if (strcmp(r->version, "(no version)") == 0)
    r->version[0] = '\0';
  return 0;
}

/* Reads FILE into r->bytes: 0, or -1 with WHY. */
static int read_file(spoke__roll_t *r, char *why, size_t whylen) {
  FILE *f = fopen(r->opts.file, "rb");
  char chunk[65536];
  size_t n;
  if (f == NULL) {
    snprintf(why, whylen, "cannot read %s: %s", r->opts.file,
             strerror(errno));
    return -1;
  }
  while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0) {
    if (r->bytes.len + n > SPOKE__ROLL_MAX_FILE ||
        spoke__buf_append(&r->bytes, chunk, n) != 0) {
      snprintf(why, whylen, "%s is larger than the admin listener takes "
                            "(64 MiB)", r->opts.file);
      fclose(f);
      return -1;
    }
  }
  n = (size_t)ferror(f);
  fclose(f);
  if (n != 0) {
    snprintf(why, whylen, "cannot read %s", r->opts.file);
    return -1;
  }
  return 0;
}

static int check_locally(spoke__roll_t *r) {
  spoke__buf_t out = {0};
  char why[512], on_disk[17];
  const char *p;
  int rc;

  if (read_file(r, why, sizeof(why)) != 0) {
    printf("refused locally: %s\n", why);
    return -1;
  }
  spoke__roll_build_of(r->bytes.data ? r->bytes.data : "", r->bytes.len,
                       r->build);
  printf("local check (spoke check %s):\n", r->opts.file);
  rc = run_check(r->opts.file, &out);
  for (p = out.data; p != NULL && *p != '\0';) {
    const char *nl = strchr(p, '\n');
    int len = nl ? (int)(nl - p) : (int)strlen(p);
    printf("    %.*s\n", len, p);
    p = nl ? nl + 1 : NULL;
  }
  fflush(stdout);
  if (rc != 0) {
    /* The check's own reason, from its "FILE: refused: WHY" line. */
    const char *why_at = out.data ? strstr(out.data, ": refused: ") : NULL;
    if (why_at != NULL)
      printf("refused locally: %.*s\n",
             (int)strcspn(why_at + 11, "\n"), why_at + 11);
    else
      printf("refused locally: spoke check %s %s (see above)\n",
             r->opts.file, rc < 0 ? "did not finish" : "failed");
  } else if (parse_verdict(r, out.data ? out.data : "") != 0) {
    printf("refused locally: cannot read the plugin's name and version in "
           "spoke check's output\n");
    rc = -1;
  } else if (spoke__build_id_of_file(r->opts.file, on_disk) != 0 ||
             strcmp(on_disk, r->build) != 0) {
    printf("refused locally: %s changed while it was being checked\n",
           r->opts.file);
    rc = -1;
  }
  spoke__buf_free(&out);
  fflush(stdout);
  return rc == 0 ? 0 : -1;
}

/* ---- step 2: the plan ---- */

/* Reads every instance: what serves, and (with the token, so a token it
 * refuses shows here, before anything changed) its file. */
static int plan(spoke__roll_t *r) {
  char what[256], err[256], build[17], file[128];
  spoke__buf_t bytes = {0};
  int failed = 0, has;

  printf("plan: %s %s (build %s) to %zu instance%s, one at a time; bake "
         "%gs each; fail on a crash, 5xx above %g%%, p99 above %g ms; "
         "ready within %gs\n",
         r->name, r->version[0] ? r->version : "(no version)", r->build,
         r->ninsts, r->ninsts == 1 ? "" : "s", r->opts.bake_s,
         100.0 * r->opts.max_5xx_rate, r->opts.max_p99_ms, r->opts.ready_s);
  for (size_t i = 0; i < r->ninsts; i++) {
    spoke__roll_inst_t *in = &r->insts[i];
    if (spoke__roll_metrics(r, in, r->build, &in->plan, err,
                            sizeof(err)) != 0 ||
        spoke__roll_fetch(r, in, &bytes, &has, build, err, sizeof(err)) != 0) {
      printf("  %-*s  CANNOT USE: %s\n", r->width, in->addr->text, err);
      failed = 1;
      continue;
    }
    spoke__roll_describe(r, &in->plan, what, sizeof(what));
    in->skip = in->plan.workers > 0 &&
               in->plan.serving_build == in->plan.workers;
    file[0] = '\0';
    if (!has)
      snprintf(file, sizeof(file), "; it has no %.80s yet", r->base);
    else if (strcmp(build, in->plan.top_build) != 0)
      snprintf(file, sizeof(file), "; its %.80s is build %s", r->base, build);
    printf("  %-*s  %s -> %s %s (build %s)%s%s\n", r->width, in->addr->text,
           what, r->name, r->version[0] ? r->version : "(no version)",
           r->build, file,
           in->skip ? "; serves it already: left as it is" : "");
  }
  spoke__buf_free(&bytes);
  fflush(stdout);
  return failed ? -1 : 0;
}

/* ---- steps 3 and 4 ---- */

static void report(spoke__roll_t *r) {
  const spoke__roll_inst_t *bad = &r->insts[r->failed_at];
  size_t n = 0;

  printf("rollout of %s %s FAILED after %.1fs\n", r->name, r->version,
         spoke__roll_clock() - r->t0);
  printf("  failed:      %s while %s: %s\n", bad->addr->text, r->failed_step,
         r->why);
  if (r->have_seen && strcmp(r->failed_step, "baking") == 0) {
    const spoke__roll_delta_t *d = &r->seen;
    char text[256];
    spoke__roll_seen_text(d, text, sizeof(text));
    printf("  seen:        in %.1fs of bake: %s, %s%s\n", r->seen_s, text,
           d->crashes > 0 ? "crashes: " : "no crash", d->crash_text);
    if (d->requests < 20)
      printf("               (fewer than 20 requests: the 5xx rate and the "
             "p99 were not judged)\n");
  }
  printf("  rolled back:");
  for (size_t i = r->failed_at + 1; i-- > 0;) {
    const spoke__roll_inst_t *in = &r->insts[i];
    if (in->undone == 0)
      continue;
    printf("%s %s (%s%s)", n++ ? "," : "", in->addr->text,
           in->undone > 0 ? "ok" : "FAILED: ",
           in->undone > 0 ? "" : in->undo_err);
  }
  printf("%s\n", n ? "" : " none");
  n = 0;
  printf("  not touched:");
  for (size_t i = 0; i < r->ninsts; i++) {
    const spoke__roll_inst_t *in = &r->insts[i];
    if (in->touched) /* every instance done before the failure is */
      continue;
    printf("%s %s%s", n++ ? "," : "", in->addr->text,
           in->skip ? " (served the new build already)" : "");
  }
  printf("%s\n", n ? "" : " none");
  fflush(stdout);
}

static int roll(spoke__roll_t *r) {
  size_t i, skipped = 0;

  spoke__roll_catch_signals();
  for (i = 0; i < r->ninsts && !r->failed; i++) {
    spoke__roll_inst_t *in = &r->insts[i];
    if (spoke__roll_interrupted() != NULL) {
      spoke__roll_fail(r, in, "starting", "interrupted by %s",
                       spoke__roll_interrupted());
      break;
    }
    if (in->skip) {
      spoke__roll_say(r, in, "serves the new build already: left as it is");
      skipped++;
      continue;
    }
    if (spoke__roll_install(r, in) == 0)
      spoke__roll_bake(r, in);
  }
  if (!r->failed) {
    printf("rolled out %s %s to %zu instance%s in %.1fs", r->name,
           r->version[0] ? r->version : r->build, r->ninsts,
           r->ninsts == 1 ? "" : "s", spoke__roll_clock() - r->t0);
    if (skipped)
      printf(" (%zu served it already)", skipped);
    printf("\n");
    fflush(stdout);
    return SPOKE__CLI_OK;
  }
  for (i = r->failed_at + 1; i-- > 0;)
    if (r->insts[i].touched) /* never a skipped one */
      spoke__roll_undo(r, &r->insts[i]);
  report(r);
  return SPOKE__CLI_FAILED;
}

/* "/plugins/" and BASE, any byte but [A-Za-z0-9._~+-] percent-encoded. */
static void file_path(spoke__roll_t *r) {
  static const char keep[] = "._~+-";
  size_t n = (size_t)snprintf(r->path, sizeof(r->path), "/plugins/");
  for (const char *p = r->base; *p && n + 4 < sizeof(r->path); p++) {
    unsigned char c = (unsigned char)*p;
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
        (c >= '0' && c <= '9') || strchr(keep, c) != NULL)
      r->path[n++] = (char)c;
    else
      n += (size_t)snprintf(r->path + n, 4, "%%%02X", c);
  }
  r->path[n] = '\0';
}

int spoke__cli_rollout(int argc, char **argv) {
  spoke__roll_t r;
  char err[512];
  int rc;

  memset(&r, 0, sizeof(r));
  r.t0 = spoke__roll_clock();
  rc = spoke__roll_parse_args(&r.opts, argc, argv, err, sizeof(err));
  if (rc == 1) {
    spoke__cli_rollout_usage(stdout);
    spoke__roll_opts_free(&r.opts);
    return SPOKE__CLI_OK;
  }
  if (rc == 0 && spoke__roll_read_token(r.opts.token_file, r.token,
                                        sizeof(r.token), err,
                                        sizeof(err)) != 0)
    rc = SPOKE_EINVAL;
  if (rc != 0) {
    fprintf(stderr, "spoke rollout: %s\n" SHORT_USAGE, err);
    spoke__roll_opts_free(&r.opts);
    return SPOKE__CLI_USAGE;
  }
  r.base = strrchr(r.opts.file, '/') ? strrchr(r.opts.file, '/') + 1
                                     : r.opts.file;
  file_path(&r);
  r.ninsts = r.opts.nto;
  r.insts = calloc(r.ninsts, sizeof(*r.insts));
  if (r.insts == NULL) {
    spoke__roll_opts_free(&r.opts);
    return SPOKE__CLI_FAILED;
  }
  for (size_t i = 0; i < r.ninsts; i++) {
    int w = (int)strlen(r.opts.to[i].text);
    r.insts[i].addr = &r.opts.to[i];
    r.width = w > r.width ? w : r.width;
  }

  if (check_locally(&r) != 0) {
    rc = SPOKE__CLI_FAILED;
  } else if (plan(&r) != 0) {
    printf("the plan failed: not every instance can be used; nothing "
           "changed\n");
    rc = SPOKE__CLI_FAILED;
  } else if (r.opts.dry_run) {
    printf("dry run: nothing changed\n");
    rc = SPOKE__CLI_OK;
  } else {
    rc = roll(&r);
  }
  fflush(stdout);
  for (size_t i = 0; i < r.ninsts; i++)
    spoke__buf_free(&r.insts[i].old);
  free(r.insts);
  spoke__buf_free(&r.bytes);
  spoke__roll_opts_free(&r.opts);
  memset(r.token, 0, sizeof(r.token));
  return rc;
}
