/* txn — plinthctl txn: reads etcdctl's transaction format from stdin (compares, a blank
 * line, success requests, a blank line, failure requests) and runs it as one Txn. */
#include <ctype.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ctl.h"

#define MAXOPS 128
#define MAXTOK 16

/* Everything a parsed txn owns; freed at once. */
struct txn_build {
    Etcdserverpb__Compare cmp[MAXOPS];
    Etcdserverpb__Compare *cmpp[MAXOPS];
    size_t ncmp;
    Etcdserverpb__RequestOp ops[2][MAXOPS];
    Etcdserverpb__RequestOp *opp[2][MAXOPS];
    Etcdserverpb__PutRequest put[2][MAXOPS];
    Etcdserverpb__RangeRequest get[2][MAXOPS];
    Etcdserverpb__DeleteRangeRequest del[2][MAXOPS];
    size_t nops[2];
    char *strs[MAXOPS * 8];
    size_t nstrs;
};

static char *keep(struct txn_build *b, char *s)
{
    if (s && b->nstrs < sizeof b->strs / sizeof b->strs[0])
        b->strs[b->nstrs++] = s;
    return s;
}

/* Reads one token at *p: a Go-style "quoted string" (with \" \\ \n \t \xNN escapes), a
 * `raw string`, or a run of non-blank characters. Returns a malloc'd string (length in
 * *len) or NULL at the end of the line. */
static char *token(const char **p, size_t *len)
{
    const char *s = *p;
    while (*s && isspace((unsigned char)*s))
        s++;
    if (!*s) {
        *p = s;
        return NULL;
    }
    char *out = malloc(strlen(s) + 1);
    size_t n = 0;
    if (!out)
        return NULL;
    if (*s == '"') {
        s++;
        while (*s && *s != '"') {
            if (*s == '\\' && s[1]) {
                s++;
                switch (*s) {
                case 'n': out[n++] = '\n'; break;
                case 't': out[n++] = '\t'; break;
                case 'x':
                    if (isxdigit((unsigned char)s[1]) && isxdigit((unsigned char)s[2])) {
                        char h[3] = { s[1], s[2], 0 };
                        out[n++] = (char)strtol(h, NULL, 16);
                        s += 2;
                        break;
                    }
                    /* fall through */
                default: out[n++] = *s;
                }
                s++;
            } else {
                out[n++] = *s++;
            }
        }
        if (*s == '"')
            s++;
    } else if (*s == '`') {
        s++;
        while (*s && *s != '`')
            out[n++] = *s++;
        if (*s == '`')
            s++;
    } else {
        while (*s && !isspace((unsigned char)*s))
            out[n++] = *s++;
    }
    out[n] = 0;
    *len = n;
    *p = s;
    return out;
}

