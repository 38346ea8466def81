/* cli.h: the subcommands of the spoke binary besides serving.
 *
 *   spoke new NAME [DIR]     new.c: writes a plugin project
 *   spoke check FILE.so...   check.c: loads plugins without serving
 *   spoke rollout FILE.so --to ADMIN...
 *                            rollout.c: puts a plugin on running
 *                            instances one at a time, rolls back on
 *                            failure (its pieces: rollout.h)
 *
 * main.c dispatches on argv[1]; each subcommand gets argc/argv with
 * argv[0] its own name and returns the process exit status: 0 done,
 * 1 failed (the reason printed), 2 usage error.
 */
#ifndef SPOKE_CLI_H
#define SPOKE_CLI_H

#include <stdio.h>

#define SPOKE__CLI_OK 0
#define SPOKE__CLI_FAILED 1
#define SPOKE__CLI_USAGE 2

int spoke__cli_new(int argc, char **argv);
void spoke__cli_new_usage(FILE *out);

int spoke__cli_check(int argc, char **argv);
void spoke__cli_check_usage(FILE *out);

int spoke__cli_rollout(int argc, char **argv);
void spoke__cli_rollout_usage(FILE *out);

#endif /* SPOKE_CLI_H */
