/* test_tls — TLS contexts: errors that name files and reasons, ALPN h2, client certificate
 * verification, and server name checks, with handshakes driven over in-memory BIO pairs. */
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include <openssl/err.h>

#include "net/tls.h"
#include "tests/lib/testlib.h"
#include "tests/unit/net/grpc_test_certs.h"

static struct test_certs certs;

#define CP(name) test_cert_path(&certs, certs.dir, (name))
#define RP(name) test_cert_path(&certs, certs.rogue, (name))

static int group_setup(void **state)
{
    (void)state;
    return test_certs_make(&certs);
}

static int group_teardown(void **state)
{
    (void)state;
    test_certs_free(&certs);
    return 0;
}

static SSL_CTX *server_ctx(bool client_auth)
{
    struct net_tls_server_opts o = {.cert_file = CP("server.pem"),
                                    .key_file = CP("server-key.pem"),
                                    .ca_file = CP("ca.pem"),
                                    .client_cert_auth = client_auth};
    SSL_CTX *ctx = NULL;
    char err[NET_TLS_ERRLEN];
    int rc = net_tls_server_ctx_new(&o, &ctx, err, sizeof err);
    if (rc)
        fprintf(stderr, "%s\n", err);
    assert_int_equal(rc, 0);
    return ctx;
}

static SSL_CTX *client_ctx(const char *ca, const char *cert, const char *key)
{
    struct net_tls_client_opts o = {.ca_file = ca, .cert_file = cert, .key_file = key};
    SSL_CTX *ctx = NULL;
    char err[NET_TLS_ERRLEN];
    int rc = net_tls_client_ctx_new(&o, &ctx, err, sizeof err);
    if (rc)
        fprintf(stderr, "%s\n", err);
    assert_int_equal(rc, 0);
    return ctx;
}

/* Runs a handshake between two SSL objects joined by a BIO pair. Returns true when both
 * sides finished; on failure describes each side into cerr/serr. */
static bool handshake(SSL *c, SSL *s, char *cerr, char *serr)
{
    BIO *bc = NULL, *bs = NULL;
    assert_int_equal(BIO_new_bio_pair(&bc, 0, &bs, 0), 1);
    SSL_set_bio(c, bc, bc);
    SSL_set_bio(s, bs, bs);
    SSL_set_connect_state(c);
    SSL_set_accept_state(s);
    bool cdone = false, sdone = false, cfail = false, sfail = false;
    cerr[0] = serr[0] = '\0';
    for (int i = 0; i < 100 && !(cdone && sdone) && !cfail && !sfail; i++) {
        if (!cdone) {
            int r = SSL_do_handshake(c);
            if (r == 1)
                cdone = true;
            else if (SSL_get_error(c, r) != SSL_ERROR_WANT_READ) {
                cfail = true;
                net_tls_describe_error(c, cerr, NET_TLS_ERRLEN);
            }
        }
        if (!sdone) {
            int r = SSL_do_handshake(s);
            if (r == 1)
                sdone = true;
            else if (SSL_get_error(s, r) != SSL_ERROR_WANT_READ) {
                sfail = true;
                net_tls_describe_error(s, serr, NET_TLS_ERRLEN);
            }
        }
    }
    /* In TLS 1.3 the server judges the client certificate after the client believes it is
     * done; let the server finish and read once on the client to see the alert. */
    if (cdone && !sdone && !sfail) {
        int r = SSL_do_handshake(s);
        if (r != 1) {
            sfail = true;
            net_tls_describe_error(s, serr, NET_TLS_ERRLEN);
        } else {
            sdone = true;
        }
    }
    if (cdone && sfail) {
        char b[1];
        int r = SSL_read(c, b, 1);
        if (r <= 0 && SSL_get_error(c, r) != SSL_ERROR_WANT_READ) {
            cfail = true;
            net_tls_describe_error(c, cerr, NET_TLS_ERRLEN);
        }
    }
    ERR_clear_error();
    return cdone && sdone && !cfail && !sfail;
}

