/* grpc_client_call — calls and streams of the gRPC client: request headers and message
 * framing, received messages, completion and deadlines, the sync helpers, and the small
 * wire helpers (grpc-timeout, grpc-message decoding, code names). */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "net/grpc_client_internal.h"

/* --- status ---------------------------------------------------------------------- */

static const char *const code_names[] = {
    "OK", "CANCELLED", "UNKNOWN", "INVALID_ARGUMENT", "DEADLINE_EXCEEDED", "NOT_FOUND",
    "ALREADY_EXISTS", "PERMISSION_DENIED", "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION",
    "ABORTED", "OUT_OF_RANGE", "UNIMPLEMENTED", "INTERNAL", "UNAVAILABLE", "DATA_LOSS",
    "UNAUTHENTICATED",
};

const char *net_grpc_code_name(int code)
{
    if (code < 0 || code > NET_GRPC_UNAUTHENTICATED)
        return "UNKNOWN_CODE";
    return code_names[code];
}

void gc_status_set(struct net_grpc_status *st, int code, const char *fmt, ...)
{
    va_list ap;
    st->code = code;
    va_start(ap, fmt);
    vsnprintf(st->message, sizeof(st->message), fmt, ap);
    va_end(ap);
}

void net_grpc_format_timeout(int timeout_ms, char *buf, size_t len)
{
    if (timeout_ms < 1)
        timeout_ms = 1;
    if (timeout_ms < 100000000)
        snprintf(buf, len, "%dm", timeout_ms);
    else
        snprintf(buf, len, "%dS", timeout_ms / 1000);
}

static int hexval(char ch)
{
    if (ch >= '0' && ch <= '9') return ch - '0';
    if (ch >= 'a' && ch <= 'f') return ch - 'a' + 10;
    if (ch >= 'A' && ch <= 'F') return ch - 'A' + 10;
    return -1;
}

void net_grpc_percent_decode(const char *in, size_t len, char *out, size_t outlen)
{
    size_t o = 0;
    if (!outlen)
        return;
    for (size_t i = 0; i < len && o + 1 < outlen; i++) {
        int hi, lo;
        if (in[i] == '%' && i + 2 < len && (hi = hexval(in[i + 1])) >= 0 &&
            (lo = hexval(in[i + 2])) >= 0) {
            out[o++] = (char)(hi << 4 | lo);
            i += 2;
        } else {
            out[o++] = in[i];
        }
    }
    out[o] = 0;
}

/* --- call lifecycle -------------------------------------------------------------- */

void gc_call_free(struct gc_call *call)
{
    if (call->deadline_ev)
        event_free(call->deadline_ev);
    while (call->q_head) {
        struct gc_msg *m = call->q_head;
        call->q_head = m->next;
        free(m);
    }
    if (call->out)
        evbuffer_free(call->out);
    if (call->in)
        evbuffer_free(call->in);
    gc_free_md(call->md);
    free(call->path);
    free(call->req_copy);
    free(call->resp);
    free(call);
}

void gc_call_maybe_free(struct gc_call *call)
{
    if (!call->done || call->conn || call->in_cb || call->finishing ||
        (call->kind == CALL_STREAM && !call->user_freed))
        return;
    struct net_grpc_client *c = call->c;
    if (c) {
        if (call->prev)
            call->prev->next = call->next;
        else
            c->calls = call->next;
        if (call->next)
            call->next->prev = call->prev;
        else
            c->calls_tail = call->prev;
    }
    gc_call_free(call);
}

/* Queues the call for completion from the client's deferred work. */
void gc_call_end(struct gc_call *call)
{
    if (call->finishing || call->done || !call->c)
        return;
    gc_progress(call->c);
    call->finishing = true;
    call->pending = false;
    if (call->deadline_ev)
        evtimer_del(call->deadline_ev);
    struct net_grpc_client *c = call->c;
    call->dq_next = NULL;
    if (c->dq_tail)
        c->dq_tail->dq_next = call;
    else
        c->dq_head = call;
    c->dq_tail = call;
    gc_kick(c);
}

