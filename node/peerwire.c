/* peerwire — struct raft_msg <-> plinthraftpb.Message, and PeerFrame packing. */
#include "node/peerwire.h"

#include <stdlib.h>
#include <string.h>

static void conf_to_pb(const struct raft_conf_state *c, Plinthraftpb__ConfState *pc)
{
    plinthraftpb__conf_state__init(pc);
    pc->n_voters = c->n_voters;
    pc->voters = (uint64_t *)c->voters;
    pc->n_learners = c->n_learners;
    pc->learners = (uint64_t *)c->learners;
}

/* Scratch storage kept behind pm->entries: one block holding the entry structs, the
 * entry pointer array, and the snapshot meta + conf. */
struct scratch {
    Plinthraftpb__SnapshotMeta snap;
    Plinthraftpb__ConfState conf;
    Plinthraftpb__Entry **ptrs;
    Plinthraftpb__Entry ents[];
};

int peerwire_msg_from_raft(const struct raft_msg *m, Plinthraftpb__Message *pm, void **scratch)
{
    struct scratch *s;
    size_t i;

    plinthraftpb__message__init(pm);
    s = calloc(1, sizeof(*s) + m->n_entries * (sizeof(Plinthraftpb__Entry) + sizeof(void *)));
    if (!s)
        return -1;
    s->ptrs = (Plinthraftpb__Entry **)(s->ents + m->n_entries);
    pm->type = m->type;
    pm->from = m->from;
    pm->to = m->to;
    pm->term = m->term;
    pm->log_term = m->log_term;
    pm->index = m->index;
    pm->commit = m->commit;
    pm->reject = m->reject;
    pm->reject_hint = m->reject_hint;
    pm->flags = m->flags;
    pm->read_seq = m->read_seq;
    for (i = 0; i < m->n_entries; i++) {
        Plinthraftpb__Entry *e = &s->ents[i];
        plinthraftpb__entry__init(e);
        e->term = m->entries[i].term;
        e->index = m->entries[i].index;
        e->type = m->entries[i].type;
        e->data.data = (uint8_t *)m->entries[i].data;
        e->data.len = m->entries[i].len;
        s->ptrs[i] = e;
    }
    pm->n_entries = m->n_entries;
    pm->entries = s->ptrs;
    pm->context.data = (uint8_t *)m->context.base;
    pm->context.len = m->context.len;
    if (m->snapshot) {
        plinthraftpb__snapshot_meta__init(&s->snap);
        s->snap.index = m->snapshot->index;
        s->snap.term = m->snapshot->term;
        conf_to_pb(&m->snapshot->conf, &s->conf);
        s->snap.conf = &s->conf;
        pm->snapshot = &s->snap;
    }
    *scratch = s;
    return 0;
}

int peerwire_pack(const Plinthraftpb__PeerFrame *f, uint8_t **out, size_t *len)
{
    size_t n = plinthraftpb__peer_frame__get_packed_size(f);
    uint8_t *b = malloc(n ? n : 1);
    if (!b)
        return -1;
    *len = plinthraftpb__peer_frame__pack(f, b);
    *out = b;
    return 0;
}

int peerwire_encode_raft(const struct raft_msg *m, uint8_t **out, size_t *len)
{
    Plinthraftpb__PeerFrame f = PLINTHRAFTPB__PEER_FRAME__INIT;
    Plinthraftpb__Message pm;
    void *scratch;
    int rc;
    if (peerwire_msg_from_raft(m, &pm, &scratch) < 0)
        return -1;
    f.body_case = PLINTHRAFTPB__PEER_FRAME__BODY_RAFT;
    f.raft = &pm;
    rc = peerwire_pack(&f, out, len);
    free(scratch);
    return rc;
}

int peerwire_msg_to_raft(const Plinthraftpb__Message *pm, struct peerwire_raft *pr)
{
    struct raft_msg *m = &pr->msg;
    size_t i;

    memset(pr, 0, sizeof(*pr));
    m->type = (enum raft_msg_type)pm->type;
    m->from = pm->from;
    m->to = pm->to;
    m->term = pm->term;
    m->log_term = pm->log_term;
    m->index = pm->index;
    m->commit = pm->commit;
    m->reject = pm->reject;
    m->reject_hint = pm->reject_hint;
    m->flags = pm->flags;
    m->read_seq = pm->read_seq;
    if (pm->n_entries) {
        pr->entries = calloc(pm->n_entries, sizeof(struct raft_entry));
        if (!pr->entries)
            return -1;
        for (i = 0; i < pm->n_entries; i++) {
            const Plinthraftpb__Entry *e = pm->entries[i];
            pr->entries[i].term = e->term;
            pr->entries[i].index = e->index;
            pr->entries[i].type = (enum raft_entry_type)e->type;
            pr->entries[i].data = e->data.data;
            pr->entries[i].len = e->data.len;
        }
        m->entries = pr->entries;
        m->n_entries = pm->n_entries;
    }
    m->context.base = pm->context.data;
    m->context.len = pm->context.len;
    if (pm->snapshot) {
        const Plinthraftpb__ConfState *c = pm->snapshot->conf;
        pr->snap.index = pm->snapshot->index;
        pr->snap.term = pm->snapshot->term;
        if (c) {
            if (c->n_voters > RAFT_MAX_MEMBERS || c->n_learners > RAFT_MAX_MEMBERS) {
                peerwire_raft_release(pr);
                return -1;
            }
            pr->snap.conf.n_voters = c->n_voters;
            if (c->n_voters)
                memcpy(pr->snap.conf.voters, c->voters, c->n_voters * sizeof(uint64_t));
            pr->snap.conf.n_learners = c->n_learners;
            if (c->n_learners)
                memcpy(pr->snap.conf.learners, c->learners, c->n_learners * sizeof(uint64_t));
        }
        m->snapshot = &pr->snap;
    } else if (m->type == RAFT_MSG_SNAPSHOT) {
        return -1;
    }
    return 0;
}

void peerwire_raft_release(struct peerwire_raft *pr)
{
    free(pr->entries);
    pr->entries = NULL;
}
