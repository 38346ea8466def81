/* params.c: how every connection of the plugin is opened: libpq's
 * keywords from the version's config, and where libpq's notices go.
 * Used by the async connections (conn.c) and the blocking ones
 * (sync.c); calls nothing else of the plugin.
 *
 * Threads: any; it only reads the version's read-only config.
 */
#include "pg.h"

void pg_conn_params(const pg_plugin_t *p, const char *keys[4],
                    const char *values[4]) {
  /* With expand_dbname, "dbname" may carry a whole connection string;
   * "" leaves everything to the PG* environment. Later keys win. */
  keys[0] = "dbname";
  values[0] = p->conninfo;
  keys[1] = "application_name";
  values[1] = p->app_name;
  keys[2] = "connect_timeout"; /* honoured by the blocking connects */
  values[2] = "10";
  keys[3] = NULL;
  values[3] = NULL;
}

void pg_notice(void *arg, const PGresult *res) {
  (void)arg;
  spoke_log(SPOKE_LOG_DEBUG, "server says: %s", PQresultErrorMessage(res));
}
