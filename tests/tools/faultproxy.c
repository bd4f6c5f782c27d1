/* faultproxy — a TCP proxy between cluster members that can cut or stall chosen links, for partition tests. */
/*
 * Usage: faultproxy --ctl FILE --link NAME:LISTEN_PORT:TARGET_PORT [--link ...] [--log FILE]
 *
 * Each --link listens on 127.0.0.1:LISTEN_PORT and forwards every connection, byte for
 * byte (TLS passes through untouched), to 127.0.0.1:TARGET_PORT, the peer port of member
 * NAME. Members advertise the LISTEN ports as their peer URLs, so all peer traffic passes
 * here.
 *
 * To cut the link between two members the proxy must know who dialled: on accept it finds
 * the connecting process through /proc (the client socket's inode in /proc/net/tcp, then
 * the process holding it) and reads its --name flag. Connections from anything else get
 * the name "?".
 *
 * Control: the file FILE is re-read whenever it changes (polled every 20 ms) and on
 * SIGHUP. Its lines:
 *   gen N         a generation number; once applied it is written to FILE.ack
 *   drop A B      connections between A and B (either direction) are closed, new ones
 *                 are accepted and closed at once: a partition the peers notice at once
 *   stall A B     bytes from A to B are held (not read), connections stay open: a silent
 *                 one-way partition, as when packets are lost; B to A still flows
 *   drop A *      (or stall) with "*" for every other member
 * An empty file (or "gen N" alone) heals everything; held bytes then flow again.
 * SIGUSR1 drops every link, SIGUSR2 heals (both ignore FILE until it changes again).
 */
#include <dirent.h>
#include <linux/inet_diag.h>
#include <linux/netlink.h>
#include <linux/sock_diag.h>
#include <errno.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/listener.h>

#define FP_MAX_LINKS 16
#define MAX_RULES 64
#define NAME_LEN 64
#define HIGH_WATER (1 << 20)

struct rule {
    char from[NAME_LEN], to[NAME_LEN];
    int drop;   /* 1 drop (both ways), 0 stall from -> to */
};

struct link {
    char name[NAME_LEN];
    int listen_port, target_port;
    struct evconnlistener *lis;
};

struct conn {
    struct conn *next;
    struct link *link;
    char src[NAME_LEN];             /* who dialled */
    struct bufferevent *down;       /* the dialler's side */
    struct bufferevent *up;         /* the target member's side */
    int up_connected;
};

static struct event_base *base;
static struct link links[FP_MAX_LINKS];
static int nlinks;
static struct rule rules[MAX_RULES];
static int nrules;
static int all_dropped;             /* SIGUSR1 */
static struct conn *conns;
static const char *ctl_path;
static char ack_path[4096];
static struct timespec ctl_mtime;
static off_t ctl_size = -1;
static FILE *logfp;

static void logmsg(const char *fmt, ...)
{
    va_list ap;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    fprintf(logfp, "faultproxy %ld.%03ld: ", (long)ts.tv_sec, ts.tv_nsec / 1000000);
    va_start(ap, fmt);
    vfprintf(logfp, fmt, ap);
    va_end(ap);
    fputc('\n', logfp);
    fflush(logfp);
}

/* ---- who dialled: socket inode -> process -> --name ---------------------------------- */

/* The inode of the loopback TCP socket 127.0.0.1:sport -> 127.0.0.1:dport, asked of the
 * kernel by its exact address (sock_diag): one lookup, where /proc/net/tcp lists every
 * socket of the machine, thousands while a partitioned member redials many times a second. */
