/* yaml — manifests in YAML (libyaml) or JSON turned into JSON documents, and JSON written
 * back as block-style YAML for `plinthctl kube get -o yaml`. */
#include "sched/objects.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <yaml.h>

/* Plain scalars follow YAML 1.2's core schema: null, booleans, integers, floats; quoted
 * scalars are always strings. */
static json_t *scalar_to_json(const yaml_node_t *n)
{
    const char *s = (const char *)n->data.scalar.value;
    size_t len = n->data.scalar.length;
    if (n->data.scalar.style != YAML_PLAIN_SCALAR_STYLE) return json_stringn(s, len);
    if (len == 0 || !strcmp(s, "~") || !strcmp(s, "null") || !strcmp(s, "Null") || !strcmp(s, "NULL"))
        return json_null();
    if (!strcmp(s, "true") || !strcmp(s, "True") || !strcmp(s, "TRUE")) return json_true();
    if (!strcmp(s, "false") || !strcmp(s, "False") || !strcmp(s, "FALSE")) return json_false();
    char *end;
    errno = 0;
    long long ll = strtoll(s, &end, 10);
    if (*s && !*end && !errno && (isdigit((unsigned char)s[0]) || s[0] == '-' || s[0] == '+'))
        return json_integer(ll);
    errno = 0;
    double d = strtod(s, &end);
    if (*s && !*end && !errno && (isdigit((unsigned char)s[0]) || s[0] == '-' || s[0] == '.') &&
        strspn(s, "0123456789+-.eE") == len)
        return json_real(d);
    return json_stringn(s, len);
}

static json_t *node_to_json(yaml_document_t *doc, yaml_node_t *n, int depth)
{
    if (!n || depth > 64) return NULL;
    switch (n->type) {
    case YAML_SCALAR_NODE:
        return scalar_to_json(n);
    case YAML_SEQUENCE_NODE: {
        json_t *a = json_array();
        for (yaml_node_item_t *it = n->data.sequence.items.start; it < n->data.sequence.items.top; it++) {
            json_t *v = node_to_json(doc, yaml_document_get_node(doc, *it), depth + 1);
            if (!v) {
                json_decref(a);
                return NULL;
            }
            json_array_append_new(a, v);
        }
        return a;
    }
    case YAML_MAPPING_NODE: {
        json_t *o = json_object();
        for (yaml_node_pair_t *p = n->data.mapping.pairs.start; p < n->data.mapping.pairs.top; p++) {
            yaml_node_t *k = yaml_document_get_node(doc, p->key);
            if (!k || k->type != YAML_SCALAR_NODE) {
                json_decref(o);
                return NULL;
            }
            json_t *v = node_to_json(doc, yaml_document_get_node(doc, p->value), depth + 1);
            if (!v) {
                json_decref(o);
                return NULL;
            }
            json_object_setn_new(o, (const char *)k->data.scalar.value, k->data.scalar.length, v);
        }
        return o;
    }
    default:
        return NULL;
    }
}

/* Adds a parsed document (object, array of objects, or a List) to out. */
static int add_docs(json_t *out, json_t *v, char *err, size_t errlen)
{
    size_t i;
    json_t *it;
    if (json_is_null(v)) return 0; /* an empty document between two "---" */
    if (json_is_object(v)) {
        const char *kind = json_string_value(json_object_get(v, "kind"));
        json_t *items = json_object_get(v, "items");
        if (kind && !strcmp(kind, "List") && json_is_array(items)) return add_docs(out, items, err, errlen);
        json_array_append(out, v);
        return 0;
    }
    if (json_is_array(v)) {
        json_array_foreach(v, i, it) {
            if (!json_is_object(it)) {
                snprintf(err, errlen, "document list item %zu is not an object", i);
                return SCHED_EPARSE;
            }
            json_array_append(out, it);
        }
        return 0;
    }
    snprintf(err, errlen, "a document must be an object");
    return SCHED_EPARSE;
}

int sched_parse_documents(const char *text, size_t len, json_t **out, char *err, size_t errlen)
{
    char dummy[8];
    if (!err) {
        err = dummy;
        errlen = sizeof(dummy);
    }
    size_t i = 0;
    while (i < len && isspace((unsigned char)text[i])) i++;
    json_t *docs = json_array();
    if (!docs) return SCHED_ENOMEM;
    if (i < len && (text[i] == '{' || text[i] == '[')) {
        /* JSON: one value, or several concatenated */
        json_error_t je;
        size_t off = i;
        while (off < len) {
            json_t *v = json_loadb(text + off, len - off, JSON_DISABLE_EOF_CHECK, &je);
            if (!v) {
                snprintf(err, errlen, "json: line %d: %s", je.line, je.text);
                json_decref(docs);
                return SCHED_EPARSE;
            }
            int rc = add_docs(docs, v, err, errlen);
            json_decref(v);
            if (rc) {
                json_decref(docs);
                return rc;
            }
            off += je.position;
            while (off < len && isspace((unsigned char)text[off])) off++;
        }
        *out = docs;
        return 0;
    }
    yaml_parser_t p;
    if (!yaml_parser_initialize(&p)) {
        json_decref(docs);
        return SCHED_ENOMEM;
    }
    yaml_parser_set_input_string(&p, (const unsigned char *)text, len);
    for (;;) {
        yaml_document_t doc;
        if (!yaml_parser_load(&p, &doc)) {
            snprintf(err, errlen, "yaml: line %zu: %s", p.problem_mark.line + 1,
                     p.problem ? p.problem : "syntax error");
            yaml_parser_delete(&p);
            json_decref(docs);
            return SCHED_EPARSE;
        }
        yaml_node_t *root = yaml_document_get_root_node(&doc);
        if (!root) { /* end of stream */
            yaml_document_delete(&doc);
            break;
        }
        json_t *v = node_to_json(&doc, root, 0);
        int line = (int)root->start_mark.line + 1;
        yaml_document_delete(&doc);
        if (!v) {
            snprintf(err, errlen, "yaml: document at line %d: unsupported structure", line);
            yaml_parser_delete(&p);
            json_decref(docs);
            return SCHED_EPARSE;
        }
        int rc = add_docs(docs, v, err, errlen);
        json_decref(v);
        if (rc) {
            yaml_parser_delete(&p);
            json_decref(docs);
            return rc;
        }
    }
    yaml_parser_delete(&p);
    *out = docs;
    return 0;
}

