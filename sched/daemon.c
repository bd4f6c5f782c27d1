/* daemon — common flags, signals and logging of the workload daemons. */
#include "sched/daemon.h"

#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

const char sched_common_help[] =
    "  --endpoints URLS     store endpoints, comma-separated (default http://127.0.0.1:2379)\n"
    "  --cacert FILE        CA certificate that signs the store's certificates (TLS)\n"
    "  --cert FILE          client certificate (TLS)\n"
    "  --key FILE           client key (TLS)\n"
    "  --name, --id NAME    identity in the leader election and in logs (default host-pid)\n"
    "  --lease-ttl SECONDS  election lease TTL (default 5): a crashed leader is replaced\n"
    "                       within about this long; a paused leader stops acting after it\n"
    "  --request-timeout MS deadline of each store request (default 3000)\n"
    "  -v                   log more\n";

static volatile sig_atomic_t stop_flag;
static char log_name[64] = "plinth";

void sched_common_init(struct sched_common *c, const char *default_name)
{
    static char name[96];
    char host[64] = "host";
    gethostname(host, sizeof(host) - 1);
    snprintf(name, sizeof(name), "%s-%s-%d", default_name, host, (int)getpid());
    memset(c, 0, sizeof(*c));
    c->endpoints = "http://127.0.0.1:2379";
    c->name = name;
    c->lease_ttl = SCHED_ELECTION_DEFAULT_TTL;
    c->timeout_ms = 3000;
}

/* Matches "--flag=value" or "--flag value"; returns the value or NULL. */
static const char *flag_value(const char *flag, int argc, char **argv, int *i, bool *matched)
{
    const char *a = argv[*i];
    size_t n = strlen(flag);
    *matched = false;
    if (strncmp(a, flag, n) != 0) return NULL;
    if (a[n] == '=') {
        *matched = true;
        return a + n + 1;
    }
    if (a[n] != '\0') return NULL;
    *matched = true;
    if (*i + 1 >= argc) return NULL;
    (*i)++;
    return argv[*i];
}

int sched_common_flag(struct sched_common *c, int argc, char **argv, int *i)
{
    static const char *const names[] = {"--endpoints", "--cacert", "--cert", "--key", "--name",
                                        "--id", "--lease-ttl", "--request-timeout"};
    if (!strcmp(argv[*i], "-v") || !strcmp(argv[*i], "--verbose")) {
        c->verbose = true;
        return 1;
    }
    for (size_t f = 0; f < sizeof(names) / sizeof(names[0]); f++) {
        bool m;
        const char *v = flag_value(names[f], argc, argv, i, &m);
        if (!m) continue;
        if (!v || !*v) {
            fprintf(stderr, "%s: flag %s needs a value\n", log_name, names[f]);
            return -1;
        }
        switch (f) {
        case 0: c->endpoints = v; break;
        case 1: c->cacert = v; break;
        case 2: c->cert = v; break;
        case 3: c->key = v; break;
        case 4:
        case 5: c->name = v; break;
        case 6:
            c->lease_ttl = atoi(v);
            if (c->lease_ttl < 1 || c->lease_ttl > 3600) {
                fprintf(stderr, "%s: --lease-ttl: must be 1..3600 seconds\n", log_name);
                return -1;
            }
            break;
        case 7:
            c->timeout_ms = atoi(v);
            if (c->timeout_ms < 50) {
                fprintf(stderr, "%s: --request-timeout: must be at least 50 ms\n", log_name);
                return -1;
            }
            break;
        }
        return 1;
    }
    return 0;
}

int sched_common_store(const struct sched_common *c, struct sched_store **out)
{
    char err[512];
    struct sched_store_opts o = {.endpoints = c->endpoints, .ca_file = c->cacert,
                                 .cert_file = c->cert, .key_file = c->key,
                                 .timeout_ms = c->timeout_ms};
    int rc = sched_store_open(&o, out, err, sizeof(err));
    if (rc) fprintf(stderr, "%s: %s\n", log_name, err);
    return rc;
}

static void on_signal(int sig)
{
    (void)sig;
    stop_flag = 1;
}

void sched_signals_install(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
}

bool sched_stopping(void)
{
    return stop_flag != 0;
}

void sched_log_set_name(const char *name)
{
    snprintf(log_name, sizeof(log_name), "%s", name);
}

void sched_log(const char *fmt, ...)
{
    char ts[32];
    struct timeval tv;
    struct tm tm;
    gettimeofday(&tv, NULL);
    localtime_r(&tv.tv_sec, &tm);
    strftime(ts, sizeof(ts), "%H:%M:%S", &tm);
    char line[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    fprintf(stderr, "%s.%03d %s: %s\n", ts, (int)(tv.tv_usec / 1000), log_name, line);
}
