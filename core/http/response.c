/* response.c: turning a plugin's response into bytes on the wire.
 *
 * The producing thread (a handler on the loop, a pool thread, or any
 * thread of the plugin's) serializes the status line, headers and body
 * into one spoke__out_t and posts it to the request's loop; the loop
 * sends it with one write (write.c). A whole response is serialized
 * into the request's own wire buffer and carried by the request's own
 * out, both reused with the request, so it allocates nothing; streamed
 * pieces get an out each. Whole responses carry Content-Length;
 * streamed ones use chunked encoding (HTTP/1.1) or end by closing
 * (HTTP/1.0), unless the plugin declared their length (SDK 1.5
 * spoke_response_length: Content-Length, and the stream is held to it).
 * A file body (spoke_response_file) is the head's bytes in the request's
 * own out plus the descriptor, offset and length; the loop sends the
 * file with sendfile (write.c), so it costs neither a copy nor a thread.
 * HEAD responses carry GET's headers and no body. Every response has
 * Date.
 *
 * Completion: `completed` is claimed with a compare-and-swap, so of two
 * racing completions exactly one wins; the other is logged and returns
 * SPOKE_EALREADY. The fields the plugin sets (status, headers) belong to
 * the one thread handling the request until it completes; the loop sees
 * them as serialized bytes, and reads status and body_sent (stats, access
 * log) only after the last out has come through the mailbox's mutex.
 *
 * Ordering: an out is delivered in place when produced on the loop
 * thread, unless earlier outs of the same request still sit in the
 * mailbox; then it queues behind them.
 *
 * Back-pressure: a streamed response to a client that reads slowly (or
 * not at all) would queue every chunk in memory. A writer on any thread
 * but the loop's waits while more than SPOKE__STREAM_HIGH_WATER bytes of its
 * request are queued, until the loop has written them down to half that,
 * or the client is gone (SPOKE_ECANCELED; --send-timeout cuts off a
 * client that reads nothing). The loop thread cannot wait: an async
 * handler streaming from the loop holds itself back instead, writing
 * while spoke_response_pending() is below what it will buffer and then
 * registering a drain callback (spoke__response_on_drain), which runs
 * from the loop once the queue is down to the low-water mark, half of
 * SPOKE__STREAM_HIGH_WATER, or not at all if the client leaves first
 * (request.c: where the queue goes down, and why the call is deferred).
 */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "http/http.h"

int spoke__response_closes(const spoke_request_t *req, int streamed) {
  return !req->keep_alive || req->resp_close ||
         (streamed && req->http_minor == 0 && !req->is_head);
}

int spoke__response_head(spoke_request_t *req, spoke__buf_t *out,
                         long long body_len) {
  spoke__head_t h = {
      .status = req->status,
      .headers = req->resp_headers.data,
      .headers_len = req->resp_headers.len,
      .body_len = body_len,
      .http_minor = req->http_minor,
      .close = (uint8_t)spoke__response_closes(req, body_len < 0),
  };
  return spoke__head_write(out, &h);
}

/* ---- handing bytes to the loop ---- */

/* A writer off the loop waits for room. 0, or SPOKE_ECANCELED. */
static int wait_for_room(spoke_request_t *req) {
  spoke__loop_t *loop = req->loop;
  if (atomic_load(&req->queued) <= SPOKE__STREAM_HIGH_WATER ||
      spoke__loop_is_current(loop))
    return 0;
  atomic_fetch_add(&req->waiting, 1);
  uv_mutex_lock(&loop->mu);
  while (atomic_load(&req->queued) > SPOKE__STREAM_LOW_WATER &&
         !atomic_load(&req->aborted))
    uv_cond_timedwait(&loop->drained, &loop->mu, 1000000000ULL);
  uv_mutex_unlock(&loop->mu);
  atomic_fetch_sub(&req->waiting, 1);
  return atomic_load(&req->aborted) ? SPOKE_ECANCELED : 0;
}

/* Hands OUT (bytes of REQ, FLAGS) to the loop: delivered in place on the
 * loop thread unless earlier outs of REQ still sit in the mailbox. */
