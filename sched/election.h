/* election — leader election on the store (etcd's recipe): each candidate holds a lease
 * and a key under the election prefix created in a transaction; the lowest create_revision
 * leads; the others watch their predecessor's key. The leader's writes are fenced on its
 * key, so a leader whose lease lapsed cannot write after its successor starts. */
#ifndef PLINTH_SCHED_ELECTION_H
#define PLINTH_SCHED_ELECTION_H

#include <stdbool.h>
#include <stdint.h>

#include "sched/store.h"

/* Default lease TTL of the election, in seconds (flag --lease-ttl of the daemons). A
 * crashed leader is replaced within about this long; a paused one stops acting when it
 * has not renewed for this long, and its writes fail from the moment its key is gone. */
#define SCHED_ELECTION_DEFAULT_TTL 5

struct sched_election;

struct sched_election_opts {
    const char *prefix;  /* "/plinth/election/scheduler/" (copied) */
    const char *id;      /* this candidate's identity, stored as the key's value (copied) */
    int ttl;             /* lease TTL in seconds; <= 0 means SCHED_ELECTION_DEFAULT_TTL */
    bool no_local_expiry; /* testing aid: believe we lead until the store refuses a write
                           * (ignore our own clock, a lapsed renewal and a missing key),
                           * so that only the store-side fence stops a deposed leader */
};

/* Makes a candidate on store s (borrowed; must outlive it). Nothing is written until the
 * first step. Returns 0 or SCHED_ENOMEM / SCHED_EINVAL. */
int sched_election_new(struct sched_store *s, const struct sched_election_opts *o,
                       struct sched_election **out);

/* Drives the election without blocking longer than one store request: grants the lease
 * and creates the key when needed, renews the lease every ttl/3, checks whether the
 * predecessor's key is gone, and notices a lost lease. Returns true when this candidate
 * is the leader right now: its key is the oldest AND its lease was last renewed less than
 * ttl ago by its own clock (so a process resumed after a long pause stops acting before
 * it learns anything from the store). Call at least every ttl/3 seconds. */
bool sched_election_step(struct sched_election *e);

/* The fence for writes while leading, or NULL when not the leader. Borrowed; valid until
 * the next step. */
const struct sched_fence *sched_election_fence(const struct sched_election *e);

/* Tells the candidate that the store refused a fenced write (SCHED_ENOTLEADER): it steps
 * down at once and campaigns again on the next step. */
void sched_election_lost(struct sched_election *e);

/* Identity of the current leader as last observed ("" when unknown). Borrowed. */
const char *sched_election_leader(const struct sched_election *e);

/* How many times this candidate has become leader. */
int sched_election_terms(const struct sched_election *e);

/* Steps down at once: revokes the lease, which deletes the key, so the next candidate
 * takes over without waiting for the TTL. Returns 0 or SCHED_ESTORE. */
int sched_election_resign(struct sched_election *e);

void sched_election_free(struct sched_election *e);

#endif