static void test_server_ctx_errors(void **state)
{
    (void)state;
    SSL_CTX *ctx = NULL;
    char err[NET_TLS_ERRLEN];

    struct net_tls_server_opts missing = {.cert_file = CP("nope.pem"),
                                          .key_file = CP("server-key.pem")};
    assert_int_equal(net_tls_server_ctx_new(&missing, &ctx, err, sizeof err), NET_ENOENT);
    assert_null(ctx);
    assert_non_null(strstr(err, "nope.pem"));
    assert_non_null(strstr(err, "No such file"));

    struct net_tls_server_opts mismatch = {.cert_file = CP("server.pem"),
                                           .key_file = CP("client-key.pem")};
    assert_int_equal(net_tls_server_ctx_new(&mismatch, &ctx, err, sizeof err), NET_ETLS);
    assert_non_null(strstr(err, "client-key.pem"));
    assert_non_null(strstr(err, "does not match"));

    /* A key file given as the certificate: not a certificate. */
    struct net_tls_server_opts notcert = {.cert_file = CP("server-key.pem"),
                                          .key_file = CP("server-key.pem")};
    assert_int_equal(net_tls_server_ctx_new(&notcert, &ctx, err, sizeof err), NET_ETLS);
    assert_non_null(strstr(err, "cert file"));

    /* A CA "bundle" that holds only a private key. */
    struct net_tls_server_opts badca = {.cert_file = CP("server.pem"),
                                        .key_file = CP("server-key.pem"),
                                        .ca_file = CP("ca-key.pem"),
                                        .client_cert_auth = true};
    assert_int_equal(net_tls_server_ctx_new(&badca, &ctx, err, sizeof err), NET_ETLS);
    assert_non_null(strstr(err, "CA file"));
    assert_non_null(strstr(err, "ca-key.pem"));

    struct net_tls_server_opts noca = {.cert_file = CP("server.pem"),
                                       .key_file = CP("server-key.pem"),
                                       .ca_file = CP("missing-ca.pem"),
                                       .client_cert_auth = true};
    assert_int_equal(net_tls_server_ctx_new(&noca, &ctx, err, sizeof err), NET_ENOENT);
    assert_non_null(strstr(err, "missing-ca.pem"));

    struct net_tls_server_opts authnoca = {.cert_file = CP("server.pem"),
                                           .key_file = CP("server-key.pem"),
                                           .client_cert_auth = true};
    assert_int_equal(net_tls_server_ctx_new(&authnoca, &ctx, err, sizeof err), NET_EINVAL);

    struct net_tls_client_opts halfclient = {.ca_file = CP("ca.pem"),
                                             .cert_file = CP("client.pem")};
    assert_int_equal(net_tls_client_ctx_new(&halfclient, &ctx, err, sizeof err), NET_EINVAL);
    assert_null(ctx);
}