static void post(spoke_request_t *req, spoke__out_t *out, unsigned flags) {
  atomic_fetch_add(&req->queued, out->len);
  out->msg.run = req->loop->deliver;
  out->msg.next = NULL;
  out->req = req;
  out->flags = flags;
  out->via_mailbox = 0;
  if (spoke__loop_is_current(req->loop) &&
      atomic_load(&req->in_mailbox) == 0) {
    req->loop->deliver(&out->msg);
    return;
  }
  out->via_mailbox = 1;
  atomic_fetch_add(&req->in_mailbox, 1);
  spoke__loop_post(req->loop, &out->msg);
}

/* Posts a copy of BYTES (a streamed piece, or none). */
static void post_out(spoke_request_t *req, const spoke__buf_t *bytes,
                     unsigned flags) {
  spoke__out_t *out = spoke__out_new(bytes->len);
  if (out == NULL) {
    /* Nothing sensible to send; end the request so it is not lost. */
    spoke__error("out of memory for a response; closing the connection");
    out = spoke__out_new(0);
    if (out == NULL)
      abort(); /* the process cannot go on without memory */
    flags |= SPOKE__OUT_CLOSE;
  } else if (bytes->len) {
    memcpy(out->data, bytes->data, bytes->len);
  }
  post(req, out, flags);
}

/* Posts the request's wire buffer, in the request's own out. */
static void post_wire(spoke_request_t *req, unsigned flags) {
  spoke__out_t *out = &req->out;
  out->data = req->wire.data;
  out->len = req->wire.len;
  post(req, out, flags | SPOKE__OUT_EMBEDDED);
}

/* ---- completion ---- */

static const char *plugin_name(const spoke_request_t *req) {
  const spoke__instance_t *inst = spoke__request_inst(req);
  return inst ? inst->name : req->plugin_name[0] ? req->plugin_name : "core";
}

/* Claims the completion for the core (a 404, a 504 ...). */
static int claim(spoke_request_t *req) {
  int expected = 0;
  return atomic_compare_exchange_strong(&req->completed, &expected, 1)
             ? 0
             : SPOKE_EALREADY;
}

/* Claims it for the plugin. A plugin that completes after the core has
 * answered for it (a 504) is let go of the request; one that completes
 * twice is told so and logged. */
static int plugin_claim(spoke_request_t *req, const char *what,
                        unsigned *flags) {
  int owed = atomic_exchange(&req->plugin_owes, 0);
  spoke__buf_t none = {0};
  if (claim(req) == 0) {
    /* An async plugin's completion pays what it owed: its PLUGIN hold
     * goes with the last bytes. A sync handler owed nothing. */
    *flags = owed ? SPOKE__OUT_PLUGIN : 0;
    return 0;
  }
  if (owed) {
    spoke__info("plugin %s: %s %s completed after the server had answered "
                "for it (discarded)",
                plugin_name(req), req->method, req->path);
    post_out(req, &none, SPOKE__OUT_RELEASE);
  } else {
    spoke__warn("plugin %s: %s on %s %s after the request was completed "
                "(ignored)",
                plugin_name(req), what, req->method ? req->method : "-",
                req->path ? req->path : "-");
  }
  return SPOKE_EALREADY;
}

/* Serializes a whole response with BODY and posts it. Claimed already;
 * FLAGS adds SPOKE__OUT_PLUGIN when it is an async plugin's completion. */
static int send_whole(spoke_request_t *req, const void *body, size_t len,
                      unsigned flags) {
  spoke__buf_t *b = &req->wire;
  int with_body = spoke__status_has_body(req->status);
  int rc;
  spoke__buf_reset(b);
  rc = spoke__response_head(req, b, with_body ? (long long)len : 0);
  if (rc == 0 && with_body && !req->is_head && len) {
    rc = spoke__buf_append(b, body, len);
    req->body_sent = len;
  }
  if (rc != 0)
    spoke__buf_reset(b); /* no half response: close instead */
  post_wire(req, flags | SPOKE__OUT_LAST |
                     (spoke__response_closes(req, 0) || rc != 0 ? SPOKE__OUT_CLOSE
                                                         : 0));
  return rc;
}

int spoke__response_status(spoke_request_t *req, int status) {
  if (status < 200 || status > 599)
    return SPOKE_EINVAL;
  if (atomic_load(&req->resp_started) || atomic_load(&req->completed))
    return SPOKE_ESTATE;
  req->status = status;
  return 0;
}

