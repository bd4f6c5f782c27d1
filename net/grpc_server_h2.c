/* grpc_server_h2 — the gRPC server's nghttp2 glue: session set-up (SETTINGS, windows) and
 * the callbacks that turn HTTP/2 frames into call events. All nghttp2 callback signatures
 * (the ssize_t API of nghttp2 1.52) live in this file. */
#include "net/grpc_server_int.h"

#include <string.h>

static ssize_t send_callback(nghttp2_session *session, const uint8_t *data, size_t length,
                             int flags, void *user_data)
{
    (void)session, (void)flags;
    struct gs_conn *conn = user_data;
    struct evbuffer *out = bufferevent_get_output(conn->bev);
    /* Back-pressure: a client that does not read leaves data in nghttp2 and in the calls'
     * queues (bounded), not in an ever-growing socket buffer. */
    if (evbuffer_get_length(out) >= GS_OUT_HIGH)
        return NGHTTP2_ERR_WOULDBLOCK;
    if (bufferevent_write(conn->bev, data, length) != 0)
        return NGHTTP2_ERR_CALLBACK_FAILURE;
    return (ssize_t)length;
}

static int on_begin_headers(nghttp2_session *session, const nghttp2_frame *frame,
                            void *user_data)
{
    struct gs_conn *conn = user_data;
    if (frame->hd.type != NGHTTP2_HEADERS || frame->headers.cat != NGHTTP2_HCAT_REQUEST)
        return 0;
    struct net_grpc_call *call = gs_call_new(conn, frame->hd.stream_id);
    if (!call)
        return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE; /* resets this stream only */
    nghttp2_session_set_stream_user_data(session, frame->hd.stream_id, call);
    return 0;
}

static int on_header(nghttp2_session *session, const nghttp2_frame *frame,
                     const uint8_t *name, size_t namelen, const uint8_t *value,
                     size_t valuelen, uint8_t flags, void *user_data)
{
    (void)flags, (void)user_data;
    if (frame->hd.type != NGHTTP2_HEADERS || frame->headers.cat != NGHTTP2_HCAT_REQUEST)
        return 0; /* client trailers carry nothing gRPC needs */
    struct net_grpc_call *call = nghttp2_session_get_stream_user_data(session,
                                                                      frame->hd.stream_id);
    if (!call)
        return 0;
    if (gs_call_add_header(call, name, namelen, value, valuelen) != 0)
        return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
    return 0;
}

static int on_frame_recv(nghttp2_session *session, const nghttp2_frame *frame, void *user_data)
{
    struct gs_conn *conn = user_data;
    conn->established = true;
    struct net_grpc_call *call = NULL;
    if (frame->hd.stream_id)
        call = nghttp2_session_get_stream_user_data(session, frame->hd.stream_id);
    switch (frame->hd.type) {
    case NGHTTP2_HEADERS:
        if (!call)
            break;
        if (frame->headers.cat == NGHTTP2_HCAT_REQUEST)
            gs_call_headers_done(call);
        if (frame->hd.flags & NGHTTP2_FLAG_END_STREAM)
            gs_call_remote_closed(call);
        break;
    case NGHTTP2_DATA:
        if (call && (frame->hd.flags & NGHTTP2_FLAG_END_STREAM))
            gs_call_remote_closed(call);
        break;
    case NGHTTP2_PING:
        if (frame->hd.flags & NGHTTP2_FLAG_ACK)
            conn->ping_sent_ms = 0;
        break;
    default:
        break;
    }
    return 0;
}

static int on_data_chunk_recv(nghttp2_session *session, uint8_t flags, int32_t stream_id,
                              const uint8_t *data, size_t len, void *user_data)
{
    (void)flags, (void)user_data;
    struct net_grpc_call *call = nghttp2_session_get_stream_user_data(session, stream_id);
    if (!call)
        return 0;
    /* Answered already (an unknown method, a refused message): the rest of a small request
     * is read and dropped so the stream ends cleanly; a client that keeps sending after
     * GS_DISCARD_LIMIT bytes is told to stop. */
    if (call->end_sent) {
        call->discarded += len;
        if (call->discarded > GS_DISCARD_LIMIT && !call->reset_early) {
            call->reset_early = true;
            nghttp2_submit_rst_stream(session, NGHTTP2_FLAG_NONE, stream_id, NGHTTP2_NO_ERROR);
        }
        return 0;
    }
    gs_call_data(call, data, len);
    return 0;
}

/* The client neither finished its request nor reset the stream GS_LINGER_MS after our
 * answer went out: reset it, so the stream's state is freed. */