/* A string needs quotes when a YAML reader would take it as something else. */
static bool needs_quotes(const char *s)
{
    if (!*s) return true;
    static const char *const special[] = {"null", "Null", "NULL", "~", "true", "True", "TRUE",
                                          "false", "False", "FALSE", "yes", "no", "on", "off",
                                          "y", "n", "Yes", "No", "On", "Off"};
    for (size_t i = 0; i < sizeof(special) / sizeof(special[0]); i++)
        if (!strcmp(s, special[i])) return true;
    if (strchr("-?:,[]{}#&*!|>'\"%@` ", s[0])) return true;
    if (isdigit((unsigned char)s[0]) || s[0] == '.' || s[0] == '+') return true;
    if (s[strlen(s) - 1] == ' ') return true;
    for (const char *p = s; *p; p++) {
        if ((unsigned char)*p < 0x20 || *p == '"' || *p == '\\') return true;
        if ((*p == ':' && (p[1] == ' ' || !p[1])) || (*p == ' ' && p[1] == '#')) return true;
    }
    return false;
}

static void dump_string(FILE *f, const char *s)
{
    if (!needs_quotes(s)) {
        fputs(s, f);
        return;
    }
    /* a double-quoted YAML scalar accepts JSON string escapes */
    json_t *tmp = json_string(s);
    char *enc = tmp ? json_dumps(tmp, JSON_ENCODE_ANY) : NULL;
    fputs(enc ? enc : "\"\"", f);
    free(enc);
    json_decref(tmp);
}

static void dump_scalar(FILE *f, const json_t *v)
{
    if (json_is_string(v)) dump_string(f, json_string_value(v));
    else if (json_is_integer(v)) fprintf(f, "%lld", (long long)json_integer_value(v));
    else if (json_is_real(v)) fprintf(f, "%.17g", json_real_value(v));
    else if (json_is_true(v)) fputs("true", f);
    else if (json_is_false(v)) fputs("false", f);
    else fputs("null", f);
}

static bool is_empty_container(const json_t *v)
{
    return (json_is_object(v) && json_object_size(v) == 0) ||
           (json_is_array(v) && json_array_size(v) == 0);
}

void sched_yaml_dump(FILE *f, const json_t *v, int indent)
{
    const char *k;
    json_t *x;
    size_t i;
    if (json_is_object(v)) {
        json_object_foreach((json_t *)v, k, x) {
            fprintf(f, "%*s", indent, "");
            dump_string(f, k);
            if (is_empty_container(x)) {
                fputs(json_is_object(x) ? ": {}\n" : ": []\n", f);
            } else if (json_is_object(x)) {
                fputs(":\n", f);
                sched_yaml_dump(f, x, indent + 2);
            } else if (json_is_array(x)) {
                fputs(":\n", f);
                sched_yaml_dump(f, x, indent);
            } else {
                fputs(": ", f);
                dump_scalar(f, x);
                fputc('\n', f);
            }
        }
    } else if (json_is_array(v)) {
        json_array_foreach(v, i, x) {
            fprintf(f, "%*s- ", indent, "");
            if (json_is_object(x) && json_object_size(x) > 0) {
                /* first key on the dash line, the rest indented under it */
                bool first = true;
                json_t *y;
                json_object_foreach(x, k, y) {
                    json_t *one = json_object();
                    json_object_set(one, k, y);
                    if (first) {
                        char *buf = NULL;
                        size_t blen = 0;
                        FILE *mf = open_memstream(&buf, &blen);
                        if (mf) {
                            sched_yaml_dump(mf, one, indent + 2);
                            fclose(mf);
                            fputs(buf + indent + 2, f);
                            free(buf);
                        }
                        first = false;
                    } else {
                        sched_yaml_dump(f, one, indent + 2);
                    }
                    json_decref(one);
                }
            } else if (json_is_array(x) && json_array_size(x) > 0) {
                fputc('\n', f);
                sched_yaml_dump(f, x, indent + 2);
            } else if (is_empty_container(x)) {
                fputs(json_is_object(x) ? "{}\n" : "[]\n", f);
            } else {
                dump_scalar(f, x);
                fputc('\n', f);
            }
        }
    } else {
        fprintf(f, "%*s", indent, "");
        dump_scalar(f, v);
        fputc('\n', f);
    }
}
