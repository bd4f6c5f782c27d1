/* grpc_server_call — one gRPC call on the server: request headers and deadline, the 5-byte
 * message framing, dispatch to the handler, the bounded response queue that nghttp2 drains
 * under flow control, and trailers (or a trailers-only answer). */
#include "net/grpc_server_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "net/tls.h"

/* --- life ------------------------------------------------------------------------------ */

struct net_grpc_call *gs_call_new(struct gs_conn *conn, int32_t stream_id)
{
    struct net_grpc_call *call = calloc(1, sizeof *call);
    if (!call)
        return NULL;
    call->out = evbuffer_new();
    if (!call->out) {
        free(call);
        return NULL;
    }
    call->conn = conn;
    call->stream_id = stream_id;
    call->next = conn->calls;
    if (conn->calls)
        conn->calls->prev = call;
    conn->calls = call;
    conn->ncalls++;
    conn->srv->stats.calls_open++;
    return call;
}

void gs_call_close(struct net_grpc_call *call, int err)
{
    struct gs_conn *conn = call->conn;
    /* The close callback is the last thing the user hears; mark the call finished first so
     * calls made from inside it answer NET_ECLOSED. */
    call->finished = true;
    net_grpc_close_fn fn = call->close_cb;
    call->close_cb = NULL;
    if (fn)
        fn(call, call->user, err);
    if (call->deadline_ev)
        event_free(call->deadline_ev);
    if (call->linger_ev)
        event_free(call->linger_ev);
    if (call->prev)
        call->prev->next = call->next;
    else
        conn->calls = call->next;
    if (call->next)
        call->next->prev = call->prev;
    if (--conn->ncalls == 0)
        conn->idle_since_ms = net_grpc_now_ms();
    conn->srv->stats.calls_open--;
    evbuffer_free(call->out);
    free(call->msg);
    free(call->hdrs);
    free(call->path);
    free(call);
}

/* --- request side ------------------------------------------------------------------------ */

int gs_call_add_header(struct net_grpc_call *call, const uint8_t *name, size_t namelen,
                       const uint8_t *value, size_t valuelen)
{
    /* HPACK carries any bytes; with nghttp2's HTTP checks off, NUL is refused here so the
     * "name\0value\0" store stays parseable (HTTP forbids NUL in fields anyway). */
    if (namelen == 0 || memchr(name, 0, namelen) || (valuelen && memchr(value, 0, valuelen)))
        return -1;
    size_t need = namelen + valuelen + 2;
    if (call->hdrs_len + need > GS_MAX_HEADER_BYTES)
        return -1;
    if (call->hdrs_len + need > call->hdrs_cap) {
        size_t cap = call->hdrs_cap ? call->hdrs_cap * 2 : 512;
        while (cap < call->hdrs_len + need)
            cap *= 2;
        char *n = realloc(call->hdrs, cap);
        if (!n)
            return -1;
        call->hdrs = n;
        call->hdrs_cap = cap;
    }
    char *p = call->hdrs + call->hdrs_len;
    memcpy(p, name, namelen);
    p[namelen] = '\0';
    memcpy(p + namelen + 1, value, valuelen);
    p[namelen + 1 + valuelen] = '\0';
    call->hdrs_len += need;
    return 0;
}

const char *net_grpc_call_header(const struct net_grpc_call *call, const char *name)
{
    size_t off = 0;
    while (off < call->hdrs_len) {
        const char *n = call->hdrs + off;
        const char *v = n + strlen(n) + 1;
        if (strcmp(n, name) == 0)
            return v;
        off = (size_t)(v + strlen(v) + 1 - call->hdrs);
    }
    return NULL;
}

int net_grpc_parse_timeout(const char *value, int64_t *ns_out)
{
    if (!value)
        return NET_EINVAL;
    size_t n = strspn(value, "0123456789");
    if (n == 0 || n > 8 || value[n] == '\0' || value[n + 1] != '\0')
        return NET_EINVAL;
    int64_t v = 0;
    for (size_t i = 0; i < n; i++)
        v = v * 10 + (value[i] - '0');
    int64_t unit;
    switch (value[n]) {
    case 'H': unit = 3600LL * 1000000000LL; break;
    case 'M': unit = 60LL * 1000000000LL; break;
    case 'S': unit = 1000000000LL; break;
    case 'm': unit = 1000000LL; break;
    case 'u': unit = 1000LL; break;
    case 'n': unit = 1LL; break;
    default: return NET_EINVAL;
    }
    /* 99999999 H is about 3.6e20 ns: saturate rather than overflow */
    *ns_out = v > INT64_MAX / unit ? INT64_MAX : v * unit;
    return 0;
}

