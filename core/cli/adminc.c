/* adminc.c: one blocking HTTP/1.1 request to an admin listener.
 *
 * The admin listener (ctl/admin.c) takes one request per connection and
 * answers with Connection: close and a Content-Length. So the client is
 * small: connect (within 2 s, each address the name resolves to in
 * turn), send the head and the body (partial writes resumed; MSG_NOSIGNAL,
 * so a peer that left is an error, not SIGPIPE), read until the server
 * closes or the Content-Length is in, then take the status line, the
 * Content-Length and the body. The whole request has 10 s: every wait is
 * a poll on what is left of that deadline.
 *
 * A server that refuses a body early (413) may close while the body is
 * still going out: a send that fails is then not yet the end; what it
 * answered before closing is read and returned. An answer larger than
 * the admin's own upload limit, plus room for its head, is an error,
 * and so are a chunked answer and one shorter than its Content-Length.
 */
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "cli/rollout.h"

#define CONNECT_MS 2000
#define REQUEST_MS 10000
#define ANSWER_MAX (SPOKE__ROLL_MAX_FILE + (1u << 16))

static long long now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Waits for EVENTS on FD until DEADLINE: 0, or -1 (errno ETIMEDOUT). */
static int wait_fd(int fd, short events, long long deadline) {
  struct pollfd p = {fd, events, 0};
  for (;;) {
    long long left = deadline - now_ms();
    int n;
    if (left <= 0) {
      errno = ETIMEDOUT;
      return -1;
    }
    n = poll(&p, 1, (int)left);
    if (n > 0)
      return 0;
    if (n < 0 && errno != EINTR)
      return -1;
  }
}

static int dial(const spoke__roll_addr_t *a, char *err, size_t errlen) {
  struct addrinfo hints, *res, *ai;
  int fd = -1, rc, one = 1;

  memset(&hints, 0, sizeof(hints));
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_NUMERICSERV;
  snprintf(err, errlen, "cannot connect");
  if ((rc = getaddrinfo(a->host, a->port, &hints, &res)) != 0) {
    snprintf(err, errlen, "cannot resolve %s: %s", a->host, gai_strerror(rc));
    return -1;
  }
  for (ai = res; ai != NULL && fd < 0; ai = ai->ai_next) {
    int soerr = 0;
    socklen_t sl = sizeof(soerr);
    fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC,
                ai->ai_protocol);
    if (fd < 0)
      continue;
    if (connect(fd, ai->ai_addr, ai->ai_addrlen) != 0 &&
        (errno != EINPROGRESS ||
         wait_fd(fd, POLLOUT, now_ms() + CONNECT_MS) != 0 ||
         getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) != 0 ||
         (errno = soerr) != 0)) {
      snprintf(err, errlen, "cannot connect: %s",
               errno == ETIMEDOUT ? "no answer within 2s" : strerror(errno));
      close(fd);
      fd = -1;
    }
  }
  freeaddrinfo(res);
  if (fd >= 0)
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  return fd;
}

/* Sends P[0..n): 0, or -1 with errno. */
static int send_all(int fd, const char *p, size_t n, long long deadline) {
  while (n > 0) {
    ssize_t k = send(fd, p, n, MSG_NOSIGNAL);
    if (k > 0) {
      p += k;
      n -= (size_t)k;
    } else if (k < 0 && errno != EAGAIN && errno != EINTR) {
      return -1;
    } else if (k < 0 && errno == EAGAIN && wait_fd(fd, POLLOUT, deadline)) {
      return -1;
    }
  }
  return 0;
}

/* The Content-Length of the head H[0..n) (ending in its blank line): 1
 * with *LEN, 0 when it has none, -1 when it is chunked or malformed. */
static int head_length(const char *h, size_t n, size_t *len) {
  const char *p = memchr(h, '\n', n), *end = h + n;
  int found = 0;
  while (p != NULL && ++p < end) {
    const char *nl = memchr(p, '\n', (size_t)(end - p));
    if (nl == NULL)
      break;
    if (strncasecmp(p, "Transfer-Encoding:", 18) == 0)
      return -1;
    if (strncasecmp(p, "Content-Length:", 15) == 0) {
      char *e;
      unsigned long long v = strtoull(p + 15, &e, 10);
      while (*e == ' ' || *e == '\t' || *e == '\r')
        e++;
      if (e != nl || v > ANSWER_MAX)
        return -1;
      *len = (size_t)v;
      found = 1;
    }
    p = nl;
  }
  return found;
}

