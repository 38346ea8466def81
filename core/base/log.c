/* log.c: one line per event on stderr.
 *
 * Each line is formatted into a stack buffer and written with a single
 * write(2), so lines from different threads never interleave. Format:
 *   2026-11-24T08:40:01.123Z spoke[123] info: listening on 127.0.0.1:8080
 * spoke__log_level is set once at start-up and only read afterwards.
 */
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "base/base.h"

int spoke__log_level = SPOKE_LOG_INFO;

static const char *level_name(int level) {
  switch (level) {
    case SPOKE_LOG_ERROR: return "error";
    case SPOKE_LOG_WARN: return "warn";
    case SPOKE_LOG_INFO: return "info";
    default: return "debug";
  }
}

void spoke__logv_tagged(int level, const char *tag, const char *fmt,
                        va_list ap) {
  char line[2048];
  size_t n;
  struct timespec ts;
  time_t now;
  struct tm tm;
  int w;

  if (level > spoke__log_level)
    return;
  clock_gettime(CLOCK_REALTIME, &ts);
  now = ts.tv_sec;
  gmtime_r(&now, &tm);
  n = strftime(line, sizeof(line), "%Y-%m-%dT%H:%M:%S", &tm);
  w = snprintf(line + n, sizeof(line) - n, ".%03ldZ spoke[%d] %s: %s%s",
               ts.tv_nsec / 1000000, (int)getpid(), level_name(level),
               tag ? tag : "", tag ? ": " : "");
  if (w > 0)
    n += (size_t)w < sizeof(line) - n ? (size_t)w : sizeof(line) - n - 1;
  w = vsnprintf(line + n, sizeof(line) - n, fmt, ap);
  if (w > 0)
    n += (size_t)w < sizeof(line) - n ? (size_t)w : sizeof(line) - n - 1;
  /* One event, one line: fold any newline the message carries. */
  for (size_t i = 0; i < n; i++)
    if (line[i] == '\n' || line[i] == '\r')
      line[i] = ' ';
  if (n >= sizeof(line) - 1)
    n = sizeof(line) - 2;
  line[n++] = '\n';
  (void)!write(STDERR_FILENO, line, n);
}

void spoke__log(int level, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  spoke__logv_tagged(level, NULL, fmt, ap);
  va_end(ap);
}
