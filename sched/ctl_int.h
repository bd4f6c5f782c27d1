/* ctl_int — private to the plinthctl workload verbs: parsed command line and helpers. */
#ifndef PLINTH_SCHED_CTL_INT_H
#define PLINTH_SCHED_CTL_INT_H

#include <stdbool.h>

#include <jansson.h>

#include "sched/objects.h"
#include "sched/store.h"

#define CTL_MAX_ARGS 64

struct ctl {
    struct sched_store *s;
    const char *endpoints, *cacert, *cert, *key;
    int timeout_ms;
    const char *ns;        /* -n / --namespace (default "default") */
    bool all_ns;           /* -A / --all-namespaces */
    const char *output;    /* -o: "", "json", "yaml", "wide", "name" */
    bool watch;            /* -w */
    const char *file;      /* -f */
    const char *selector;  /* -l k=v,... */
    const char *image;     /* run --image */
    int replicas;          /* --replicas (-1: not given) */
    int to_revision;       /* rollout undo --to-revision */
    const char *restart;   /* run --restart */
    const char *requests;  /* run --requests cpu=..,memory=.. */
    const char *labels;    /* run --labels */
    double wait_s;         /* rollout status --timeout, get -w --timeout */
    char **cmd;            /* run ... -- CMD ARGS (after "--") */
    int ncmd;
    char *args[CTL_MAX_ARGS]; /* positional arguments after the verb */
    int nargs;
};

/* "kind/name" or "kind name" from the positional args starting at *i. Returns 0 or
 * prints an error and returns 2. */
int ctl_kind_name(struct ctl *c, int *i, enum sched_kind *k, const char **name);

/* Verbs implemented in ctl_get.c. Return the exit code. */
int ctl_get(struct ctl *c);
int ctl_describe(struct ctl *c);
/* ctl_check.c: placement invariants (no double bind, no overcommit), -w to watch. */
int ctl_check(struct ctl *c);
/* Verbs implemented in ctl_rollout.c. */
int ctl_rollout(struct ctl *c);

/* The namespace to use for a namespaced kind. */
const char *ctl_ns(const struct ctl *c);

/* Prints an object as JSON or YAML per c->output. */
void ctl_print_obj(const struct ctl *c, const json_t *obj);

/* Read-modify-write with retries on conflict: fn edits a fresh copy of the object at key
 * and returns 0 to write it, 1 to leave it unchanged, or an exit code > 1 to stop. */
int ctl_update(struct ctl *c, const char *key, int (*fn)(json_t *obj, void *ud), void *ud);

#endif
