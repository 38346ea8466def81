/* options.h: the shape of one entry in the option table (ctl/config.c).
 *
 * The table itself lives in config.c and is the only place an option is
 * described: its flag, the kind of value it takes, the field of
 * spoke__config_t it sets, its default, its bounds and its help text.
 * The command line, the config file, --help, the defaults and the checks
 * are all driven from it. This header exists so the unit tests can walk
 * the same table (spoke__config_options) instead of a copy of it; the
 * server proper only uses the functions in ctl.h.
 *
 * Invariants the table keeps (tests/unit/test_config.c checks them):
 * every entry has help text; every entry that takes a value has a default
 * or a note on what happens without one; every built-in default passes
 * the entry's own parser and bounds; numeric fields are only written
 * with values inside [lo, hi].
 */
#ifndef SPOKE_CTL_OPTIONS_H
#define SPOKE_CTL_OPTIONS_H

#include <stddef.h>
#include <stdint.h>

#include "base/config.h"

/* What the value looks like on the command line or in the file. */
typedef enum {
  SPOKE__OPT_COUNT, /* a plain number: 16 */
  SPOKE__OPT_SIZE,  /* bytes, k/m/g suffixes (powers of 1024): 16k */
  SPOKE__OPT_TIME,  /* seconds, or milliseconds with ms: 30, 30s, 500ms */
  SPOKE__OPT_ENUM,  /* one of NAMES; the field gets its index */
  SPOKE__OPT_PATH,  /* a string kept as given (argv or file text) */
  SPOKE__OPT_CUSTOM /* PARSE does all of it (host:port, --config) */
} spoke__opt_kind_t;

/* The C type of the field at OFF. */
typedef enum {
  SPOKE__OPT_NONE, /* no single field (custom) */
  SPOKE__OPT_INT,
  SPOKE__OPT_SIZE_T,
  SPOKE__OPT_U64,
  SPOKE__OPT_STR /* const char * */
} spoke__opt_ctype_t;

enum {
  SPOKE__OPT_CLI = 1,     /* command line only: not a setting */
  SPOKE__OPT_NOVALUE = 2, /* takes no value (--help, --version) */
  SPOKE__OPT_OFF = 4      /* PATH: "" or "off" leave the field NULL */
};

typedef struct spoke__opt_s spoke__opt_t;
struct spoke__opt_s {
  const char *name;   /* without the dashes: "max-body" */
  const char *arg;    /* the value's name in --help, or NULL */
  spoke__opt_kind_t kind;
  spoke__opt_ctype_t ctype;
  size_t off;         /* offsetof(spoke__config_t, field) */
  long long lo, hi;   /* numeric kinds: allowed range (TIME: in ms) */
  const char *def;    /* default, as a user would write it; or NULL */
  /* A default computed at start (--loops), written into BUF. */
  const char *(*def_fn)(char *buf, size_t cap);
  const char *def_note; /* --help's "default" when DEF is NULL */
  const char *const *names; /* ENUM: the accepted words */
  /* CUSTOM: parses V into CFG; 0, 1 (stop: printed --help or
   * --version), or a negative SPOKE_E* code with the reason in ERR. */
  int (*parse)(spoke__config_t *cfg, const spoke__opt_t *o, const char *v,
               char *err, size_t errlen);
  unsigned flags;
  const char *group;  /* a heading printed before this entry, or NULL */
  const char *help;
};

/* The table, for tests: N gets the number of entries. */
const spoke__opt_t *spoke__config_options(size_t *n);
/* The entry for NAME ("max-body" or "--max-body"), or NULL. */
const spoke__opt_t *spoke__config_option(const char *name);

/* The numeric field of O in CFG (COUNT, SIZE, TIME, ENUM entries). */
static inline long long spoke__opt_number(const spoke__config_t *cfg,
                                          const spoke__opt_t *o) {
  const char *p = (const char *)cfg + o->off;
  switch (o->ctype) {
    case SPOKE__OPT_INT: return *(const int *)(const void *)p;
    case SPOKE__OPT_SIZE_T: return (long long)*(const size_t *)(const void *)p;
    case SPOKE__OPT_U64: return (long long)*(const uint64_t *)(const void *)p;
    default: return -1;
  }
}

#endif /* SPOKE_CTL_OPTIONS_H */
