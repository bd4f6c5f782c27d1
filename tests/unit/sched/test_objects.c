/* test_objects — keys, validation messages, defaults, quantities and YAML/JSON manifests. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sched/ctrl.h"
#include "sched/objects.h"
#include "tests/lib/testlib.h"

static json_t *load1(const char *text)
{
    json_t *docs = NULL;
    char err[256];
    int rc = sched_parse_documents(text, strlen(text), &docs, err, sizeof(err));
    if (rc) fprintf(stderr, "parse: %s\n", err);
    assert_int_equal(rc, 0);
    assert_int_equal(json_array_size(docs), 1);
    json_t *d = json_incref(json_array_get(docs, 0));
    json_decref(docs);
    return d;
}

static void test_keys(void **state)
{
    (void)state;
    char buf[SCHED_KEY_MAX], ns[SCHED_NAME_MAX + 1], name[SCHED_NAME_MAX + 1];
    enum sched_kind k;
    assert_int_equal(sched_key(SCHED_POD, "prod", "web-1", buf, sizeof(buf)), 0);
    assert_string_equal(buf, "/registry/pods/prod/web-1");
    assert_int_equal(sched_key(SCHED_NODE, "ignored", "n1", buf, sizeof(buf)), 0);
    assert_string_equal(buf, "/registry/nodes/n1");
    assert_int_equal(sched_key(SCHED_DEPLOYMENT, NULL, "d", buf, sizeof(buf)), 0);
    assert_string_equal(buf, "/registry/deployments/default/d");
    assert_int_equal(sched_key_parse("/registry/replicasets/a/b", 25, &k, ns, name), 0);
    assert_int_equal(k, SCHED_REPLICASET);
    assert_string_equal(ns, "a");
    assert_string_equal(name, "b");
    assert_int_equal(sched_key_parse("/registry/nodes/n9", 18, &k, ns, name), 0);
    assert_int_equal(k, SCHED_NODE);
    assert_string_equal(name, "n9");
    assert_int_equal(sched_key_parse("/registry/pods/x", 16, &k, ns, name), SCHED_EINVAL);
    assert_int_equal(sched_key_parse("/registry/leases/x/y", 20, &k, ns, name), SCHED_EINVAL);
    assert_int_equal(sched_key(SCHED_POD, "a", "b", buf, 10), SCHED_EINVAL);
    assert_int_equal(sched_kind_parse("deploy", &k), 0);
    assert_int_equal(k, SCHED_DEPLOYMENT);
    assert_int_equal(sched_kind_parse("svc", &k), 0);
    assert_int_equal(k, SCHED_SERVICE);
    assert_int_equal(sched_kind_parse("widgets", &k), SCHED_EINVAL);
}

static void expect_invalid(const char *text, const char *want)
{
    char err[512] = "";
    json_t *o = load1(text);
    int rc = sched_obj_validate(o, err, sizeof(err));
    if (rc == 0 || !strstr(err, want))
        fprintf(stderr, "want error containing \"%s\", got rc=%d \"%s\"\n", want, rc, err);
    assert_int_equal(rc, SCHED_EINVAL);
    assert_non_null(strstr(err, want));
    json_decref(o);
}

static void test_validation_names_field(void **state)
{
    (void)state;
    expect_invalid("kind: Pod\nmetadata: {name: web}\nspec:\n  containers:\n  - image: busybox\n",
                   "Pod default/web: spec.containers[0].name: required");
    expect_invalid("kind: Pod\nmetadata: {name: Web}\nspec: {containers: [{name: a, image: b}]}\n",
                   "metadata.name");
    expect_invalid("kind: Pod\nmetadata: {name: w}\nspec: {containers: [{name: a}]}\n",
                   "spec.containers[0].image: required");
    expect_invalid("kind: Pod\nmetadata: {name: w}\nspec:\n  containers:\n  - name: a\n    image: b\n"
                   "    resources: {requests: {cpu: lots}}\n",
                   "spec.containers[0].resources.requests.cpu");
    expect_invalid("kind: Pod\nmetadata: {name: w}\nspec: {restartPolicy: Sometimes, containers: [{name: a, image: b}]}\n",
                   "spec.restartPolicy");
    expect_invalid("kind: Gadget\nmetadata: {name: w}\n", "kind: unknown kind \"Gadget\"");
    expect_invalid("kind: Deployment\nmetadata: {name: d}\nspec:\n  selector: {matchLabels: {app: a}}\n"
                   "  template:\n    metadata: {labels: {app: b}}\n    spec: {containers: [{name: c, image: i}]}\n",
                   "spec.template.metadata.labels: must match spec.selector.matchLabels");
    expect_invalid("kind: Deployment\nmetadata: {name: d}\nspec:\n  selector: {matchLabels: {app: a}}\n"
                   "  strategy: {rollingUpdate: {maxSurge: 0, maxUnavailable: 0}}\n"
                   "  template:\n    metadata: {labels: {app: a}}\n    spec: {containers: [{name: c, image: i}]}\n",
                   "maxUnavailable");
    expect_invalid("kind: Service\nmetadata: {name: s}\nspec: {selector: {app: a}, ports: [{port: 70000}]}\n",
                   "spec.ports[0].port");
    expect_invalid("kind: Node\nmetadata: {name: n1}\nstatus: {capacity: {cpu: 2}}\n",
                   "Node n1: status.capacity.memory: required");
    expect_invalid("kind: Node\nmetadata: {name: n1}\nspec: {taints: [{key: k, effect: Sometimes}]}\n"
                   "status: {capacity: {cpu: 2, memory: 1Gi}}\n",
                   "spec.taints[0].effect");
    expect_invalid("kind: ReplicaSet\nmetadata: {name: r}\nspec:\n  replicas: -1\n", "spec.replicas");
}

static void test_defaults_and_quantities(void **state)
{
    (void)state;
    char err[256];
    json_t *o = load1("kind: Pod\nmetadata:\n  name: web\nspec:\n  containers:\n  - name: main\n"
                      "    image: busybox\n    resources:\n      requests: {cpu: 250m, memory: 64Mi}\n");
    assert_int_equal(sched_obj_validate(o, err, sizeof(err)), 0);
    assert_string_equal(sched_obj_namespace(o), "default");
    assert_string_equal(sched_obj_str(o, "spec.restartPolicy"), "Always");
    assert_string_equal(sched_obj_str(o, "status.phase"), "Pending");
    json_t *ct = json_array_get(sched_obj_get(o, "spec.containers"), 0);
    assert_int_equal(sched_obj_cpu(ct, "resources.requests.cpu"), 250);
    assert_string_equal(sched_obj_str(ct, "resources.requests.cpu"), "250m");
    assert_int_equal(sched_obj_int(ct, "resources.requests.memory", -1), 64 * 1048576);
    char key[SCHED_KEY_MAX];
    assert_int_equal(sched_obj_key(o, key, sizeof(key)), 0);
    assert_string_equal(key, "/registry/pods/default/web");
    /* validating twice is stable (integers stay integers) */
    assert_int_equal(sched_obj_validate(o, err, sizeof(err)), 0);
    assert_int_equal(sched_obj_cpu(ct, "resources.requests.cpu"), 250);
    assert_string_equal(sched_obj_str(ct, "resources.requests.cpu"), "250m");
    json_decref(o);

    int64_t q;
    json_t *v = json_string("1.5");
    assert_int_equal(sched_parse_cpu(v, &q), 0);
    assert_int_equal(q, 1500);
    json_decref(v);
    v = json_integer(2);
    assert_int_equal(sched_parse_cpu(v, &q), 0);
    assert_int_equal(q, 2000);
    assert_int_equal(sched_parse_memory(v, &q), 0);
    assert_int_equal(q, 2);
    json_decref(v);
    v = json_string("1G");
    assert_int_equal(sched_parse_memory(v, &q), 0);
    assert_int_equal(q, 1000000000);
    json_decref(v);
    v = json_string("1Gb");
    assert_int_equal(sched_parse_memory(v, &q), SCHED_EINVAL);
    json_decref(v);
    v = json_string("-1");
    assert_int_equal(sched_parse_cpu(v, &q), SCHED_EINVAL);
    json_decref(v);

    o = load1("{\"kind\":\"Deployment\",\"metadata\":{\"name\":\"d\"},\"spec\":{\"selector\":"
              "{\"matchLabels\":{\"app\":\"a\"}},\"template\":{\"metadata\":{\"labels\":{\"app\":\"a\"}},"
              "\"spec\":{\"containers\":[{\"name\":\"c\",\"image\":\"i\"}]}}}}");
    assert_int_equal(sched_obj_validate(o, err, sizeof(err)), 0);
    assert_int_equal(sched_obj_int(o, "spec.replicas", -1), 1);
    assert_int_equal(sched_obj_int(o, "spec.revisionHistoryLimit", -1), 10);
    assert_string_equal(sched_obj_str(o, "spec.strategy.rollingUpdate.maxSurge"), "25%");
    json_decref(o);

    o = load1("kind: Service\nmetadata: {name: s, namespace: prod}\nspec: {selector: {app: a}, port: 80}\n");
    assert_int_equal(sched_obj_validate(o, err, sizeof(err)), 0);
    assert_int_equal(sched_obj_int(json_array_get(sched_obj_get(o, "spec.ports"), 0), "targetPort", 0), 80);
    json_decref(o);
}

