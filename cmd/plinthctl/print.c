/* print — plinthctl's output in etcdctl's three formats: simple lines, JSON of the
 * response message, and tables. */
#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "ctl.h"

static void put_b64(const uint8_t *p, size_t n)
{
    static const char t[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    putchar('"');
    for (size_t i = 0; i < n; i += 3) {
        uint32_t v = (uint32_t)p[i] << 16;
        if (i + 1 < n) v |= (uint32_t)p[i + 1] << 8;
        if (i + 2 < n) v |= p[i + 2];
        putchar(t[(v >> 18) & 63]);
        putchar(t[(v >> 12) & 63]);
        putchar(i + 1 < n ? t[(v >> 6) & 63] : '=');
        putchar(i + 2 < n ? t[v & 63] : '=');
    }
    putchar('"');
}

static void put_jstr(const char *s)
{
    putchar('"');
    for (; *s; s++) {
        unsigned char ch = (unsigned char)*s;
        if (ch == '"' || ch == '\\')
            printf("\\%c", ch);
        else if (ch == '\n')
            fputs("\\n", stdout);
        else if (ch < 0x20)
            printf("\\u%04x", ch);
        else
            putchar(ch);
    }
    putchar('"');
}

static void json_msg(const ProtobufCMessage *m);

/* One value of field f at p; returns 0 when it is the zero value (left out). */
static int json_value(const ProtobufCFieldDescriptor *f, const void *p, int print)
{
    switch (f->type) {
    case PROTOBUF_C_TYPE_INT32: case PROTOBUF_C_TYPE_SINT32: case PROTOBUF_C_TYPE_SFIXED32:
    case PROTOBUF_C_TYPE_ENUM: {
        int32_t v = *(const int32_t *)p;
        if (print) printf("%" PRId32, v);
        return v != 0;
    }
    case PROTOBUF_C_TYPE_UINT32: case PROTOBUF_C_TYPE_FIXED32: {
        uint32_t v = *(const uint32_t *)p;
        if (print) printf("%" PRIu32, v);
        return v != 0;
    }
    case PROTOBUF_C_TYPE_INT64: case PROTOBUF_C_TYPE_SINT64: case PROTOBUF_C_TYPE_SFIXED64: {
        int64_t v = *(const int64_t *)p;
        if (print) printf("%" PRId64, v);
        return v != 0;
    }
    case PROTOBUF_C_TYPE_UINT64: case PROTOBUF_C_TYPE_FIXED64: {
        uint64_t v = *(const uint64_t *)p;
        if (print) printf("%" PRIu64, v);
        return v != 0;
    }
    case PROTOBUF_C_TYPE_BOOL: {
        protobuf_c_boolean v = *(const protobuf_c_boolean *)p;
        if (print) fputs(v ? "true" : "false", stdout);
        return v != 0;
    }
    case PROTOBUF_C_TYPE_FLOAT: {
        float v = *(const float *)p;
        if (print) printf("%g", v);
        return v != 0;
    }
    case PROTOBUF_C_TYPE_DOUBLE: {
        double v = *(const double *)p;
        if (print) printf("%g", v);
        return v != 0;
    }
    case PROTOBUF_C_TYPE_STRING: {
        const char *s = *(char *const *)p;
        if (print) put_jstr(s ? s : "");
        return s && *s;
    }
    case PROTOBUF_C_TYPE_BYTES: {
        const ProtobufCBinaryData *b = p;
        if (print) put_b64(b->data, b->len);
        return b->len != 0;
    }
    case PROTOBUF_C_TYPE_MESSAGE: {
        const ProtobufCMessage *sub = *(ProtobufCMessage *const *)p;
        if (print) {
            if (sub) json_msg(sub);
            else fputs("{}", stdout);
        }
        return sub != NULL;
    }
    }
    return 0;
}

static size_t type_size(const ProtobufCFieldDescriptor *f)
{
    switch (f->type) {
    case PROTOBUF_C_TYPE_INT64: case PROTOBUF_C_TYPE_SINT64: case PROTOBUF_C_TYPE_SFIXED64:
    case PROTOBUF_C_TYPE_UINT64: case PROTOBUF_C_TYPE_FIXED64: return 8;
    case PROTOBUF_C_TYPE_DOUBLE: return sizeof(double);
    case PROTOBUF_C_TYPE_BOOL: return sizeof(protobuf_c_boolean);
    case PROTOBUF_C_TYPE_STRING: return sizeof(char *);
    case PROTOBUF_C_TYPE_BYTES: return sizeof(ProtobufCBinaryData);
    case PROTOBUF_C_TYPE_MESSAGE: return sizeof(void *);
    default: return 4;
    }
}

static void json_msg(const ProtobufCMessage *m)
{
    const ProtobufCMessageDescriptor *d = m->descriptor;
    const char *base = (const char *)m;
    int first = 1;
    putchar('{');
    for (unsigned i = 0; i < d->n_fields; i++) {
        const ProtobufCFieldDescriptor *f = &d->fields[i];
        const void *p = base + f->offset;
        if (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) {
            if (*(const uint32_t *)(base + f->quantifier_offset) != f->id)
                continue;
        }
        if (f->label == PROTOBUF_C_LABEL_REPEATED) {
            size_t n = *(const size_t *)(base + f->quantifier_offset);
            if (!n)
                continue;
            const char *arr = *(char *const *)p;
            printf("%s\"%s\":[", first ? "" : ",", f->name);
            for (size_t k = 0; k < n; k++) {
                if (k) putchar(',');
                json_value(f, arr + k * type_size(f), 1);
            }
            putchar(']');
            first = 0;
            continue;
        }
        if (!(f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) && !json_value(f, p, 0))
            continue;
        printf("%s\"%s\":", first ? "" : ",", f->name);
        json_value(f, p, 1);
        first = 0;
    }
    putchar('}');
}

void print_json_inline(const ProtobufCMessage *m)
{
    json_msg(m);
}

void print_json(const ProtobufCMessage *m)
{
    json_msg(m);
    putchar('\n');
}

static void put_bytes(const struct ctl *c, const ProtobufCBinaryData *b)
{
    if (c->hex) {
        for (size_t i = 0; i < b->len; i++)
            printf("\\x%02x", b->data[i]);
    } else if (b->len) {
        fwrite(b->data, 1, b->len, stdout);
    }
    putchar('\n');
}

void print_kv(const struct ctl *c, const Mvccpb__KeyValue *kv, int value_only, int keys_only)
{
    if (!value_only)
        put_bytes(c, &kv->key);
    if (keys_only) {
        putchar('\n'); /* etcdctl prints the (empty) value line too */
        return;
    }
    put_bytes(c, &kv->value);
}

void print_range(const struct ctl *c, const Etcdserverpb__RangeResponse *r, int value_only,
                 int keys_only)
{
    for (size_t i = 0; i < r->n_kvs; i++)
        print_kv(c, r->kvs[i], value_only, keys_only);
}

void print_txn(const struct ctl *c, const Etcdserverpb__TxnResponse *r)
{
    puts(r->succeeded ? "SUCCESS" : "FAILURE");
    for (size_t i = 0; i < r->n_responses; i++) {
        const Etcdserverpb__ResponseOp *op = r->responses[i];
        putchar('\n');
        switch (op->response_case) {
        case ETCDSERVERPB__RESPONSE_OP__RESPONSE_RESPONSE_PUT:
            puts("OK");
            break;
        case ETCDSERVERPB__RESPONSE_OP__RESPONSE_RESPONSE_RANGE:
            print_range(c, op->response_range, 0, 0);
            break;
        case ETCDSERVERPB__RESPONSE_OP__RESPONSE_RESPONSE_DELETE_RANGE:
            printf("%" PRId64 "\n", op->response_delete_range->deleted);
            break;
        case ETCDSERVERPB__RESPONSE_OP__RESPONSE_RESPONSE_TXN:
            print_txn(c, op->response_txn);
            break;
        default:
            puts("(empty response)");
        }
    }
}

void print_table(const char *const *hdr, int ncols, char **cells, int nrows)
{
    size_t w[32] = { 0 };
    if (ncols > 32)
        ncols = 32;
    for (int j = 0; j < ncols; j++)
        w[j] = strlen(hdr[j]);
    for (int i = 0; i < nrows; i++)
        for (int j = 0; j < ncols; j++) {
            size_t l = strlen(cells[i * ncols + j]);
            if (l > w[j])
                w[j] = l;
        }
    char line[2048];
    size_t o = 0;
    for (int j = 0; j < ncols && o < sizeof line - 8; j++) {
        line[o++] = '+';
        for (size_t k = 0; k < w[j] + 2 && o < sizeof line - 4; k++)
            line[o++] = '-';
    }
    line[o++] = '+';
    line[o] = 0;
    puts(line);
    printf("|");
    for (int j = 0; j < ncols; j++) {
        size_t l = strlen(hdr[j]), left = (w[j] - l) / 2, right = w[j] - l - left;
        printf(" %*s%s%*s |", (int)left, "", hdr[j], (int)right, "");
    }
    printf("\n%s\n", line);
    for (int i = 0; i < nrows; i++) {
        printf("|");
        for (int j = 0; j < ncols; j++)
            printf(" %*s |", (int)w[j], cells[i * ncols + j]);
        putchar('\n');
    }
    puts(line);
}

void human_size(int64_t n, char *buf, size_t len)
{
    static const char *const u[] = { "B", "kB", "MB", "GB", "TB", "PB" };
    if (n < 10) {
        snprintf(buf, len, "%" PRId64 " B", n);
        return;
    }
    int e = (int)floor(log((double)n) / log(1000.0));
    if (e > 5)
        e = 5;
    double v = floor((double)n / pow(1000.0, e) * 10 + 0.5) / 10;
    snprintf(buf, len, v < 10 ? "%.1f %s" : "%.0f %s", v, u[e]);
}
