/* grpc_server — listeners, connections and their timers for the gRPC server: accepts TCP,
 * runs TLS through bufferevent_openssl, feeds bytes to nghttp2 and tears connections down
 * from the top of a loop callback only. */
#include "net/grpc_server_int.h"

#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <event2/bufferevent_ssl.h>
#include <openssl/err.h>

#include "net/tls.h"

int64_t net_grpc_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void set_err(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void set_err(char *err, size_t errlen, const char *fmt, ...)
{
    if (!err || !errlen)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

void gs_conn_log(struct gs_conn *conn, const char *fmt, ...)
{
    struct net_grpc_server *srv = conn->srv;
    if (!srv->opts.log)
        return;
    char text[512];
    int n = snprintf(text, sizeof text, "grpc server: %s: ", conn->peer);
    va_list ap;
    va_start(ap, fmt);
    if (n > 0 && (size_t)n < sizeof text)
        vsnprintf(text + n, sizeof text - (size_t)n, fmt, ap);
    va_end(ap);
    srv->opts.log(srv->opts.log_arg, text);
}

/* --- connection teardown ------------------------------------------------------------ */

static void conn_free(struct gs_conn *conn)
{
    struct net_grpc_server *srv = conn->srv;
    conn->dead = true; /* call API answers NET_ECLOSED from inside close callbacks */
    while (conn->calls)
        gs_call_close(conn->calls, NET_ECLOSED);
    /* nghttp2_session_del does not run the stream-close callback: the calls above are
     * already gone, so nothing points into the session any more. */
    if (conn->session)
        nghttp2_session_del(conn->session);
    if (conn->flush_ev)
        event_free(conn->flush_ev);
    if (conn->timer_ev)
        event_free(conn->timer_ev);
    if (conn->bev)
        bufferevent_free(conn->bev); /* closes the socket and frees the SSL */
    if (conn->prev)
        conn->prev->next = conn->next;
    else
        srv->conns = conn->next;
    if (conn->next)
        conn->next->prev = conn->prev;
    srv->stats.connections_open--;
    free(conn);
}

/* Writes what nghttp2 has queued. Marks the connection dead on failure. */
static void conn_send(struct gs_conn *conn)
{
    if (conn->dead || !conn->session)
        return;
    int rv = nghttp2_session_send(conn->session);
    if (rv != 0) {
        gs_conn_log(conn, "http2 send: %s", nghttp2_strerror(rv));
        conn->dead = true;
    }
}

/* End-of-callback check: free the connection if it is dead, or finished talking and
 * its output drained. Only called at the top of a loop callback. */
static void conn_check(struct gs_conn *conn)
{
    if (conn->dead) {
        conn_free(conn);
        return;
    }
    if (!conn->session)
        return;
    size_t out = evbuffer_get_length(bufferevent_get_output(conn->bev));
    if (!nghttp2_session_want_read(conn->session) && !nghttp2_session_want_write(conn->session) &&
        out == 0)
        conn_free(conn);
}

/* --- loop callbacks ------------------------------------------------------------------ */

static void flush_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd, (void)what;
    struct gs_conn *conn = arg;
    conn->flush_scheduled = false;
    if (conn->notify_pending && !conn->dead) {
        conn->notify_pending = false;
        /* A notification may close nothing (calls close only inside nghttp2), but it may
         * add new due notifications: those get the next flush. */
        for (struct net_grpc_call *c = conn->calls; c; c = c->next)
            gs_call_notify(c);
    }
    conn_send(conn);
    conn_check(conn);
}

/* Makes the loop visit a connection marked dead (flush_cb ends in conn_check). */
static void gs_conn_schedule_dead(struct gs_conn *conn)
{
    if (!conn->flush_scheduled) {
        conn->flush_scheduled = true;
        event_active(conn->flush_ev, EV_TIMEOUT, 0);
    }
}

void gs_conn_schedule_flush(struct gs_conn *conn)
{
    if (conn->flush_scheduled || conn->dead)
        return;
    conn->flush_scheduled = true;
    event_active(conn->flush_ev, EV_TIMEOUT, 0);
}

static void read_cb(struct bufferevent *bev, void *arg)
{
    struct gs_conn *conn = arg;
    if (!conn->session || conn->dead)
        return;
    struct evbuffer *in = bufferevent_get_input(bev);
    conn->last_read_ms = net_grpc_now_ms();
    conn->ping_sent_ms = 0;
    struct evbuffer_iovec vec[16];
    while (evbuffer_get_length(in) > 0 && !conn->dead) {
        int n = evbuffer_peek(in, -1, NULL, vec, 16);
        if (n > 16)
            n = 16;
        size_t used = 0;
        for (int i = 0; i < n && !conn->dead; i++) {
            ssize_t rv = nghttp2_session_mem_recv(conn->session, vec[i].iov_base, vec[i].iov_len);
            if (rv < 0) {
                gs_conn_log(conn, "http2: %s", nghttp2_strerror((int)rv));
                conn->dead = true;
                break;
            }
            used += (size_t)rv;
        }
        evbuffer_drain(in, used);
        if (used == 0)
            break;
    }
    conn_send(conn);
    conn_check(conn);
}

static void write_cb(struct bufferevent *bev, void *arg)
{
    (void)bev;
    struct gs_conn *conn = arg;
    conn_send(conn); /* output fell below the low mark: let nghttp2 continue */
    if (conn->closing && evbuffer_get_length(bufferevent_get_output(conn->bev)) == 0)
        conn->dead = true;
    conn_check(conn);
}

static void tls_failure(struct gs_conn *conn)
{
    char why[256] = "";
    unsigned long e = bufferevent_get_openssl_error(conn->bev);
    const char *reason = e ? ERR_reason_error_string(e) : NULL;
    while (bufferevent_get_openssl_error(conn->bev))
        ;
    long vr = conn->ssl ? SSL_get_verify_result(conn->ssl) : X509_V_OK;
    if (vr != X509_V_OK)
        snprintf(why, sizeof why, "%s: %s", reason ? reason : "certificate verify failed",
                 X509_verify_cert_error_string(vr));
    else if (reason)
        snprintf(why, sizeof why, "%s", reason);
    else
        snprintf(why, sizeof why, "connection closed during handshake");
    conn->srv->stats.tls_handshake_failures++;
    gs_conn_log(conn, "TLS handshake: %s", why);
    ERR_clear_error();
}

static void event_cb(struct bufferevent *bev, short events, void *arg)
{
    (void)bev;
    struct gs_conn *conn = arg;
    if (events & BEV_EVENT_CONNECTED) {
        /* TLS is up. gRPC clients offer h2; a client that offers no ALPN speaks h2 by
         * prior knowledge, anything else was already refused by the select callback. */
        char alpn[32];
        net_tls_alpn_selected(conn->ssl, alpn, sizeof alpn);
        if (alpn[0] && strcmp(alpn, "h2") != 0) {
            gs_conn_log(conn, "ALPN selected %s, not h2", alpn);
            conn->dead = true;
        } else if (gs_session_start(conn) != 0) {
            conn->dead = true;
        } else {
            conn_send(conn);
        }
        conn_check(conn);
        return;
    }
    if (events & (BEV_EVENT_EOF | BEV_EVENT_ERROR | BEV_EVENT_TIMEOUT)) {
        if (conn->tls && !conn->session && (events & BEV_EVENT_ERROR))
            tls_failure(conn);
        else
            ERR_clear_error(); /* a Go client's close without close_notify lands here */
        conn->dead = true;
    }
    conn_check(conn);
}

static int64_t min_pos(int64_t a, int64_t b)
{
    if (a <= 0)
        return b;
    if (b <= 0)
        return a;
    return a < b ? a : b;
}

static void arm_timer(struct gs_conn *conn)
{
    const struct net_grpc_server_opts *o = &conn->srv->opts;
    int64_t t = min_pos(min_pos(o->idle_timeout_ms, o->keepalive_ms),
                        min_pos(o->keepalive_timeout_ms, o->handshake_timeout_ms));
    t /= 4;
    if (t < 5)
        t = 5;
    if (t > 1000)
        t = 1000;
    struct timeval tv = {.tv_sec = t / 1000, .tv_usec = (t % 1000) * 1000};
    evtimer_add(conn->timer_ev, &tv);
}

static void timer_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd, (void)what;
    struct gs_conn *conn = arg;
    struct net_grpc_server *srv = conn->srv;
    const struct net_grpc_server_opts *o = &srv->opts;
    int64_t now = net_grpc_now_ms();
    if (conn->closing) {
        if (now - conn->closing_since_ms > 1000) /* the client does not read our GOAWAY */
            conn->dead = true;
    } else if (!conn->established) {
        if (now - conn->born_ms >= o->handshake_timeout_ms) {
            gs_conn_log(conn, "closed: no %s within %d ms",
                        conn->session ? "HTTP/2 preface" : "TLS handshake",
                        o->handshake_timeout_ms);
            srv->stats.timeouts_closed++;
            conn->dead = true;
        }
    } else if (conn->ncalls == 0 && o->idle_timeout_ms > 0 &&
               now - conn->idle_since_ms >= o->idle_timeout_ms) {
        srv->stats.timeouts_closed++;
        nghttp2_session_terminate_session(conn->session, NGHTTP2_NO_ERROR);
        conn->closing = true;
        conn->closing_since_ms = now;
        conn_send(conn);
    } else if (o->keepalive_ms > 0) {
        if (conn->ping_sent_ms == 0 && now - conn->last_read_ms >= o->keepalive_ms) {
            conn->ping_sent_ms = now;
            nghttp2_submit_ping(conn->session, NGHTTP2_FLAG_NONE, NULL);
            conn_send(conn);
        } else if (conn->ping_sent_ms && now - conn->ping_sent_ms >= o->keepalive_timeout_ms) {
            gs_conn_log(conn, "closed: no answer to keepalive ping within %d ms",
                        o->keepalive_timeout_ms);
            srv->stats.timeouts_closed++;
            conn->dead = true;
        }
    }
    if (!conn->dead)
        arm_timer(conn);
    conn_check(conn);
}

