/* test_wire — plinth's peer messages: a Raft message survives encoding and decoding field
 * for field, and the replicated request envelope the node builds from a client's bytes
 * decodes as the plinthpb.Request kv/ applies. */
#include "tests/lib/testlib.h"

#include <stdlib.h>
#include <string.h>

#include "internal.pb-c.h"
#include "node/node_int.h" /* node_envelope */
#include "node/peerwire.h"
#include "raftpb.pb-c.h"

static void raft_message_round_trip(void **state)
{
    struct raft_entry ents[3] = {
        {.term = 7, .index = 41, .type = RAFT_ENTRY_NORMAL, .data = "abc", .len = 3},
        {.term = 7, .index = 42, .type = RAFT_ENTRY_CONF_CHANGE, .data = "\x01\x02", .len = 2},
        {.term = 8, .index = 43, .type = RAFT_ENTRY_NOOP, .data = NULL, .len = 0},
    };
    struct raft_msg m = {
        .type = RAFT_MSG_APPEND, .from = 0x1111222233334444ULL, .to = 0xaaaabbbbccccddddULL,
        .term = 8, .log_term = 7, .index = 40, .commit = 39, .reject = true, .reject_hint = 12,
        .flags = RAFT_MSG_F_LEADER_LOST, .read_seq = 99, .entries = ents, .n_entries = 3,
        .context = {"ctx", 3},
    };
    Plinthraftpb__PeerFrame *f;
    struct peerwire_raft pr;
    uint8_t *buf;
    size_t len, i;
    (void)state;

    assert_int_equal(peerwire_encode_raft(&m, &buf, &len), 0);
    f = plinthraftpb__peer_frame__unpack(NULL, len, buf);
    free(buf);
    assert_non_null(f);
    assert_int_equal(f->body_case, PLINTHRAFTPB__PEER_FRAME__BODY_RAFT);
    assert_int_equal(peerwire_msg_to_raft(f->raft, &pr), 0);
    assert_int_equal(pr.msg.type, m.type);
    assert_true(pr.msg.from == m.from && pr.msg.to == m.to);
    assert_true(pr.msg.term == 8 && pr.msg.log_term == 7 && pr.msg.index == 40 && pr.msg.commit == 39);
    assert_true(pr.msg.reject && pr.msg.reject_hint == 12 && pr.msg.read_seq == 99);
    assert_int_equal(pr.msg.flags, RAFT_MSG_F_LEADER_LOST);
    assert_int_equal(pr.msg.n_entries, 3);
    for (i = 0; i < 3; i++) {
        assert_true(pr.msg.entries[i].term == ents[i].term);
        assert_true(pr.msg.entries[i].index == ents[i].index);
        assert_int_equal(pr.msg.entries[i].type, ents[i].type);
        assert_int_equal(pr.msg.entries[i].len, ents[i].len);
        if (ents[i].len)
            assert_memory_equal(pr.msg.entries[i].data, ents[i].data, ents[i].len);
    }
    assert_int_equal(pr.msg.context.len, 3);
    assert_memory_equal(pr.msg.context.base, "ctx", 3);
    assert_null(pr.msg.snapshot);
    peerwire_raft_release(&pr);
    plinthraftpb__peer_frame__free_unpacked(f, NULL);
}

