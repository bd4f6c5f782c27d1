/* peer — the Raft peer transport: configured peers with bounded outgoing queues and
 * redial backoff, outbound and inbound connections (mutual TLS or plain TCP), the hello
 * exchange, frame reading, batched writing, and down notices. */
#include <errno.h>
#include <signal.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/bufferevent_struct.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <openssl/err.h>

#include "net/peer.h"
#include "net/peer_frame.h"
#include "net/tls.h"

/* Stop moving queued frames into a connection's socket buffer beyond this. */
#define OUT_MAX (4u << 20)

struct pframe {
    struct pframe *next;
    size_t len;               /* header + payload */
    uint8_t data[];
};

struct pconn;

struct peer {
    struct peer *next;
    struct net_peer_transport *t;
    uint64_t id;
    char *url, *host, *port;
    bool tls;
    struct pconn *out;        /* outbound connection, dialing or up */
    struct event *redial;
    int backoff_ms;
    uint64_t down_since_ms;   /* 0 while connected or never tried */
    char last_err[200];       /* last failure logged, so a redial loop logs it once */
    struct pframe *q_head, *q_tail;
    size_t q_frames, q_bytes;
    int inbound;
    uint64_t now_us;          /* when a frame last went out at once (see net_peer_send) */
    struct net_peer_stats st;
};

struct pconn {
    struct pconn *next;       /* transport's list */
    struct net_peer_transport *t;
    struct peer *peer;        /* outbound: the peer dialed (NULL once removed) */
    bool outbound;
    bool up;                  /* hello exchanged */
    bool dead;
    uint64_t remote_id;       /* from the hello */
    struct bufferevent *bev;
    struct event *timer;      /* dial / hello deadline */
    char addr[64];            /* inbound: the remote address, for log lines */
};

struct listener {
    struct listener *next;
    struct net_peer_transport *t;
    struct evconnlistener *l;
    bool tls;
};

struct net_peer_transport {
    struct net_peer_opts o;
    struct peer *peers;
    struct pconn *conns;
    struct listener *listeners;
    int listen_port;
    struct event *deferred;   /* flush queues, reap dead connections, report downs */
    char last_refusal[200];   /* last refused inbound connection's reason, and when */
    uint64_t last_refusal_ms;
    uint64_t *downs;          /* peer ids to report to on_peer_down */
    size_t ndowns, capdowns;
};

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* Frames sent closer together than this are batched instead of written one by one. */
#define WRITE_NOW_GAP_US 200

static void kick(struct net_peer_transport *t)
{
    event_active(t->deferred, EV_TIMEOUT, 0);
}

static struct peer *find_peer(const struct net_peer_transport *t, uint64_t id)
{
    for (struct peer *p = t->peers; p; p = p->next)
        if (p->id == id)
            return p;
    return NULL;
}

/* --- URLs ------------------------------------------------------------------------ */

/* "https://host:port" / "http://host:port" / "host:port" into parts (malloc'd). */
static int parse_url(const char *url, bool *tls, char **host, char **port)
{
    const char *s = url;
    *tls = false;
    if (!strncmp(s, "https://", 8)) {
        *tls = true;
        s += 8;
    } else if (!strncmp(s, "http://", 7)) {
        s += 7;
    } else if (strstr(s, "://")) {
        return -1;
    }
    size_t n = strlen(s);
    while (n && s[n - 1] == '/') n--;
    const char *h = s, *pt;
    size_t hn;
    if (n && *s == '[') {
        const char *rb = memchr(s, ']', n);
        if (!rb || rb + 1 >= s + n || rb[1] != ':')
            return -1;
        h = s + 1;
        hn = (size_t)(rb - s - 1);
        pt = rb + 2;
    } else {
        const char *colon = memchr(s, ':', n);
        if (!colon)
            return -1;
        hn = (size_t)(colon - s);
        pt = colon + 1;
    }
    size_t pn = (size_t)(s + n - pt);
    if (!hn || !pn || pn > 5 || strspn(pt, "0123456789") < pn)
        return -1;
    *host = strndup(h, hn);
    *port = strndup(pt, pn);
    if (!*host || !*port) {
        free(*host);
        free(*port);
        return -2;
    }
    return 0;
}