static void deadline_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd, (void)what;
    struct net_grpc_call *call = arg;
    if (call->finished)
        return;
    call->deadline_hit = true;
    gs_call_finish(call, NET_GRPC_DEADLINE_EXCEEDED, "context deadline exceeded", 200);
}

void gs_call_headers_done(struct net_grpc_call *call)
{
    struct gs_conn *conn = call->conn;
    struct net_grpc_server *srv = conn->srv;
    const char *method = net_grpc_call_header(call, ":method");
    const char *path = net_grpc_call_header(call, ":path");
    const char *ctype = net_grpc_call_header(call, "content-type");
    if (!method || strcmp(method, "POST") != 0) {
        call->discard_input = true;
        gs_call_finish(call, NET_GRPC_INTERNAL, "grpc: only POST is supported", 405);
        return;
    }
    if (!ctype || strncmp(ctype, "application/grpc", 16) != 0 ||
        (ctype[16] != '\0' && ctype[16] != '+' && ctype[16] != ';')) {
        call->discard_input = true;
        gs_call_finish(call, NET_GRPC_INTERNAL, "grpc: content-type must be application/grpc",
                       415);
        return;
    }
    if (!path || path[0] != '/') {
        call->discard_input = true;
        gs_call_finish(call, NET_GRPC_UNIMPLEMENTED, "grpc: malformed method path", 200);
        return;
    }
    const struct gs_method *m = gs_find_method(srv, path);
    if (!m) {
        call->discard_input = true;
        srv->stats.calls_unimplemented++;
        char text[GS_MAX_STATUS_MSG];
        snprintf(text, sizeof text, "unknown method %.200s", path);
        gs_call_finish(call, NET_GRPC_UNIMPLEMENTED, text, 200);
        return;
    }
    call->path = strdup(path);
    if (!call->path) {
        call->discard_input = true;
        gs_call_finish(call, NET_GRPC_RESOURCE_EXHAUSTED, "out of memory", 200);
        return;
    }
    call->kind = m->kind;
    call->handler = m->handler;
    call->method_ud = m->ud;
    int64_t ns;
    const char *to = net_grpc_call_header(call, "grpc-timeout");
    if (to && net_grpc_parse_timeout(to, &ns) == 0) {
        int64_t ms = ns / 1000000 + (ns % 1000000 != 0);
        if (ms > (int64_t)365 * 24 * 3600 * 1000)
            ms = (int64_t)365 * 24 * 3600 * 1000;
        call->deadline_ms = net_grpc_now_ms() + ms;
        call->deadline_ev = evtimer_new(srv->base, deadline_cb, call);
        if (call->deadline_ev) {
            struct timeval tv = {.tv_sec = ms / 1000, .tv_usec = (ms % 1000) * 1000};
            evtimer_add(call->deadline_ev, &tv);
        }
    }
    call->dispatchable = true;
    srv->stats.calls_started++;
}

static void deliver(struct net_grpc_call *call, const uint8_t *msg, size_t len)
{
    call->messages_in++;
    if (call->finished || (call->kind != NET_GRPC_BIDI && call->messages_in > 1))
        return;
    call->in_handler++;
    call->handler(call, msg, len, call->method_ud);
    call->in_handler--;
}

