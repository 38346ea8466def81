/* main.c: spoke's entry point: a subcommand (spoke new, spoke check,
 * spoke rollout, spoke help; see cli.h), or else read the command line
 * and serve. */
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "ctl/ctl.h"

static void commands_usage(FILE *out) {
  fprintf(out,
"commands:\n"
"  spoke [--listen HOST:PORT] [--plugins DIR] [options]  serve (spoke --help)\n"
"  spoke new NAME [DIR]        write a plugin project (spoke help new)\n"
"  spoke check [--plugins DIR] FILE.so...\n"
"                              load plugins without serving and report,\n"
"                              beside DIR's plugins (spoke help check)\n"
"  spoke rollout FILE.so --to HOST:PORT[,...] --token-file FILE [options]\n"
"                              put a plugin on running instances one at\n"
"                              a time through their admin listeners,\n"
"                              rolled back on failure (spoke help rollout)\n"
"  spoke help [COMMAND]        this text, or a command's\n");
}

static int help(int argc, char **argv) {
  if (argc >= 2 && strcmp(argv[1], "new") == 0) {
    spoke__cli_new_usage(stdout);
  } else if (argc >= 2 && strcmp(argv[1], "check") == 0) {
    spoke__cli_check_usage(stdout);
  } else if (argc >= 2 && strcmp(argv[1], "rollout") == 0) {
    spoke__cli_rollout_usage(stdout);
  } else if (argc >= 2) {
    fprintf(stderr, "spoke help: no command \"%s\"\n", argv[1]);
    commands_usage(stderr);
    return SPOKE__CLI_USAGE;
  } else {
    spoke__config_usage(stdout);
    printf("\n");
    commands_usage(stdout);
  }
  return SPOKE__CLI_OK;
}

int main(int argc, char **argv) {
  spoke__server_t srv;
  char err[256];
  int rc;

  /* Options start with '-'; a first word that does not is a command. */
  if (argc >= 2 && argv[1][0] != '-') {
    if (strcmp(argv[1], "new") == 0)
      return spoke__cli_new(argc - 1, argv + 1);
    if (strcmp(argv[1], "check") == 0)
      return spoke__cli_check(argc - 1, argv + 1);
    if (strcmp(argv[1], "rollout") == 0)
      return spoke__cli_rollout(argc - 1, argv + 1);
    if (strcmp(argv[1], "help") == 0)
      return help(argc - 1, argv + 1);
    fprintf(stderr, "spoke: unknown command \"%s\"\n", argv[1]);
    commands_usage(stderr);
    return SPOKE__CLI_USAGE;
  }

  memset(&srv, 0, sizeof(srv));
  spoke__config_defaults(&srv.cfg);
  rc = spoke__config_parse(&srv.cfg, argc, argv, err, sizeof(err));
  if (rc == 1)
    return 0;
  if (rc != 0) {
    fprintf(stderr, "spoke: %s (see spoke --help)\n", err);
    return 2;
  }
  if (srv.cfg.processes > 0)
    return spoke__supervise_run(&srv) == 0 ? 0 : 1;
  return spoke__server_run(&srv) == 0 ? 0 : 1;
}