/* --- queues ---------------------------------------------------------------------- */

static void queue_drop_all(struct peer *p)
{
    while (p->q_head) {
        struct pframe *f = p->q_head;
        p->q_head = f->next;
        free(f);
        p->st.dropped_frames++;
    }
    p->q_tail = NULL;
    p->q_frames = p->q_bytes = 0;
}

static void frame_free_cb(const void *data, size_t len, void *arg)
{
    (void)data, (void)len;
    free(arg);
}

/* Moves queued frames into the peer's connection: one batch per loop turn, written by
 * libevent with as few syscalls as it can. */
static void flush_peer(struct peer *p)
{
    struct pconn *k = p->out;
    if (!k || !k->up || k->dead)
        return;
    struct evbuffer *out = bufferevent_get_output(k->bev);
    while (p->q_head && evbuffer_get_length(out) < OUT_MAX) {
        struct pframe *f = p->q_head;
        /* Small frames are copied so they pack into shared buffers: over TLS each buffer
         * chunk becomes one record, and a record per 200-byte message costs 10x. */
        if (f->len < 16384) {
            if (evbuffer_add(out, f->data, f->len) != 0)
                break;
        } else if (evbuffer_add_reference(out, f->data, f->len, frame_free_cb, f) != 0) {
            break;
        }
        p->q_head = f->next;
        if (!p->q_head)
            p->q_tail = NULL;
        p->q_frames--;
        p->q_bytes -= f->len - PEER_FRAME_HDR;
        p->st.sent_frames++;
        p->st.sent_bytes += f->len - PEER_FRAME_HDR;
        if (f->len < 16384)
            free(f);
    }
}

/* Writes the connection's buffered bytes to the socket now rather than when the loop
 * next polls: the caller of net_peer_send often blocks right after sending (a Raft leader
 * sends its appends, then fsyncs its own log), and the followers should be writing their
 * copy during that fsync, not after it. This runs the bufferevent's own write handler
 * (plain or TLS), so partial writes, TLS retries and errors take libevent's usual path;
 * an error closes the connection through eventcb (it is freed later, never here). */
static void write_now(struct pconn *k)
{
    struct bufferevent *bev = k->bev;
    if (!k->up || k->dead || !evbuffer_get_length(bufferevent_get_output(bev)) ||
        !(bufferevent_get_enabled(bev) & EV_WRITE))
        return;
    event_callback_fn cb = event_get_callback(&bev->ev_write);
    if (cb)
        cb(bufferevent_getfd(bev), EV_WRITE, event_get_callback_arg(&bev->ev_write));
}

/* --- connections ----------------------------------------------------------------- */

static void schedule_redial(struct peer *p, int ms)
{
    struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
    evtimer_add(p->redial, &tv);
}

static void report_down(struct net_peer_transport *t, uint64_t id)
{
    if (t->ndowns == t->capdowns) {
        size_t cap = t->capdowns ? t->capdowns * 2 : 8;
        uint64_t *d = realloc(t->downs, cap * sizeof(*d));
        if (!d)
            return;
        t->downs = d;
        t->capdowns = cap;
    }
    t->downs[t->ndowns++] = id;
    kick(t);
}

/* Closes a connection: reports the loss if it was up, redials an outbound one after the
 * backoff. Freed later from the deferred event, never inside its own callback. */
static void conn_close(struct pconn *k)
{
    if (k->dead)
        return;
    struct net_peer_transport *t = k->t;
    k->dead = true;
    bufferevent_disable(k->bev, EV_READ | EV_WRITE);
    evtimer_del(k->timer);
    if (k->up)
        report_down(t, k->remote_id);
    if (k->outbound) {
        struct peer *p = k->peer;
        if (p && p->out == k) {
            p->out = NULL;
            p->st.connected = 0;
            if (!p->down_since_ms)
                p->down_since_ms = now_ms();
            schedule_redial(p, p->backoff_ms);
            int max = t->o.backoff_max_ms;
            p->backoff_ms = p->backoff_ms * 2 > max ? max : p->backoff_ms * 2;
        }
    } else if (k->up) {
        struct peer *p = find_peer(t, k->remote_id);
        if (p && p->inbound > 0)
            p->inbound--;
        if (p)
            p->st.inbound = p->inbound;
    }
    kick(t);
}