/* Reads the answer into OUT until the peer closes, or the head's
 * Content-Length is in. 0, or -1 with ERR set. */
static int read_answer(int fd, spoke__buf_t *out, long long deadline,
                       size_t *head, int *has_len, size_t *len, char *err,
                       size_t errlen) {
  *head = 0;
  for (;;) {
    ssize_t k;
    if (*head == 0 && out->len > 0) {
      char *blank = memmem(out->data, out->len, "\r\n\r\n", 4);
      if (blank != NULL) {
        *head = (size_t)(blank - out->data) + 4;
        if ((*has_len = head_length(out->data, *head, len)) < 0) {
          snprintf(err, errlen, "an answer without a usable Content-Length");
          return -1;
        }
      }
    }
    if (*head > 0 && *has_len && out->len - *head >= *len)
      return 0;
    if (out->len > ANSWER_MAX || spoke__buf_reserve(out, 65536) != 0) {
      snprintf(err, errlen, "an answer too large");
      return -1;
    }
    k = recv(fd, out->data + out->len, 65536, 0);
    if (k > 0) {
      out->len += (size_t)k;
      out->data[out->len] = '\0';
    } else if (k == 0) {
      return 0;
    } else if (errno != EAGAIN && errno != EINTR) {
      snprintf(err, errlen, "reading the answer: %s", strerror(errno));
      return -1;
    } else if (errno == EAGAIN && wait_fd(fd, POLLIN, deadline) != 0) {
      snprintf(err, errlen, "no complete answer within %ds",
               REQUEST_MS / 1000);
      return -1;
    }
  }
}

int spoke__adminc_request(const spoke__roll_addr_t *a, const char *method,
                          const char *path, const char *token,
                          const void *body, size_t len, int *status,
                          spoke__buf_t *out, char *err, size_t errlen) {
  long long deadline = now_ms() + REQUEST_MS;
  spoke__buf_t head = {0};
  size_t head_len = 0, body_len = 0;
  int fd, has_len = 0, sent, rc;

  spoke__buf_reset(out);
  *status = 0;
  if ((fd = dial(a, err, errlen)) < 0)
    return SPOKE_EIO;
  rc = spoke__buf_appendf(&head, "%s %s HTTP/1.1\r\nHost: %s\r\n"
                          "User-Agent: spoke-rollout\r\nConnection: close\r\n",
                          method, path, a->text);
  if (rc == 0 && token != NULL)
    rc = spoke__buf_appendf(&head, "Authorization: Bearer %s\r\n", token);
  if (rc == 0 && body != NULL)
    rc = spoke__buf_appendf(&head, "Content-Length: %zu\r\n", len);
  if (rc == 0)
    rc = spoke__buf_append(&head, "\r\n", 2);
  if (rc != 0) {
    close(fd);
    snprintf(err, errlen, "out of memory");
    return SPOKE_ENOMEM;
  }
  sent = send_all(fd, head.data, head.len, deadline) == 0 &&
         (body == NULL || send_all(fd, body, len, deadline) == 0);
  if (!sent)
    snprintf(err, errlen, "sending the request: %s",
             errno == ETIMEDOUT ? "not sent within 10s" : strerror(errno));
  spoke__buf_free(&head);
  /* Even when sending failed: the server may have answered and closed. */
  rc = read_answer(fd, out, deadline, &head_len, &has_len, &body_len,
                   sent ? err : NULL, sent ? errlen : 0);
  close(fd);
  if (rc == 0 && (head_len == 0 ||
                  sscanf(out->data, "HTTP/1.%*1[01] %3d", status) != 1 ||
                  *status < 100 || *status > 599)) {
    if (sent || out->len > 0)
      snprintf(err, errlen, out->len > 0 ? "not an HTTP answer"
                                         : "closed without an answer");
    rc = -1;
  } else if (rc == 0 && has_len && out->len - head_len < body_len) {
    snprintf(err, errlen, "the answer ended before its Content-Length");
    rc = -1;
  }
  if (rc != 0) {
    *status = 0;
    spoke__buf_reset(out);
    return SPOKE_EIO;
  }
  if (!has_len)
    body_len = out->len - head_len;
  memmove(out->data, out->data + head_len, body_len);
  out->len = body_len;
  out->data[body_len] = '\0';
  return 0;
}
