/* grpc_client — the gRPC client object: options, the endpoint list, metadata, and its
 * life. Connections live in grpc_client_conn.c, calls and streams in grpc_client_call.c. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "net/grpc_client_internal.h"
#include "net/tls.h"

uint64_t gc_now_ms(struct net_grpc_client *c)
{
    (void)c;
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

void gc_kick(struct net_grpc_client *c)
{
    if (c && c->kick)
        event_active(c->kick, EV_TIMEOUT, 0);
}

/* --- endpoints ------------------------------------------------------------------- */

static char *xstrndup(const char *s, size_t n)
{
    char *p = malloc(n + 1);
    if (p) {
        memcpy(p, s, n);
        p[n] = 0;
    }
    return p;
}

/* Parses one "https://host:port" (or http://, or bare host:port) into ep. */
static int parse_endpoint(const char *s, size_t n, struct gc_endpoint *ep, char *err,
                          size_t errlen)
{
    while (n && (*s == ' ' || *s == '\t')) s++, n--;
    while (n && (s[n - 1] == ' ' || s[n - 1] == '\t' || s[n - 1] == '/')) n--;
    const char *u = s;
    size_t un = n;
    memset(ep, 0, sizeof(*ep));
    if (n >= 8 && !strncmp(s, "https://", 8)) {
        ep->tls = true;
        s += 8, n -= 8;
    } else if (n >= 7 && !strncmp(s, "http://", 7)) {
        s += 7, n -= 7;
    } else if (memchr(s, '/', n)) {
        snprintf(err, errlen, "grpc client: endpoint \"%.*s\": scheme must be http or https",
                 (int)un, u);
        return -1;
    }
    const char *host = s, *port = NULL;
    size_t hn;
    if (n && *s == '[') {
        const char *rb = memchr(s, ']', n);
        if (!rb)
            goto bad;
        host = s + 1;
        hn = (size_t)(rb - s - 1);
        if (rb + 1 < s + n) {
            if (rb[1] != ':')
                goto bad;
            port = rb + 2;
        }
    } else {
        const char *colon = memchr(s, ':', n);
        hn = colon ? (size_t)(colon - s) : n;
        if (colon)
            port = colon + 1;
    }
    size_t pn = port ? (size_t)(s + n - port) : 0;
    if (hn == 0 || (port && (pn == 0 || pn > 5 || strspn(port, "0123456789") < pn)))
        goto bad;
    ep->url = xstrndup(u, un);
    ep->host = xstrndup(host, hn);
    ep->port = port ? xstrndup(port, pn) : strdup("2379");
    if (!ep->url || !ep->host || !ep->port)
        return -2;
    bool v6 = memchr(host, ':', hn) != NULL;
    size_t al = hn + strlen(ep->port) + 4;
    ep->authority = malloc(al);
    if (!ep->authority)
        return -2;
    snprintf(ep->authority, al, v6 ? "[%s]:%s" : "%s:%s", ep->host, ep->port);
    return 0;
bad:
    snprintf(err, errlen, "grpc client: endpoint \"%.*s\": want scheme://host:port",
             (int)un, u);
    return -1;
}

static void free_endpoints(struct net_grpc_client *c)
{
    for (int i = 0; i < c->neps; i++) {
        free(c->eps[i].url);
        free(c->eps[i].host);
        free(c->eps[i].port);
        free(c->eps[i].authority);
    }
    free(c->eps);
    c->eps = NULL;
    c->neps = 0;
}

/* Copies a "name", "value", ..., NULL list; *out is NULL for an empty list. */
int gc_copy_md(const char *const *md, char ***out)
{
    *out = NULL;
    if (!md || !md[0])
        return 0;
    size_t n = 0;
    while (md[n] && md[n + 1])
        n += 2;
    char **v = calloc(n + 1, sizeof(*v));
    if (!v)
        return -1;
    for (size_t i = 0; i < n; i++)
        if (!(v[i] = strdup(md[i]))) {
            gc_free_md(v);
            return -1;
        }
    *out = v;
    return 0;
}

void gc_free_md(char **md)
{
    if (!md)
        return;
    for (size_t i = 0; md[i]; i++)
        free(md[i]);
    free(md);
}

/* --- the client ------------------------------------------------------------------ */

/* A write to a connection the server just closed must be an error, not the death of the
 * process: ignore SIGPIPE unless the program chose its own handling. */
static void ignore_sigpipe(void)
{
    struct sigaction sa;
    if (sigaction(SIGPIPE, NULL, &sa) == 0 && sa.sa_handler == SIG_DFL)
        signal(SIGPIPE, SIG_IGN);
}

/* The sync helpers' timer only has to end event_base_loop(EVLOOP_ONCE). */
static void wake_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd, (void)what, (void)arg;
}

