/* watch.c: the plugins directory watcher.
 *
 * libuv 1.44's uv_fs_event does not report IN_CLOSE_WRITE, so a `cp`
 * over a plugin shows up as many change events while the file is
 * half-written. spoke reads inotify itself through a uv_poll_t and acts
 * only on the events that mean "a file is complete or gone":
 * IN_CLOSE_WRITE (written in place, `cp new.so hello.so`), IN_MOVED_TO
 * (`mv new.so hello.so`, the atomic way), IN_DELETE and IN_MOVED_FROM.
 * Each is debounced per file name (a timer restarted by every event), so
 * a burst makes one reload. A file that still fails to load is retried
 * on its next event; a queue overflow rescans the whole directory, as
 * SIGHUP does. Control thread only.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <unistd.h>

#include "ctl/ctl.h"

typedef struct pending_s {
  uv_timer_t timer;
  spoke__server_t *srv;
  struct pending_s *next;
  char file[256];
} pending_t;

static int inotify_fd = -1;
static uv_poll_t poller;
static pending_t *pending; /* files waiting out their debounce */

static void pending_closed(uv_handle_t *h) { free(h->data); }

static void pending_unlink(pending_t *p) {
  pending_t **pp = &pending;
  while (*pp != p)
    pp = &(*pp)->next;
  *pp = p->next;
}

static void pending_fire(uv_timer_t *t) {
  pending_t *p = t->data;
  pending_unlink(p);
  if (p->file[0] == '\0')
    spoke__reload_scan(p->srv, 0);
  else
    spoke__reload_file(p->srv, p->file, 1);
  uv_close((uv_handle_t *)&p->timer, pending_closed);
}

/* (Re)starts FILE's debounce timer; "" means the whole directory. */
static void schedule(spoke__server_t *srv, const char *file) {
  pending_t *p;
  for (p = pending; p != NULL; p = p->next)
    if (strcmp(p->file, file) == 0)
      break;
  if (p == NULL) {
    p = calloc(1, sizeof(*p));
    if (p == NULL)
      return;
    p->srv = srv;
    snprintf(p->file, sizeof(p->file), "%s", file);
    uv_timer_init(srv->control, &p->timer);
    p->timer.data = p;
    p->next = pending;
    pending = p;
  }
  uv_timer_start(&p->timer, pending_fire, srv->cfg.watch_debounce_ms, 0);
}

static void on_events(uv_poll_t *h, int status, int events) {
  spoke__server_t *srv = h->data;
  _Alignas(struct inotify_event) char buf[8192];
  (void)events;
  if (status < 0)
    return;
  for (;;) {
    ssize_t n = read(inotify_fd, buf, sizeof(buf));
    if (n <= 0)
      break;
    for (char *p = buf; p < buf + n;) {
      struct inotify_event *ev = (struct inotify_event *)p;
      p += sizeof(*ev) + ev->len;
      if (ev->mask & IN_Q_OVERFLOW) {
        spoke__warn("plugins directory: too many events at once; rescanning");
        schedule(srv, "");
      } else if (ev->mask & (IN_DELETE_SELF | IN_MOVE_SELF)) {
        spoke__error("plugins directory %s was removed or moved: no longer "
                     "watched (the loaded plugins keep serving)",
                     srv->cfg.plugins_dir);
      } else if (ev->len > 0 && spoke__admit_is_plugin_name(ev->name)) {
        schedule(srv, ev->name);
      }
    }
  }
}

int spoke__watch_start(spoke__server_t *srv) {
  int wd;
  inotify_fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
  if (inotify_fd < 0) {
    spoke__error("cannot watch %s: inotify: %s (reload with SIGHUP)",
                 srv->cfg.plugins_dir, strerror(errno));
    return SPOKE_EIO;
  }
  wd = inotify_add_watch(inotify_fd, srv->cfg.plugins_dir,
                         IN_CLOSE_WRITE | IN_MOVED_TO | IN_MOVED_FROM |
                             IN_DELETE | IN_DELETE_SELF | IN_MOVE_SELF |
                             IN_ONLYDIR);
  if (wd < 0) {
    spoke__error("cannot watch %s: %s (reload with SIGHUP)",
                 srv->cfg.plugins_dir, strerror(errno));
    close(inotify_fd);
    inotify_fd = -1;
    return SPOKE_EIO;
  }
  uv_poll_init(srv->control, &poller, inotify_fd);
  poller.data = srv;
  uv_poll_start(&poller, UV_READABLE, on_events);
  return 0;
}

static void poller_closed(uv_handle_t *h) {
  (void)h;
  close(inotify_fd);
  inotify_fd = -1;
}

void spoke__watch_stop(void) {
  while (pending != NULL) {
    pending_t *p = pending;
    pending = p->next;
    uv_close((uv_handle_t *)&p->timer, pending_closed);
  }
  if (inotify_fd >= 0 && !uv_is_closing((uv_handle_t *)&poller))
    uv_close((uv_handle_t *)&poller, poller_closed);
}
