/* kv — plinthctl put, get, del, compaction (KV service), printed as etcdctl prints them. */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "ctl.h"

#define BIN(s) ((ProtobufCBinaryData){ strlen(s), (uint8_t *)(s) })

/* Reads all of stdin (put without a value argument). Caller frees. */
static char *read_stdin(size_t *len)
{
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap);
    while (buf) {
        size_t r = fread(buf + n, 1, cap - n, stdin);
        n += r;
        if (r == 0)
            break;
        if (n == cap) {
            char *nb = realloc(buf, cap * 2);
            if (!nb) {
                free(buf);
                return NULL;
            }
            buf = nb;
            cap *= 2;
        }
    }
    *len = n;
    return buf;
}

int cmd_put(struct ctl *c, int argc, char **argv)
{
    int prev = 0, ign_val = 0, ign_lease = 0;
    int64_t lease = 0;
    struct flag_spec specs[] = { { "lease", F_HEX, &lease }, { "prev-kv", F_BOOL, &prev },
                                 { "ignore-value", F_BOOL, &ign_val },
                                 { "ignore-lease", F_BOOL, &ign_lease }, { NULL, 0, NULL } };
    char *pos[3];
    int np, rc;
    if ((rc = ctl_parse(c, argc, argv, specs, pos, 2, &np)))
        return rc;
    if (np < 1)
        return ctl_usage("put command needs 1 argument and input from stdin or 2 arguments");
    Etcdserverpb__PutRequest req = ETCDSERVERPB__PUT_REQUEST__INIT;
    char *in = NULL;
    size_t inlen = 0;
    req.key = BIN(pos[0]);
    if (np == 2) {
        req.value = BIN(pos[1]);
    } else if (!ign_val) {
        in = read_stdin(&inlen);
        if (!in)
            return ctl_err("reading the value from stdin failed");
        req.value = (ProtobufCBinaryData){ inlen, (uint8_t *)in };
    }
    req.lease = lease;
    req.prev_kv = prev;
    req.ignore_value = ign_val;
    req.ignore_lease = ign_lease;
    ProtobufCMessage *resp;
    rc = ctl_call(c, "/etcdserverpb.KV/Put", &req.base, &etcdserverpb__put_response__descriptor,
                  &resp);
    free(in);
    if (rc)
        return rc;
    Etcdserverpb__PutResponse *r = (Etcdserverpb__PutResponse *)resp;
    if (c->out == OUT_JSON) {
        print_json(resp);
    } else {
        puts("OK");
        if (r->prev_kv)
            print_kv(c, r->prev_kv, 0, 0);
    }
    protobuf_c_message_free_unpacked(resp, NULL);
    return 0;
}

int cmd_get(struct ctl *c, int argc, char **argv)
{
    int prefix = 0, from_key = 0, keys_only = 0, count_only = 0, value_only = 0;
    int64_t rev = 0, limit = 0;
    const char *order = NULL, *sort_by = NULL, *consistency = "l";
    struct flag_spec specs[] = {
        { "prefix", F_BOOL, &prefix },          { "from-key", F_BOOL, &from_key },
        { "keys-only", F_BOOL, &keys_only },    { "count-only", F_BOOL, &count_only },
        { "print-value-only", F_BOOL, &value_only }, { "rev", F_INT, &rev },
        { "limit", F_INT, &limit },             { "order", F_STR, &order },
        { "sort-by", F_STR, &sort_by },         { "consistency", F_STR, &consistency },
        { NULL, 0, NULL } };
    char *pos[3];
    int np, rc;
    if ((rc = ctl_parse(c, argc, argv, specs, pos, 2, &np)))
        return rc;
    if (np < 1)
        return ctl_usage("get command needs one argument as key and an optional argument as range_end");
    if (prefix && from_key)
        return ctl_usage("`--prefix` and `--from-key` cannot be set at the same time, choose one");
    if (np == 2 && (prefix || from_key))
        return ctl_usage("too many arguments, only accept one argument when `--prefix` or `--from-key` is set");
    Etcdserverpb__RangeRequest req = ETCDSERVERPB__RANGE_REQUEST__INIT;
    uint8_t end[4096];
    req.key = BIN(pos[0]);
    if (np == 2)
        req.range_end = BIN(pos[1]);
    if (prefix) {
        if (req.key.len == 0) {
            req.key = (ProtobufCBinaryData){ 1, (uint8_t *)"" };
            req.range_end = (ProtobufCBinaryData){ 1, (uint8_t *)"" };
        } else {
            req.range_end.len = prefix_end(req.key.data, req.key.len, end, sizeof end);
            req.range_end.data = end;
        }
    }
    if (from_key) {
        if (req.key.len == 0)
            req.key = (ProtobufCBinaryData){ 1, (uint8_t *)"" };
        req.range_end = (ProtobufCBinaryData){ 1, (uint8_t *)"" };
    }
    req.revision = rev;
    req.limit = limit;
    req.keys_only = keys_only;
    req.count_only = count_only;
    if (!strcmp(consistency, "s"))
        req.serializable = 1;
    else if (strcmp(consistency, "l"))
        return ctl_usage("unknown consistency flag '%s'", consistency);
    if (order) {
        if (!strcasecmp(order, "ASCEND")) req.sort_order = ETCDSERVERPB__RANGE_REQUEST__SORT_ORDER__ASCEND;
        else if (!strcasecmp(order, "DESCEND")) req.sort_order = ETCDSERVERPB__RANGE_REQUEST__SORT_ORDER__DESCEND;
        else return ctl_usage("bad --order '%s' (ASCEND or DESCEND)", order);
    }
    if (sort_by) {
        if (!strcasecmp(sort_by, "CREATE")) req.sort_target = ETCDSERVERPB__RANGE_REQUEST__SORT_TARGET__CREATE;
        else if (!strcasecmp(sort_by, "KEY")) req.sort_target = ETCDSERVERPB__RANGE_REQUEST__SORT_TARGET__KEY;
        else if (!strcasecmp(sort_by, "MODIFY")) req.sort_target = ETCDSERVERPB__RANGE_REQUEST__SORT_TARGET__MOD;
        else if (!strcasecmp(sort_by, "VALUE")) req.sort_target = ETCDSERVERPB__RANGE_REQUEST__SORT_TARGET__VALUE;
        else if (!strcasecmp(sort_by, "VERSION")) req.sort_target = ETCDSERVERPB__RANGE_REQUEST__SORT_TARGET__VERSION;
        else return ctl_usage("bad --sort-by '%s' (CREATE, KEY, MODIFY, VALUE, VERSION)", sort_by);
        if (!order)
            req.sort_order = ETCDSERVERPB__RANGE_REQUEST__SORT_ORDER__ASCEND;
    }
    ProtobufCMessage *resp;
    if ((rc = ctl_call(c, "/etcdserverpb.KV/Range", &req.base,
                       &etcdserverpb__range_response__descriptor, &resp)))
        return rc;
    Etcdserverpb__RangeResponse *r = (Etcdserverpb__RangeResponse *)resp;
    if (c->out == OUT_JSON)
        print_json(resp);
    else if (count_only)
        printf("%" PRId64 "\n", r->count);
    else
        print_range(c, r, value_only, keys_only);
    protobuf_c_message_free_unpacked(resp, NULL);
    return 0;
}

