/* log — one-line log records on stderr for the server, filtered by --log-level. */
#ifndef PLINTH_NODE_LOG_H
#define PLINTH_NODE_LOG_H

struct node;

enum { LOG_DEBUG = 0, LOG_INFO = 1, LOG_WARN = 2, LOG_ERROR = 3 };

/* Sets the threshold from etcd's level names (debug, info, warn, error, panic, fatal). */
void node_log_set_level(const char *name);

/* Writes "2026-01-02T03:04:05.678Z info plinth: <text>" (with the member name when n is
 * not NULL). */
void node_log(const struct node *n, int level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#endif
