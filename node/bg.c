/* bg — runs slow work that must not stall the loop (copying the store for a snapshot) on a
 * thread of its own; the completion comes back to the loop through a pipe. */
#include "node/node_int.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "node/log.h"

struct node_bg {
    struct node *n;
    pthread_t thread;
    int fds[2];
    struct event *ev;
    node_bg_work_fn work;
    node_bg_done_fn done;
    void *arg;
    int result;
    struct node_bg *next;
};

static void *bg_main(void *p)
{
    struct node_bg *b = p;
    char c = 1;
    ssize_t w;
    b->result = b->work(b->arg);
    do
        w = write(b->fds[1], &c, 1);
    while (w < 0 && errno == EINTR);
    return NULL;
}

static void bg_unlink(struct node *n, struct node_bg *b)
{
    struct node_bg **pp;
    for (pp = &n->bgs; *pp; pp = &(*pp)->next)
        if (*pp == b) {
            *pp = b->next;
            break;
        }
}

static void bg_ready(evutil_socket_t fd, short what, void *p)
{
    struct node_bg *b = p;
    struct node *n = b->n;
    (void)fd;
    (void)what;
    bg_unlink(n, b);
    pthread_join(b->thread, NULL);
    b->thread = pthread_self(); /* joined: bg_free must not join again */
    if (b->done)
        b->done(n, b->arg, b->result);
    event_free(b->ev);
    close(b->fds[0]);
    close(b->fds[1]);
    free(b);
}

int node_bg_run(struct node *n, node_bg_work_fn work, node_bg_done_fn done, void *arg)
{
    struct node_bg *b = calloc(1, sizeof(*b));
    if (!b)
        return -1;
    b->n = n;
    b->work = work;
    b->done = done;
    b->arg = arg;
    if (pipe2(b->fds, O_CLOEXEC) != 0) {
        free(b);
        return -1;
    }
    b->ev = event_new(n->base, b->fds[0], EV_READ, bg_ready, b);
    if (!b->ev || event_add(b->ev, NULL) != 0 || pthread_create(&b->thread, NULL, bg_main, b) != 0) {
        if (b->ev)
            event_free(b->ev);
        close(b->fds[0]);
        close(b->fds[1]);
        free(b);
        return -1;
    }
    b->next = n->bgs;
    n->bgs = b;
    return 0;
}

/* Waits for every running job (their done callbacks run with `stopping` set). */
void node_bg_drain(struct node *n)
{
    while (n->bgs) {
        struct node_bg *b = n->bgs;
        n->bgs = b->next;
        pthread_join(b->thread, NULL);
        b->thread = pthread_self();
        if (b->done)
            b->done(n, b->arg, b->result);
        event_free(b->ev);
        b->ev = NULL;
        close(b->fds[0]);
        close(b->fds[1]);
        free(b);
    }
}