void gc_call_finish(struct gc_call *call, int code, const char *fmt, ...)
{
    if (call->finishing || call->done)
        return;
    va_list ap;
    call->st.code = code;
    va_start(ap, fmt);
    vsnprintf(call->st.message, sizeof(call->st.message), fmt, ap);
    va_end(ap);
    call->local_status = true;
    if (call->conn && call->stream_id > 0 && call->conn->state == CONN_READY)
        nghttp2_submit_rst_stream(call->conn->ng, NGHTTP2_FLAG_NONE, call->stream_id,
                                  NGHTTP2_CANCEL);
    gc_call_end(call);
}

/* Gives the call's callbacks their final status. */
void gc_call_complete(struct gc_call *call)
{
    if (call->done)
        return;
    call->done = true;
    call->finishing = false;
    gc_progress(call->c);
    if (call->st.code == NET_GRPC_OK && call->kind != CALL_STREAM && !call->got_resp)
        gc_status_set(&call->st, NET_GRPC_INTERNAL, "grpc client: no response message");
    call->in_cb++;
    switch (call->kind) {
    case CALL_UNARY_RAW:
        if (call->ucb)
            call->ucb(call->ud, &call->st, call->st.code == NET_GRPC_OK ? call->resp : NULL,
                      call->st.code == NET_GRPC_OK ? call->resp_len : 0);
        break;
    case CALL_UNARY_MSG: {
        ProtobufCMessage *m = NULL;
        if (call->st.code == NET_GRPC_OK) {
            static const uint8_t empty[1];
            m = protobuf_c_message_unpack(call->resp_desc, NULL, call->resp_len,
                                          call->resp ? call->resp : empty);
            if (!m)
                gc_status_set(&call->st, NET_GRPC_INTERNAL,
                              "grpc client: response did not unpack as %s",
                              call->resp_desc->name);
        }
        if (call->umcb)
            call->umcb(call->ud, &call->st, m);
        else if (m)
            protobuf_c_message_free_unpacked(m, NULL);
        break;
    }
    case CALL_STREAM:
        if (call->on_close)
            call->on_close(call->ud, (struct net_grpc_stream *)call, &call->st);
        break;
    }
    call->in_cb--;
}

void gc_run_completions(struct net_grpc_client *c)
{
    struct gc_call *call;
    while ((call = c->dq_head) != NULL) {
        c->dq_head = call->dq_next;
        if (!c->dq_head)
            c->dq_tail = NULL;
        call->dq_next = NULL;
        gc_call_complete(call);
        gc_call_maybe_free(call);
    }
}

static void deadline_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd, (void)what;
    struct gc_call *call = arg;
    if (call->pending && call->c->last_err[0])
        gc_call_finish(call, NET_GRPC_DEADLINE_EXCEEDED,
                       "deadline exceeded after %d ms (last error: %s)", call->timeout_ms,
                       call->c->last_err);
    else
        gc_call_finish(call, NET_GRPC_DEADLINE_EXCEEDED, "deadline exceeded after %d ms",
                       call->timeout_ms);
}

static struct gc_call *call_new(struct net_grpc_client *c, enum gc_kind kind, const char *method,
                                const char *const *md, int timeout_ms)
{
    struct gc_call *call = calloc(1, sizeof(*call));
    if (!call)
        return NULL;
    call->c = c;
    call->kind = kind;
    call->stream_id = -1;
    call->timeout_ms = timeout_ms;
    call->path = strdup(method);
    call->out = evbuffer_new();
    call->in = evbuffer_new();
    if (!call->path || !call->out || !call->in || gc_copy_md(md, &call->md) != 0)
        goto fail;
    if (timeout_ms > 0) {
        call->deadline_ms = gc_now_ms(c) + (uint64_t)timeout_ms;
        call->deadline_ev = evtimer_new(c->base, deadline_cb, call);
        if (!call->deadline_ev)
            goto fail;
        struct timeval tv = {timeout_ms / 1000, (timeout_ms % 1000) * 1000};
        evtimer_add(call->deadline_ev, &tv);
    }
    return call;
fail:
    call->c = NULL;
    gc_call_free(call);
    return NULL;
}