void gs_call_data(struct net_grpc_call *call, const uint8_t *data, size_t len)
{
    size_t max = call->conn->srv->opts.max_request_bytes;
    while (len > 0 && !call->discard_input && call->dispatchable) {
        if (call->prefix_have < 5) {
            size_t take = 5 - call->prefix_have;
            if (take > len)
                take = len;
            memcpy(call->prefix + call->prefix_have, data, take);
            call->prefix_have += take;
            data += take;
            len -= take;
            if (call->prefix_have < 5)
                return;
            uint8_t flag = call->prefix[0];
            size_t mlen = ((size_t)call->prefix[1] << 24) | ((size_t)call->prefix[2] << 16) |
                          ((size_t)call->prefix[3] << 8) | call->prefix[4];
            if (flag == 1) {
                const char *enc = net_grpc_call_header(call, "grpc-encoding");
                char text[GS_MAX_STATUS_MSG];
                snprintf(text, sizeof text, "grpc: compressed message (encoding %.64s) "
                         "not supported", enc ? enc : "none");
                call->discard_input = true;
                gs_call_finish(call, NET_GRPC_UNIMPLEMENTED, text, 200);
                return;
            }
            if (flag != 0) {
                call->discard_input = true;
                gs_call_finish(call, NET_GRPC_INTERNAL, "grpc: invalid message flag", 200);
                return;
            }
            /* Checked before a byte of the body is buffered. */
            if (mlen > max) {
                char text[GS_MAX_STATUS_MSG];
                snprintf(text, sizeof text,
                         "grpc: received message larger than max (%zu vs. %zu)", mlen, max);
                call->discard_input = true;
                call->reset_early = true;
                gs_call_finish(call, NET_GRPC_RESOURCE_EXHAUSTED, text, 200);
                return;
            }
            if (mlen == 0) {
                call->prefix_have = 0;
                deliver(call, (const uint8_t *)"", 0);
                continue;
            }
            /* The buffer grows with the bytes that really arrive: a client announcing
             * large messages on many streams and sending little costs little. */
            call->msg_cap = mlen < GS_MSG_INITIAL ? mlen : GS_MSG_INITIAL;
            call->msg = malloc(call->msg_cap);
            if (!call->msg) {
                call->discard_input = true;
                gs_call_finish(call, NET_GRPC_RESOURCE_EXHAUSTED, "out of memory", 200);
                return;
            }
            call->msg_len = mlen;
            call->msg_have = 0;
            continue;
        }
        size_t take = call->msg_len - call->msg_have;
        if (take > len)
            take = len;
        if (call->msg_have + take > call->msg_cap) {
            size_t cap = call->msg_cap * 2;
            if (cap < call->msg_have + take)
                cap = call->msg_have + take;
            if (cap > call->msg_len)
                cap = call->msg_len;
            uint8_t *m = realloc(call->msg, cap);
            if (!m) {
                call->discard_input = true;
                gs_call_finish(call, NET_GRPC_RESOURCE_EXHAUSTED, "out of memory", 200);
                return;
            }
            call->msg = m;
            call->msg_cap = cap;
        }
        memcpy(call->msg + call->msg_have, data, take);
        call->msg_have += take;
        data += take;
        len -= take;
        if (call->msg_have == call->msg_len) {
            uint8_t *msg = call->msg;
            size_t mlen = call->msg_len;
            call->msg = NULL;
            call->msg_len = call->msg_have = call->msg_cap = 0;
            call->prefix_have = 0;
            deliver(call, msg, mlen);
            free(msg);
        }
    }
}

void gs_call_remote_closed(struct net_grpc_call *call)
{
    if (call->remote_closed)
        return;
    call->remote_closed = true;
    if (!call->dispatchable || call->finished)
        return;
    if (call->prefix_have != 0) {
        gs_call_finish(call, NET_GRPC_INTERNAL, "grpc: request ended inside a message", 200);
        return;
    }
    if (call->kind != NET_GRPC_BIDI && call->messages_in == 0) {
        gs_call_finish(call, NET_GRPC_INTERNAL, "grpc: request has no message", 200);
        return;
    }
    call->half_close_due = true;
    call->conn->notify_pending = true;
    gs_conn_schedule_flush(call->conn);
}

void gs_call_notify(struct net_grpc_call *call)
{
    if (call->half_close_due && call->half_close_cb && !call->half_close_fired) {
        call->half_close_due = false;
        call->half_close_fired = true;
        call->half_close_cb(call, call->user);
    }
    if (call->writable_due) {
        call->writable_due = false;
        if (call->writable_cb && !call->finished)
            call->writable_cb(call, call->user);
    }
}

/* --- response side ----------------------------------------------------------------------- */

static void percent_encode(const char *in, char *out, size_t outlen)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t o = 0;
    for (size_t i = 0; i < GS_MAX_STATUS_MSG && in[i] && o + 4 <= outlen; i++) {
        unsigned char c = (unsigned char)in[i];
        if (c >= 0x20 && c <= 0x7e && c != '%') {
            out[o++] = (char)c;
        } else {
            out[o++] = '%';
            out[o++] = hex[c >> 4];
            out[o++] = hex[c & 15];
        }
    }
    out[o] = '\0';
}