static unsigned long socket_inode_diag(int sport, int dport)
{
    int fd = socket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC, NETLINK_SOCK_DIAG);
    if (fd < 0)
        return 0;
    struct {
        struct nlmsghdr nlh;
        struct inet_diag_req_v2 r;
    } req;
    memset(&req, 0, sizeof(req));
    req.nlh.nlmsg_len = sizeof(req);
    req.nlh.nlmsg_type = SOCK_DIAG_BY_FAMILY;
    req.nlh.nlmsg_flags = NLM_F_REQUEST;
    req.r.sdiag_family = AF_INET;
    req.r.sdiag_protocol = IPPROTO_TCP;
    req.r.idiag_states = ~0U;
    req.r.id.idiag_sport = htons((uint16_t)sport);
    req.r.id.idiag_dport = htons((uint16_t)dport);
    req.r.id.idiag_src[0] = htonl(INADDR_LOOPBACK);
    req.r.id.idiag_dst[0] = htonl(INADDR_LOOPBACK);
    req.r.id.idiag_cookie[0] = INET_DIAG_NOCOOKIE;
    req.r.id.idiag_cookie[1] = INET_DIAG_NOCOOKIE;
    struct sockaddr_nl kernel = {.nl_family = AF_NETLINK};
    unsigned long inode = 0;
    if (sendto(fd, &req, sizeof(req), 0, (struct sockaddr *)&kernel, sizeof(kernel)) < 0)
        goto out;
    struct timeval tv = {1, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    long buf[2048];
    ssize_t n = recv(fd, buf, sizeof(buf), 0);
    for (struct nlmsghdr *h = (struct nlmsghdr *)buf; n > 0 && NLMSG_OK(h, (size_t)n);
         h = NLMSG_NEXT(h, n)) {
        if (h->nlmsg_type == NLMSG_DONE || h->nlmsg_type == NLMSG_ERROR)
            break;
        if (h->nlmsg_type == SOCK_DIAG_BY_FAMILY) {
            struct inet_diag_msg *m = NLMSG_DATA(h);
            inode = m->idiag_inode;
            break;
        }
    }
out:
    close(fd);
    return inode;
}

static unsigned long socket_inode(int sport, int dport)
{
    unsigned long inode = socket_inode_diag(sport, dport);
    if (inode)
        return inode;
    FILE *f = fopen("/proc/net/tcp", "r");
    char line[512];
    unsigned long found = 0;
    if (!f)
        return 0;
    while (!found && fgets(line, sizeof(line), f)) {
        unsigned la, lp, ra, rp, st;
        unsigned long inode;
        if (sscanf(line, " %*d: %x:%x %x:%x %x %*s %*s %*s %*s %*s %lu", &la, &lp, &ra, &rp, &st,
                   &inode) == 6 &&
            (int)lp == sport && (int)rp == dport)
            found = inode;
    }
    fclose(f);
    return found;
}

