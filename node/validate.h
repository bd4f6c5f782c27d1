/* validate — checks on client requests before they are proposed, as etcd's v3rpc layer
 * makes them (api/v3rpc/key.go): empty keys, ignore_value/ignore_lease misuse, sort
 * options, too many txn operations, a key written twice in one txn. */
#ifndef PLINTH_NODE_VALIDATE_H
#define PLINTH_NODE_VALIDATE_H

#include "node/errors.h"
#include "rpc.pb-c.h"

struct node_status node_check_range(const Etcdserverpb__RangeRequest *r);
struct node_status node_check_put(const Etcdserverpb__PutRequest *r);
struct node_status node_check_delete(const Etcdserverpb__DeleteRangeRequest *r);
/* Checks op counts against max_ops (etcd --max-txn-ops), every nested op, and that no key
 * is put twice or both put and deleted within the same branch. */
struct node_status node_check_txn(const Etcdserverpb__TxnRequest *r, unsigned max_ops);
/* LeaseGrant: TTL at most 9e9 seconds. */
struct node_status node_check_lease_grant(const Etcdserverpb__LeaseGrantRequest *r);

#endif
