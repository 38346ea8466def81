/* main.c: spoke's entry point: read the command line, run the server. */
#include <stdio.h>
#include <string.h>

#include "server.h"

int main(int argc, char **argv) {
  spoke__server_t srv;
  char err[256];
  int rc;

  memset(&srv, 0, sizeof(srv));
  spoke__config_defaults(&srv.cfg);
  rc = spoke__config_parse(&srv.cfg, argc, argv, err, sizeof(err));
  if (rc == 1)
    return 0;
  if (rc != 0) {
    fprintf(stderr, "spoke: %s (see spoke --help)\n", err);
    return 2;
  }
  return spoke__server_run(&srv) == 0 ? 0 : 1;
}
