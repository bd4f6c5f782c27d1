/* grpc_test_certs — throwaway certificates for the TLS and gRPC server tests, made with
 * scripts/certs.sh: a trusted CA with "server" and "client", and an untrusted CA ("rogue"). */
#ifndef PLINTH_TEST_GRPC_CERTS_H
#define PLINTH_TEST_GRPC_CERTS_H

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tests/lib/testlib.h"

struct test_certs {
    char *dir;                 /* trusted CA: ca.pem, server.pem, client.pem (+ -key.pem) */
    char *rogue;               /* untrusted CA: ca.pem, client.pem, server.pem */
    char path[16][PATH_MAX];   /* scratch for test_cert_path */
    int next;
};

/* scripts/certs.sh relative to the repository root (tests run from there) or above. */
static inline const char *test_certs_script(void)
{
    static const char *const tries[] = {"scripts/certs.sh", "../scripts/certs.sh",
                                        "../../scripts/certs.sh", "../../../scripts/certs.sh"};
    for (size_t i = 0; i < sizeof tries / sizeof tries[0]; i++)
        if (access(tries[i], X_OK) == 0)
            return tries[i];
    return NULL;
}

static inline int test_certs_make(struct test_certs *c)
{
    memset(c, 0, sizeof *c);
    const char *script = test_certs_script();
    if (!script)
        return -1;
    c->dir = test_tmpdir("certs");
    c->rogue = test_tmpdir("rogue");
    if (!c->dir || !c->rogue)
        return -1;
    char cmd[PATH_MAX * 3];
    snprintf(cmd, sizeof cmd, "%s %s server client && %s %s server client", script, c->dir,
             script, c->rogue);
    return system(cmd) == 0 ? 0 : -1;
}

static inline void test_certs_free(struct test_certs *c)
{
    test_rmdir(c->dir);
    test_rmdir(c->rogue);
    free(c->dir);
    free(c->rogue);
    c->dir = c->rogue = NULL;
}

/* DIR/name, from a ring of scratch buffers (valid for the next 15 calls). */
static inline const char *test_cert_path(struct test_certs *c, const char *dir,
                                         const char *name)
{
    char *p = c->path[c->next++ % 16];
    snprintf(p, PATH_MAX, "%s/%s", dir, name);
    return p;
}

#endif