/* Makes the call visible to the client: it waits for a connection from now on. */
static void call_start(struct gc_call *call)
{
    struct net_grpc_client *c = call->c;
    call->pending = true;
    call->prev = c->calls_tail;
    if (c->calls_tail)
        c->calls_tail->next = call;
    else
        c->calls = call;
    c->calls_tail = call;
    gc_kick(c);
}

static int frame_msg(struct evbuffer *out, const uint8_t *buf, size_t len)
{
    uint8_t h[GRPC_HDR] = {0, (uint8_t)(len >> 24), (uint8_t)(len >> 16), (uint8_t)(len >> 8),
                           (uint8_t)len};
    if (len > UINT32_MAX)
        return -1;
    if (evbuffer_add(out, h, sizeof(h)) != 0 || (len && evbuffer_add(out, buf, len) != 0))
        return -1;
    return 0;
}

/* nghttp2 asks for request body bytes: whatever the call has framed so far. */
static ssize_t data_read(nghttp2_session *ng, int32_t sid, uint8_t *buf, size_t len,
                         uint32_t *flags, nghttp2_data_source *src, void *ud)
{
    (void)src, (void)ud;
    struct gc_call *call = nghttp2_session_get_stream_user_data(ng, sid);
    if (!call || call->finishing || call->done)
        return NGHTTP2_ERR_DEFERRED;
    int n = evbuffer_remove(call->out, buf, len);
    if (n < 0)
        return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
    if (n > 0)
        call->out_taken = true;
    if (evbuffer_get_length(call->out) == 0) {
        if (call->half_close) {
            *flags |= NGHTTP2_DATA_FLAG_EOF;
        } else if (n == 0) {
            call->deferred = true;
            return NGHTTP2_ERR_DEFERRED;
        }
    }
    return n;
}

/* Wakes the stream's data provider after new bytes or a half-close. */
static void resume(struct gc_call *call)
{
    if (call->deferred && call->conn && call->conn->state == CONN_READY) {
        call->deferred = false;
        nghttp2_session_resume_data(call->conn->ng, call->stream_id);
    }
    gc_kick(call->c);
}

#define NV(n, v) \
    ((nghttp2_nv){(uint8_t *)(n), (uint8_t *)(v), strlen(n), strlen(v), NGHTTP2_NV_FLAG_NONE})

int gc_submit(struct gc_conn *k, struct gc_call *call)
{
    struct net_grpc_client *c = call->c;
    char tmo[16];
    size_t nmd = 0;
    for (char **m = c->md; m && *m; m += 2) nmd++;
    for (char **m = call->md; m && *m; m += 2) nmd++;
    nghttp2_nv nva[8 + nmd];
    size_t n = 0;
    const struct gc_endpoint *ep = &c->eps[k->ep];
    nva[n++] = NV(":method", "POST");
    nva[n++] = NV(":scheme", ep->tls ? "https" : "http");
    nva[n++] = NV(":path", call->path);
    nva[n++] = NV(":authority", ep->authority);
    nva[n++] = NV("content-type", "application/grpc");
    nva[n++] = NV("te", "trailers");
    nva[n++] = NV("user-agent", "plinth-grpc/" PLINTH_VERSION);
    if (call->deadline_ms) {
        uint64_t now = gc_now_ms(c);
        if (now >= call->deadline_ms) {
            gc_call_finish(call, NET_GRPC_DEADLINE_EXCEEDED, "deadline exceeded after %d ms",
                           call->timeout_ms);
            return -1;
        }
        net_grpc_format_timeout((int)(call->deadline_ms - now), tmo, sizeof(tmo));
        nva[n++] = NV("grpc-timeout", tmo);
    }
    for (char **m = c->md; m && *m; m += 2) nva[n++] = NV(m[0], m[1]);
    for (char **m = call->md; m && *m; m += 2) nva[n++] = NV(m[0], m[1]);
    nghttp2_data_provider prd = {.source.ptr = call, .read_callback = data_read};
    int32_t id = nghttp2_submit_request(k->ng, NULL, nva, n, &prd, call);
    if (id < 0) {
        gc_call_finish(call, NET_GRPC_INTERNAL, "grpc client: submit %s: %s", call->path,
                       nghttp2_strerror(id));
        return -1;
    }
    call->stream_id = id;
    call->conn = k;
    call->pending = false;
    call->deferred = false;
    k->nstreams++;
    return 0;
}