static void test_multi_documents(void **state)
{
    (void)state;
    const char *y = "# two objects\nkind: Pod\nmetadata: {name: a}\n---\n---\nkind: Pod\n"
                    "metadata:\n  name: b\n  labels: {version: \"2\", on: 'yes'}\nspec:\n"
                    "  containers:\n  - {name: c, image: i, command: [sh, -c, 'exit 3']}\n";
    json_t *docs = NULL;
    char err[256];
    assert_int_equal(sched_parse_documents(y, strlen(y), &docs, err, sizeof(err)), 0);
    assert_int_equal(json_array_size(docs), 2);
    json_t *b = json_array_get(docs, 1);
    assert_string_equal(sched_obj_name(b), "b");
    assert_true(json_is_string(sched_obj_get(b, "metadata.labels.version")));
    assert_string_equal(sched_obj_str(b, "metadata.labels.on"), "yes");
    json_t *cmd = json_object_get(json_array_get(sched_obj_get(b, "spec.containers"), 0), "command");
    assert_int_equal(json_array_size(cmd), 3);
    assert_string_equal(json_string_value(json_array_get(cmd, 2)), "exit 3");
    json_decref(docs);

    const char *j = "{\"kind\":\"List\",\"items\":[{\"kind\":\"Pod\"},{\"kind\":\"Node\"}]} {\"kind\":\"Pod\"}";
    assert_int_equal(sched_parse_documents(j, strlen(j), &docs, err, sizeof(err)), 0);
    assert_int_equal(json_array_size(docs), 3);
    json_decref(docs);

    const char *bad = "kind: Pod\nmetadata: {name: [unclosed\n";
    assert_int_equal(sched_parse_documents(bad, strlen(bad), &docs, err, sizeof(err)), SCHED_EPARSE);
    assert_non_null(strstr(err, "yaml: line"));
    const char *badj = "{\"kind\": }";
    assert_int_equal(sched_parse_documents(badj, strlen(badj), &docs, err, sizeof(err)), SCHED_EPARSE);
    assert_non_null(strstr(err, "json: line 1"));
}

