/* daemon — what plinth-scheduler, plinth-controller and plinth-agent share: the common
 * flags (store endpoints, TLS files, identity, lease TTL), signals, and their entry points. */
#ifndef PLINTH_SCHED_DAEMON_H
#define PLINTH_SCHED_DAEMON_H

#include <stdbool.h>
#include <stdint.h>

#include "sched/election.h"
#include "sched/store.h"

/* Common flags. Strings point into argv or static storage (borrowed). */
struct sched_common {
    const char *endpoints;  /* --endpoints (default http://127.0.0.1:2379) */
    const char *cacert;     /* --cacert */
    const char *cert;       /* --cert */
    const char *key;        /* --key */
    const char *name;       /* --name / --id: identity in elections and logs */
    int lease_ttl;          /* --lease-ttl seconds (default SCHED_ELECTION_DEFAULT_TTL) */
    int timeout_ms;         /* --request-timeout ms (default 3000) */
    bool verbose;           /* -v */
};

/* Help text of the common flags, for --help. */
extern const char sched_common_help[];

/* Fills defaults. */
void sched_common_init(struct sched_common *c, const char *default_name);

/* Consumes a common flag at argv[*i] ("--endpoints=URL" or "--endpoints URL"), advancing
 * *i past its value. Returns 1 when consumed, 0 when not a common flag, -1 on a missing or
 * bad value (message on stderr). */
int sched_common_flag(struct sched_common *c, int argc, char **argv, int *i);

/* Opens the store with the common flags; prints the error and returns non-zero on failure. */
int sched_common_store(const struct sched_common *c, struct sched_store **out);

/* Installs SIGTERM/SIGINT handlers that set the stop flag, and ignores SIGPIPE. */
void sched_signals_install(void);
/* True once SIGTERM or SIGINT arrived. */
bool sched_stopping(void);

/* Log line on stderr prefixed with the program name and wall-clock time. */
void sched_log(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Program name used by sched_log. */
void sched_log_set_name(const char *name);

/* Entry points of the three programs (cmd/<prog>/main.c call these). Return the exit
 * status. */
int sched_scheduler_main(int argc, char **argv);
int sched_controller_main(int argc, char **argv);
int sched_agent_main(int argc, char **argv);

#endif
