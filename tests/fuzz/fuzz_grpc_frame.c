/* fuzz_grpc_frame — libFuzzer target: arbitrary bytes after the HTTP/2 client preface,
 * delivered to a gRPC server connection through a socketpair, with handlers that answer
 * unary, bidi and streaming calls. Nothing may crash, hang or leak. */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "net/grpc_server_int.h"

static struct event_base *base;
static struct net_grpc_server *srv;

static void on_close(struct net_grpc_call *call, void *user, int err)
{
    (void)call, (void)err;
    free(user);
}

static void h_unary(struct net_grpc_call *call, const uint8_t *msg, size_t len, void *ud)
{
    (void)ud;
    net_grpc_call_set_user(call, malloc(16)); /* freed by the close callback: leaks show */
    net_grpc_call_set_close_cb(call, on_close);
    (void)net_grpc_call_header(call, "hasleader");
    net_grpc_call_reply(call, msg, len);
}

static void half_closed(struct net_grpc_call *call, void *user)
{
    (void)user;
    net_grpc_call_finish(call, NET_GRPC_OK, "bye\n\xff");
}

static void h_bidi(struct net_grpc_call *call, const uint8_t *msg, size_t len, void *ud)
{
    (void)ud;
    net_grpc_call_set_half_close_cb(call, half_closed);
    net_grpc_call_send(call, msg, len);
    if (len > 0 && msg[0] == 'x')
        net_grpc_call_finish(call, NET_GRPC_INVALID_ARGUMENT, "x");
}

static void h_stream(struct net_grpc_call *call, const uint8_t *msg, size_t len, void *ud)
{
    (void)ud;
    for (int i = 0; i < 8; i++)
        if (net_grpc_call_send(call, msg, len) != 0)
            break;
    net_grpc_call_finish(call, NET_GRPC_OK, NULL);
}

static void h_never(struct net_grpc_call *call, const uint8_t *msg, size_t len, void *ud)
{
    (void)call, (void)msg, (void)len, (void)ud; /* answered only by teardown */
}

static void setup(void)
{
    base = event_base_new();
    struct net_grpc_server_opts o = {.max_request_bytes = 4096, .max_pending_bytes = 8192};
    if (!base || net_grpc_server_new(base, &o, &srv) != 0)
        abort();
    net_grpc_server_register(srv, "/a", NET_GRPC_UNARY, h_unary, NULL);
    net_grpc_server_register(srv, "/b", NET_GRPC_BIDI, h_bidi, NULL);
    net_grpc_server_register(srv, "/s", NET_GRPC_SERVER_STREAM, h_stream, NULL);
    net_grpc_server_register(srv, "/n", NET_GRPC_BIDI, h_never, NULL);
    net_grpc_server_register(srv, "/etcdserverpb.KV/Range", NET_GRPC_UNARY, h_unary, NULL);
}

static void drain(int fd)
{
    char buf[65536];
    while (read(fd, buf, sizeof buf) > 0)
        ;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char preface[] = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
    if (!base)
        setup();
    if (size > 60000)
        return 0;
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) != 0)
        abort();
    int big = 1 << 20;
    setsockopt(sv[1], SOL_SOCKET, SO_SNDBUF, &big, sizeof big);
    gs_conn_adopt(srv, sv[0], NULL, false);

    size_t off = 0;
    uint8_t *in = malloc(sizeof preface - 1 + size);
    memcpy(in, preface, sizeof preface - 1);
    if (size)
        memcpy(in + sizeof preface - 1, data, size);
    size_t total = sizeof preface - 1 + size;
    for (int round = 0; round < 64; round++) {
        if (off < total) {
            ssize_t w = write(sv[1], in + off, total - off);
            if (w > 0)
                off += (size_t)w;
        }
        event_base_loop(base, EVLOOP_NONBLOCK);
        drain(sv[1]);
    }
    free(in);
    close(sv[1]);
    struct net_grpc_server_stats st;
    for (int i = 0; i < 1000; i++) {
        net_grpc_server_stats(srv, &st);
        if (st.connections_open == 0)
            break;
        event_base_loop(base, EVLOOP_NONBLOCK);
    }
    net_grpc_server_stats(srv, &st);
    if (st.connections_open != 0 || st.calls_open != 0)
        abort(); /* a connection survived its peer's close */
    return 0;
}