static void snapshot_message_round_trip(void **state)
{
    struct raft_snapshot_meta meta = {.index = 500, .term = 4};
    struct raft_msg m = {.type = RAFT_MSG_SNAPSHOT, .from = 1, .to = 2, .term = 4, .snapshot = &meta};
    Plinthraftpb__PeerFrame *f;
    struct peerwire_raft pr;
    uint8_t *buf;
    size_t len;
    (void)state;
    meta.conf.n_voters = 2;
    meta.conf.voters[0] = 1;
    meta.conf.voters[1] = 2;
    meta.conf.n_learners = 1;
    meta.conf.learners[0] = 3;
    assert_int_equal(peerwire_encode_raft(&m, &buf, &len), 0);
    f = plinthraftpb__peer_frame__unpack(NULL, len, buf);
    free(buf);
    assert_non_null(f);
    assert_int_equal(peerwire_msg_to_raft(f->raft, &pr), 0);
    assert_non_null(pr.msg.snapshot);
    assert_true(pr.msg.snapshot->index == 500 && pr.msg.snapshot->term == 4);
    assert_int_equal(pr.msg.snapshot->conf.n_voters, 2);
    assert_true(pr.msg.snapshot->conf.voters[1] == 2);
    assert_int_equal(pr.msg.snapshot->conf.n_learners, 1);
    assert_true(pr.msg.snapshot->conf.learners[0] == 3);
    peerwire_raft_release(&pr);
    /* a snapshot message without its metadata is refused */
    {
        Plinthraftpb__SnapshotMeta *keep = f->raft->snapshot;
        f->raft->snapshot = NULL;
        assert_int_equal(peerwire_msg_to_raft(f->raft, &pr), -1);
        f->raft->snapshot = keep;
    }
    plinthraftpb__peer_frame__free_unpacked(f, NULL);
}

static void envelope_is_a_request(void **state)
{
    Etcdserverpb__PutRequest put = ETCDSERVERPB__PUT_REQUEST__INIT;
    Plinthpb__Request *req;
    uint8_t raw[64], *env;
    size_t rlen, elen;
    (void)state;
    put.key = (ProtobufCBinaryData){3, (uint8_t *)"foo"};
    put.value = (ProtobufCBinaryData){3, (uint8_t *)"bar"};
    put.lease = 77;
    rlen = etcdserverpb__put_request__pack(&put, raw);
    env = node_envelope(0xfedcba9876543210ULL, 2, raw, rlen, &elen);
    assert_non_null(env);
    req = plinthpb__request__unpack(NULL, elen, env);
    assert_non_null(req);
    assert_true(req->id == 0xfedcba9876543210ULL);
    assert_int_equal(req->request_case, PLINTHPB__REQUEST__REQUEST_PUT);
    assert_int_equal(req->put->key.len, 3);
    assert_memory_equal(req->put->value.data, "bar", 3);
    assert_true(req->put->lease == 77);
    plinthpb__request__free_unpacked(req, NULL);
    free(env);
    /* an empty message (LeaseLeases-like) still makes a valid envelope */
    env = node_envelope(1, 7, NULL, 0, &elen);
    req = plinthpb__request__unpack(NULL, elen, env);
    assert_non_null(req);
    assert_int_equal(req->request_case, PLINTHPB__REQUEST__REQUEST_LEASE_REVOKE);
    plinthpb__request__free_unpacked(req, NULL);
    free(env);
}

/* The node's own requests decode as a plinthpb.Request with no field kv/ knows. */
static void node_request_is_unknown_to_kv(void **state)
{
    Plinthraftpb__NodeRequest r = PLINTHRAFTPB__NODE_REQUEST__INIT;
    Etcdserverpb__Member m = ETCDSERVERPB__MEMBER__INIT;
    Plinthpb__Request *req;
    uint8_t buf[128];
    size_t len;
    (void)state;
    m.id = 5;
    m.name = "m5";
    r.id = 42;
    r.publish = &m;
    len = plinthraftpb__node_request__pack(&r, buf);
    req = plinthpb__request__unpack(NULL, len, buf);
    assert_non_null(req);
    assert_true(req->id == 42);
    assert_int_equal(req->request_case, PLINTHPB__REQUEST__REQUEST__NOT_SET);
    plinthpb__request__free_unpacked(req, NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(raft_message_round_trip),
        cmocka_unit_test(snapshot_message_round_trip),
        cmocka_unit_test(envelope_is_a_request),
        cmocka_unit_test(node_request_is_unknown_to_kv),
    };
    return PLINTH_RUN_TESTS("node_wire", tests);
}