int spoke__response_header(spoke_request_t *req, const char *name,
                           const char *value) {
  size_t nlen, vlen;
  if (name == NULL || value == NULL)
    return SPOKE_EINVAL;
  if (atomic_load(&req->resp_started) || atomic_load(&req->completed))
    return SPOKE_ESTATE;
  nlen = strlen(name);
  vlen = strlen(value);
  if (!spoke__is_token(name, nlen))
    return SPOKE_EINVAL;
  if (!spoke__header_value_ok(value, vlen))
    return SPOKE_EINVAL; /* no CR/LF: no header injection */
  if (spoke__strcaseeq(name, "Content-Length") ||
      spoke__strcaseeq(name, "Transfer-Encoding") ||
      spoke__strcaseeq(name, "Date"))
    return SPOKE_EINVAL;
  if (spoke__strcaseeq(name, "Connection")) {
    if (!spoke__strcaseeq(value, "close"))
      return SPOKE_EINVAL;
    req->resp_close = 1;
    return 0;
  }
  if (spoke__buf_reserve(&req->resp_headers, nlen + vlen + 4) != 0)
    return SPOKE_ENOMEM;
  spoke__buf_append(&req->resp_headers, name, nlen);
  spoke__buf_append(&req->resp_headers, ": ", 2);
  spoke__buf_append(&req->resp_headers, value, vlen);
  spoke__buf_append(&req->resp_headers, "\r\n", 2);
  return 0;
}

int spoke__response_send(spoke_request_t *req, const void *body, size_t len) {
  unsigned flags;
  int rc;
  if (body == NULL && len != 0)
    return SPOKE_EINVAL;
  if (atomic_load(&req->resp_started) && !atomic_load(&req->completed))
    return SPOKE_ESTATE; /* streaming: use write and end */
  rc = plugin_claim(req, "send", &flags);
  if (rc != 0)
    return rc;
  return send_whole(req, body, len, flags);
}

int spoke__response_file(spoke_request_t *req, int fd, uint64_t offset,
                         uint64_t length) {
  spoke__buf_t *b = &req->wire;
  spoke__out_t *out = &req->out;
  unsigned flags;
  struct stat st;
  int with_body, rc;

  if (fd < 0)
    return SPOKE_EINVAL;
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) ||
      offset > (uint64_t)INT64_MAX || length > (uint64_t)INT64_MAX - offset) {
    close(fd); /* ours from the call on, whatever the answer */
    return SPOKE_EINVAL;
  }
  if (atomic_load(&req->resp_started) && !atomic_load(&req->completed)) {
    close(fd);
    return SPOKE_ESTATE; /* streaming: use write and end */
  }
  rc = plugin_claim(req, "file", &flags);
  if (rc != 0) {
    close(fd);
    return rc;
  }
  with_body = spoke__status_has_body(req->status);
  spoke__buf_reset(b);
  rc = spoke__response_head(req, b, with_body ? (long long)length : 0);
  if (rc != 0 || !with_body || req->is_head || length == 0) {
    close(fd); /* no body to send: HEAD, 204, 304, or nothing */
    if (rc != 0)
      spoke__buf_reset(b); /* no half response: close instead */
  } else {
    out->file_fd = fd;
    out->file_off = offset;
    out->file_len = length;
    flags |= SPOKE__OUT_FILE;
    req->body_sent = length;
  }
  post_wire(req, flags | SPOKE__OUT_LAST |
                     (spoke__response_closes(req, 0) || rc != 0
                          ? SPOKE__OUT_CLOSE
                          : 0));
  return rc;
}

int spoke__response_length(spoke_request_t *req, uint64_t length) {
  if (atomic_load(&req->resp_started) || atomic_load(&req->completed))
    return SPOKE_ESTATE;
  if (length > (uint64_t)LLONG_MAX)
    return SPOKE_EINVAL;
  req->resp_length = length;
  req->resp_length_set = 1;
  return 0;
}