static int name_of_pid(const char *pid, char *out, size_t outlen)
{
    char path[300], buf[8192];
    snprintf(path, sizeof(path), "/proc/%s/cmdline", pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = '\0';
    for (size_t i = 0; i < n; i += strlen(buf + i) + 1) {
        const char *a = buf + i;
        if (strncmp(a, "--name=", 7) == 0 || strncmp(a, "-name=", 6) == 0) {
            snprintf(out, outlen, "%s", strchr(a, '=') + 1);
            return 0;
        }
        if ((strcmp(a, "--name") == 0 || strcmp(a, "-name") == 0) && i + strlen(a) + 1 < n) {
            snprintf(out, outlen, "%s", a + strlen(a) + 1);
            return 0;
        }
    }
    return -1;
}

/* Does process pid hold the socket named want ("socket:[inode]")? */
static int pid_has_socket(const char *pid, const char *want)
{
    char fdpath[300];
    snprintf(fdpath, sizeof(fdpath), "/proc/%s/fd", pid);
    DIR *fds = opendir(fdpath);
    if (!fds)
        return 0;
    struct dirent *fd;
    int found = 0;
    while (!found && (fd = readdir(fds))) {
        char lpath[600], target[128];
        snprintf(lpath, sizeof(lpath), "%s/%s", fdpath, fd->d_name);
        ssize_t len = readlink(lpath, target, sizeof(target) - 1);
        if (len <= 0)
            continue;
        target[len] = '\0';
        found = strcmp(target, want) == 0;
    }
    closedir(fds);
    return found;
}

/* Members seen dialling before: checked first, so that a partitioned member redialling
 * many times a second costs a few directory reads, not a scan of every process. */
#define PID_CACHE 32
static struct { char pid[300]; char name[NAME_LEN]; } pid_cache[PID_CACHE];
static int pid_cache_next;

static void who_dialled(int sport, int dport, char *out, size_t outlen)
{
    snprintf(out, outlen, "?");
    unsigned long inode = socket_inode(sport, dport);
    if (!inode)
        return;
    char want[64];
    snprintf(want, sizeof(want), "socket:[%lu]", inode);
    for (int i = 0; i < PID_CACHE; i++) {
        if (pid_cache[i].pid[0] && pid_has_socket(pid_cache[i].pid, want)) {
            /* The pid may have been reused by another program: read the name again. */
            if (name_of_pid(pid_cache[i].pid, out, outlen) < 0)
                snprintf(out, outlen, "?");
            return;
        }
    }
    DIR *proc = opendir("/proc");
    if (!proc)
        return;
    struct dirent *p;
    while ((p = readdir(proc))) {
        if (p->d_name[0] < '0' || p->d_name[0] > '9' || atoi(p->d_name) == getpid())
            continue;
        if (!pid_has_socket(p->d_name, want))
            continue;
        if (name_of_pid(p->d_name, out, outlen) == 0) {
            snprintf(pid_cache[pid_cache_next].pid, sizeof(pid_cache[0].pid), "%s", p->d_name);
            snprintf(pid_cache[pid_cache_next].name, NAME_LEN, "%s", out);
            pid_cache_next = (pid_cache_next + 1) % PID_CACHE;
        }
        break;
    }
    closedir(proc);
}

/* ---- rules ----------------------------------------------------------------------------- */

static int name_match(const char *pat, const char *name)
{
    return strcmp(pat, "*") == 0 || strcmp(pat, name) == 0;
}

/* Is there a rule that drops the link between a and b? */
static int is_dropped(const char *a, const char *b)
{
    if (all_dropped)
        return 1;
    for (int i = 0; i < nrules; i++)
        if (rules[i].drop && ((name_match(rules[i].from, a) && name_match(rules[i].to, b)) ||
                              (name_match(rules[i].from, b) && name_match(rules[i].to, a))) &&
            strcmp(a, b) != 0)
            return 1;
    return 0;
}

/* Are bytes from a to b held? */
static int is_stalled(const char *from, const char *to)
{
    for (int i = 0; i < nrules; i++)
        if (!rules[i].drop && name_match(rules[i].from, from) && name_match(rules[i].to, to) &&
            strcmp(from, to) != 0)
            return 1;
    return 0;
}

/* ---- connections ----------------------------------------------------------------------- */

static void conn_free(struct conn *c)
{
    for (struct conn **pp = &conns; *pp; pp = &(*pp)->next)
        if (*pp == c) {
            *pp = c->next;
            break;
        }
    if (c->down)
        bufferevent_free(c->down);
    if (c->up)
        bufferevent_free(c->up);
    free(c);
}

/* Moves what can be moved in both directions, honouring stalls and back-pressure. */
static void conn_pump(struct conn *c)
{
    const char *dst = c->link->name;
    if (!c->up_connected) {
        bufferevent_disable(c->down, EV_READ);
        return;
    }
    /* dialler -> target */
    int stall_fwd = is_stalled(c->src, dst);
    struct evbuffer *din = bufferevent_get_input(c->down), *uout = bufferevent_get_output(c->up);
    if (!stall_fwd && evbuffer_get_length(din))
        evbuffer_add_buffer(uout, din);
    if (stall_fwd || evbuffer_get_length(uout) > HIGH_WATER)
        bufferevent_disable(c->down, EV_READ);
    else
        bufferevent_enable(c->down, EV_READ);
    /* target -> dialler */
    int stall_back = is_stalled(dst, c->src);
    struct evbuffer *uin = bufferevent_get_input(c->up), *dout = bufferevent_get_output(c->down);
    if (!stall_back && evbuffer_get_length(uin))
        evbuffer_add_buffer(dout, uin);
    if (stall_back || evbuffer_get_length(dout) > HIGH_WATER)
        bufferevent_disable(c->up, EV_READ);
    else
        bufferevent_enable(c->up, EV_READ);
}

static void on_read(struct bufferevent *bev, void *arg)
{
    (void)bev;
    conn_pump(arg);
}

static void on_write(struct bufferevent *bev, void *arg)
{
    (void)bev;
    conn_pump(arg);
}

static void on_event(struct bufferevent *bev, short what, void *arg)
{
    struct conn *c = arg;
    if (bev == c->up && (what & BEV_EVENT_CONNECTED)) {
        c->up_connected = 1;
        conn_pump(c);
        return;
    }
    if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR)) {
        /* One side ended: flush nothing more, close both (peers reconnect). */
        conn_free(c);
    }
}