static void test_handshake_alpn_and_name(void **state)
{
    (void)state;
    SSL_CTX *sctx = server_ctx(false);
    SSL_CTX *cctx = client_ctx(CP("ca.pem"), NULL, NULL);
    char cerr[NET_TLS_ERRLEN], serr[NET_TLS_ERRLEN], alpn[16];

    SSL *c = NULL, *s = SSL_new(sctx);
    assert_int_equal(net_tls_client_ssl_new(cctx, "127.0.0.1", &c), 0);
    assert_true(handshake(c, s, cerr, serr));
    net_tls_alpn_selected(c, alpn, sizeof alpn);
    assert_string_equal(alpn, "h2");
    net_tls_alpn_selected(s, alpn, sizeof alpn);
    assert_string_equal(alpn, "h2");
    assert_true(net_tls_peer_verified(c));
    assert_false(net_tls_peer_verified(s)); /* no client certificate was asked for */
    char cn[64];
    assert_int_equal(net_tls_peer_common_name(c, cn, sizeof cn), 0);
    assert_string_equal(cn, "server");
    assert_int_equal(net_tls_peer_common_name(s, cn, sizeof cn), NET_ENOTFOUND);
    assert_int_equal(SSL_version(c) >= TLS1_2_VERSION, 1);
    SSL_free(c);
    SSL_free(s);

    /* DNS name in the SAN works too. */
    s = SSL_new(sctx);
    assert_int_equal(net_tls_client_ssl_new(cctx, "localhost", &c), 0);
    assert_true(handshake(c, s, cerr, serr));
    SSL_free(c);
    SSL_free(s);

    /* A name that is not in the certificate is refused by the client. */
    s = SSL_new(sctx);
    assert_int_equal(net_tls_client_ssl_new(cctx, "10.1.2.3", &c), 0);
    assert_false(handshake(c, s, cerr, serr));
    assert_non_null(strstr(cerr, "mismatch"));
    SSL_free(c);
    SSL_free(s);

    /* A client that trusts another CA refuses our server. */
    SSL_CTX *rogue = client_ctx(RP("ca.pem"), NULL, NULL);
    s = SSL_new(sctx);
    assert_int_equal(net_tls_client_ssl_new(rogue, "127.0.0.1", &c), 0);
    assert_false(handshake(c, s, cerr, serr));
    assert_non_null(strstr(cerr, "certificate verify failed"));
    SSL_free(c);
    SSL_free(s);

    net_tls_ctx_free(rogue);
    net_tls_ctx_free(cctx);
    net_tls_ctx_free(sctx);
}

static void test_client_cert_auth(void **state)
{
    (void)state;
    SSL_CTX *sctx = server_ctx(true);
    char cerr[NET_TLS_ERRLEN], serr[NET_TLS_ERRLEN];

    /* Trusted client certificate: accepted and verified on the server. */
    SSL_CTX *good = client_ctx(CP("ca.pem"), CP("client.pem"), CP("client-key.pem"));
    SSL *c = NULL, *s = SSL_new(sctx);
    assert_int_equal(net_tls_client_ssl_new(good, "127.0.0.1", &c), 0);
    assert_true(handshake(c, s, cerr, serr));
    assert_true(net_tls_peer_verified(s));
    char cn[64];
    assert_int_equal(net_tls_peer_common_name(s, cn, sizeof cn), 0);
    assert_string_equal(cn, "client");
    SSL_free(c);
    SSL_free(s);

    /* Certificate from an untrusted CA: the server refuses and says why. */
    SSL_CTX *bad = client_ctx(CP("ca.pem"), RP("client.pem"), RP("client-key.pem"));
    s = SSL_new(sctx);
    assert_int_equal(net_tls_client_ssl_new(bad, "127.0.0.1", &c), 0);
    assert_false(handshake(c, s, cerr, serr));
    assert_non_null(strstr(serr, "certificate verify failed"));
    assert_false(net_tls_peer_verified(s));
    SSL_free(c);
    SSL_free(s);

    /* No certificate at all: refused. */
    SSL_CTX *none = client_ctx(CP("ca.pem"), NULL, NULL);
    s = SSL_new(sctx);
    assert_int_equal(net_tls_client_ssl_new(none, "127.0.0.1", &c), 0);
    assert_false(handshake(c, s, cerr, serr));
    assert_non_null(strstr(serr, "certificate"));
    SSL_free(c);
    SSL_free(s);

    net_tls_ctx_free(none);
    net_tls_ctx_free(bad);
    net_tls_ctx_free(good);
    net_tls_ctx_free(sctx);
}