static void plog(struct net_peer_transport *t, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void plog(struct net_peer_transport *t, const char *fmt, ...)
{
    if (!t->o.log)
        return;
    char buf[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    t->o.log(t->o.ud, buf);
}

/* Closes k for a reason worth a log line (once per distinct failure of a peer's dials). */
static void conn_fail(struct pconn *k, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void conn_fail(struct pconn *k, const char *fmt, ...)
{
    struct net_peer_transport *t = k->t;
    char why[200];
    va_list ap;
    if (k->dead)
        return;
    va_start(ap, fmt);
    vsnprintf(why, sizeof(why), fmt, ap);
    va_end(ap);
    if (k->outbound && k->peer) {
        struct peer *p = k->peer;
        if (k->up)
            plog(t, "peer: connection to %016llx lost: %s", (unsigned long long)p->id, why);
        else if (strcmp(p->last_err, why) != 0)
            plog(t, "peer: dial %016llx at %s: %s", (unsigned long long)p->id, p->url, why);
        snprintf(p->last_err, sizeof(p->last_err), "%s", why);
    } else if (!k->outbound) {
        if (k->up)
            plog(t, "peer: connection from %016llx lost: %s", (unsigned long long)k->remote_id,
                 why);
        else if (strcmp(t->last_refusal, why) != 0 || now_ms() - t->last_refusal_ms >= 10000) {
            /* a misconfigured member retries every second: say it once per 10 s */
            plog(t, "peer: inbound from %s: %s", k->addr, why);
            snprintf(t->last_refusal, sizeof(t->last_refusal), "%s", why);
            t->last_refusal_ms = now_ms();
        }
    }
    conn_close(k);
}

/* Why a bufferevent failed: TLS verification, OpenSSL's queue, the socket error, or EOF. */
static void bev_error(struct bufferevent *bev, short events, char *buf, size_t len)
{
    int se = EVUTIL_SOCKET_ERROR();
    SSL *ssl = bufferevent_openssl_get_ssl(bev);
    unsigned long e, first = 0;
    while ((e = bufferevent_get_openssl_error(bev)) != 0)
        if (!first && ERR_reason_error_string(e))
            first = e;
    long vr = ssl ? SSL_get_verify_result(ssl) : X509_V_OK;
    if (vr != X509_V_OK)
        snprintf(buf, len, "tls: certificate verify failed: %s", X509_verify_cert_error_string(vr));
    else if (first)
        snprintf(buf, len, "tls: %s", ERR_reason_error_string(first));
    else if ((events & BEV_EVENT_ERROR) && se)
        snprintf(buf, len, "%s", evutil_socket_error_to_string(se));
    else
        snprintf(buf, len, "%s", (events & BEV_EVENT_EOF) ? "closed by the other side" :
                                 "connection error");
}

static void conn_free(struct pconn *k)
{
    if (k->bev)
        bufferevent_free(k->bev);
    if (k->timer)
        event_free(k->timer);
    free(k);
}

static void send_hello(struct pconn *k, uint64_t target)
{
    uint8_t buf[PEER_FRAME_HDR + PEER_HELLO_LEN];
    struct peer_hello h = {PEER_HELLO_VERSION, k->t->o.cluster_id, k->t->o.self_id, target};
    peer_frame_header(buf, PEER_FRAME_HELLO, PEER_HELLO_LEN);
    peer_hello_encode(&h, buf + PEER_FRAME_HDR);
    bufferevent_write(k->bev, buf, sizeof(buf));
}

/* The hello from the other side: checks it, and for inbound connections answers it.
 * Returns -1 after closing the connection. */
static int on_hello(struct pconn *k, const uint8_t *payload, size_t len)
{
    struct net_peer_transport *t = k->t;
    struct peer_hello h;
    if (peer_hello_decode(payload, len, &h) != 0) {
        conn_fail(k, "hello: not a plinth peer (bad magic or version)");
        return -1;
    }
    if (h.cluster_id != t->o.cluster_id) {
        conn_fail(k, "hello: cluster %016llx, ours %016llx", (unsigned long long)h.cluster_id,
                  (unsigned long long)t->o.cluster_id);
        return -1;
    }
    if (h.sender_id == 0 || h.sender_id == t->o.self_id ||
        (h.target_id && h.target_id != t->o.self_id)) {
        conn_fail(k, "hello: member %016llx expected %016llx, we are %016llx",
                  (unsigned long long)h.sender_id, (unsigned long long)h.target_id,
                  (unsigned long long)t->o.self_id);
        return -1;
    }
    if (k->outbound) {
        struct peer *p = k->peer;
        if (!p || h.sender_id != p->id) {
            conn_fail(k, "hello: member %016llx answers at this URL",
                      (unsigned long long)h.sender_id);
            return -1;
        }
        k->remote_id = h.sender_id;
        k->up = true;
        evtimer_del(k->timer);
        if (p->last_err[0])
            plog(t, "peer: connected to %016llx at %s", (unsigned long long)p->id, p->url);
        p->last_err[0] = 0;
        p->st.connected = 1;
        p->backoff_ms = t->o.backoff_min_ms;
        p->down_since_ms = 0;
        flush_peer(p);
    } else {
        SSL *ssl = k->bev ? bufferevent_openssl_get_ssl(k->bev) : NULL;
        if (ssl && !net_tls_peer_verified(ssl)) {
            conn_fail(k, "tls: no verified client certificate");
            return -1;
        }
        k->remote_id = h.sender_id;
        k->up = true;
        evtimer_del(k->timer);
        send_hello(k, h.sender_id);
        struct peer *p = find_peer(t, h.sender_id);
        if (p)
            p->st.inbound = ++p->inbound;
    }
    return 0;
}

static void readcb(struct bufferevent *bev, void *arg)
{
    struct pconn *k = arg;
    struct net_peer_transport *t = k->t;
    struct evbuffer *in = bufferevent_get_input(bev);
    while (!k->dead) {
        size_t have = evbuffer_get_length(in);
        uint8_t hdr[PEER_FRAME_HDR];
        struct peer_frame f;
        if (have < PEER_FRAME_HDR)
            return;
        evbuffer_copyout(in, hdr, PEER_FRAME_HDR);
        int rv = peer_frame_decode(hdr, PEER_FRAME_HDR, t->o.max_frame, &f);
        if (rv == PEER_DECODE_ERR || (!k->up && f.type != PEER_FRAME_HELLO) ||
            (k->up && f.type == PEER_FRAME_HELLO)) {
            conn_fail(k, "bad frame (type %u, length %u, limit %zu)", hdr[0],
                      (unsigned)f.len, t->o.max_frame);
            return;
        }
        if (have < f.total)
            return;
        const uint8_t *buf = evbuffer_pullup(in, (ssize_t)f.total);
        if (!buf || peer_frame_decode(buf, f.total, t->o.max_frame, &f) != PEER_DECODE_OK) {
            conn_fail(k, "out of memory reading a frame");
            return;
        }
        if (f.type == PEER_FRAME_HELLO) {
            if (on_hello(k, f.payload, f.len) != 0)
                return;
        } else if (!k->outbound) {
            struct peer *p = find_peer(t, k->remote_id);
            if (p) {
                p->st.recv_frames++;
                p->st.recv_bytes += f.len;
            }
            t->o.on_message(t->o.ud, k->remote_id, f.payload, f.len);
        }
        /* outbound connections carry nothing but the hello back; ignore the rest */
        evbuffer_drain(in, f.total);
    }
}

static void writecb(struct bufferevent *bev, void *arg)
{
    (void)bev;
    struct pconn *k = arg;
    if (!k->dead && k->outbound && k->peer)
        flush_peer(k->peer);
}

static void eventcb(struct bufferevent *bev, short events, void *arg)
{
    struct pconn *k = arg;
    if (events & BEV_EVENT_CONNECTED) {
        int one = 1;
        setsockopt(bufferevent_getfd(bev), IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        if (k->outbound)
            send_hello(k, k->peer ? k->peer->id : 0);
        return;
    }
    char why[200];
    bev_error(bev, events, why, sizeof(why));
    conn_fail(k, "%s", why);
}

static void conn_timeout_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd, (void)what;
    struct pconn *k = arg;
    conn_fail(k, "no hello within %d ms", k->t->o.dial_timeout_ms);
}

static struct pconn *conn_new(struct net_peer_transport *t, struct bufferevent *bev,
                              bool outbound)
{
    struct pconn *k = calloc(1, sizeof(*k));
    if (!k)
        return NULL;
    k->t = t;
    k->outbound = outbound;
    k->bev = bev;
    k->timer = evtimer_new(t->o.base, conn_timeout_cb, k);
    if (!k->timer) {
        free(k);
        return NULL;
    }
    int ms = t->o.dial_timeout_ms;
    struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
    evtimer_add(k->timer, &tv);
    bufferevent_setcb(bev, readcb, writecb, eventcb, k);
    bufferevent_enable(bev, EV_READ | EV_WRITE);
    k->next = t->conns;
    t->conns = k;
    return k;
}

static void dial(struct peer *p)
{
    struct net_peer_transport *t = p->t;
    p->st.dials++;
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
    struct addrinfo *res = NULL;
    struct bufferevent *bev = NULL;
    const char *why = "out of memory";
    int gai = getaddrinfo(p->host, p->port, &hints, &res);
    if (gai != 0) {
        why = gai_strerror(gai);
        goto fail;
    }
    if (p->tls) {
        SSL *ssl = NULL;
        if (net_tls_client_ssl_new(t->o.client_ctx, p->host, &ssl) != 0) {
            why = "tls: cannot make a connection";
            goto fail;
        }
        bev = bufferevent_openssl_socket_new(t->o.base, -1, ssl, BUFFEREVENT_SSL_CONNECTING,
                                             BEV_OPT_CLOSE_ON_FREE);
        if (!bev) {
            SSL_free(ssl);
            goto fail;
        }
        bufferevent_openssl_set_allow_dirty_shutdown(bev, 1);
    } else {
        bev = bufferevent_socket_new(t->o.base, -1, BEV_OPT_CLOSE_ON_FREE);
        if (!bev)
            goto fail;
    }
    struct pconn *k = conn_new(t, bev, true);
    if (!k)
        goto fail;
    k->peer = p;
    p->out = k;
    struct addrinfo *ai = res;   /* prefer IPv4: "localhost" may list ::1 first */
    for (struct addrinfo *a = res; a; a = a->ai_next)
        if (a->ai_family == AF_INET) {
            ai = a;
            break;
        }
    if (bufferevent_socket_connect(bev, ai->ai_addr, (int)ai->ai_addrlen) != 0)
        conn_fail(k, "%s", strerror(errno));   /* redials after the backoff */
    freeaddrinfo(res);
    return;
fail:
    if (res)
        freeaddrinfo(res);
    if (bev)
        bufferevent_free(bev);
    if (strcmp(p->last_err, why) != 0)
        plog(t, "peer: dial %016llx at %s: %s", (unsigned long long)p->id, p->url, why);
    snprintf(p->last_err, sizeof(p->last_err), "%s", why);
    schedule_redial(p, p->backoff_ms);
}

static void redial_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd, (void)what;
    struct peer *p = arg;
    struct net_peer_transport *t = p->t;
    /* messages that waited this long are stale: Raft has moved on */
    if (t->o.stale_queue_ms >= 0 && p->down_since_ms &&
        now_ms() - p->down_since_ms >= (uint64_t)t->o.stale_queue_ms)
        queue_drop_all(p);
    if (!p->out)
        dial(p);
}

static void accept_cb(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa,
                      int salen, void *arg)
{
    (void)l, (void)salen;
    struct listener *ln = arg;
    struct net_peer_transport *t = ln->t;
    struct bufferevent *bev;
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    if (ln->tls) {
        SSL *ssl = SSL_new(t->o.server_ctx);
        if (!ssl) {
            evutil_closesocket(fd);
            return;
        }
        bev = bufferevent_openssl_socket_new(t->o.base, fd, ssl, BUFFEREVENT_SSL_ACCEPTING,
                                             BEV_OPT_CLOSE_ON_FREE);
        if (!bev) {
            SSL_free(ssl);
            evutil_closesocket(fd);
            return;
        }
        bufferevent_openssl_set_allow_dirty_shutdown(bev, 1);
    } else {
        bev = bufferevent_socket_new(t->o.base, fd, BEV_OPT_CLOSE_ON_FREE);
        if (!bev) {
            evutil_closesocket(fd);
            return;
        }
    }
    struct pconn *k = conn_new(t, bev, false);
    if (!k) {
        bufferevent_free(bev);
        return;
    }
    char host[48] = "?";
    int port = 0;
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)sa;
        evutil_inet_ntop(AF_INET, &in->sin_addr, host, sizeof(host));
        port = ntohs(in->sin_port);
    } else if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;
        evutil_inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof(host));
        port = ntohs(in6->sin6_port);
    }
    snprintf(k->addr, sizeof(k->addr), sa->sa_family == AF_INET6 ? "[%s]:%d" : "%s:%d", host,
             port);
}