/* --- receiving ------------------------------------------------------------------- */

void gc_call_deliver(struct gc_call *call, const uint8_t *msg, size_t len)
{
    static const uint8_t empty[1];
    if (!msg)
        msg = empty;
    switch (call->kind) {
    case CALL_UNARY_RAW:
    case CALL_UNARY_MSG:
        if (call->got_resp) {
            gc_call_finish(call, NET_GRPC_INTERNAL, "grpc client: more than one response message");
            return;
        }
        call->resp = len ? malloc(len) : NULL;
        if (len && !call->resp) {
            gc_call_finish(call, NET_GRPC_RESOURCE_EXHAUSTED, "grpc client: out of memory");
            return;
        }
        if (len)
            memcpy(call->resp, msg, len);
        call->resp_len = len;
        call->got_resp = true;
        break;
    case CALL_STREAM:
        if (call->user_freed)
            return;
        if (call->on_msg) {
            gc_progress(call->c);
            call->in_cb++;
            call->on_msg(call->ud, (struct net_grpc_stream *)call, msg, len);
            call->in_cb--;
        } else {
            struct gc_msg *m = malloc(sizeof(*m) + len);
            if (!m) {
                gc_call_finish(call, NET_GRPC_RESOURCE_EXHAUSTED, "grpc client: out of memory");
                return;
            }
            m->next = NULL;
            m->len = len;
            memcpy(m->data, msg, len);
            if (call->q_tail)
                call->q_tail->next = m;
            else
                call->q_head = m;
            call->q_tail = m;
            call->q_bytes += len + GRPC_HDR;
            gc_progress(call->c);
        }
        break;
    }
}

int gc_call_on_data(struct gc_call *call, const uint8_t *data, size_t len)
{
    nghttp2_session *ng = call->conn->ng;
    int32_t sid = call->stream_id;
    size_t max = call->c->max_recv;
    if (evbuffer_add(call->in, data, len) != 0) {
        gc_call_finish(call, NET_GRPC_RESOURCE_EXHAUSTED, "grpc client: out of memory");
        goto out;
    }
    for (;;) {
        size_t have = evbuffer_get_length(call->in);
        if (have < GRPC_HDR)
            break;
        uint8_t h[GRPC_HDR];
        evbuffer_copyout(call->in, h, GRPC_HDR);
        size_t mlen = (size_t)h[1] << 24 | (size_t)h[2] << 16 | (size_t)h[3] << 8 | h[4];
        if (h[0] != 0) {
            gc_call_finish(call, NET_GRPC_INTERNAL,
                           "grpc client: compressed message, but no grpc-encoding was agreed");
            goto out;
        }
        if (mlen > max) {
            gc_call_finish(call, NET_GRPC_RESOURCE_EXHAUSTED,
                           "grpc client: received message larger than max (%zu vs. %zu)", mlen,
                           max);
            goto out;
        }
        if (have < GRPC_HDR + mlen)
            break;
        evbuffer_drain(call->in, GRPC_HDR);
        const uint8_t *msg = mlen ? evbuffer_pullup(call->in, (ssize_t)mlen) : NULL;
        gc_call_deliver(call, msg, mlen);
        evbuffer_drain(call->in, mlen);
        if (call->finishing || call->done)
            goto out;
    }
    /* A sync reader that falls behind stops getting window once its queue is full. */
    if (call->kind == CALL_STREAM && !call->on_msg && call->q_bytes >= GRPC_RECVQ_MAX) {
        call->unconsumed += len;
        return 0;
    }
out:
    nghttp2_session_consume_stream(ng, sid, len);
    return 0;
}

