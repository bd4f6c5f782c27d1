/* errors — the gRPC status codes and exact texts of etcd's errors that the server layer
 * answers itself (etcd api/v3rpc/rpctypes/error.go). Storage errors come from kv/. */
#ifndef PLINTH_NODE_ERRORS_H
#define PLINTH_NODE_ERRORS_H

/* gRPC status codes (same values as net/grpc_client.h's enum). */
enum {
    GRPC_OK = 0, GRPC_CANCELLED = 1, GRPC_UNKNOWN = 2, GRPC_INVALID_ARGUMENT = 3,
    GRPC_DEADLINE_EXCEEDED = 4, GRPC_NOT_FOUND = 5, GRPC_ALREADY_EXISTS = 6,
    GRPC_PERMISSION_DENIED = 7, GRPC_RESOURCE_EXHAUSTED = 8, GRPC_FAILED_PRECONDITION = 9,
    GRPC_ABORTED = 10, GRPC_OUT_OF_RANGE = 11, GRPC_UNIMPLEMENTED = 12, GRPC_INTERNAL = 13,
    GRPC_UNAVAILABLE = 14, GRPC_DATA_LOSS = 15, GRPC_UNAUTHENTICATED = 16,
};

/* A status the server answers: code plus a static message. */
struct node_status {
    int code;
    const char *msg;
};

#define NODE_ST(c, m) ((struct node_status){(c), (m)})
#define ST_OK NODE_ST(GRPC_OK, "")
#define ST_EMPTY_KEY NODE_ST(GRPC_INVALID_ARGUMENT, "etcdserver: key is not provided")
#define ST_VALUE_PROVIDED NODE_ST(GRPC_INVALID_ARGUMENT, "etcdserver: value is provided")
#define ST_LEASE_PROVIDED NODE_ST(GRPC_INVALID_ARGUMENT, "etcdserver: lease is provided")
#define ST_TOO_MANY_OPS NODE_ST(GRPC_INVALID_ARGUMENT, "etcdserver: too many operations in txn request")
#define ST_DUPLICATE_KEY NODE_ST(GRPC_INVALID_ARGUMENT, "etcdserver: duplicate key given in txn request")
#define ST_INVALID_SORT NODE_ST(GRPC_INVALID_ARGUMENT, "etcdserver: invalid sort option")
#define ST_REQUEST_TOO_LARGE NODE_ST(GRPC_INVALID_ARGUMENT, "etcdserver: request is too large")
#define ST_TOO_MANY_REQUESTS NODE_ST(GRPC_RESOURCE_EXHAUSTED, "etcdserver: too many requests")
#define ST_COMPACTED NODE_ST(GRPC_OUT_OF_RANGE, "etcdserver: mvcc: required revision has been compacted")
#define ST_FUTURE_REV NODE_ST(GRPC_OUT_OF_RANGE, "etcdserver: mvcc: required revision is a future revision")
#define ST_NO_SPACE NODE_ST(GRPC_RESOURCE_EXHAUSTED, "etcdserver: mvcc: database space exceeded")
#define ST_LEASE_NOT_FOUND NODE_ST(GRPC_NOT_FOUND, "etcdserver: requested lease not found")
#define ST_LEASE_EXIST NODE_ST(GRPC_FAILED_PRECONDITION, "etcdserver: lease already exists")
#define ST_LEASE_TTL_TOO_LARGE NODE_ST(GRPC_OUT_OF_RANGE, "etcdserver: too large lease TTL")
#define ST_MEMBER_EXIST NODE_ST(GRPC_FAILED_PRECONDITION, "etcdserver: member ID already exist")
#define ST_PEER_URL_EXIST NODE_ST(GRPC_FAILED_PRECONDITION, "etcdserver: Peer URLs already exists")
#define ST_MEMBER_NOT_ENOUGH_STARTED NODE_ST(GRPC_FAILED_PRECONDITION, "etcdserver: re-configuration failed due to not enough started members")
#define ST_MEMBER_BAD_URLS NODE_ST(GRPC_INVALID_ARGUMENT, "etcdserver: given member URLs are invalid")
#define ST_MEMBER_NOT_FOUND NODE_ST(GRPC_NOT_FOUND, "etcdserver: member not found")
#define ST_MEMBER_ID_REMOVED NODE_ST(GRPC_FAILED_PRECONDITION, "etcdserver: the member ID these peer URLs give was removed from the cluster and is never reused; add the member with other peer URLs")
#define ST_MEMBER_NOT_LEARNER NODE_ST(GRPC_FAILED_PRECONDITION, "etcdserver: can only promote a learner member")
#define ST_LEARNER_NOT_READY NODE_ST(GRPC_FAILED_PRECONDITION, "etcdserver: can only promote a learner member which is in sync with leader")
#define ST_TOO_MANY_LEARNERS NODE_ST(GRPC_FAILED_PRECONDITION, "etcdserver: too many learner members in cluster")
#define ST_NO_LEADER NODE_ST(GRPC_UNAVAILABLE, "etcdserver: no leader")
#define ST_NOT_LEADER NODE_ST(GRPC_FAILED_PRECONDITION, "etcdserver: not leader")
#define ST_LEADER_CHANGED NODE_ST(GRPC_UNAVAILABLE, "etcdserver: leader changed")
#define ST_STOPPED NODE_ST(GRPC_UNAVAILABLE, "etcdserver: server stopped")
#define ST_TIMEOUT NODE_ST(GRPC_UNAVAILABLE, "etcdserver: request timed out")
#define ST_TIMEOUT_LEADER_FAIL NODE_ST(GRPC_UNAVAILABLE, "etcdserver: request timed out, possibly due to previous leader failure")
#define ST_NOT_SUPPORTED_FOR_LEARNER NODE_ST(GRPC_UNAVAILABLE, "etcdserver: rpc not supported for learner")
#define ST_BAD_LEADER_TRANSFEREE NODE_ST(GRPC_FAILED_PRECONDITION, "etcdserver: bad leader transferee")
#define ST_AUTH_NOT_ENABLED NODE_ST(GRPC_FAILED_PRECONDITION, "etcdserver: authentication is not enabled")
#define ST_WATCH_CANCELED NODE_ST(GRPC_CANCELLED, "etcdserver: watch canceled")
#define ST_UNHEALTHY NODE_ST(GRPC_UNAVAILABLE, "etcdserver: unhealthy cluster")
#define ST_NOT_IMPLEMENTED NODE_ST(GRPC_UNIMPLEMENTED, "etcdserver: not implemented")
#define ST_INTERNAL NODE_ST(GRPC_INTERNAL, "etcdserver: internal error")
#define ST_NO_MEMORY NODE_ST(GRPC_RESOURCE_EXHAUSTED, "etcdserver: out of memory")

#endif