/* Dumping as YAML and reading back gives the same JSON, including strings that look like
 * other types. */
static void test_yaml_round_trip(void **state)
{
    (void)state;
    const char *j = "{\"kind\":\"Pod\",\"a\":{\"s\":\"true\",\"n\":\"12\",\"e\":\"\",\"x\":[1,\"-\",{\"k\":\"v: w\",\"z\":null}],"
                    "\"empty\":{},\"list\":[],\"nested\":[[1,2],[]],\"f\":1.5,\"b\":false,\"q\":\"say \\\"hi\\\"\\n\"}}";
    json_t *orig = json_loads(j, 0, NULL);
    assert_non_null(orig);
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    sched_yaml_dump(f, orig, 0);
    fclose(f);
    json_t *docs = NULL;
    char err[256];
    int rc = sched_parse_documents(buf, len, &docs, err, sizeof(err));
    if (rc) fprintf(stderr, "%s\n%s\n", err, buf);
    assert_int_equal(rc, 0);
    if (!json_equal(orig, json_array_get(docs, 0))) {
        char *back = json_dumps(json_array_get(docs, 0), 0);
        fprintf(stderr, "yaml:\n%s\nback: %s\n", buf, back);
        free(back);
    }
    assert_true(json_equal(orig, json_array_get(docs, 0)));
    free(buf);
    json_decref(docs);
    json_decref(orig);
}

