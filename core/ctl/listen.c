/* listen.c: the listening sockets, one per I/O loop, on one port.
 *
 * libuv 1.44 has no UV_TCP_REUSEPORT, so the sockets are made by hand
 * with SO_REUSEPORT and handed to uv_tcp_open. SO_REUSEPORT would also
 * let a second spoke (or anything else that sets it) bind the same port
 * and silently take half the connections, so a probe socket without it
 * is bound first: it fails if anyone holds the port, and with port 0 it
 * picks the port the real sockets then share. Runs on the main thread
 * before any loop starts.
 */
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "ctl/ctl.h"

static int open_one(const struct addrinfo *ai, int port, int reuseport,
                    char *err, size_t errlen) {
  struct sockaddr_storage ss;
  int fd, one = 1;

  memcpy(&ss, ai->ai_addr, ai->ai_addrlen);
  if (ss.ss_family == AF_INET)
    ((struct sockaddr_in *)&ss)->sin_port = htons((uint16_t)port);
  else
    ((struct sockaddr_in6 *)&ss)->sin6_port = htons((uint16_t)port);
  fd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    snprintf(err, errlen, "socket: %s", strerror(errno));
    return -1;
  }
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  if ((reuseport &&
       setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) != 0) ||
      bind(fd, (struct sockaddr *)&ss, ai->ai_addrlen) != 0) {
    snprintf(err, errlen, "bind to port %d: %s%s", port, strerror(errno),
             errno == EADDRINUSE ? " (is another server running there?)"
                                 : "");
    close(fd);
    return -1;
  }
  return fd;
}

static int bound_port_of(int fd) {
  struct sockaddr_storage ss;
  socklen_t sl = sizeof(ss);
  getsockname(fd, (struct sockaddr *)&ss, &sl);
  return ntohs(ss.ss_family == AF_INET
                   ? ((struct sockaddr_in *)&ss)->sin_port
                   : ((struct sockaddr_in6 *)&ss)->sin6_port);
}

int spoke__listen_open(const char *host, int port, int n, int *fds,
                       int *bound_port, char *err, size_t errlen) {
  struct addrinfo hints, *ai = NULL;
  int rc, i, probe;

  memset(&hints, 0, sizeof(hints));
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE;
  rc = getaddrinfo(host, NULL, &hints, &ai);
  if (rc != 0) {
    snprintf(err, errlen, "cannot resolve %s: %s", host, gai_strerror(rc));
    return SPOKE_EINVAL;
  }
  probe = open_one(ai, port, 0, err, errlen);
  if (probe < 0) {
    freeaddrinfo(ai);
    return SPOKE_EIO;
  }
  *bound_port = bound_port_of(probe);
  close(probe);
  for (i = 0; i < n; i++) {
    fds[i] = open_one(ai, *bound_port, 1, err, errlen);
    if (fds[i] < 0)
      break;
  }
  freeaddrinfo(ai);
  if (i < n) {
    while (i-- > 0)
      close(fds[i]);
    return SPOKE_EIO;
  }
  return 0;
}
