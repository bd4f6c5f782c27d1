/* tls — builds OpenSSL server and client contexts from PEM files, with errors that name
 * the file and the reason, ALPN, and helpers to inspect a connection's peer. */
#include "net/tls.h"

#include <arpa/inet.h>
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

/* ALPN protocol list in wire format (length-prefixed), kept on the SSL_CTX as ex_data so
 * the select callback can reach it and it dies with the context. */
struct alpn_wire {
    unsigned char len;
    unsigned char data[256];
};

static int alpn_index = -1;
static pthread_once_t alpn_once = PTHREAD_ONCE_INIT;

static void alpn_free(void *parent, void *ptr, CRYPTO_EX_DATA *ad, int idx, long argl,
                      void *argp)
{
    (void)parent, (void)ad, (void)idx, (void)argl, (void)argp;
    free(ptr);
}

static void alpn_index_init(void)
{
    alpn_index = SSL_CTX_get_ex_new_index(0, NULL, NULL, NULL, alpn_free);
}

static void set_err(char *err, size_t errlen, const char *fmt, ...)
{
    if (!err || errlen == 0)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

/* The most useful OpenSSL reason on this thread's queue; clears the queue. */
static const char *ssl_reason(char *buf, size_t len)
{
    unsigned long e, last = 0;
    while ((e = ERR_get_error()) != 0)
        if (!last)
            last = e; /* the first error is the root cause */
    if (!last) {
        snprintf(buf, len, "unknown OpenSSL error");
        return buf;
    }
    const char *r = ERR_reason_error_string(last);
    if (r)
        snprintf(buf, len, "%s", r);
    else
        ERR_error_string_n(last, buf, len);
    return buf;
}

/* A missing or unreadable file gets errno's words; NET_ENOENT. */
static int check_readable(const char *what, const char *path, char *err, size_t errlen)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        set_err(err, errlen, "tls: %s %s: %s", what, path, strerror(errno));
        return NET_ENOENT;
    }
    fclose(f);
    return 0;
}

static int load_cert_and_key(SSL_CTX *ctx, const char *cert_file, const char *key_file,
                             char *err, size_t errlen)
{
    char why[256];
    int rc = check_readable("cert file", cert_file, err, errlen);
    if (rc)
        return rc;
    rc = check_readable("key file", key_file, err, errlen);
    if (rc)
        return rc;

    ERR_clear_error();
    if (SSL_CTX_use_certificate_chain_file(ctx, cert_file) != 1) {
        set_err(err, errlen, "tls: cert file %s: not a usable PEM certificate (%s)", cert_file,
                ssl_reason(why, sizeof why));
        return NET_ETLS;
    }

    /* Read the key ourselves so a mismatch is reported as such, not as a parse error. */
    FILE *f = fopen(key_file, "r");
    if (!f) {
        set_err(err, errlen, "tls: key file %s: %s", key_file, strerror(errno));
        return NET_ENOENT;
    }
    EVP_PKEY *pkey = PEM_read_PrivateKey(f, NULL, NULL, NULL);
    fclose(f);
    if (!pkey) {
        set_err(err, errlen, "tls: key file %s: not a PEM private key (%s)", key_file,
                ssl_reason(why, sizeof why));
        return NET_ETLS;
    }
    X509 *cert = SSL_CTX_get0_certificate(ctx);
    if (!cert || X509_check_private_key(cert, pkey) != 1) {
        ERR_clear_error();
        EVP_PKEY_free(pkey);
        set_err(err, errlen, "tls: key file %s: does not match certificate %s", key_file,
                cert_file);
        return NET_ETLS;
    }
    int ok = SSL_CTX_use_PrivateKey(ctx, pkey);
    EVP_PKEY_free(pkey);
    if (ok != 1 || SSL_CTX_check_private_key(ctx) != 1) {
        set_err(err, errlen, "tls: key file %s: does not match certificate %s (%s)", key_file,
                cert_file, ssl_reason(why, sizeof why));
        return NET_ETLS;
    }
    return 0;
}

static int load_ca(SSL_CTX *ctx, const char *ca_file, bool send_names, char *err,
                   size_t errlen)
{
    char why[256];
    int rc = check_readable("CA file", ca_file, err, errlen);
    if (rc)
        return rc;
    ERR_clear_error();
    if (SSL_CTX_load_verify_locations(ctx, ca_file, NULL) != 1) {
        set_err(err, errlen, "tls: CA file %s: unreadable or holds no PEM certificate (%s)",
                ca_file, ssl_reason(why, sizeof why));
        return NET_ETLS;
    }
    if (send_names) {
        STACK_OF(X509_NAME) *names = SSL_load_client_CA_file(ca_file);
        if (names)
            SSL_CTX_set_client_CA_list(ctx, names); /* ctx takes ownership */
        ERR_clear_error();
    }
    return 0;
}