/* --- running the loop ------------------------------------------------------------ */

/* True when the base is already running (we are inside one of its callbacks): libevent
 * refuses a nested loop. The probe itself runs what is ready, which the caller wanted. */
static bool in_loop(struct net_grpc_client *c)
{
    return event_base_loop(c->base, EVLOOP_NONBLOCK) < 0;
}

/* A sync helper waits for a message or a completion. libevent's EVLOOP_ONCE keeps
 * looping while callbacks keep making others active (our connection and an in-process
 * server ping-pong), and may then block until an unrelated timer: end the loop as soon
 * as something the waiter looks at has changed. */
void gc_progress(struct net_grpc_client *c)
{
    if (c && c->waiting)
        event_base_loopbreak(c->base);
}

int gc_run_once(struct net_grpc_client *c, uint64_t until_ms)
{
    if (until_ms) {
        uint64_t now = gc_now_ms(c);
        if (now >= until_ms)
            return 0;
        uint64_t d = until_ms - now;
        struct timeval tv = {(time_t)(d / 1000), (suseconds_t)(d % 1000) * 1000};
        evtimer_add(c->wake, &tv);
    }
    c->waiting = true;
    int rv = event_base_loop(c->base, EVLOOP_ONCE);
    c->waiting = false;
    if (until_ms)
        evtimer_del(c->wake);
    return rv;
}

int net_grpc_client_poll(struct net_grpc_client *c, int timeout_ms)
{
    if (in_loop(c))
        return NET_EINVAL;
    if (timeout_ms <= 0) {
        event_base_loop(c->base, EVLOOP_NONBLOCK);
        return 0;
    }
    uint64_t until = gc_now_ms(c) + (uint64_t)timeout_ms;
    while (gc_now_ms(c) < until)
        if (gc_run_once(c, until) < 0)
            return NET_EINVAL;
    return 0;
}

/* --- unary calls ----------------------------------------------------------------- */

static int unary_timeout(struct net_grpc_client *c, int timeout_ms)
{
    return timeout_ms == 0 ? c->call_timeout_ms : timeout_ms;
}

static int start_unary(struct net_grpc_client *c, const char *method, const uint8_t *req,
                       size_t req_len, int timeout_ms, enum gc_kind kind,
                       net_grpc_unary_cb ucb, net_grpc_unary_msg_cb umcb,
                       const ProtobufCMessageDescriptor *desc, void *ud)
{
    if (!c || !method || (!ucb && !umcb) || (kind == CALL_UNARY_MSG && !desc) ||
        req_len > UINT32_MAX)
        return NET_EINVAL;
    struct gc_call *call = call_new(c, kind, method, NULL, unary_timeout(c, timeout_ms));
    if (!call)
        return NET_ENOMEM;
    call->req_copy_len = req_len + GRPC_HDR;
    call->req_copy = malloc(call->req_copy_len);
    if (!call->req_copy) {
        call->c = NULL;
        gc_call_free(call);
        return NET_ENOMEM;
    }
    call->req_copy[0] = 0;
    call->req_copy[1] = (uint8_t)(req_len >> 24);
    call->req_copy[2] = (uint8_t)(req_len >> 16);
    call->req_copy[3] = (uint8_t)(req_len >> 8);
    call->req_copy[4] = (uint8_t)req_len;
    if (req_len)
        memcpy(call->req_copy + GRPC_HDR, req, req_len);
    if (evbuffer_add(call->out, call->req_copy, call->req_copy_len) != 0) {
        call->c = NULL;
        gc_call_free(call);
        return NET_ENOMEM;
    }
    call->half_close = true;
    call->ucb = ucb;
    call->umcb = umcb;
    call->resp_desc = desc;
    call->ud = ud;
    call_start(call);
    return 0;
}