/* --- accepting ------------------------------------------------------------------------ */

static void format_addr(const struct sockaddr *sa, char *buf, size_t len)
{
    if (!sa) {
        snprintf(buf, len, "local");
        return;
    }
    char host[INET6_ADDRSTRLEN] = "?";
    unsigned port = 0;
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)sa;
        inet_ntop(AF_INET, &in->sin_addr, host, sizeof host);
        port = ntohs(in->sin_port);
        snprintf(buf, len, "%s:%u", host, port);
    } else if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;
        inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof host);
        port = ntohs(in6->sin6_port);
        snprintf(buf, len, "[%s]:%u", host, port);
    } else {
        snprintf(buf, len, "unknown");
    }
}

static void accept_cb(struct evconnlistener *lev, evutil_socket_t fd, struct sockaddr *sa,
                      int salen, void *arg)
{
    (void)lev, (void)salen;
    struct gs_listener *l = arg;
    gs_conn_adopt(l->srv, fd, sa, l->tls);
}

void gs_conn_adopt(struct net_grpc_server *srv, int fd, const struct sockaddr *sa, bool tls)
{
    struct gs_conn *conn = calloc(1, sizeof *conn);
    if (!conn) {
        close(fd);
        return;
    }
    conn->srv = srv;
    conn->tls = tls;
    format_addr(sa, conn->peer, sizeof conn->peer);
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    conn->born_ms = conn->last_read_ms = conn->idle_since_ms = net_grpc_now_ms();

    int opts = BEV_OPT_CLOSE_ON_FREE | BEV_OPT_DEFER_CALLBACKS;
    if (tls) {
        conn->ssl = SSL_new(srv->opts.ssl_ctx);
        if (!conn->ssl)
            goto fail_fd;
        conn->bev = bufferevent_openssl_socket_new(srv->base, fd, conn->ssl,
                                                   BUFFEREVENT_SSL_ACCEPTING, opts);
        if (!conn->bev) {
            SSL_free(conn->ssl);
            goto fail_fd;
        }
        bufferevent_openssl_set_allow_dirty_shutdown(conn->bev, 1);
    } else {
        conn->bev = bufferevent_socket_new(srv->base, fd, opts);
        if (!conn->bev)
            goto fail_fd;
    }
    conn->flush_ev = event_new(srv->base, -1, 0, flush_cb, conn);
    conn->timer_ev = evtimer_new(srv->base, timer_cb, conn);
    if (!conn->flush_ev || !conn->timer_ev)
        goto fail_bev;
    /* link before the session starts: conn_free unlinks */
    conn->next = srv->conns;
    if (srv->conns)
        srv->conns->prev = conn;
    srv->conns = conn;
    srv->stats.connections_open++;
    srv->stats.connections_accepted++;

    bufferevent_setcb(conn->bev, read_cb, write_cb, event_cb, conn);
    bufferevent_setwatermark(conn->bev, EV_WRITE, GS_OUT_LOW, 0);
    bufferevent_enable(conn->bev, EV_READ | EV_WRITE);
    arm_timer(conn);
    if (!tls) {
        if (gs_session_start(conn) != 0) {
            conn_free(conn);
            return;
        }
        conn_send(conn);
        conn_check(conn);
    }
    return;
fail_bev:
    if (conn->flush_ev)
        event_free(conn->flush_ev);
    if (conn->timer_ev)
        event_free(conn->timer_ev);
    bufferevent_free(conn->bev);
    free(conn);
    return;
fail_fd:
    close(fd);
    free(conn);
}

