/* mailbox.c: how other threads reach a loop, and how a loop ends.
 *
 * A loop's state is touched only on its own thread. Another thread (a
 * worker whose sync handler returned, a plugin's thread completing a
 * response, the control thread publishing a route table) appends a
 * message under the loop's mutex and rings its doorbell; the loop runs
 * each message's callback on its own thread, in the order they were
 * posted. uv_async_send coalesces (five rings may give one callback), so
 * every drain empties the whole list. The mailbox does not know what a
 * message means: whoever posts it sets its run callback, which is how
 * lower files (the pool, responses) reach higher ones without calling
 * them.
 *
 * References to plugin instances that a loop gives back (a finished
 * request's pin, a plugin's own spoke_plugin_release) wait in a list
 * until the loop is between callbacks: the last reference lets the
 * control thread unmap the plugin's code, and the callback that gave it
 * back may still be running that code. The list is given back before
 * each poll, from a prepare handle, when nothing but libuv is on the
 * stack.
 *
 * A loop ends once it is draining and holds no connection and no live
 * request: spoke__loop_maybe_finish closes its doorbell (under the
 * mutex, so no post can ring a closed handle) and its sweep timer, the
 * last handles that keep uv_run going.
 */
#include <stdlib.h>

#include "http/http.h"

static _Thread_local spoke__loop_t *current_loop;

int spoke__loop_is_current(const spoke__loop_t *loop) {
  return current_loop == loop;
}

void spoke__loop_set_current(spoke__loop_t *loop) { current_loop = loop; }

spoke__loop_t *spoke__loop_current(void) { return current_loop; }

void spoke__loop_defer_unref(spoke__loop_t *loop, spoke__instance_t *inst) {
  if (spoke__array_grow(&loop->unrefs, &loop->unrefs_cap, loop->nunrefs,
                        sizeof(*loop->unrefs)) != 0) {
    /* Rather than leak the version: give it back now. A reaper runs
     * finalize on the control thread, so only a callback still running
     * in the plugin's code is at risk, and only then. */
    spoke__error("out of memory: unpinning plugin %s at once", inst->name);
    spoke__instance_unref(inst);
    return;
  }
  loop->unrefs[loop->nunrefs++] = inst;
}

void spoke__loop_settle(spoke__loop_t *loop) {
  /* An unref may finalize at once (no reaper, in tests) and that runs no
   * code of ours that defers more, so a plain loop over the list holds. */
  for (size_t i = 0; i < loop->nunrefs; i++)
    spoke__instance_unref(loop->unrefs[i]);
  loop->nunrefs = 0;
}

void spoke__loop_post(spoke__loop_t *loop, spoke__msg_t *msg) {
  msg->next = NULL;
  uv_mutex_lock(&loop->mu);
  if (loop->tail)
    loop->tail->next = msg;
  else
    loop->head = msg;
  loop->tail = msg;
  /* Rung under the lock: spoke__loop_maybe_finish closes the doorbell
   * under it too, so no send can reach a closed handle. */
  uv_async_send(&loop->doorbell);
  uv_mutex_unlock(&loop->mu);
}

void spoke__mailbox_drain(spoke__loop_t *loop) {
  spoke__msg_t *msg, *next;
  uv_mutex_lock(&loop->mu);
  msg = loop->head;
  loop->head = loop->tail = NULL;
  uv_mutex_unlock(&loop->mu);
  for (; msg != NULL; msg = next) {
    next = msg->next; /* run may free or reuse msg */
    msg->run(msg);
  }
}

void spoke__loop_maybe_finish(spoke__loop_t *loop) {
  /* Requests only a plugin that was answered for (504) still owes wait
   * for nothing the drain can give them: they do not hold the loop up
   * (request.c frees them as the loop ends). */
  if (!loop->draining || loop->closed || loop->nconns > 0 ||
      loop->live_requests > loop->norphans)
    return;
  if (loop->finishing != NULL) /* plugins close their handles first */
    loop->finishing(loop);
  uv_mutex_lock(&loop->mu);
  loop->closed = 1;
  uv_close((uv_handle_t *)&loop->doorbell, NULL);
  uv_mutex_unlock(&loop->mu);
  uv_close((uv_handle_t *)&loop->sweep, NULL); /* timeouts.c's */
  uv_close((uv_handle_t *)&loop->settle, NULL);
  uv_close((uv_handle_t *)&loop->lag, NULL); /* loop.c's */
}
