/* accesslog.c: one line per answered request (--access-log FILE or -).
 *
 * The format is the Combined Log Format with the request time appended,
 * in seconds (nginx's $request_time):
 *
 *   127.0.0.1 - - [24/Nov/2026:11:06:32 +0000] "GET /hello HTTP/1.1" 200 13
 *   "-" "curl/7.88.1" 0.000
 *
 * (one line). Bytes are the response body's; quotes, backslashes and
 * control bytes in the request line and headers are written as \xHH so a
 * client cannot forge a line.
 *
 * Threads: a loop formats lines into its own buffer and writes the
 * buffer with one write(2) at the end of each loop iteration (a uv_check
 * handle), so logging costs no lock and no syscall per request. The file
 * is one descriptor for the whole process; SIGUSR1 (logrotate's
 * convention) opens the path again and dup2()s the new file onto that
 * descriptor, which swaps it for every loop at once.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "http/http.h"

static int log_fd = -1;        /* set before loops start; dup2'd onto */
static const char *log_path;   /* NULL for standard output */

#define FLUSH_AT (32 * 1024)   /* write mid-iteration past this much */

int spoke__accesslog_enabled(void) { return log_fd >= 0; }

int spoke__accesslog_open(const char *path) {
  if (strcmp(path, "-") == 0) {
    log_fd = STDOUT_FILENO;
    log_path = NULL;
    return 0;
  }
  log_fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
  if (log_fd < 0) {
    spoke__error("--access-log %s: %s", path, strerror(errno));
    return SPOKE_EIO;
  }
  log_path = path;
  return 0;
}

void spoke__accesslog_reopen(void) {
  int fd;
  if (log_fd < 0 || log_path == NULL)
    return;
  fd = open(log_path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0) {
    spoke__error("SIGUSR1: cannot reopen access log %s: %s (still writing "
                 "to the old file)", log_path, strerror(errno));
    return;
  }
  if (dup3(fd, log_fd, O_CLOEXEC) < 0)
    spoke__error("SIGUSR1: reopening access log %s: %s", log_path,
                 strerror(errno));
  else
    spoke__info("SIGUSR1: reopened access log %s", log_path);
  close(fd);
}

void spoke__accesslog_close(void) {
  if (log_fd >= 0 && log_path != NULL)
    close(log_fd);
  log_fd = -1;
}

static void flush(spoke__loop_t *loop) {
  spoke__buf_t *b = &loop->alog;
  size_t off = 0;
  while (off < b->len) {
    ssize_t n = write(log_fd, b->data + off, b->len - off);
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0)
      break; /* a full disk loses lines, never requests */
    off += (size_t)n;
  }
  spoke__buf_reset(b);
}

static void flush_cb(uv_check_t *h) {
  spoke__loop_t *loop = h->data;
  if (loop->alog.len > 0)
    flush(loop);
}

void spoke__accesslog_loop_init(spoke__loop_t *loop) {
  if (log_fd < 0)
    return;
  uv_check_init(&loop->uv, &loop->alog_flush);
  loop->alog_flush.data = loop;
  uv_check_start(&loop->alog_flush, flush_cb);
  uv_unref((uv_handle_t *)&loop->alog_flush); /* never keeps a loop alive */
}

void spoke__accesslog_loop_close(spoke__loop_t *loop) {
  if (log_fd < 0)
    return;
  if (loop->alog.len > 0)
    flush(loop);
  if (!uv_is_closing((uv_handle_t *)&loop->alog_flush))
    uv_close((uv_handle_t *)&loop->alog_flush, NULL);
}

/* S, or "-" when NULL or empty, with quotes, backslashes and control
 * bytes escaped. */
static void field(spoke__buf_t *b, const char *s) {
  if (s == NULL || *s == '\0') {
    spoke__buf_append(b, "-", 1);
    return;
  }
  for (; *s; s++) {
    unsigned char c = (unsigned char)*s;
    if (c < 0x20 || c == 0x7f || c == '"' || c == '\\')
      spoke__buf_appendf(b, "\\x%02X", c);
    else
      spoke__buf_append(b, s, 1);
  }
}

/* "[24/Nov/2026:11:06:32 +0000]", cached for the current second. */
static const char *clf_time(void) {
  static _Thread_local spoke__timebuf_t tb = {-1, ""};
  return spoke__time_now(&tb, "[%d/%b/%Y:%H:%M:%S +0000]");
}

void spoke__accesslog_request(spoke_request_t *req) {
  spoke__buf_t *b;
  double secs;
  if (log_fd < 0)
    return;
  b = &req->loop->alog;
  secs = (double)(uv_hrtime() - req->t_start) / 1e9;
  spoke__buf_appendf(b, "%s - - %s \"", req->peer[0] ? req->peer : "-",
                     clf_time());
  if (req->method != NULL) {
    field(b, req->method);
    spoke__buf_append(b, " ", 1);
    field(b, req->url);
    spoke__buf_appendf(b, " HTTP/%u.%u", req->http_major, req->http_minor);
  } else {
    spoke__buf_append(b, "-", 1); /* refused before a request line */
  }
  spoke__buf_appendf(b, "\" %d %llu \"", req->status,
                     (unsigned long long)req->body_sent);
  field(b, spoke__request_header(req, "Referer"));
  spoke__buf_append(b, "\" \"", 3);
  field(b, spoke__request_header(req, "User-Agent"));
  spoke__buf_appendf(b, "\" %.3f\n", secs);
  if (b->len >= FLUSH_AT)
    flush(req->loop);
}