/* target("key") op value */
static int parse_compare(struct txn_build *b, const char *line)
{
    if (b->ncmp >= MAXOPS)
        return ctl_err("too many compares");
    const char *lp = strchr(line, '(');
    if (!lp)
        return ctl_err("malformed comparison: %s", line);
    char target[16];
    size_t tl = (size_t)(lp - line);
    while (tl && isspace((unsigned char)line[tl - 1]))
        tl--;
    const char *t0 = line;
    while (isspace((unsigned char)*t0) && tl) {
        t0++;
        tl--;
    }
    if (tl == 0 || tl >= sizeof target)
        return ctl_err("malformed comparison: %s", line);
    memcpy(target, t0, tl);
    target[tl] = 0;
    const char *p = lp + 1;
    size_t klen = 0, vlen = 0, olen = 0;
    char *key = keep(b, token(&p, &klen));
    if (!key || *p != ')')
        return ctl_err("malformed comparison: %s", line);
    p++;
    char *op = keep(b, token(&p, &olen));
    char *val = keep(b, token(&p, &vlen));
    if (!op || !val)
        return ctl_err("malformed comparison: %s", line);
    Etcdserverpb__Compare *c = &b->cmp[b->ncmp];
    etcdserverpb__compare__init(c);
    c->key = (ProtobufCBinaryData){ klen, (uint8_t *)key };
    if (!strcmp(op, "=") || !strcmp(op, "==")) c->result = ETCDSERVERPB__COMPARE__COMPARE_RESULT__EQUAL;
    else if (!strcmp(op, "!=")) c->result = ETCDSERVERPB__COMPARE__COMPARE_RESULT__NOT_EQUAL;
    else if (!strcmp(op, "<")) c->result = ETCDSERVERPB__COMPARE__COMPARE_RESULT__LESS;
    else if (!strcmp(op, ">")) c->result = ETCDSERVERPB__COMPARE__COMPARE_RESULT__GREATER;
    else return ctl_err("malformed comparison: %s (unknown operator %s)", line, op);
    char *end;
    int64_t num = 0;
    int is_num = 1;
    if (!strcmp(target, "val") || !strcmp(target, "value")) {
        c->target = ETCDSERVERPB__COMPARE__COMPARE_TARGET__VALUE;
        c->target_union_case = ETCDSERVERPB__COMPARE__TARGET_UNION_VALUE;
        c->value = (ProtobufCBinaryData){ vlen, (uint8_t *)val };
        is_num = 0;
    } else {
        num = strtoll(val, &end, !strcmp(target, "lease") ? 16 : 10);
        if (!*val || *end)
            return ctl_err("malformed comparison: %s (bad number %s)", line, val);
    }
    if (!is_num) {
    } else if (!strcmp(target, "ver") || !strcmp(target, "version")) {
        c->target = ETCDSERVERPB__COMPARE__COMPARE_TARGET__VERSION;
        c->target_union_case = ETCDSERVERPB__COMPARE__TARGET_UNION_VERSION;
        c->version = num;
    } else if (!strcmp(target, "c") || !strcmp(target, "create")) {
        c->target = ETCDSERVERPB__COMPARE__COMPARE_TARGET__CREATE;
        c->target_union_case = ETCDSERVERPB__COMPARE__TARGET_UNION_CREATE_REVISION;
        c->create_revision = num;
    } else if (!strcmp(target, "m") || !strcmp(target, "mod")) {
        c->target = ETCDSERVERPB__COMPARE__COMPARE_TARGET__MOD;
        c->target_union_case = ETCDSERVERPB__COMPARE__TARGET_UNION_MOD_REVISION;
        c->mod_revision = num;
    } else if (!strcmp(target, "lease")) {
        c->target = ETCDSERVERPB__COMPARE__COMPARE_TARGET__LEASE;
        c->target_union_case = ETCDSERVERPB__COMPARE__TARGET_UNION_LEASE;
        c->lease = num;
    } else {
        return ctl_err("malformed comparison: %s (unknown target %s)", line, target);
    }
    b->cmpp[b->ncmp] = c;
    b->ncmp++;
    return 0;
}

/* put KEY VALUE [--lease=ID] [--prev-kv] | get KEY [END] [--prefix|--from-key] ... | del KEY [END] [--prefix] */
static int parse_op(struct txn_build *b, int which, const char *line)
{
    size_t i = b->nops[which];
    if (i >= MAXOPS)
        return ctl_err("too many requests in txn");
    char *tok[MAXTOK];
    size_t tlen[MAXTOK];
    int nt = 0;
    const char *p = line;
    char *t;
    size_t tl;
    while (nt < MAXTOK && (t = keep(b, token(&p, &tl)))) {
        tok[nt] = t;
        tlen[nt++] = tl;
    }
    if (nt == 0)
        return 0;
    char *args[MAXTOK];
    size_t alen[MAXTOK];
    int na = 0, prefix = 0, from_key = 0, prev = 0, keys_only = 0, count_only = 0;
    int64_t lease = 0, limit = 0, rev = 0;
    for (int k = 1; k < nt; k++) {
        char *a = tok[k];
        if (strncmp(a, "--", 2) != 0) {
            args[na] = a;
            alen[na++] = tlen[k];
            continue;
        }
        char *eq = strchr(a, '=');
        const char *v = eq ? eq + 1 : (k + 1 < nt ? tok[k + 1] : "");
        if (!strcmp(a, "--prefix")) prefix = 1;
        else if (!strcmp(a, "--from-key")) from_key = 1;
        else if (!strcmp(a, "--prev-kv")) prev = 1;
        else if (!strcmp(a, "--keys-only")) keys_only = 1;
        else if (!strcmp(a, "--count-only")) count_only = 1;
        else if (!strncmp(a, "--lease", 7)) { lease = strtoll(v, NULL, 16); if (!eq) k++; }
        else if (!strncmp(a, "--limit", 7)) { limit = strtoll(v, NULL, 10); if (!eq) k++; }
        else if (!strncmp(a, "--rev", 5)) { rev = strtoll(v, NULL, 10); if (!eq) k++; }
        else return ctl_err("invalid txn request: %s (unknown flag %s)", line, a);
    }
    Etcdserverpb__RequestOp *op = &b->ops[which][i];
    etcdserverpb__request_op__init(op);
    if (!strcmp(tok[0], "put")) {
        if (na != 2)
            return ctl_err("invalid txn request: %s (put needs a key and a value)", line);
        Etcdserverpb__PutRequest *r = &b->put[which][i];
        etcdserverpb__put_request__init(r);
        r->key = (ProtobufCBinaryData){ alen[0], (uint8_t *)args[0] };
        r->value = (ProtobufCBinaryData){ alen[1], (uint8_t *)args[1] };
        r->lease = lease;
        r->prev_kv = prev;
        op->request_case = ETCDSERVERPB__REQUEST_OP__REQUEST_REQUEST_PUT;
        op->request_put = r;
    } else if (!strcmp(tok[0], "get") || !strcmp(tok[0], "del")) {
        if (na < 1 || na > 2)
            return ctl_err("invalid txn request: %s (%s needs a key and an optional range end)",
                           line, tok[0]);
        ProtobufCBinaryData key = { alen[0], (uint8_t *)args[0] }, end = { 0, NULL };
        if (na == 2)
            end = (ProtobufCBinaryData){ alen[1], (uint8_t *)args[1] };
        if (prefix) {
            uint8_t *e = malloc(key.len + 1);
            keep(b, (char *)e);
            if (!e)
                return ctl_err("out of memory");
            end = (ProtobufCBinaryData){ prefix_end(key.data, key.len, e, key.len + 1), e };
        }
        if (from_key)
            end = (ProtobufCBinaryData){ 1, (uint8_t *)"" };
        if (tok[0][0] == 'g') {
            Etcdserverpb__RangeRequest *r = &b->get[which][i];
            etcdserverpb__range_request__init(r);
            r->key = key;
            r->range_end = end;
            r->limit = limit;
            r->revision = rev;
            r->keys_only = keys_only;
            r->count_only = count_only;
            op->request_case = ETCDSERVERPB__REQUEST_OP__REQUEST_REQUEST_RANGE;
            op->request_range = r;
        } else {
            Etcdserverpb__DeleteRangeRequest *r = &b->del[which][i];
            etcdserverpb__delete_range_request__init(r);
            r->key = key;
            r->range_end = end;
            r->prev_kv = prev;
            op->request_case = ETCDSERVERPB__REQUEST_OP__REQUEST_REQUEST_DELETE_RANGE;
            op->request_delete_range = r;
        }
    } else {
        return ctl_err("invalid txn request: %s (want get, put or del)", line);
    }
    b->opp[which][i] = op;
    b->nops[which]++;
    return 0;
}