int net_grpc_unary_async(struct net_grpc_client *c, const char *method, const uint8_t *req,
                         size_t req_len, int timeout_ms, net_grpc_unary_cb cb, void *ud)
{
    if (!cb)
        return NET_EINVAL;
    return start_unary(c, method, req, req_len, timeout_ms, CALL_UNARY_RAW, cb, NULL, NULL, ud);
}

static int pack(const ProtobufCMessage *m, uint8_t **buf, size_t *len)
{
    *len = m ? protobuf_c_message_get_packed_size(m) : 0;
    *buf = malloc(*len ? *len : 1);
    if (!*buf)
        return NET_ENOMEM;
    if (*len)
        protobuf_c_message_pack(m, *buf);
    return 0;
}

int net_grpc_unary_msg_async(struct net_grpc_client *c, const char *method,
                             const ProtobufCMessage *req,
                             const ProtobufCMessageDescriptor *resp_desc, int timeout_ms,
                             net_grpc_unary_msg_cb cb, void *ud)
{
    uint8_t *buf;
    size_t len;
    if (!cb || !resp_desc)
        return NET_EINVAL;
    if (pack(req, &buf, &len) != 0)
        return NET_ENOMEM;
    int rv = start_unary(c, method, buf, len, timeout_ms, CALL_UNARY_MSG, NULL, cb, resp_desc,
                         ud);
    free(buf);
    return rv;
}

struct sync_res {
    bool done;
    struct net_grpc_status st;
    uint8_t *resp;
    size_t len;
};

static void sync_cb(void *ud, const struct net_grpc_status *st, const uint8_t *resp, size_t len)
{
    struct sync_res *r = ud;
    r->done = true;
    r->st = *st;
    if (st->code == NET_GRPC_OK && len) {
        r->resp = malloc(len);
        if (!r->resp)
            gc_status_set(&r->st, NET_GRPC_RESOURCE_EXHAUSTED, "grpc client: out of memory");
        else
            memcpy(r->resp, resp, len);
    }
    r->len = len;
}

int net_grpc_unary_raw(struct net_grpc_client *c, const char *method, const uint8_t *req,
                       size_t req_len, uint8_t **resp, size_t *resp_len,
                       struct net_grpc_status *st, int timeout_ms)
{
    struct net_grpc_status dummy;
    if (!st)
        st = &dummy;
    if (resp)
        *resp = NULL;
    if (resp_len)
        *resp_len = 0;
    if (!c || !resp || !resp_len) {
        gc_status_set(st, NET_GRPC_INVALID_ARGUMENT, "grpc client: missing argument");
        return st->code;
    }
    if (in_loop(c)) {
        gc_status_set(st, NET_GRPC_INVALID_ARGUMENT,
                      "grpc client: sync call from inside the client's event loop");
        return st->code;
    }
    struct sync_res r = {0};
    int rv = start_unary(c, method, req, req_len, timeout_ms, CALL_UNARY_RAW, sync_cb, NULL,
                         NULL, &r);
    if (rv != 0) {
        gc_status_set(st, rv == NET_ENOMEM ? NET_GRPC_RESOURCE_EXHAUSTED :
                      NET_GRPC_INVALID_ARGUMENT, "grpc client: %s", net_strerror(rv));
        return st->code;
    }
    while (!r.done)
        if (gc_run_once(c, 0) < 0)
            break;   /* cannot happen outside the loop; the call stays owned by c */
    if (!r.done) {
        gc_status_set(st, NET_GRPC_INTERNAL, "grpc client: event loop failed");
        return st->code;
    }
    *st = r.st;
    if (st->code == NET_GRPC_OK) {
        *resp = r.resp;
        *resp_len = r.len;
    } else {
        free(r.resp);
    }
    return st->code;
}

