/* tls — OpenSSL contexts for plinth's client port, peer port and gRPC client:
 * TLS 1.2+, ALPN, optional or required client certificates, readable errors. */
#ifndef PLINTH_NET_TLS_H
#define PLINTH_NET_TLS_H

#include <stdbool.h>
#include <stddef.h>

#include <openssl/ssl.h>

#include "net/net.h"

/* Size that always holds a TLS error message from this module. */
#define NET_TLS_ERRLEN 512

/* Options for a server context (client port or peer port). All strings are borrowed for
 * the duration of the call only. */
struct net_tls_server_opts {
    const char *cert_file;  /* PEM certificate (chain), required */
    const char *key_file;   /* PEM private key matching cert_file, required */
    const char *ca_file;    /* PEM CA bundle used to verify client certificates; required
                             * when client_cert_auth is set, otherwise optional */
    bool client_cert_auth;  /* true: a client must present a certificate that chains to
                             * ca_file, or the handshake fails (etcd --client-cert-auth;
                             * always true for the peer port). false: no certificate is
                             * requested. */
    const char *alpn;       /* protocol selected by ALPN; NULL means "h2". If the client
                             * offers ALPN without it, the handshake fails; a client that
                             * offers no ALPN at all is accepted. "" disables ALPN. */
};

/* Options for a client context. Strings are borrowed for the call only. */
struct net_tls_client_opts {
    const char *ca_file;    /* PEM CA bundle that must sign the server's certificate;
                             * NULL uses the system default trust store */
    const char *cert_file;  /* optional client certificate (needed with --client-cert-auth
                             * and for peers); requires key_file */
    const char *key_file;   /* key for cert_file */
    const char *alpn;       /* protocol offered by ALPN; NULL means "h2"; "" offers none */
    bool insecure_skip_verify; /* test tools only: accept any server certificate */
};

/* Builds a server SSL_CTX: TLS 1.2 minimum, SSL_OP_IGNORE_UNEXPECTED_EOF (Go clients close
 * without close_notify), ALPN selection, client verification as asked.
 * On success stores a new context in *out (caller frees with net_tls_ctx_free) and returns 0.
 * On failure returns NET_ENOENT (a file is missing or unreadable) or NET_ETLS (not PEM, key
 * does not match certificate, CA unusable) or NET_EINVAL (missing option) or NET_ENOMEM, and
 * writes text naming the file and the reason into err (may be NULL; errlen bytes,
 * NET_TLS_ERRLEN is always enough), e.g.
 *   "tls: key file /d/s-key.pem: does not match certificate /d/s.pem". */
int net_tls_server_ctx_new(const struct net_tls_server_opts *opts, SSL_CTX **out,
                           char *err, size_t errlen);

/* Builds a client SSL_CTX that verifies the server against ca_file (unless
 * insecure_skip_verify) and offers ALPN. Same return codes and error text as above.
 * The server's name is checked per connection: see net_tls_client_ssl_new. */
int net_tls_client_ctx_new(const struct net_tls_client_opts *opts, SSL_CTX **out,
                           char *err, size_t errlen);

/* Frees a context from the functions above (reference counted by OpenSSL: connections
 * still using it keep it alive). NULL is ignored. */
void net_tls_ctx_free(SSL_CTX *ctx);

/* Makes a client SSL object for a connection to `host` (borrowed): sets SNI when host is a
 * DNS name and asks OpenSSL to check that the server certificate's subjectAltName matches
 * the host, as an IP address (e.g. "127.0.0.1", "::1") or a DNS name. A NULL or empty host
 * skips the name check (the chain is still verified). Returns 0 and a new SSL in *out
 * (ownership passes to the caller, usually to a bufferevent with BEV_OPT_CLOSE_ON_FREE),
 * or NET_ENOMEM / NET_ETLS. */
int net_tls_client_ssl_new(SSL_CTX *ctx, const char *host, SSL **out);

/* True when the remote side presented a certificate and it verified against our CA
 * (for servers with client_cert_auth, and for clients always after a good handshake). */
bool net_tls_peer_verified(const SSL *ssl);

/* Writes the certificate's subject common name of the remote side into buf (always
 * NUL-terminated). Returns 0, or NET_ENOTFOUND when there is no certificate or no CN. */
int net_tls_peer_common_name(const SSL *ssl, char *buf, size_t len);

/* Describes why a handshake or read on ssl failed, from OpenSSL's error queue of this
 * thread and the verify result, e.g. "certificate verify failed: self-signed certificate
 * in certificate chain". Clears the thread's error queue. Always NUL-terminates buf.
 * ssl may be NULL (then only the error queue is used). */
void net_tls_describe_error(const SSL *ssl, char *buf, size_t len);

/* The ALPN protocol selected on ssl written NUL-terminated into buf ("" when none). */
void net_tls_alpn_selected(const SSL *ssl, char *buf, size_t len);

#endif
