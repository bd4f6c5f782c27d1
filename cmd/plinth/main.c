/* plinth — the plinth server: parses etcd's flags and runs one member until SIGTERM. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "node/config.h"
#include "node/node.h"

struct app {
    struct event_base *base;
    struct node *node;
    int stopping;
};

static void stopped(void *ud)
{
    struct app *a = ud;
    event_base_loopexit(a->base, NULL);
}

static void on_signal(evutil_socket_t sig, short what, void *ud)
{
    struct app *a = ud;
    (void)what;
    if (a->stopping++) {
        fprintf(stderr, "plinth: second signal %d, exiting now\n", (int)sig);
        event_base_loopbreak(a->base);
        return;
    }
    fprintf(stderr, "plinth: received signal %d, stopping\n", (int)sig);
    node_stop(a->node, stopped, a);
}

int main(int argc, char **argv)
{
    static struct node_config cfg;
    char err[NODE_ERRLEN];
    struct app a = {0};
    struct event *sigterm, *sigint;
    int rc;

    node_config_defaults(&cfg);
    rc = node_config_parse(&cfg, argc, argv, err, sizeof err, stdout);
    if (rc == NODE_CONFIG_EXIT_OK)
        return 0;
    if (rc != NODE_CONFIG_OK) {
        fprintf(stderr, "plinth: %s\nRun 'plinth --help' for the list of flags.\n", err);
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    a.base = event_base_new();
    if (!a.base) {
        fprintf(stderr, "plinth: cannot create the event loop\n");
        return 1;
    }
    if (node_start(&cfg, a.base, &a.node, err, sizeof err) != 0) {
        fprintf(stderr, "plinth: %s\n", err);
        event_base_free(a.base);
        return 1;
    }
    sigterm = evsignal_new(a.base, SIGTERM, on_signal, &a);
    sigint = evsignal_new(a.base, SIGINT, on_signal, &a);
    evsignal_add(sigterm, NULL);
    evsignal_add(sigint, NULL);
    event_base_dispatch(a.base);
    event_free(sigterm);
    event_free(sigint);
    node_free(a.node);
    event_base_free(a.base);
    fprintf(stderr, "plinth: stopped\n");
    return 0;
}