static int blank(const char *s)
{
    for (; *s; s++)
        if (!isspace((unsigned char)*s))
            return 0;
    return 1;
}

int cmd_txn(struct ctl *c, int argc, char **argv)
{
    int interactive = 0;
    struct flag_spec specs[] = { { "i", F_BOOL, &interactive },
                                 { "interactive", F_BOOL, &interactive }, { NULL, 0, NULL } };
    char *pos[1];
    int np, rc;
    if ((rc = ctl_parse(c, argc, argv, specs, pos, 0, &np)))
        return rc;
    struct txn_build *b = calloc(1, sizeof *b);
    if (!b)
        return ctl_err("out of memory");
    static const char *const prompts[] = { "compares:", "success requests (get, put, del):",
                                           "failure requests (get, put, del):" };
    char *line = NULL;
    size_t cap = 0;
    int section = 0;
    rc = 0;
    if (interactive)
        puts(prompts[0]);
    while (section < 3) {
        fflush(stdout);
        ssize_t n = getline(&line, &cap, stdin);
        if (n < 0)
            break;
        if (n > 0 && line[n - 1] == '\n')
            line[--n] = 0;
        if (blank(line)) {
            section++;
            if (interactive && section < 3)
                printf("\n%s\n", prompts[section]);
            continue;
        }
        rc = section == 0 ? parse_compare(b, line) : parse_op(b, section - 1, line);
        if (rc)
            break;
    }
    free(line);
    if (!rc) {
        Etcdserverpb__TxnRequest req = ETCDSERVERPB__TXN_REQUEST__INIT;
        req.n_compare = b->ncmp;
        req.compare = b->cmpp;
        req.n_success = b->nops[0];
        req.success = b->opp[0];
        req.n_failure = b->nops[1];
        req.failure = b->opp[1];
        ProtobufCMessage *resp;
        if (interactive)
            putchar('\n');
        rc = ctl_call(c, "/etcdserverpb.KV/Txn", &req.base,
                      &etcdserverpb__txn_response__descriptor, &resp);
        if (!rc) {
            if (c->out == OUT_JSON)
                print_json(resp);
            else
                print_txn(c, (Etcdserverpb__TxnResponse *)resp);
            protobuf_c_message_free_unpacked(resp, NULL);
        }
    }
    for (size_t i = 0; i < b->nstrs; i++)
        free(b->strs[i]);
    free(b);
    return rc;
}