/* --- server ---------------------------------------------------------------------------- */

int net_grpc_server_new(struct event_base *base, const struct net_grpc_server_opts *opts,
                        struct net_grpc_server **out)
{
    if (!base || !out)
        return NET_EINVAL;
    *out = NULL;
    /* Writing to a connection the client reset raises SIGPIPE (libevent and OpenSSL use
     * plain write); it must be an error on that connection, not the end of the server. */
    struct sigaction sa;
    if (sigaction(SIGPIPE, NULL, &sa) == 0 && sa.sa_handler == SIG_DFL)
        signal(SIGPIPE, SIG_IGN);
    struct net_grpc_server *srv = calloc(1, sizeof *srv);
    if (!srv)
        return NET_ENOMEM;
    srv->base = base;
    if (opts)
        srv->opts = *opts;
    struct net_grpc_server_opts *o = &srv->opts;
    if (!o->max_request_bytes)
        o->max_request_bytes = NET_GRPC_DEFAULT_MAX_REQUEST;
    if (!o->max_pending_bytes)
        o->max_pending_bytes = NET_GRPC_DEFAULT_MAX_PENDING;
    if (!o->max_concurrent_streams)
        o->max_concurrent_streams = 1000;
    if (!o->idle_timeout_ms)
        o->idle_timeout_ms = 300000;
    if (!o->keepalive_ms)
        o->keepalive_ms = 60000;
    if (!o->keepalive_timeout_ms || o->keepalive_timeout_ms < 0)
        o->keepalive_timeout_ms = 20000;
    if (o->handshake_timeout_ms <= 0)
        o->handshake_timeout_ms = 10000;
    if (gs_callbacks_new(&srv->callbacks) != 0 || nghttp2_option_new(&srv->h2opt) != 0) {
        net_grpc_server_free(srv);
        return NET_ENOMEM;
    }
    /* etcdctl over h2c sends ":authority: http://127.0.0.1:PORT", which nghttp2's HTTP
     * checks reject; gs_call_headers_done validates what gRPC needs instead. */
    nghttp2_option_set_no_http_messaging(srv->h2opt, 1);
    *out = srv;
    return 0;
}