static void on_accept(struct evconnlistener *lis, evutil_socket_t fd, struct sockaddr *sa, int salen,
                      void *arg)
{
    (void)lis;
    (void)salen;
    struct link *l = arg;
    struct sockaddr_in *sin = (struct sockaddr_in *)sa;
    char src[NAME_LEN];
    who_dialled(ntohs(sin->sin_port), l->listen_port, src, sizeof(src));
    if (is_dropped(src, l->name)) {
        logmsg("link %s: refused a connection from %s (dropped)", l->name, src);
        evutil_closesocket(fd);
        return;
    }
    struct conn *c = calloc(1, sizeof(*c));
    if (!c) {
        evutil_closesocket(fd);
        return;
    }
    c->link = l;
    snprintf(c->src, sizeof(c->src), "%s", src);
    c->down = bufferevent_socket_new(base, fd, BEV_OPT_CLOSE_ON_FREE);
    c->up = bufferevent_socket_new(base, -1, BEV_OPT_CLOSE_ON_FREE);
    c->next = conns;
    conns = c;
    if (!c->down || !c->up) {
        if (!c->down)
            evutil_closesocket(fd);
        conn_free(c);
        return;
    }
    bufferevent_setcb(c->down, on_read, on_write, on_event, c);
    bufferevent_setcb(c->up, on_read, on_write, on_event, c);
    struct sockaddr_in to = {.sin_family = AF_INET, .sin_port = htons((uint16_t)l->target_port)};
    to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    bufferevent_disable(c->down, EV_READ);
    if (bufferevent_socket_connect(c->up, (struct sockaddr *)&to, sizeof(to)) < 0) {
        logmsg("link %s: connect to port %d failed", l->name, l->target_port);
        conn_free(c);
        return;
    }
    logmsg("link %s: connection from %s", l->name, src);
}

/* After the rules change: close dropped connections, resume or hold the others. */
static void apply_rules(void)
{
    struct conn *c = conns, *next;
    for (; c; c = next) {
        next = c->next;
        if (is_dropped(c->src, c->link->name)) {
            logmsg("link %s: closing the connection from %s", c->link->name, c->src);
            conn_free(c);
        } else {
            conn_pump(c);
        }
    }
}

static void load_ctl(void)
{
    FILE *f = fopen(ctl_path, "r");
    char line[256];
    long gen = -1;
    nrules = 0;
    all_dropped = 0;
    if (f) {
        while (fgets(line, sizeof(line), f)) {
            char verb[32], a[NAME_LEN], b[NAME_LEN];
            int n = sscanf(line, "%31s %63s %63s", verb, a, b);
            if (n >= 2 && strcmp(verb, "gen") == 0) {
                gen = atol(a);
            } else if (n == 3 && (strcmp(verb, "drop") == 0 || strcmp(verb, "stall") == 0) &&
                       nrules < MAX_RULES) {
                struct rule *r = &rules[nrules++];
                snprintf(r->from, sizeof(r->from), "%s", a);
                snprintf(r->to, sizeof(r->to), "%s", b);
                r->drop = verb[0] == 'd';
            } else if (n > 0 && verb[0] != '#') {
                logmsg("control: ignoring line: %s", line);
            }
        }
        fclose(f);
    }
    logmsg("control: generation %ld, %d rules", gen, nrules);
    for (int i = 0; i < nrules; i++)
        logmsg("  %s %s %s", rules[i].drop ? "drop" : "stall", rules[i].from, rules[i].to);
    apply_rules();
    if (gen >= 0) {
        char tmp[4200];
        snprintf(tmp, sizeof(tmp), "%s.tmp", ack_path);
        FILE *a = fopen(tmp, "w");
        if (a) {
            fprintf(a, "%ld\n", gen);
            fclose(a);
            rename(tmp, ack_path);
        }
    }
}

