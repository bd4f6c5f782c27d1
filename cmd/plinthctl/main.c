/* plinthctl — command line client for plinth (and any etcd v3 endpoint): etcdctl's key/value
 * verbs and output formats, plus "plinthctl kube ..." for the workload layer. */
#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "ctl.h"
#include "sched/ctl.h"

volatile int ctl_interrupted;

static void on_signal(int sig)
{
    (void)sig;
    ctl_interrupted = 1;
}

void ctl_catch_signals(void)
{
    struct sigaction sa = { .sa_handler = on_signal };
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
}

int ctl_err(const char *fmt, ...)
{
    va_list ap;
    fflush(stdout);
    fputs("Error: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    return CTL_EXIT_ERR;
}

int ctl_usage(const char *fmt, ...)
{
    va_list ap;
    fputs("Error: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputs(" (see plinthctl --help)\n", stderr);
    return CTL_EXIT_USAGE;
}

/* Go-style duration: "5s", "500ms", "1m", "2.5s"; a bare number means seconds. */
static int parse_duration_ms(const char *s, int *ms)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (end == s || errno || v < 0)
        return -1;
    double mul = 1000;
    if (!strcmp(end, "ms")) mul = 1;
    else if (!strcmp(end, "s") || !*end) mul = 1000;
    else if (!strcmp(end, "m")) mul = 60000;
    else if (!strcmp(end, "h")) mul = 3600000;
    else if (!strcmp(end, "us") || !strcmp(end, "µs")) mul = 0.001;
    else return -1;
    *ms = (int)(v * mul + 0.5);
    return 0;
}

static struct flag_spec global_specs[] = {
    { "endpoints", F_STR, NULL }, { "cacert", F_STR, NULL },     { "cert", F_STR, NULL },
    { "key", F_STR, NULL },       { "dial-timeout", F_DUR, NULL }, { "command-timeout", F_DUR, NULL },
    { "w", F_STR, NULL },         { "write-out", F_STR, NULL },  { "hex", F_BOOL, NULL },
    { NULL, 0, NULL },
};

static void bind_globals(struct ctl *c, const char **wout)
{
    global_specs[0].dst = &c->endpoints;
    global_specs[1].dst = &c->cacert;
    global_specs[2].dst = &c->cert;
    global_specs[3].dst = &c->key;
    global_specs[4].dst = &c->dial_timeout_ms;
    global_specs[5].dst = &c->command_timeout_ms;
    global_specs[6].dst = wout;
    global_specs[7].dst = wout;
    global_specs[8].dst = &c->hex;
}

static const char *g_wout;

static int set_flag(const struct flag_spec *f, const char *val, int has_val)
{
    switch (f->kind) {
    case F_BOOL:
        if (!has_val || !strcmp(val, "true") || !strcmp(val, "1"))
            *(int *)f->dst = 1;
        else if (!strcmp(val, "false") || !strcmp(val, "0"))
            *(int *)f->dst = 0;
        else
            return ctl_usage("--%s: want true or false, got '%s'", f->name, val);
        return 0;
    case F_STR:
        *(const char **)f->dst = val;
        return 0;
    case F_INT:
    case F_HEX: {
        char *end;
        errno = 0;
        long long v = strtoll(val, &end, f->kind == F_HEX ? 16 : 10);
        if (!*val || *end || errno)
            return ctl_usage("--%s: bad %s number '%s'", f->name,
                             f->kind == F_HEX ? "hexadecimal" : "", val);
        *(int64_t *)f->dst = v;
        return 0;
    }
    case F_DUR:
        if (parse_duration_ms(val, (int *)f->dst) != 0)
            return ctl_usage("--%s: bad duration '%s' (e.g. 5s, 500ms)", f->name, val);
        return 0;
    }
    return 0;
}

static const struct flag_spec *find_flag(const struct flag_spec *specs, const char *name, size_t n)
{
    for (int pass = 0; pass < 2; pass++) {
        const struct flag_spec *s = pass ? global_specs : specs;
        for (; s && s->name; s++)
            if (strlen(s->name) == n && !strncmp(s->name, name, n))
                return s;
    }
    return NULL;
}

int ctl_parse(struct ctl *c, int argc, char **argv, const struct flag_spec *specs, char **pos,
              int maxpos, int *npos)
{
    int np = 0, flags_done = 0;
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        if (flags_done || a[0] != '-' || !a[1]) {
            if (np >= maxpos)
                return ctl_usage("too many arguments ('%s')", a);
            pos[np++] = argv[i];
            if (c->parse_stop_after > 0 && np >= c->parse_stop_after)
                flags_done = 1;
            continue;
        }
        if (!strcmp(a, "--")) {
            flags_done = 1;
            continue;
        }
        const char *name = a + (a[1] == '-' ? 2 : 1);
        const char *eq = strchr(name, '=');
        size_t n = eq ? (size_t)(eq - name) : strlen(name);
        const struct flag_spec *f = find_flag(specs, name, n);
        if (!f)
            return ctl_usage("unknown flag: %s", a);
        if (f->kind == F_BOOL) {
            if (set_flag(f, eq ? eq + 1 : "", eq != NULL))
                return CTL_EXIT_USAGE;
            continue;
        }
        const char *val = eq ? eq + 1 : (i + 1 < argc ? argv[++i] : NULL);
        if (!val)
            return ctl_usage("flag needs an argument: %s", a);
        if (set_flag(f, val, 1))
            return CTL_EXIT_USAGE;
    }
    if (g_wout) {
        if (!strcmp(g_wout, "simple")) c->out = OUT_SIMPLE;
        else if (!strcmp(g_wout, "json")) c->out = OUT_JSON;
        else if (!strcmp(g_wout, "table")) c->out = OUT_TABLE;
        else return ctl_usage("-w: unknown output format '%s' (simple, json, table)", g_wout);
    }
    *npos = np;
    return 0;
}