void net_grpc_server_free(struct net_grpc_server *srv)
{
    if (!srv)
        return;
    while (srv->listeners) {
        struct gs_listener *l = srv->listeners;
        srv->listeners = l->next;
        evconnlistener_free(l->lev);
        free(l);
    }
    while (srv->conns)
        conn_free(srv->conns);
    for (size_t i = 0; i < srv->nmethods; i++)
        free(srv->methods[i].path);
    free(srv->methods);
    if (srv->callbacks)
        nghttp2_session_callbacks_del(srv->callbacks);
    if (srv->h2opt)
        nghttp2_option_del(srv->h2opt);
    free(srv);
}

void net_grpc_server_shutdown(struct net_grpc_server *srv)
{
    while (srv->listeners) {
        struct gs_listener *l = srv->listeners;
        srv->listeners = l->next;
        evconnlistener_free(l->lev);
        free(l);
    }
    for (struct gs_conn *c = srv->conns; c; c = c->next) {
        if (!c->session) { /* still in the TLS handshake: nothing to drain */
            c->dead = true;
            gs_conn_schedule_dead(c);
            continue;
        }
        if (c->closing)
            continue;
        nghttp2_submit_goaway(c->session, NGHTTP2_FLAG_NONE,
                              nghttp2_session_get_last_proc_stream_id(c->session),
                              NGHTTP2_NO_ERROR, NULL, 0);
        gs_conn_schedule_flush(c);
    }
}

const struct gs_method *gs_find_method(const struct net_grpc_server *srv, const char *path)
{
    for (size_t i = 0; i < srv->nmethods; i++)
        if (strcmp(srv->methods[i].path, path) == 0)
            return &srv->methods[i];
    return NULL;
}

int net_grpc_server_register(struct net_grpc_server *srv, const char *path,
                             enum net_grpc_kind kind, net_grpc_handler_fn handler,
                             void *method_ud)
{
    if (!srv || !path || path[0] != '/' || !handler ||
        (kind != NET_GRPC_UNARY && kind != NET_GRPC_SERVER_STREAM && kind != NET_GRPC_BIDI))
        return NET_EINVAL;
    struct gs_method *m = (struct gs_method *)gs_find_method(srv, path);
    if (!m) {
        if (srv->nmethods == srv->methods_cap) {
            size_t cap = srv->methods_cap ? srv->methods_cap * 2 : 32;
            struct gs_method *nm = realloc(srv->methods, cap * sizeof *nm);
            if (!nm)
                return NET_ENOMEM;
            srv->methods = nm;
            srv->methods_cap = cap;
        }
        char *copy = strdup(path);
        if (!copy)
            return NET_ENOMEM;
        m = &srv->methods[srv->nmethods++];
        m->path = copy;
    }
    m->kind = kind;
    m->handler = handler;
    m->ud = method_ud;
    return 0;
}