/* Converts "h2" into the length-prefixed wire form and parks it on the context. */
static int set_alpn(SSL_CTX *ctx, const char *alpn, bool client, char *err, size_t errlen)
{
    if (!alpn)
        alpn = "h2";
    size_t n = strlen(alpn);
    if (n == 0)
        return 0;
    if (n > 255) {
        set_err(err, errlen, "tls: ALPN protocol name too long");
        return NET_EINVAL;
    }
    if (client) {
        unsigned char wire[256];
        wire[0] = (unsigned char)n;
        memcpy(wire + 1, alpn, n);
        if (SSL_CTX_set_alpn_protos(ctx, wire, (unsigned)n + 1) != 0) { /* 0 = success */
            set_err(err, errlen, "tls: cannot set ALPN");
            return NET_ENOMEM;
        }
        return 0;
    }
    pthread_once(&alpn_once, alpn_index_init);
    struct alpn_wire *w = calloc(1, sizeof *w);
    if (!w || alpn_index < 0) {
        free(w);
        set_err(err, errlen, "tls: out of memory");
        return NET_ENOMEM;
    }
    w->len = (unsigned char)(n + 1);
    w->data[0] = (unsigned char)n;
    memcpy(w->data + 1, alpn, n);
    if (SSL_CTX_set_ex_data(ctx, alpn_index, w) != 1) {
        free(w);
        set_err(err, errlen, "tls: out of memory");
        return NET_ENOMEM;
    }
    return 0;
}

/* gRPC clients refuse a handshake without h2 selected; a client offering ALPN but not our
 * protocol gets a fatal no_application_protocol alert (RFC 7301 section 3.2). */
static int alpn_select_cb(SSL *ssl, const unsigned char **out, unsigned char *outlen,
                          const unsigned char *in, unsigned int inlen, void *arg)
{
    (void)arg;
    struct alpn_wire *w = SSL_CTX_get_ex_data(SSL_get_SSL_CTX(ssl), alpn_index);
    if (!w)
        return SSL_TLSEXT_ERR_NOACK;
    unsigned char *sel = NULL;
    unsigned char sel_len = 0;
    if (SSL_select_next_proto(&sel, &sel_len, w->data, w->len, in, inlen) !=
        OPENSSL_NPN_NEGOTIATED)
        return SSL_TLSEXT_ERR_ALERT_FATAL;
    *out = sel;
    *outlen = sel_len;
    return SSL_TLSEXT_ERR_OK;
}

static void common_options(SSL_CTX *ctx)
{
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    /* Go clients close TCP without close_notify: that is an ordinary end, not an error. */
    SSL_CTX_set_options(ctx, SSL_OP_IGNORE_UNEXPECTED_EOF | SSL_OP_NO_COMPRESSION |
                                 SSL_OP_NO_RENEGOTIATION);
    SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
}

int net_tls_server_ctx_new(const struct net_tls_server_opts *opts, SSL_CTX **out, char *err,
                           size_t errlen)
{
    *out = NULL;
    if (!opts || !opts->cert_file || !opts->key_file) {
        set_err(err, errlen, "tls: server needs a cert file and a key file");
        return NET_EINVAL;
    }
    if (opts->client_cert_auth && !opts->ca_file) {
        set_err(err, errlen, "tls: client certificate auth needs a trusted CA file");
        return NET_EINVAL;
    }
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    if (!ctx) {
        set_err(err, errlen, "tls: out of memory");
        return NET_ENOMEM;
    }
    common_options(ctx);
    SSL_CTX_set_options(ctx, SSL_OP_CIPHER_SERVER_PREFERENCE);
    /* With client verification on, OpenSSL refuses to resume a session unless a session id
     * context is set ("session id context uninitialized"): a reconnecting client would fail. */
    static const unsigned char sid_ctx[] = "plinth";
    SSL_CTX_set_session_id_context(ctx, sid_ctx, sizeof sid_ctx - 1);
    int rc = load_cert_and_key(ctx, opts->cert_file, opts->key_file, err, errlen);
    if (rc)
        goto fail;
    if (opts->ca_file) {
        rc = load_ca(ctx, opts->ca_file, opts->client_cert_auth, err, errlen);
        if (rc)
            goto fail;
    }
    if (opts->client_cert_auth)
        SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, NULL);
    else
        SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
    rc = set_alpn(ctx, opts->alpn, false, err, errlen);
    if (rc)
        goto fail;
    if (!opts->alpn || opts->alpn[0])
        SSL_CTX_set_alpn_select_cb(ctx, alpn_select_cb, NULL);
    *out = ctx;
    return 0;