/* --- deferred work --------------------------------------------------------------- */

static void deferred_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd, (void)what;
    struct net_peer_transport *t = arg;
    for (struct pconn **pk = &t->conns; *pk;) {
        struct pconn *k = *pk;
        if (k->dead) {
            *pk = k->next;
            conn_free(k);
        } else {
            pk = &k->next;
        }
    }
    for (struct peer *p = t->peers; p; p = p->next)
        flush_peer(p);
    /* Reported last and one at a time: the callback may add or remove peers. */
    while (t->ndowns) {
        uint64_t id = t->downs[0];
        memmove(t->downs, t->downs + 1, (t->ndowns - 1) * sizeof(*t->downs));
        t->ndowns--;
        if (t->o.on_peer_down)
            t->o.on_peer_down(t->o.ud, id);
    }
}

/* --- public API ------------------------------------------------------------------ */

int net_peer_transport_new(const struct net_peer_opts *opts, struct net_peer_transport **out)
{
    if (!opts || !out || !opts->base || !opts->on_message || opts->self_id == 0)
        return NET_EINVAL;
    *out = NULL;
    /* a write to a peer that just died must fail, not kill us (unless the program
     * installed its own SIGPIPE handling) */
    struct sigaction sa;
    if (sigaction(SIGPIPE, NULL, &sa) == 0 && sa.sa_handler == SIG_DFL)
        signal(SIGPIPE, SIG_IGN);
    struct net_peer_transport *t = calloc(1, sizeof(*t));
    if (!t)
        return NET_ENOMEM;
    t->o = *opts;
    if (!t->o.max_frame)
        t->o.max_frame = 16u << 20;
    if (t->o.max_frame > UINT32_MAX)
        t->o.max_frame = UINT32_MAX;
    if (!t->o.queue_max_bytes)
        t->o.queue_max_bytes = 64u << 20;
    if (!t->o.queue_max_frames)
        t->o.queue_max_frames = 4096;
    if (t->o.backoff_min_ms <= 0)
        t->o.backoff_min_ms = 50;
    if (t->o.backoff_max_ms <= 0)
        t->o.backoff_max_ms = 1000;
    if (t->o.backoff_max_ms < t->o.backoff_min_ms)
        t->o.backoff_max_ms = t->o.backoff_min_ms;
    if (t->o.dial_timeout_ms <= 0)
        t->o.dial_timeout_ms = 2000;
    if (t->o.stale_queue_ms == 0)
        t->o.stale_queue_ms = 2000;
    t->deferred = event_new(t->o.base, -1, 0, deferred_cb, t);
    if (!t->deferred) {
        free(t);
        return NET_ENOMEM;
    }
    *out = t;
    return 0;
}