#define NV(n, v) {(uint8_t *)(n), (uint8_t *)(v), sizeof(n) - 1, strlen(v), NGHTTP2_NV_FLAG_NONE}

/* nghttp2 pulls response bytes from the call's queue as the client's window allows. */
static ssize_t data_read(nghttp2_session *session, int32_t stream_id, uint8_t *buf,
                         size_t length, uint32_t *data_flags, nghttp2_data_source *source,
                         void *user_data)
{
    (void)user_data;
    struct net_grpc_call *call = source->ptr;
    size_t avail = evbuffer_get_length(call->out);
    size_t n = avail < length ? avail : length;
    if (n)
        evbuffer_remove(call->out, buf, n);
    if (n == avail && call->finished) {
        char code[16];
        snprintf(code, sizeof code, "%d", call->status);
        nghttp2_nv tr[2] = {NV("grpc-status", code), NV("grpc-message", call->status_msg)};
        *data_flags |= NGHTTP2_DATA_FLAG_EOF | NGHTTP2_DATA_FLAG_NO_END_STREAM;
        if (nghttp2_submit_trailer(session, stream_id, tr, call->status_msg[0] ? 2 : 1) != 0)
            return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
        return (ssize_t)n;
    }
    if (n == 0) {
        call->deferred = true;
        return NGHTTP2_ERR_DEFERRED;
    }
    if (call->want_writable &&
        evbuffer_get_length(call->out) <= call->conn->srv->opts.max_pending_bytes / 2) {
        call->want_writable = false;
        call->writable_due = true;
        call->conn->notify_pending = true;
        gs_conn_schedule_flush(call->conn);
    }
    return (ssize_t)n;
}

/* Makes sure HEADERS with a data provider were submitted, or wakes the provider. */
static int kick(struct net_grpc_call *call)
{
    struct gs_conn *conn = call->conn;
    if (!call->response_submitted) {
        nghttp2_nv hdrs[2] = {NV(":status", "200"), NV("content-type", "application/grpc")};
        nghttp2_data_provider prd = {.source.ptr = call, .read_callback = data_read};
        if (nghttp2_submit_response(conn->session, call->stream_id, hdrs, 2, &prd) != 0)
            return NET_ECLOSED;
        call->response_submitted = true;
    } else if (call->deferred) {
        call->deferred = false;
        nghttp2_session_resume_data(conn->session, call->stream_id);
    }
    gs_conn_schedule_flush(conn);
    return 0;
}

static int queue_message(struct net_grpc_call *call, const uint8_t *buf, size_t len)
{
    if (len > 0xffffffffu)
        return NET_EINVAL;
    uint8_t prefix[5] = {0, (uint8_t)(len >> 24), (uint8_t)(len >> 16), (uint8_t)(len >> 8),
                         (uint8_t)len};
    if (evbuffer_add(call->out, prefix, 5) != 0 || (len && evbuffer_add(call->out, buf, len) != 0))
        return NET_ENOMEM;
    return 0;
}

int gs_call_finish(struct net_grpc_call *call, int status, const char *message, int http_status)
{
    struct gs_conn *conn = call->conn;
    if (call->finished || conn->dead)
        return NET_ECLOSED;
    call->finished = true;
    call->status = status;
    percent_encode(message ? message : "", call->status_msg, sizeof call->status_msg);
    if (call->response_submitted)
        return kick(call);
    /* Trailers-only: one HEADERS frame with END_STREAM carries the whole answer. */
    char code[16], hs[8];
    snprintf(code, sizeof code, "%d", status);
    snprintf(hs, sizeof hs, "%d", http_status);
    nghttp2_nv nv[4] = {NV(":status", hs), NV("content-type", "application/grpc"),
                        NV("grpc-status", code), NV("grpc-message", call->status_msg)};
    call->response_submitted = true;
    if (nghttp2_submit_response(conn->session, call->stream_id, nv, call->status_msg[0] ? 4 : 3,
                                NULL) != 0)
        return NET_ECLOSED;
    gs_conn_schedule_flush(conn);
    return 0;
}

int net_grpc_call_finish(struct net_grpc_call *call, int grpc_status, const char *message)
{
    return gs_call_finish(call, grpc_status, message, 200);
}