int net_grpc_unary(struct net_grpc_client *c, const char *method, const ProtobufCMessage *req,
                   const ProtobufCMessageDescriptor *resp_desc, ProtobufCMessage **resp_out,
                   struct net_grpc_status *st, int timeout_ms)
{
    struct net_grpc_status dummy;
    if (!st)
        st = &dummy;
    if (resp_out)
        *resp_out = NULL;
    if (!resp_desc || !resp_out) {
        gc_status_set(st, NET_GRPC_INVALID_ARGUMENT, "grpc client: missing argument");
        return st->code;
    }
    uint8_t *buf, *resp = NULL;
    size_t len, rlen = 0;
    if (pack(req, &buf, &len) != 0) {
        gc_status_set(st, NET_GRPC_RESOURCE_EXHAUSTED, "grpc client: out of memory");
        return st->code;
    }
    int code = net_grpc_unary_raw(c, method, buf, len, &resp, &rlen, st, timeout_ms);
    free(buf);
    if (code != NET_GRPC_OK)
        return code;
    static const uint8_t empty[1];
    *resp_out = protobuf_c_message_unpack(resp_desc, NULL, rlen, resp ? resp : empty);
    free(resp);
    if (!*resp_out)
        gc_status_set(st, NET_GRPC_INTERNAL, "grpc client: response did not unpack as %s",
                      resp_desc->name);
    return st->code;
}

/* --- streams --------------------------------------------------------------------- */

static bool ended(const struct gc_call *s)
{
    return s->done || s->finishing || !s->c;
}

int net_grpc_stream_open(struct net_grpc_client *c, const char *method,
                         const struct net_grpc_stream_opts *o, struct net_grpc_stream **out)
{
    static const struct net_grpc_stream_opts none;
    if (!o)
        o = &none;
    if (!c || !method || !out)
        return NET_EINVAL;
    *out = NULL;
    struct gc_call *s = call_new(c, CALL_STREAM, method, o->metadata,
                                 o->timeout_ms > 0 ? o->timeout_ms : -1);
    if (!s)
        return NET_ENOMEM;
    s->on_msg = o->on_msg;
    s->on_close = o->on_close;
    s->ud = o->ud;
    call_start(s);
    *out = (struct net_grpc_stream *)s;
    return 0;
}

int net_grpc_stream_send(struct net_grpc_stream *st, const uint8_t *buf, size_t len)
{
    struct gc_call *s = (struct gc_call *)st;
    if (!s)
        return NET_EINVAL;
    if (ended(s) || s->half_close)
        return NET_ECLOSED;
    if (frame_msg(s->out, buf, len) != 0)
        return len > UINT32_MAX ? NET_EINVAL : NET_ENOMEM;
    resume(s);
    return 0;
}

int net_grpc_stream_send_msg(struct net_grpc_stream *st, const ProtobufCMessage *msg)
{
    uint8_t *buf;
    size_t len;
    if (pack(msg, &buf, &len) != 0)
        return NET_ENOMEM;
    int rv = net_grpc_stream_send(st, buf, len);
    free(buf);
    return rv;
}

int net_grpc_stream_close_send(struct net_grpc_stream *st)
{
    struct gc_call *s = (struct gc_call *)st;
    if (!s)
        return NET_EINVAL;
    if (ended(s) || s->half_close)
        return NET_ECLOSED;
    s->half_close = true;
    resume(s);
    return 0;
}

void net_grpc_stream_cancel(struct net_grpc_stream *st)
{
    struct gc_call *s = (struct gc_call *)st;
    if (s && !ended(s))
        gc_call_finish(s, NET_GRPC_CANCELLED, "grpc client: stream cancelled");
}