static void test_alpn_mismatch_refused(void **state)
{
    (void)state;
    SSL_CTX *sctx = server_ctx(false);
    struct net_tls_client_opts o = {.ca_file = CP("ca.pem"), .alpn = "http/1.1"};
    SSL_CTX *cctx = NULL;
    char err[NET_TLS_ERRLEN], cerr[NET_TLS_ERRLEN], serr[NET_TLS_ERRLEN];
    assert_int_equal(net_tls_client_ctx_new(&o, &cctx, err, sizeof err), 0);
    SSL *c = NULL, *s = SSL_new(sctx);
    assert_int_equal(net_tls_client_ssl_new(cctx, "127.0.0.1", &c), 0);
    assert_false(handshake(c, s, cerr, serr));
    SSL_free(c);
    SSL_free(s);
    net_tls_ctx_free(cctx);

    /* Peer transport style: no ALPN offered at all is accepted. */
    struct net_tls_client_opts o2 = {.ca_file = CP("ca.pem"), .alpn = ""};
    assert_int_equal(net_tls_client_ctx_new(&o2, &cctx, err, sizeof err), 0);
    s = SSL_new(sctx);
    assert_int_equal(net_tls_client_ssl_new(cctx, "127.0.0.1", &c), 0);
    assert_true(handshake(c, s, cerr, serr));
    char alpn[16];
    net_tls_alpn_selected(s, alpn, sizeof alpn);
    assert_string_equal(alpn, "");
    SSL_free(c);
    SSL_free(s);
    net_tls_ctx_free(cctx);
    net_tls_ctx_free(sctx);
}

/* A TLS 1.2 client resuming its session against a server that verifies client
 * certificates: needs the session id context, or OpenSSL fails the handshake. */
static void test_resumption_with_client_auth(void **state)
{
    (void)state;
    SSL_CTX *sctx = server_ctx(true);
    SSL_CTX *cctx = client_ctx(CP("ca.pem"), CP("client.pem"), CP("client-key.pem"));
    SSL_CTX_set_max_proto_version(cctx, TLS1_2_VERSION);
    SSL_CTX_set_session_cache_mode(cctx, SSL_SESS_CACHE_CLIENT);
    char cerr[NET_TLS_ERRLEN], serr[NET_TLS_ERRLEN];
    SSL *c = NULL, *s = SSL_new(sctx);
    assert_int_equal(net_tls_client_ssl_new(cctx, "127.0.0.1", &c), 0);
    assert_true(handshake(c, s, cerr, serr));
    assert_int_equal(SSL_version(c), TLS1_2_VERSION);
    SSL_SESSION *sess = SSL_get1_session(c);
    assert_non_null(sess);
    /* a connection freed without a shutdown marks its session as not resumable */
    SSL_set_shutdown(c, SSL_SENT_SHUTDOWN | SSL_RECEIVED_SHUTDOWN);
    SSL_set_shutdown(s, SSL_SENT_SHUTDOWN | SSL_RECEIVED_SHUTDOWN);
    SSL_free(c);
    SSL_free(s);

    s = SSL_new(sctx);
    assert_int_equal(net_tls_client_ssl_new(cctx, "127.0.0.1", &c), 0);
    assert_int_equal(SSL_set_session(c, sess), 1);
    bool ok = handshake(c, s, cerr, serr);
    if (!ok)
        fprintf(stderr, "client: %s / server: %s\n", cerr, serr);
    assert_true(ok);
    assert_int_equal(SSL_session_reused(c), 1);
    assert_true(net_tls_peer_verified(s));
    SSL_SESSION_free(sess);
    SSL_free(c);
    SSL_free(s);
    net_tls_ctx_free(cctx);
    net_tls_ctx_free(sctx);
}

static void test_strerror(void **state)
{
    (void)state;
    assert_string_equal(net_strerror(NET_EADDRINUSE), "net: address in use");
    assert_string_equal(net_strerror(-5), "net: unknown error");
    assert_string_equal(net_strerror(NET__ECOUNT), "net: unknown error");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_server_ctx_errors),
        cmocka_unit_test(test_handshake_alpn_and_name),
        cmocka_unit_test(test_client_cert_auth),
        cmocka_unit_test(test_alpn_mismatch_refused),
        cmocka_unit_test(test_resumption_with_client_auth),
        cmocka_unit_test(test_strerror),
    };
    return test_run_group("tls", tests, sizeof tests / sizeof tests[0], group_setup,
                          group_teardown);
}