int spoke__response_write(spoke_request_t *req, const void *data,
                          size_t len) {
  spoke__buf_t b = {0};
  int chunked = req->http_minor >= 1 && !req->resp_length_set, rc = 0;

  if (data == NULL && len != 0)
    return SPOKE_EINVAL;
  if (atomic_load(&req->completed)) {
    spoke__warn("plugin %s: write after the response ended (ignored)",
                plugin_name(req));
    return SPOKE_EALREADY;
  }
  if (req->resp_length_set && len > req->resp_length - req->body_sent)
    return SPOKE_EINVAL; /* past the declared length: nothing of it goes */
  if (wait_for_room(req) != 0)
    return SPOKE_ECANCELED;
  if (!atomic_load(&req->resp_started)) {
    atomic_store(&req->resp_started, 1);
    rc = spoke__response_head(req, &b, req->resp_length_set
                                           ? (long long)req->resp_length
                                           : -1);
  }
  if (rc == 0 && len > 0 && !req->is_head && spoke__status_has_body(req->status)) {
    if (chunked) {
      char size[24], *end = spoke__put_num(size, len, 16);
      *end++ = '\r';
      *end++ = '\n';
      rc = spoke__buf_append(&b, size, (size_t)(end - size));
    }
    if (rc == 0)
      rc = spoke__buf_append(&b, data, len);
    if (rc == 0)
      req->body_sent += len;
    if (rc == 0 && chunked)
      rc = spoke__buf_append(&b, "\r\n", 2);
  }
  if (rc == 0 && b.len > 0)
    post_out(req, &b, 0);
  spoke__buf_free(&b);
  return rc;
}

int spoke__response_end(spoke_request_t *req) {
  spoke__buf_t b = {0};
  unsigned flags;
  int rc, short_by = 0;

  if (!atomic_load(&req->resp_started))
    return spoke__response_send(req, "", 0);
  rc = plugin_claim(req, "end", &flags);
  if (rc != 0)
    return rc;
  if (req->resp_length_set) {
    int body = !req->is_head && spoke__status_has_body(req->status);
    short_by = body && req->body_sent < req->resp_length;
    if (short_by)
      spoke__warn("plugin %s: %s %s: response ended after %llu of the %llu "
                  "bytes it declared; closing the connection",
                  plugin_name(req), req->method, req->path,
                  (unsigned long long)req->body_sent,
                  (unsigned long long)req->resp_length);
  } else if (req->http_minor >= 1 && !req->is_head &&
             spoke__status_has_body(req->status)) {
    rc = spoke__buf_append(&b, "0\r\n\r\n", 5);
  }
  post_out(req, &b,
           flags | SPOKE__OUT_LAST |
               (spoke__response_closes(req, !req->resp_length_set) || short_by
                    ? SPOKE__OUT_CLOSE
                    : 0));
  spoke__buf_free(&b);
  return rc;
}

int spoke__response_simple(spoke_request_t *req, int status,
                           const char *extra_headers) {
  char body[64];
  int n = snprintf(body, sizeof(body), "%d %s\n", status,
                   spoke__status_reason(status));
  return spoke__response_text(req, status, extra_headers, body, (size_t)n);
}

int spoke__response_text(spoke_request_t *req, int status,
                         const char *extra_headers, const char *body,
                         size_t len) {
  int rc;

  rc = claim(req);
  if (rc != 0)
    return rc;
  if (atomic_load(&req->resp_started)) {
    /* Mid-stream the status line is gone: close without the last chunk,
     * so the client sees the response as cut short, not complete. */
    spoke__buf_t none = {0};
    post_out(req, &none, SPOKE__OUT_LAST | SPOKE__OUT_CLOSE);
    return 0;
  }
  req->status = status;
  spoke__buf_reset(&req->resp_headers);
  if (extra_headers != NULL)
    spoke__buf_append(&req->resp_headers, extra_headers,
                      strlen(extra_headers));
  spoke__buf_appendf(&req->resp_headers,
                     "Content-Type: text/plain; charset=utf-8\r\n");
  return send_whole(req, body, len, 0);
}

/* ---- back-pressure for loop-side streams (SDK 1.3) ---- */

size_t spoke__response_pending(const spoke_request_t *req) {
  return atomic_load(&((spoke_request_t *)req)->queued);
}

/* The checks of the SDK's contract; request.c registers and runs it. */
int spoke__response_on_drain(spoke_request_t *req, spoke_drain_cb cb) {
  if (cb == NULL)
    return SPOKE_EINVAL;
  if (!spoke__loop_is_current(req->loop))
    return SPOKE_ETHREAD;
  if (atomic_load(&req->completed))
    return SPOKE_EALREADY;
  if (atomic_load(&req->aborted))
    return SPOKE_ECANCELED; /* the abort callback has run instead */
  spoke__request_on_drain(req, cb);
  return 0;
}