int net_grpc_call_send(struct net_grpc_call *call, const uint8_t *buf, size_t len)
{
    if (call->finished || call->conn->dead)
        return NET_ECLOSED;
    size_t pending = evbuffer_get_length(call->out);
    if (pending > 0 && pending + len + 5 > call->conn->srv->opts.max_pending_bytes) {
        call->want_writable = true;
        return NET_EFULL;
    }
    int rc = queue_message(call, buf, len);
    if (rc)
        return rc;
    return kick(call);
}

int net_grpc_call_reply(struct net_grpc_call *call, const uint8_t *buf, size_t len)
{
    if (call->finished || call->conn->dead)
        return NET_ECLOSED;
    int rc = queue_message(call, buf, len);
    if (rc)
        return rc;
    call->finished = true;
    call->status = NET_GRPC_OK;
    call->status_msg[0] = '\0';
    return kick(call);
}

/* Packs msg into a buffer; small messages use the caller's stack buffer. */
static uint8_t *pack(const ProtobufCMessage *msg, uint8_t *stackbuf, size_t stacklen,
                     size_t *len)
{
    *len = protobuf_c_message_get_packed_size(msg);
    uint8_t *buf = *len <= stacklen ? stackbuf : malloc(*len ? *len : 1);
    if (buf)
        protobuf_c_message_pack(msg, buf);
    return buf;
}

int net_grpc_call_reply_msg(struct net_grpc_call *call, const ProtobufCMessage *msg)
{
    uint8_t stackbuf[1024];
    size_t len;
    uint8_t *buf = pack(msg, stackbuf, sizeof stackbuf, &len);
    if (!buf)
        return NET_ENOMEM;
    int rc = net_grpc_call_reply(call, buf, len);
    if (buf != stackbuf)
        free(buf);
    return rc;
}

int net_grpc_call_send_msg(struct net_grpc_call *call, const ProtobufCMessage *msg)
{
    uint8_t stackbuf[1024];
    size_t len;
    uint8_t *buf = pack(msg, stackbuf, sizeof stackbuf, &len);
    if (!buf)
        return NET_ENOMEM;
    int rc = net_grpc_call_send(call, buf, len);
    if (buf != stackbuf)
        free(buf);
    return rc;
}

/* --- accessors --------------------------------------------------------------------------- */

size_t net_grpc_call_pending_bytes(const struct net_grpc_call *call)
{
    return evbuffer_get_length(call->out);
}

bool net_grpc_call_finished(const struct net_grpc_call *call)
{
    return call->finished;
}

const char *net_grpc_call_method(const struct net_grpc_call *call)
{
    return call->path ? call->path : "";
}

int64_t net_grpc_call_deadline_ms(const struct net_grpc_call *call)
{
    return call->deadline_ms;
}

const char *net_grpc_call_peer(const struct net_grpc_call *call)
{
    return call->conn->peer;
}

bool net_grpc_call_peer_verified(const struct net_grpc_call *call)
{
    return call->conn->ssl && net_tls_peer_verified(call->conn->ssl);
}

int net_grpc_call_peer_common_name(const struct net_grpc_call *call, char *buf, size_t len)
{
    if (len)
        buf[0] = '\0';
    if (!net_grpc_call_peer_verified(call))
        return NET_ENOTFOUND;
    return net_tls_peer_common_name(call->conn->ssl, buf, len);
}

enum net_grpc_kind net_grpc_call_kind(const struct net_grpc_call *call)
{
    return call->kind;
}

bool net_grpc_call_half_closed(const struct net_grpc_call *call)
{
    return call->remote_closed;
}

void net_grpc_call_set_user(struct net_grpc_call *call, void *user)
{
    call->user = user;
}

void *net_grpc_call_user(const struct net_grpc_call *call)
{
    return call->user;
}

void net_grpc_call_set_close_cb(struct net_grpc_call *call, net_grpc_close_fn fn)
{
    call->close_cb = fn;
}

void net_grpc_call_set_half_close_cb(struct net_grpc_call *call, net_grpc_call_event_fn fn)
{
    call->half_close_cb = fn;
    if (fn && call->remote_closed && !call->finished) {
        call->half_close_due = true;
        call->conn->notify_pending = true;
        gs_conn_schedule_flush(call->conn);
    }
}

void net_grpc_call_set_writable_cb(struct net_grpc_call *call, net_grpc_call_event_fn fn)
{
    call->writable_cb = fn;
}
