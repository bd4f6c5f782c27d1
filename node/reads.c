/* reads — linearizable reads (dissertation §6.4 ReadIndex): the reads gathered in a turn
 * share one ReadIndex round and are served once the applied index reaches it. */
#include "node/node_int.h"

#include <stdlib.h>
#include <string.h>

/* ---- reads -------------------------------------------------------------------------- */

static void read_close_cb(struct net_grpc_call *call, void *user, int err)
{
    struct read_req *r = user;
    (void)call;
    (void)err;
    if (r)
        r->call = NULL;
}

void node_read(struct node *n, struct net_grpc_call *call, read_serve_fn serve, void *arg)
{
    struct read_req *r = calloc(1, sizeof(*r));
    if (!r) {
        serve(n, &(struct read_req){.call = call, .arg = arg}, ST_NO_MEMORY);
        return;
    }
    r->call = call;
    r->serve = serve;
    r->arg = arg;
    r->deadline_ms = node_now_ms() + 5000 + 2 * (int64_t)n->cfg.election_ms;
    if (call) {
        net_grpc_call_set_user(call, r);
        net_grpc_call_set_close_cb(call, read_close_cb);
    }
    *n->reads_pending_tail = r;
    n->reads_pending_tail = &r->next;
    n->n_reads_pending++;
    node_kick(n);
}

static void read_finish(struct node *n, struct read_req *r, struct node_status st)
{
    if (r->call) {
        net_grpc_call_set_close_cb(r->call, NULL);
        net_grpc_call_set_user(r->call, NULL);
    }
    r->serve(n, r, st);
    free(r);
}

static void reads_fail(struct node *n, struct read_req *list, struct node_status st)
{
    while (list) {
        struct read_req *next = list->next;
        read_finish(n, list, st);
        list = next;
    }
}

/* One ReadIndex round for every read gathered since the last one (etcd#7109: batch). */
void node_issue_reads(struct node *n)
{
    struct read_round *rr, **tail;
    uint8_t ctx[8];
    int rc, i;

    if (!n->reads_pending || node_leader_pending(n))
        return;
    if (raft_leader(n->raft) == RAFT_NONE) {
        struct read_req *list = n->reads_pending;
        n->reads_pending = NULL;
        n->reads_pending_tail = &n->reads_pending;
        n->n_reads_pending = 0;
        reads_fail(n, list, ST_NO_LEADER);
        return;
    }
    rr = calloc(1, sizeof(*rr));
    if (!rr)
        return;
    rr->seq = ++n->read_seq;
    for (i = 0; i < 8; i++)
        ctx[i] = (uint8_t)(rr->seq >> (56 - 8 * i));
    rc = raft_read_index(n->raft, (struct raft_buf){ctx, 8});
    if (rc) {
        struct read_req *list = n->reads_pending;
        free(rr);
        n->reads_pending = NULL;
        n->reads_pending_tail = &n->reads_pending;
        n->n_reads_pending = 0;
        reads_fail(n, list, rc == RAFT_ENOLEADER ? ST_NO_LEADER : ST_NO_MEMORY);
        return;
    }
    n->metrics.read_indexes++;
    rr->issued_ms = node_now_ms();
    rr->reads = n->reads_pending;
    n->reads_pending = NULL;
    n->reads_pending_tail = &n->reads_pending;
    n->n_reads_pending = 0;
    for (tail = &n->rounds; *tail; tail = &(*tail)->next)
        ;
    *tail = rr;
}

void node_reads_answered(struct node *n, const struct raft_read_state *rs, size_t count)
{
    size_t i;
    for (i = 0; i < count; i++) {
        struct read_round *rr;
        uint64_t seq = 0;
        int k;
        if (rs[i].ctx.len != 8)
            continue;
        for (k = 0; k < 8; k++)
            seq = seq << 8 | ((const uint8_t *)rs[i].ctx.base)[k];
        for (rr = n->rounds; rr; rr = rr->next)
            if (rr->seq == seq && rr->index == 0)
                rr->index = rs[i].index ? rs[i].index : 1;
    }
}

/* Serves every round whose index is applied. */
void node_serve_reads(struct node *n)
{
    struct read_round **pp = &n->rounds;
    uint64_t applied = kv_applied_index(n->kv);
    while (*pp) {
        struct read_round *rr = *pp;
        if (rr->index && rr->index <= applied) {
            *pp = rr->next;
            reads_fail(n, rr->reads, ST_OK);
            free(rr);
        } else {
            pp = &rr->next;
        }
    }
}

/* Reads time out; lost rounds (a leader change) are issued again. */
void node_reads_tick(struct node *n, int64_t now)
{
    struct read_round **pp = &n->rounds;
    while (*pp) {
        struct read_round *rr = *pp;
        struct read_req **rp = &rr->reads;
        while (*rp) { /* expired reads */
            struct read_req *r = *rp;
            if (r->deadline_ms <= now || !r->call) {
                *rp = r->next;
                read_finish(n, r, r->call ? ST_TIMEOUT : ST_STOPPED);
            } else {
                rp = &r->next;
            }
        }
        if (!rr->reads) {
            *pp = rr->next;
            free(rr);
            continue;
        }
        if (rr->index == 0 && now - rr->issued_ms > (int64_t)n->cfg.election_ms) {
            /* the answer is lost: put its reads back in front of the pending ones */
            struct read_req *last = rr->reads;
            while (last->next)
                last = last->next;
            last->next = n->reads_pending;
            if (!n->reads_pending)
                n->reads_pending_tail = &last->next;
            n->reads_pending = rr->reads;
            *pp = rr->next;
            free(rr);
            continue;
        }
        pp = &rr->next;
    }
}
