/* objects — plinth's workload object model: Node, Pod, ReplicaSet, Deployment, Service and
 * Endpoints as JSON documents (jansson), their store keys, validation and YAML input. */
#ifndef PLINTH_SCHED_OBJECTS_H
#define PLINTH_SCHED_OBJECTS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

/* Every sched_ function that can fail returns 0 or one of these (positive) codes. */
enum sched_err {
    SCHED_OK = 0,
    SCHED_EINVAL,     /* invalid object or argument (the error text names the field) */
    SCHED_ENOMEM,     /* allocation failed */
    SCHED_ENOTFOUND,  /* no such object */
    SCHED_EEXIST,     /* create: the object already exists */
    SCHED_ECONFLICT,  /* compare-and-swap lost: the object changed since it was read */
    SCHED_ENOTLEADER, /* a fenced write failed: this process no longer holds leadership */
    SCHED_ESTORE,     /* the store could not be reached or refused the request */
    SCHED_ECOMPACTED, /* the watched revision was compacted: relist */
    SCHED_EPARSE,     /* malformed JSON or YAML */
    SCHED__ECOUNT
};

/* Static text for a code ("sched: conflict"); never NULL. */
const char *sched_strerror(int err);

enum sched_kind {
    SCHED_NODE = 0,
    SCHED_POD,
    SCHED_REPLICASET,
    SCHED_DEPLOYMENT,
    SCHED_SERVICE,
    SCHED_ENDPOINTS,
    SCHED_KIND_COUNT
};

/* "Pod", "Node", ... (the "kind" field of a document). */
const char *sched_kind_name(enum sched_kind k);
/* "pods", "nodes", ... (the key segment under /registry/). */
const char *sched_kind_resource(enum sched_kind k);
/* False for nodes (cluster-scoped), true for the others. */
bool sched_kind_namespaced(enum sched_kind k);
/* Parses a kind as a user types it: "Pod", "pod", "pods", "po", "deploy", "rs", "svc",
 * "ep", "no"... Returns 0 and sets *out, or SCHED_EINVAL. */
int sched_kind_parse(const char *s, enum sched_kind *out);

/* Longest key plinth builds: "/registry/<resource>/<namespace>/<name>". */
#define SCHED_KEY_MAX 512
/* Longest object or namespace name (a DNS label-like name, as Kubernetes). */
#define SCHED_NAME_MAX 253

/* Writes the store key of an object into buf: /registry/nodes/<name> or
 * /registry/<resource>/<namespace>/<name>. ns is ignored for nodes and may be NULL there.
 * Returns 0, or SCHED_EINVAL when it does not fit in len. */
int sched_key(enum sched_kind k, const char *ns, const char *name, char *buf, size_t len);
/* Writes the prefix that lists a kind: "/registry/pods/" or, with ns non-NULL,
 * "/registry/pods/<ns>/". Returns 0 or SCHED_EINVAL. */
int sched_key_prefix(enum sched_kind k, const char *ns, char *buf, size_t len);
/* Parses a key built by sched_key. Writes the kind, and copies namespace ("" for nodes)
 * and name into the caller's buffers (SCHED_NAME_MAX+1 bytes each). Returns 0 or
 * SCHED_EINVAL for any other key. */
int sched_key_parse(const char *key, size_t keylen, enum sched_kind *k, char *ns, char *name);

/* The key of a validated object (its kind, metadata.namespace and metadata.name). */
int sched_obj_key(const json_t *obj, char *buf, size_t len);
/* Kind of a document from its "kind" field; SCHED_EINVAL when missing or unknown. */
int sched_obj_kind(const json_t *obj, enum sched_kind *out);

/* Borrowed accessors; they return "" / NULL / 0 when the field is absent. The strings live
 * as long as the object is not modified. */
const char *sched_obj_name(const json_t *obj);
const char *sched_obj_namespace(const json_t *obj);
/* A string at a dotted path such as "spec.nodeName" or "status.phase"; "" when absent. */
const char *sched_obj_str(const json_t *obj, const char *path);
/* An integer at a dotted path; def when absent or not an integer. */
int64_t sched_obj_int(const json_t *obj, const char *path, int64_t def);
/* The JSON value at a dotted path, borrowed, or NULL. */
json_t *sched_obj_get(const json_t *obj, const char *path);
/* Sets a value at a dotted path, creating intermediate objects. The reference to val is
 * stolen (also on failure). Returns 0, SCHED_EINVAL (a non-object on the way) or ENOMEM. */
int sched_obj_set(json_t *obj, const char *path, json_t *val);

/* Validates a document and fills defaults in place: metadata.namespace "default" for
 * namespaced kinds; quantities are normalised: cpu to a millicore string ("2" -> "2000m",
 * 0.5 -> "500m"), memory to an integer of bytes ("128Mi" -> 134217728); Pod restartPolicy "Always"; ReplicaSet and
 * Deployment replicas 1; Deployment strategy RollingUpdate 25%/25% and
 * revisionHistoryLimit 10; status objects are created when missing.
 * Returns 0, or SCHED_EINVAL with text naming the object and the field into err, e.g.
 * "Pod default/web: spec.containers[0].name: required". err may be NULL. */
int sched_obj_validate(json_t *obj, char *err, size_t errlen);

/* The cpu quantity at a dotted path in millicores; 0 when absent or malformed. */
int64_t sched_obj_cpu(const json_t *obj, const char *path);
/* Parses a cpu quantity ("250m", "2", 0.5, 2) into millicores. 0 or SCHED_EINVAL. */
int sched_parse_cpu(const json_t *v, int64_t *milli);
/* Parses a memory quantity ("128Mi", "1G", "1000", 1000) into bytes. 0 or SCHED_EINVAL. */
int sched_parse_memory(const json_t *v, int64_t *bytes);

/* Parses text holding one or more documents: a JSON object, a JSON array of objects, a
 * JSON "List" ({"kind":"List","items":[...]}), or YAML with documents separated by "---".
 * On success stores a new JSON array of the documents in *out (caller owns, json_decref)
 * and returns 0; on failure returns SCHED_EPARSE with the line into err. Documents are
 * not validated here. */
int sched_parse_documents(const char *text, size_t len, json_t **out, char *err,
                          size_t errlen);

/* Writes v as YAML (block style) to f, indented by indent spaces. Strings that YAML would
 * read as another type are quoted. */
void sched_yaml_dump(FILE *f, const json_t *v, int indent);

/* Label selector match: every key=value of sel (a JSON object of strings) is in labels.
 * An empty or NULL selector matches nothing (as Kubernetes does for workloads). */
bool sched_labels_match(const json_t *sel, const json_t *labels);

/* Finds a condition of type `type` in obj's status.conditions; borrowed, or NULL. */
json_t *sched_condition_get(const json_t *obj, const char *type);
/* Sets a condition (type, status "True"/"False"/"Unknown", reason, message may be NULL) in
 * status.conditions, replacing one of the same type. lastTransitionTime changes only when
 * the status changes. Returns true when anything changed. */
bool sched_condition_set(json_t *obj, const char *type, const char *status,
                         const char *reason, const char *message);

/* Current wall-clock time as RFC 3339 UTC ("2026-01-02T03:04:05Z") into buf (>= 32). */
void sched_now_rfc3339(char *buf, size_t len);
/* A new random identifier (32 hex digits) into buf (>= 33 bytes). */
void sched_new_uid(char *buf);

#endif