static struct net_grpc_client *client_new(struct ctl *c, const char *eps)
{
    struct net_grpc_client_opts o = { .endpoints = eps, .ca_file = c->cacert,
                                      .cert_file = c->cert, .key_file = c->key,
                                      .dial_timeout_ms = c->dial_timeout_ms,
                                      .call_timeout_ms = c->command_timeout_ms,
                                      .keepalive_ms = 2000, .keepalive_timeout_ms = 6000 };
    struct net_grpc_status st;
    struct net_grpc_client *cl = net_grpc_client_new(&o, &st);
    if (!cl)
        ctl_err("%s", st.message);
    return cl;
}

struct net_grpc_client *ctl_client(struct ctl *c)
{
    if (!c->client)
        c->client = client_new(c, c->endpoints);
    return c->client;
}

struct net_grpc_client *ctl_client_for(struct ctl *c, const char *url)
{
    return client_new(c, url);
}

int ctl_call(struct ctl *c, const char *method, const ProtobufCMessage *req,
             const ProtobufCMessageDescriptor *desc, ProtobufCMessage **resp)
{
    struct net_grpc_client *cl = ctl_client(c);
    if (!cl)
        return CTL_EXIT_USAGE;
    struct net_grpc_status st;
    *resp = NULL;
    int code = net_grpc_unary(cl, method, req, desc, resp, &st, c->command_timeout_ms);
    if (code == NET_GRPC_OK)
        return 0;
    if (code == NET_GRPC_DEADLINE_EXCEEDED)
        return ctl_err("context deadline exceeded");
    ctl_err("%s", st.message[0] ? st.message : net_grpc_code_name(code));
    return code == NET_GRPC_UNAVAILABLE ? CTL_EXIT_USAGE : CTL_EXIT_ERR;
}

size_t prefix_end(const uint8_t *key, size_t klen, uint8_t *buf, size_t len)
{
    size_t n = klen < len ? klen : len;
    memcpy(buf, key, n);
    while (n > 0) {
        if (buf[n - 1] < 0xff) {
            buf[n - 1]++;
            return n;
        }
        n--;
    }
    buf[0] = 0; /* every byte is 0xff: the range runs to the end of the key space */
    return 1;
}

static void usage(FILE *f)
{
    fputs("usage: plinthctl [global flags] COMMAND [flags] [args]\n"
          "\n"
          "commands (as etcdctl's):\n"
          "  put KEY [VALUE]        --lease=ID --prev-kv --ignore-value --ignore-lease\n"
          "  get KEY [END]          --prefix --from-key --rev --limit --keys-only --count-only\n"
          "                         --print-value-only --order --sort-by --consistency=l|s\n"
          "  del KEY [END]          --prefix --from-key --prev-kv\n"
          "  txn [-i]               compares, success and failure requests from stdin\n"
          "  compaction REV         --physical\n"
          "  watch [KEY [END]]      --prefix --rev --prev-kv (until Ctrl-C)\n"
          "  lease grant TTL | revoke ID | keep-alive [--once] ID | timetolive ID [--keys] | list\n"
          "  member list | add NAME --peer-urls=URLS [--learner] | remove ID | promote ID\n"
          "         | update ID --peer-urls=URLS\n"
          "  endpoint status | health   [--cluster]\n"
          "  snapshot save FILE | status FILE\n"
          "  alarm list | disarm\n"
          "  move-leader ID         transfer leadership to member ID (hex)\n"
          "  defrag                 (LMDB reuses freed pages; plinth answers at once)\n"
          "  elect NAME [PROPOSAL]  [-l] (observe)\n"
          "  lock NAME [COMMAND...] [--ttl]\n"
          "  kube VERB ...          workload objects (apply, get, describe, delete, scale, ...)\n"
          "  version\n"
          "\n"
          "global flags (or ETCDCTL_ENDPOINTS, ETCDCTL_CACERT, ... in the environment):\n"
          "  --endpoints=URLS       comma-separated (default 127.0.0.1:2379)\n"
          "  --cacert --cert --key  TLS files\n"
          "  --dial-timeout=2s --command-timeout=5s\n"
          "  -w simple|json|table   output format\n"
          "  --hex                  print keys and values as hex\n",
          f);
}