fail:
    SSL_CTX_free(ctx);
    ERR_clear_error();
    return rc;
}

int net_tls_client_ctx_new(const struct net_tls_client_opts *opts, SSL_CTX **out, char *err,
                           size_t errlen)
{
    *out = NULL;
    if (!opts) {
        set_err(err, errlen, "tls: client options missing");
        return NET_EINVAL;
    }
    if (!opts->cert_file != !opts->key_file) {
        set_err(err, errlen, "tls: a client certificate needs both a cert file and a key file");
        return NET_EINVAL;
    }
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    if (!ctx) {
        set_err(err, errlen, "tls: out of memory");
        return NET_ENOMEM;
    }
    common_options(ctx);
    int rc = 0;
    if (opts->cert_file) {
        rc = load_cert_and_key(ctx, opts->cert_file, opts->key_file, err, errlen);
        if (rc)
            goto fail;
    }
    if (opts->ca_file) {
        rc = load_ca(ctx, opts->ca_file, false, err, errlen);
        if (rc)
            goto fail;
    } else if (SSL_CTX_set_default_verify_paths(ctx) != 1) {
        ERR_clear_error(); /* no system store: verification will fail later, clearly */
    }
    SSL_CTX_set_verify(ctx, opts->insecure_skip_verify ? SSL_VERIFY_NONE : SSL_VERIFY_PEER,
                       NULL);
    rc = set_alpn(ctx, opts->alpn, true, err, errlen);
    if (rc)
        goto fail;
    *out = ctx;
    return 0;
fail:
    SSL_CTX_free(ctx);
    ERR_clear_error();
    return rc;
}

void net_tls_ctx_free(SSL_CTX *ctx)
{
    SSL_CTX_free(ctx);
}

int net_tls_client_ssl_new(SSL_CTX *ctx, const char *host, SSL **out)
{
    *out = NULL;
    SSL *ssl = SSL_new(ctx);
    if (!ssl) {
        ERR_clear_error();
        return NET_ENOMEM;
    }
    if (host && host[0]) {
        unsigned char addr[16];
        X509_VERIFY_PARAM *param = SSL_get0_param(ssl);
        bool is_ip = inet_pton(AF_INET, host, addr) == 1 || inet_pton(AF_INET6, host, addr) == 1;
        int ok;
        if (is_ip) {
            ok = X509_VERIFY_PARAM_set1_ip_asc(param, host);
        } else {
            ok = SSL_set_tlsext_host_name(ssl, host) == 1 && SSL_set1_host(ssl, host) == 1;
        }
        if (ok != 1) {
            SSL_free(ssl);
            ERR_clear_error();
            return NET_ETLS;
        }
    }
    *out = ssl;
    return 0;
}

bool net_tls_peer_verified(const SSL *ssl)
{
    if (!ssl)
        return false;
    return SSL_get0_peer_certificate(ssl) != NULL && SSL_get_verify_result(ssl) == X509_V_OK;
}

int net_tls_peer_common_name(const SSL *ssl, char *buf, size_t len)
{
    if (len)
        buf[0] = '\0';
    X509 *cert = ssl ? SSL_get0_peer_certificate(ssl) : NULL;
    if (!cert)
        return NET_ENOTFOUND;
    X509_NAME *name = X509_get_subject_name(cert);
    int n = name ? X509_NAME_get_text_by_NID(name, NID_commonName, buf, (int)len) : -1;
    if (n < 0) {
        if (len)
            buf[0] = '\0';
        return NET_ENOTFOUND;
    }
    return 0;
}

void net_tls_describe_error(const SSL *ssl, char *buf, size_t len)
{
    char why[256];
    if (!len)
        return;
    unsigned long first = ERR_peek_error();
    const char *reason = first ? ssl_reason(why, sizeof why) : NULL;
    long vr = ssl ? SSL_get_verify_result(ssl) : X509_V_OK;
    if (vr != X509_V_OK && reason)
        snprintf(buf, len, "%s: %s", reason, X509_verify_cert_error_string(vr));
    else if (vr != X509_V_OK)
        snprintf(buf, len, "certificate verify failed: %s", X509_verify_cert_error_string(vr));
    else if (reason)
        snprintf(buf, len, "%s", reason);
    else
        snprintf(buf, len, "connection closed during TLS handshake");
}

void net_tls_alpn_selected(const SSL *ssl, char *buf, size_t len)
{
    const unsigned char *p = NULL;
    unsigned int n = 0;
    if (!len)
        return;
    if (ssl)
        SSL_get0_alpn_selected(ssl, &p, &n);
    if (n >= len)
        n = (unsigned)len - 1;
    if (n)
        memcpy(buf, p, n);
    buf[n] = '\0';
}