/* Splits "https://host:port" into its parts. host gets the bare host (no brackets). */
static int parse_url(const char *url, bool *tls, char *host, size_t hostlen, char *port,
                     size_t portlen)
{
    const char *p = url;
    *tls = false;
    if (strncmp(p, "https://", 8) == 0) {
        *tls = true;
        p += 8;
    } else if (strncmp(p, "http://", 7) == 0) {
        p += 7;
    } else if (strstr(p, "://")) {
        return -1;
    }
    const char *hend, *colon;
    if (*p == '[') {
        hend = strchr(p, ']');
        if (!hend || hend[1] != ':')
            return -1;
        p++;
        colon = hend + 1;
    } else {
        colon = strrchr(p, ':');
        if (!colon)
            return -1;
        hend = colon;
    }
    size_t hl = (size_t)(hend - p);
    const char *ps = colon + 1;
    size_t pl = strcspn(ps, "/");
    if (hl == 0 || hl >= hostlen || pl == 0 || pl >= portlen ||
        (ps[pl] && strcmp(ps + pl, "/") != 0))
        return -1;
    memcpy(host, p, hl);
    host[hl] = '\0';
    memcpy(port, ps, pl);
    port[pl] = '\0';
    for (size_t i = 0; i < pl; i++)
        if (port[i] < '0' || port[i] > '9')
            return -1;
    if (atol(port) > 65535)
        return -1;
    return 0;
}

int net_grpc_server_listen(struct net_grpc_server *srv, const char *url, uint16_t *bound_port,
                           char *err, size_t errlen)
{
    bool tls;
    char host[256], port[8];
    if (!srv || !url || parse_url(url, &tls, host, sizeof host, port, sizeof port) != 0) {
        set_err(err, errlen, "grpc server: listen: malformed URL \"%s\" (want https://HOST:PORT "
                "or http://HOST:PORT)", url ? url : "");
        return NET_EINVAL;
    }
    if (tls && !srv->opts.ssl_ctx) {
        set_err(err, errlen, "grpc server: listen %s: https needs a TLS context", url);
        return NET_EINVAL;
    }
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_PASSIVE | AI_NUMERICSERV};
    struct addrinfo *ai = NULL;
    int gai = getaddrinfo(host, port, &hints, &ai);
    if (gai != 0 || !ai) {
        set_err(err, errlen, "grpc server: listen %s:%s: %s", host, port, gai_strerror(gai));
        return NET_EINVAL;
    }
    int fd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        set_err(err, errlen, "grpc server: listen %s:%s: socket: %s", host, port, strerror(errno));
        freeaddrinfo(ai);
        return NET_ESYS;
    }
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (bind(fd, ai->ai_addr, ai->ai_addrlen) != 0 || listen(fd, 511) != 0) {
        int e = errno;
        set_err(err, errlen, "grpc server: listen %s:%s: %s", host, port, strerror(e));
        close(fd);
        freeaddrinfo(ai);
        return e == EADDRINUSE ? NET_EADDRINUSE : NET_ESYS;
    }
    freeaddrinfo(ai);
    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    uint16_t bound = 0;
    if (getsockname(fd, (struct sockaddr *)&ss, &sl) == 0) {
        if (ss.ss_family == AF_INET)
            bound = ntohs(((struct sockaddr_in *)&ss)->sin_port);
        else if (ss.ss_family == AF_INET6)
            bound = ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
    }
    struct gs_listener *l = calloc(1, sizeof *l);
    if (!l) {
        close(fd);
        set_err(err, errlen, "grpc server: listen: out of memory");
        return NET_ENOMEM;
    }
    l->srv = srv;
    l->tls = tls;
    l->lev = evconnlistener_new(srv->base, accept_cb, l, LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC,
                                0, fd);
    if (!l->lev) {
        close(fd);
        free(l);
        set_err(err, errlen, "grpc server: listen %s:%s: cannot watch the socket", host, port);
        return NET_ESYS;
    }
    l->next = srv->listeners;
    srv->listeners = l;
    if (bound_port)
        *bound_port = bound;
    return 0;
}

void net_grpc_server_stats(const struct net_grpc_server *srv, struct net_grpc_server_stats *out)
{
    *out = srv->stats;
}