struct net_grpc_client *net_grpc_client_new(const struct net_grpc_client_opts *o,
                                            struct net_grpc_status *st)
{
    struct net_grpc_status dummy;
    if (!st)
        st = &dummy;
    gc_status_set(st, NET_GRPC_OK, "%s", "");
    if (!o || !o->endpoints || !o->endpoints[0]) {
        gc_status_set(st, NET_GRPC_INVALID_ARGUMENT, "grpc client: no endpoints");
        return NULL;
    }
    ignore_sigpipe();
    struct net_grpc_client *c = calloc(1, sizeof(*c));
    if (!c)
        goto nomem;
    c->dial_timeout_ms = o->dial_timeout_ms > 0 ? o->dial_timeout_ms : 5000;
    c->call_timeout_ms = o->call_timeout_ms == 0 ? 5000 : o->call_timeout_ms;
    c->max_recv = o->max_recv_bytes ? o->max_recv_bytes : (64u << 20);
    c->ka_ms = o->keepalive_ms > 0 ? o->keepalive_ms : 0;
    c->ka_timeout_ms = o->keepalive_timeout_ms > 0 ? o->keepalive_timeout_ms : 5000;

    /* endpoints */
    size_t n = 1;
    for (const char *p = o->endpoints; *p; p++)
        n += *p == ',';
    c->eps = calloc(n, sizeof(*c->eps));
    if (!c->eps)
        goto nomem;
    bool need_tls = false;
    for (const char *p = o->endpoints;;) {
        const char *e = strchr(p, ',');
        size_t len = e ? (size_t)(e - p) : strlen(p);
        int rv = parse_endpoint(p, len, &c->eps[c->neps], st->message, sizeof(st->message));
        if (rv == -2)
            goto nomem;
        if (rv == -1) {
            st->code = NET_GRPC_INVALID_ARGUMENT;
            goto fail;
        }
        need_tls |= c->eps[c->neps].tls;
        c->neps++;
        if (!e)
            break;
        p = e + 1;
    }

    if (need_tls) {
        if (o->ssl_ctx) {
            c->ssl = o->ssl_ctx;
        } else {
            struct net_tls_client_opts to = {.ca_file = o->ca_file, .cert_file = o->cert_file,
                                             .key_file = o->key_file, .alpn = "h2"};
            char err[NET_TLS_ERRLEN];
            int rv = net_tls_client_ctx_new(&to, &c->ssl, err, sizeof(err));
            if (rv != 0) {
                gc_status_set(st, rv == NET_ENOMEM ? NET_GRPC_RESOURCE_EXHAUSTED :
                              NET_GRPC_UNAVAILABLE, "%s", err);
                goto fail;
            }
            c->own_ssl = true;
        }
    }
    if (gc_copy_md(o->metadata, &c->md) != 0)
        goto nomem;
    if (o->base) {
        c->base = o->base;
    } else {
        c->own_base = true;
        if (!(c->base = event_base_new()))
            goto nomem;
    }
    c->kick = event_new(c->base, -1, 0, gc_kick_cb, c);
    c->wake = evtimer_new(c->base, wake_cb, NULL);
    if (!c->kick || !c->wake)
        goto nomem;
    return c;
nomem:
    gc_status_set(st, NET_GRPC_RESOURCE_EXHAUSTED, "grpc client: out of memory");
fail:
    net_grpc_client_free(c);
    return NULL;
}

void net_grpc_client_free(struct net_grpc_client *c)
{
    if (!c)
        return;
    /* Sessions go first, without callbacks; then the calls, quietly. */
    while (c->conns) {
        struct gc_conn *k = c->conns;
        c->conns = k->next;
        gc_conn_free(k);
    }
    c->conn = NULL;
    c->dq_head = c->dq_tail = NULL;
    while (c->calls) {
        struct gc_call *call = c->calls;
        c->calls = call->next;
        call->prev = call->next = call->dq_next = NULL;
        call->conn = NULL;
        call->pending = false;
        if (call->deadline_ev) {
            event_free(call->deadline_ev);
            call->deadline_ev = NULL;
        }
        call->c = NULL;
        if (!call->done) {
            call->done = true;
            gc_status_set(&call->st, NET_GRPC_CANCELLED, "grpc client: closed");
        }
        if (call->kind != CALL_STREAM || call->user_freed)
            gc_call_free(call);
        /* else: the caller still holds the stream handle and frees it later */
    }
    if (c->kick)
        event_free(c->kick);
    if (c->wake)
        event_free(c->wake);
    if (c->own_ssl)
        net_tls_ctx_free(c->ssl);
    gc_free_md(c->md);
    free_endpoints(c);
    if (c->own_base && c->base)
        event_base_free(c->base);
    free(c);
}

struct event_base *net_grpc_client_base(struct net_grpc_client *c)
{
    return c->base;
}

int net_grpc_client_set_metadata(struct net_grpc_client *c, const char *const *metadata)
{
    char **md;
    if (gc_copy_md(metadata, &md) != 0)
        return NET_ENOMEM;
    gc_free_md(c->md);
    c->md = md;
    return 0;
}

const char *net_grpc_client_endpoint(struct net_grpc_client *c)
{
    return c->eps[c->cur_ep].url;
}