static void peer_free(struct peer *p)
{
    queue_drop_all(p);
    if (p->redial)
        event_free(p->redial);
    free(p->url);
    free(p->host);
    free(p->port);
    free(p);
}

void net_peer_transport_free(struct net_peer_transport *t)
{
    if (!t)
        return;
    while (t->conns) {
        struct pconn *k = t->conns;
        t->conns = k->next;
        conn_free(k);
    }
    while (t->peers) {
        struct peer *p = t->peers;
        t->peers = p->next;
        peer_free(p);
    }
    while (t->listeners) {
        struct listener *ln = t->listeners;
        t->listeners = ln->next;
        evconnlistener_free(ln->l);
        free(ln);
    }
    event_free(t->deferred);
    free(t->downs);
    free(t);
}

int net_peer_listen(struct net_peer_transport *t, const char *url, char *err, size_t errlen)
{
    char dummy[1];
    if (!err) {
        err = dummy;
        errlen = sizeof(dummy);
    }
    if (errlen)
        err[0] = 0;
    bool tls;
    char *host = NULL, *port = NULL;
    int rv = parse_url(url ? url : "", &tls, &host, &port);
    if (rv == -2)
        return NET_ENOMEM;
    if (rv != 0) {
        snprintf(err, errlen, "peer: listen \"%s\": want https://host:port", url ? url : "");
        return NET_EINVAL;
    }
    if (tls && !t->o.server_ctx) {
        snprintf(err, errlen, "peer: listen %s: https needs a server TLS context", url);
        rv = NET_EINVAL;
        goto out;
    }
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_PASSIVE};
    struct addrinfo *res = NULL;
    int gai = getaddrinfo(host, port, &hints, &res);
    if (gai != 0) {
        snprintf(err, errlen, "peer: listen %s:%s: %s", host, port, gai_strerror(gai));
        rv = NET_EINVAL;
        goto out;
    }
    struct listener *ln = calloc(1, sizeof(*ln));
    if (!ln) {
        freeaddrinfo(res);
        rv = NET_ENOMEM;
        goto out;
    }
    ln->t = t;
    ln->tls = tls;
    ln->l = evconnlistener_new_bind(t->o.base, accept_cb, ln,
                                    LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE | LEV_OPT_CLOSE_ON_EXEC,
                                    128, res->ai_addr, (int)res->ai_addrlen);
    int se = errno;
    freeaddrinfo(res);
    if (!ln->l) {
        free(ln);
        snprintf(err, errlen, "peer: listen %s:%s: %s", host, port, strerror(se));
        rv = se == EADDRINUSE ? NET_EADDRINUSE : NET_ESYS;
        goto out;
    }
    struct sockaddr_storage ss;
    socklen_t sl = sizeof(ss);
    if (getsockname(evconnlistener_get_fd(ln->l), (struct sockaddr *)&ss, &sl) == 0)
        t->listen_port = ntohs(ss.ss_family == AF_INET6 ?
                               ((struct sockaddr_in6 *)&ss)->sin6_port :
                               ((struct sockaddr_in *)&ss)->sin_port);
    ln->next = t->listeners;
    t->listeners = ln;
    rv = 0;