int net_grpc_stream_recv(struct net_grpc_stream *st, uint8_t **msg, size_t *len, int timeout_ms)
{
    struct gc_call *s = (struct gc_call *)st;
    *msg = NULL;
    *len = 0;
    uint64_t until = 0;
    bool probed = false;
    if (s->c && timeout_ms > 0)
        until = gc_now_ms(s->c) + (uint64_t)timeout_ms;
    for (;;) {
        struct gc_msg *m = s->q_head;
        if (m) {
            s->q_head = m->next;
            if (!s->q_head)
                s->q_tail = NULL;
            s->q_bytes -= m->len + GRPC_HDR;
            if (m->len) {
                *msg = malloc(m->len);
                if (!*msg) {
                    free(m);
                    net_grpc_stream_cancel(st);
                    return NET_GRPC_RECV_CLOSED;
                }
                memcpy(*msg, m->data, m->len);
            }
            *len = m->len;
            free(m);
            /* give back the window held while the queue was full */
            if (s->unconsumed && s->q_bytes < GRPC_RECVQ_MAX && s->conn &&
                s->conn->state == CONN_READY) {
                nghttp2_session_consume_stream(s->conn->ng, s->stream_id, s->unconsumed);
                s->unconsumed = 0;
                gc_kick(s->c);
            }
            return NET_GRPC_RECV_MSG;
        }
        if (ended(s))
            return NET_GRPC_RECV_CLOSED;
        if (!probed) {
            /* the probe runs what is ready, which may queue a message: look again */
            probed = true;
            if (in_loop(s->c))
                return NET_GRPC_RECV_TIMEOUT;
            continue;
        }
        if (timeout_ms == 0)
            return NET_GRPC_RECV_TIMEOUT;
        if (until && gc_now_ms(s->c) >= until)
            return NET_GRPC_RECV_TIMEOUT;
        if (gc_run_once(s->c, until) < 0)
            return NET_GRPC_RECV_TIMEOUT;
    }
}

int net_grpc_stream_recv_msg(struct net_grpc_stream *st, const ProtobufCMessageDescriptor *desc,
                             ProtobufCMessage **out, int timeout_ms)
{
    struct gc_call *s = (struct gc_call *)st;
    uint8_t *buf;
    size_t len;
    *out = NULL;
    int rv = net_grpc_stream_recv(st, &buf, &len, timeout_ms);
    if (rv != NET_GRPC_RECV_MSG)
        return rv;
    static const uint8_t empty[1];
    *out = protobuf_c_message_unpack(desc, NULL, len, buf ? buf : empty);
    free(buf);
    if (*out)
        return NET_GRPC_RECV_MSG;
    if (!ended(s))
        gc_call_finish(s, NET_GRPC_INTERNAL, "grpc client: stream message did not unpack as %s",
                       desc->name);
    while (s->q_head) {
        struct gc_msg *m = s->q_head;
        s->q_head = m->next;
        free(m);
    }
    s->q_tail = NULL;
    s->q_bytes = 0;
    return NET_GRPC_RECV_CLOSED;
}

int net_grpc_stream_closed(const struct net_grpc_stream *st)
{
    return ended((const struct gc_call *)st);
}

const struct net_grpc_status *net_grpc_stream_status(const struct net_grpc_stream *st)
{
    static const struct net_grpc_status open_status = {NET_GRPC_OK, ""};
    const struct gc_call *s = (const struct gc_call *)st;
    return ended(s) ? &s->st : &open_status;
}

void net_grpc_stream_free(struct net_grpc_stream *st)
{
    struct gc_call *s = (struct gc_call *)st;
    if (!s)
        return;
    if (!s->c) {   /* the client is gone and already let go of it */
        gc_call_free(s);
        return;
    }
    s->user_freed = true;
    s->on_msg = NULL;
    s->on_close = NULL;
    if (!ended(s))
        gc_call_finish(s, NET_GRPC_CANCELLED, "grpc client: stream freed");
    gc_call_maybe_free(s);
}