static void test_conditions_and_labels(void **state)
{
    (void)state;
    json_t *o = json_pack("{s{}}", "status");
    assert_true(sched_condition_set(o, "PodScheduled", "False", "Unschedulable", "0/3 nodes"));
    assert_false(sched_condition_set(o, "PodScheduled", "False", "Unschedulable", "0/3 nodes"));
    assert_true(sched_condition_set(o, "PodScheduled", "True", NULL, NULL));
    json_t *c = sched_condition_get(o, "PodScheduled");
    assert_string_equal(json_string_value(json_object_get(c, "status")), "True");
    assert_null(json_object_get(c, "reason"));
    assert_int_equal(json_array_size(sched_obj_get(o, "status.conditions")), 1);
    json_decref(o);

    json_t *sel = json_pack("{ss}", "app", "web");
    json_t *l1 = json_pack("{ssss}", "app", "web", "tier", "x");
    json_t *l2 = json_pack("{ss}", "app", "db");
    json_t *empty = json_object();
    assert_true(sched_labels_match(sel, l1));
    assert_false(sched_labels_match(sel, l2));
    assert_false(sched_labels_match(sel, NULL));
    assert_false(sched_labels_match(empty, l1));
    json_decref(sel);
    json_decref(l1);
    json_decref(l2);
    json_decref(empty);
}

/* A ReplicaSet's name comes from its template: equal templates (in any key order) give
 * the same hash, the hash label itself does not count, any real change does. */
static void test_template_hash(void **state)
{
    (void)state;
    char h1[11], h2[11], h3[11], h4[11];
    json_t *a = json_loads("{\"metadata\":{\"labels\":{\"app\":\"w\"}},\"spec\":{\"containers\":[{\"name\":\"c\",\"image\":\"i:1\"}]}}", 0, NULL);
    json_t *b = json_loads("{\"spec\":{\"containers\":[{\"image\":\"i:1\",\"name\":\"c\"}]},\"metadata\":{\"labels\":{\"app\":\"w\",\"pod-template-hash\":\"x\"}}}", 0, NULL);
    json_t *c = json_loads("{\"metadata\":{\"labels\":{\"app\":\"w\"}},\"spec\":{\"containers\":[{\"name\":\"c\",\"image\":\"i:2\"}]}}", 0, NULL);
    assert_non_null(a);
    assert_non_null(b);
    assert_non_null(c);
    ctrl_template_hash(a, h1);
    ctrl_template_hash(b, h2);
    ctrl_template_hash(c, h3);
    ctrl_template_hash(a, h4);
    assert_int_equal(strlen(h1), 10);
    assert_string_equal(h1, h2);
    assert_string_equal(h1, h4);
    assert_string_not_equal(h1, h3);
    json_decref(a);
    json_decref(b);
    json_decref(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_keys),
        cmocka_unit_test(test_validation_names_field),
        cmocka_unit_test(test_defaults_and_quantities),
        cmocka_unit_test(test_multi_documents),
        cmocka_unit_test(test_yaml_round_trip),
        cmocka_unit_test(test_conditions_and_labels),
        cmocka_unit_test(test_template_hash),
    };
    return PLINTH_RUN_TESTS("sched/objects", tests);
}