int cmd_del(struct ctl *c, int argc, char **argv)
{
    int prefix = 0, from_key = 0, prev = 0;
    struct flag_spec specs[] = { { "prefix", F_BOOL, &prefix }, { "from-key", F_BOOL, &from_key },
                                 { "prev-kv", F_BOOL, &prev }, { NULL, 0, NULL } };
    char *pos[3];
    int np, rc;
    if ((rc = ctl_parse(c, argc, argv, specs, pos, 2, &np)))
        return rc;
    if (np < 1)
        return ctl_usage("del command needs one argument as key and an optional argument as range_end");
    if (prefix && from_key)
        return ctl_usage("`--prefix` and `--from-key` cannot be set at the same time, choose one");
    Etcdserverpb__DeleteRangeRequest req = ETCDSERVERPB__DELETE_RANGE_REQUEST__INIT;
    uint8_t end[4096];
    req.key = BIN(pos[0]);
    if (np == 2)
        req.range_end = BIN(pos[1]);
    if (prefix) {
        if (req.key.len == 0) {
            req.key = (ProtobufCBinaryData){ 1, (uint8_t *)"" };
            req.range_end = (ProtobufCBinaryData){ 1, (uint8_t *)"" };
        } else {
            req.range_end.len = prefix_end(req.key.data, req.key.len, end, sizeof end);
            req.range_end.data = end;
        }
    }
    if (from_key) {
        if (req.key.len == 0)
            req.key = (ProtobufCBinaryData){ 1, (uint8_t *)"" };
        req.range_end = (ProtobufCBinaryData){ 1, (uint8_t *)"" };
    }
    req.prev_kv = prev;
    ProtobufCMessage *resp;
    if ((rc = ctl_call(c, "/etcdserverpb.KV/DeleteRange", &req.base,
                       &etcdserverpb__delete_range_response__descriptor, &resp)))
        return rc;
    Etcdserverpb__DeleteRangeResponse *r = (Etcdserverpb__DeleteRangeResponse *)resp;
    if (c->out == OUT_JSON) {
        print_json(resp);
    } else {
        printf("%" PRId64 "\n", r->deleted);
        for (size_t i = 0; i < r->n_prev_kvs; i++)
            print_kv(c, r->prev_kvs[i], 0, 0);
    }
    protobuf_c_message_free_unpacked(resp, NULL);
    return 0;
}

int cmd_compaction(struct ctl *c, int argc, char **argv)
{
    int physical = 0;
    struct flag_spec specs[] = { { "physical", F_BOOL, &physical }, { NULL, 0, NULL } };
    char *pos[2];
    int np, rc;
    if ((rc = ctl_parse(c, argc, argv, specs, pos, 1, &np)))
        return rc;
    if (np != 1)
        return ctl_usage("compaction command needs 1 argument");
    char *end;
    long long rev = strtoll(pos[0], &end, 10);
    if (*end || rev <= 0)
        return ctl_usage("compaction: bad revision '%s'", pos[0]);
    Etcdserverpb__CompactionRequest req = ETCDSERVERPB__COMPACTION_REQUEST__INIT;
    req.revision = rev;
    req.physical = physical;
    ProtobufCMessage *resp;
    if ((rc = ctl_call(c, "/etcdserverpb.KV/Compact", &req.base,
                       &etcdserverpb__compaction_response__descriptor, &resp)))
        return rc;
    if (c->out == OUT_JSON)
        print_json(resp);
    else
        printf("compacted revision %lld\n", rev);
    protobuf_c_message_free_unpacked(resp, NULL);
    return 0;
}