out:
    free(host);
    free(port);
    return rv;
}

int net_peer_listen_port(const struct net_peer_transport *t)
{
    return t->listen_port;
}

int net_peer_add(struct net_peer_transport *t, uint64_t id, const char *url)
{
    if (!t || id == 0 || id == t->o.self_id || !url)
        return NET_EINVAL;
    struct peer *p = find_peer(t, id);
    if (p && !strcmp(p->url, url))
        return 0;
    bool tls;
    char *host = NULL, *port = NULL;
    int rv = parse_url(url, &tls, &host, &port);
    if (rv == -2)
        return NET_ENOMEM;
    if (rv != 0 || (tls && !t->o.client_ctx)) {
        free(host);
        free(port);
        return NET_EINVAL;
    }
    char *u = strdup(url);
    if (!u)
        goto nomem;
    if (p) {
        /* a new address: drop the old connection and dial the new one now */
        free(p->url);
        free(p->host);
        free(p->port);
        p->url = u;
        p->host = host;
        p->port = port;
        p->tls = tls;
        if (p->out) {
            struct pconn *k = p->out;
            conn_close(k);
            k->peer = NULL;
        }
        evtimer_del(p->redial);
        p->backoff_ms = t->o.backoff_min_ms;
        schedule_redial(p, 0);
        return 0;
    }
    p = calloc(1, sizeof(*p));
    if (!p)
        goto nomem;
    p->t = t;
    p->id = id;
    p->url = u;
    p->host = host;
    p->port = port;
    p->tls = tls;
    p->backoff_ms = t->o.backoff_min_ms;
    p->down_since_ms = now_ms();   /* not connected yet: the stale clock runs */
    p->redial = evtimer_new(t->o.base, redial_cb, p);
    if (!p->redial) {
        free(p);
        goto nomem;
    }
    /* inbound connections from it that arrived before it was configured */
    for (struct pconn *k = t->conns; k; k = k->next)
        if (!k->outbound && k->up && !k->dead && k->remote_id == id)
            p->inbound++;
    p->st.inbound = p->inbound;
    p->next = t->peers;
    t->peers = p;
    schedule_redial(p, 0);
    return 0;
nomem:
    free(u);
    free(host);
    free(port);
    return NET_ENOMEM;
}