static void linger_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd, (void)what;
    struct net_grpc_call *call = arg;
    struct gs_conn *conn = call->conn;
    if (!conn->session || call->reset_early)
        return;
    call->reset_early = true;
    nghttp2_submit_rst_stream(conn->session, NGHTTP2_FLAG_NONE, call->stream_id, NGHTTP2_NO_ERROR);
    gs_conn_schedule_flush(conn);
}

static int on_frame_send(nghttp2_session *session, const nghttp2_frame *frame, void *user_data)
{
    (void)user_data;
    if ((frame->hd.type != NGHTTP2_HEADERS && frame->hd.type != NGHTTP2_DATA) ||
        !(frame->hd.flags & NGHTTP2_FLAG_END_STREAM))
        return 0;
    struct net_grpc_call *call = nghttp2_session_get_stream_user_data(session,
                                                                      frame->hd.stream_id);
    if (call)
        call->end_sent = true;
    /* Our END_STREAM is on the wire. A client still sending an over-limit message is told to
     * stop at once (submitted earlier, the reset would overtake the answer and the client
     * would see no status). Any other client still sending (an unknown method, an answer
     * before the request ended) may finish its request: some clients (curl) report an error
     * instead of the status when the reset arrives while they upload; on_data_chunk_recv
     * resets a stream that keeps sending past GS_DISCARD_LIMIT. */
    if (nghttp2_session_get_stream_remote_close(session, frame->hd.stream_id))
        return 0;
    if (!call || call->reset_early) {
        nghttp2_submit_rst_stream(session, NGHTTP2_FLAG_NONE, frame->hd.stream_id,
                                  NGHTTP2_NO_ERROR);
    } else if (!call->linger_ev) {
        struct timeval tv = {0, GS_LINGER_MS * 1000};
        call->linger_ev = evtimer_new(call->conn->srv->base, linger_cb, call);
        if (call->linger_ev)
            evtimer_add(call->linger_ev, &tv);
        else
            nghttp2_submit_rst_stream(session, NGHTTP2_FLAG_NONE, frame->hd.stream_id,
                                      NGHTTP2_NO_ERROR);
    }
    return 0;
}

static int on_stream_close(nghttp2_session *session, int32_t stream_id, uint32_t error_code,
                           void *user_data)
{
    (void)error_code, (void)user_data;
    struct net_grpc_call *call = nghttp2_session_get_stream_user_data(session, stream_id);
    if (!call)
        return 0;
    nghttp2_session_set_stream_user_data(session, stream_id, NULL);
    int err = call->deadline_hit ? NET_ETIMEDOUT : call->end_sent ? 0 : NET_ECLOSED;
    gs_call_close(call, err);
    return 0;
}

int gs_callbacks_new(nghttp2_session_callbacks **out)
{
    nghttp2_session_callbacks *cbs;
    if (nghttp2_session_callbacks_new(&cbs) != 0)
        return -1;
    nghttp2_session_callbacks_set_send_callback(cbs, send_callback);
    nghttp2_session_callbacks_set_on_begin_headers_callback(cbs, on_begin_headers);
    nghttp2_session_callbacks_set_on_header_callback(cbs, on_header);
    nghttp2_session_callbacks_set_on_frame_recv_callback(cbs, on_frame_recv);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cbs, on_data_chunk_recv);
    nghttp2_session_callbacks_set_on_frame_send_callback(cbs, on_frame_send);
    nghttp2_session_callbacks_set_on_stream_close_callback(cbs, on_stream_close);
    *out = cbs;
    return 0;
}

int gs_session_start(struct gs_conn *conn)
{
    struct net_grpc_server *srv = conn->srv;
    if (nghttp2_session_server_new2(&conn->session, srv->callbacks, conn, srv->h2opt) != 0) {
        conn->session = NULL;
        return -1;
    }
    /* Clients wait for our SETTINGS before sending much; send them at once, with a window
     * large enough that a 1.5 MiB request does not crawl. */
    nghttp2_settings_entry iv[] = {
        {NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, srv->opts.max_concurrent_streams},
        {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, GS_STREAM_WINDOW},
        {NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE, GS_MAX_HEADER_BYTES},
    };
    if (nghttp2_submit_settings(conn->session, NGHTTP2_FLAG_NONE, iv,
                                sizeof iv / sizeof iv[0]) != 0)
        return -1;
    if (nghttp2_session_set_local_window_size(conn->session, NGHTTP2_FLAG_NONE, 0,
                                              GS_CONN_WINDOW) != 0)
        return -1;
    return 0;
}