/* Words that take a sub-command. */
static int is_group(const char *w)
{
    return !strcmp(w, "lease") || !strcmp(w, "member") || !strcmp(w, "endpoint") ||
           !strcmp(w, "snapshot") || !strcmp(w, "alarm");
}

static int global_takes_value(const char *a)
{
    if (strchr(a, '='))
        return 0;
    const char *n = a + (a[1] == '-' ? 2 : 1);
    const struct flag_spec *f = find_flag(NULL, n, strlen(n));
    return f && f->kind != F_BOOL;
}

static int run_kube(int argc, char **argv, int verb_at)
{
    /* sched_ctl_main parses the global flags itself: hand it everything, "kube" first */
    char **v = calloc((size_t)argc + 1, sizeof *v);
    if (!v)
        return ctl_err("out of memory");
    int n = 0;
    v[n++] = argv[verb_at];
    for (int i = 1; i < argc; i++)
        if (i != verb_at)
            v[n++] = argv[i];
    int rc = sched_ctl_main(n, v);
    free(v);
    return rc;
}

int main(int argc, char **argv)
{
    struct ctl c = { .endpoints = "127.0.0.1:2379", .dial_timeout_ms = 2000,
                     .command_timeout_ms = 5000 };
    const char *e;
    if ((e = getenv("ETCDCTL_ENDPOINTS")) && *e) c.endpoints = e;
    if ((e = getenv("ETCDCTL_CACERT")) && *e) c.cacert = e;
    if ((e = getenv("ETCDCTL_CERT")) && *e) c.cert = e;
    if ((e = getenv("ETCDCTL_KEY")) && *e) c.key = e;
    if ((e = getenv("ETCDCTL_DIAL_TIMEOUT")) && *e) parse_duration_ms(e, &c.dial_timeout_ms);
    if ((e = getenv("ETCDCTL_COMMAND_TIMEOUT")) && *e) parse_duration_ms(e, &c.command_timeout_ms);
    if ((e = getenv("ETCDCTL_WRITE_OUT")) && *e) g_wout = e;
    bind_globals(&c, &g_wout);

    /* find the command word(s); flags may come before them */
    int verb = -1, sub = -1;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            return 0;
        }
        if (a[0] == '-' && a[1]) {
            if (verb < 0 && global_takes_value(a))
                i++;
            continue;
        }
        if (verb < 0) {
            verb = i;
            if (!strcmp(a, "kube"))
                return run_kube(argc, argv, verb);
            if (!is_group(a))
                break;
        } else {
            sub = i;
            break;
        }
    }
    if (verb < 0) {
        usage(stderr);
        return CTL_EXIT_USAGE;
    }
    /* the remaining words, command words removed */
    char **rest = calloc((size_t)argc, sizeof *rest);
    int nrest = 0;
    if (!rest)
        return ctl_err("out of memory");
    for (int i = 1; i < argc; i++)
        if (i != verb && i != sub)
            rest[nrest++] = argv[i];
    const char *v = argv[verb], *s = sub > 0 ? argv[sub] : NULL;
    int rc;
    if (!strcmp(v, "put")) rc = cmd_put(&c, nrest, rest);
    else if (!strcmp(v, "get")) rc = cmd_get(&c, nrest, rest);
    else if (!strcmp(v, "del")) rc = cmd_del(&c, nrest, rest);
    else if (!strcmp(v, "txn")) rc = cmd_txn(&c, nrest, rest);
    else if (!strcmp(v, "compaction")) rc = cmd_compaction(&c, nrest, rest);
    else if (!strcmp(v, "watch")) rc = cmd_watch(&c, nrest, rest);
    else if (!strcmp(v, "lease")) rc = cmd_lease(&c, s, nrest, rest);
    else if (!strcmp(v, "member")) rc = cmd_member(&c, s, nrest, rest);
    else if (!strcmp(v, "endpoint")) rc = cmd_endpoint(&c, s, nrest, rest);
    else if (!strcmp(v, "snapshot")) rc = cmd_snapshot(&c, s, nrest, rest);
    else if (!strcmp(v, "elect")) rc = cmd_elect(&c, nrest, rest);
    else if (!strcmp(v, "lock")) rc = cmd_lock(&c, nrest, rest);
    else if (!strcmp(v, "alarm")) rc = cmd_alarm(&c, s, nrest, rest);
    else if (!strcmp(v, "move-leader")) rc = cmd_move_leader(&c, nrest, rest);
    else if (!strcmp(v, "defrag")) rc = cmd_defrag(&c, nrest, rest);
    else if (!strcmp(v, "version")) {
        printf("plinthctl version: %s\nAPI version: 3.5\n", PLINTH_VERSION);
        rc = 0;
    } else {
        rc = ctl_usage("unknown command \"%s\"", v);
    }
    net_grpc_client_free(c.client);
    free(rest);
    fflush(stdout);
    return rc;
}