int net_peer_remove(struct net_peer_transport *t, uint64_t id)
{
    for (struct peer **pp = &t->peers; *pp; pp = &(*pp)->next) {
        struct peer *p = *pp;
        if (p->id != id)
            continue;
        *pp = p->next;
        if (p->out) {
            struct pconn *k = p->out;
            conn_close(k);
            k->peer = NULL;
        }
        /* its inbound connections go too: it is no longer a member */
        for (struct pconn *k = t->conns; k; k = k->next)
            if (!k->outbound && k->remote_id == id)
                conn_close(k);
        peer_free(p);
        return 0;
    }
    return NET_ENOTFOUND;
}

int net_peer_send(struct net_peer_transport *t, uint64_t to, const uint8_t *buf, size_t len)
{
    struct peer *p = find_peer(t, to);
    if (!p)
        return NET_ENOTFOUND;
    if (len > t->o.max_frame)
        return NET_EINVAL;
    if (!p->st.connected && p->down_since_ms && t->o.stale_queue_ms >= 0 &&
        now_ms() - p->down_since_ms >= (uint64_t)t->o.stale_queue_ms) {
        queue_drop_all(p);
        p->st.dropped_frames++;
        return NET_EUNAVAIL;
    }
    if (p->q_frames >= t->o.queue_max_frames || p->q_bytes + len > t->o.queue_max_bytes) {
        p->st.dropped_frames++;
        return NET_EFULL;
    }
    struct pframe *f = malloc(sizeof(*f) + PEER_FRAME_HDR + len);
    if (!f)
        return NET_ENOMEM;
    f->next = NULL;
    f->len = PEER_FRAME_HDR + len;
    peer_frame_header(f->data, PEER_FRAME_MSG, (uint32_t)len);
    if (len)
        memcpy(f->data + PEER_FRAME_HDR, buf, len);
    if (p->q_tail)
        p->q_tail->next = f;
    else
        p->q_head = f;
    p->q_tail = f;
    p->q_frames++;
    p->q_bytes += len;
    if (!p->st.connected)
        return 0;
    /* A frame leaves at once (a leader's appends then overlap its own fsync) unless one
     * already did in the last WRITE_NOW_GAP_US: a burst of small frames is left to the
     * deferred flush, which packs them into one TLS record, so a busy peer link costs at
     * most one extra write per gap. */
    if (p->out) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        uint64_t now = (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
        if (now - p->now_us >= WRITE_NOW_GAP_US) {
            p->now_us = now;
            flush_peer(p);
            write_now(p->out);
        }
    }
    kick(t); /* the deferred flush writes whatever is still queued */
    return 0;
}

void net_peer_flush(struct net_peer_transport *t)
{
    for (struct peer *p = t->peers; p; p = p->next) {
        if (!p->st.connected || !p->out)
            continue;
        flush_peer(p);
        write_now(p->out);
    }
}

int net_peer_connected(const struct net_peer_transport *t, uint64_t id)
{
    const struct peer *p = find_peer(t, id);
    return p && p->st.connected;
}

int net_peer_stats(const struct net_peer_transport *t, uint64_t id, struct net_peer_stats *out)
{
    const struct peer *p = find_peer(t, id);
    if (!p)
        return NET_ENOTFOUND;
    *out = p->st;
    out->queued_frames = p->q_frames;
    out->queued_bytes = p->q_bytes;
    if (p->out && !p->out->dead)
        out->queued_bytes += evbuffer_get_length(bufferevent_get_output(p->out->bev));
    return 0;
}