static void on_poll(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    (void)arg;
    struct stat st;
    if (stat(ctl_path, &st) < 0) {
        if (ctl_size != -1) {
            ctl_size = -1;
            load_ctl();
        }
        return;
    }
    if (st.st_mtim.tv_sec != ctl_mtime.tv_sec || st.st_mtim.tv_nsec != ctl_mtime.tv_nsec ||
        st.st_size != ctl_size) {
        ctl_mtime = st.st_mtim;
        ctl_size = st.st_size;
        load_ctl();
    }
}

static void on_signal(evutil_socket_t sig, short what, void *arg)
{
    (void)what;
    (void)arg;
    if (sig == SIGHUP) {
        load_ctl();
    } else if (sig == SIGUSR1) {
        logmsg("signal: drop every link");
        all_dropped = 1;
        nrules = 0;
        apply_rules();
    } else if (sig == SIGUSR2) {
        logmsg("signal: heal every link");
        all_dropped = 0;
        nrules = 0;
        apply_rules();
    } else {
        event_base_loopbreak(base);
    }
}

static void usage(void)
{
    fprintf(stderr, "usage: faultproxy --ctl FILE --link NAME:LISTEN_PORT:TARGET_PORT ... [--log FILE]\n");
    exit(2);
}

int main(int argc, char **argv)
{
    logfp = stderr;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--ctl") == 0 && i + 1 < argc) {
            ctl_path = argv[++i];
        } else if (strcmp(argv[i], "--log") == 0 && i + 1 < argc) {
            FILE *f = fopen(argv[++i], "a");
            if (!f) {
                fprintf(stderr, "faultproxy: %s: %s\n", argv[i], strerror(errno));
                return 2;
            }
            logfp = f;
        } else if (strcmp(argv[i], "--link") == 0 && i + 1 < argc && nlinks < FP_MAX_LINKS) {
            struct link *l = &links[nlinks];
            char name[NAME_LEN];
            if (sscanf(argv[++i], "%63[^:]:%d:%d", name, &l->listen_port, &l->target_port) != 3 ||
                l->listen_port <= 0 || l->listen_port > 65535 || l->target_port <= 0 ||
                l->target_port > 65535) {
                fprintf(stderr, "faultproxy: bad --link '%s' (want NAME:LISTEN_PORT:TARGET_PORT)\n", argv[i]);
                return 2;
            }
            snprintf(l->name, sizeof(l->name), "%s", name);
            nlinks++;
        } else {
            usage();
        }
    }
    if (!ctl_path || nlinks == 0)
        usage();
    snprintf(ack_path, sizeof(ack_path), "%s.ack", ctl_path);
    signal(SIGPIPE, SIG_IGN);
    base = event_base_new();
    if (!base)
        return 1;
    for (int i = 0; i < nlinks; i++) {
        struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons((uint16_t)links[i].listen_port)};
        sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        links[i].lis = evconnlistener_new_bind(base, on_accept, &links[i],
                                               LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE, 64,
                                               (struct sockaddr *)&sin, sizeof(sin));
        if (!links[i].lis) {
            fprintf(stderr, "faultproxy: listen on 127.0.0.1:%d: %s\n", links[i].listen_port,
                    strerror(errno));
            return 1;
        }
    }
    struct event *poll = event_new(base, -1, EV_PERSIST, on_poll, NULL);
    struct timeval tv = {0, 20000};
    event_add(poll, &tv);
    int sigs[] = {SIGHUP, SIGUSR1, SIGUSR2, SIGTERM, SIGINT};
    struct event *sev[5];
    for (int i = 0; i < 5; i++) {
        sev[i] = evsignal_new(base, sigs[i], on_signal, NULL);
        event_add(sev[i], NULL);
    }
    on_poll(-1, 0, NULL);
    logmsg("ready: %d links", nlinks);
    event_base_dispatch(base);
    while (conns)
        conn_free(conns);
    for (int i = 0; i < nlinks; i++)
        evconnlistener_free(links[i].lis);
    for (int i = 0; i < 5; i++)
        event_free(sev[i]);
    event_free(poll);
    event_base_free(base);
    return 0;
}
