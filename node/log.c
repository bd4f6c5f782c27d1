/* log — timestamped log lines on stderr. */
#include "node/log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>

#include "node/node_int.h"

static int threshold = LOG_INFO;

void node_log_set_level(const char *name)
{
    if (!strcmp(name, "debug"))
        threshold = LOG_DEBUG;
    else if (!strcmp(name, "info"))
        threshold = LOG_INFO;
    else if (!strcmp(name, "warn"))
        threshold = LOG_WARN;
    else
        threshold = LOG_ERROR;
}

void node_log(const struct node *n, int level, const char *fmt, ...)
{
    static const char *names[] = {"debug", "info", "warn", "error"};
    char ts[32], line[1024];
    struct timeval tv;
    struct tm tm;
    va_list ap;

    if (level < threshold)
        return;
    gettimeofday(&tv, NULL);
    gmtime_r(&tv.tv_sec, &tm);
    strftime(ts, sizeof ts, "%Y-%m-%dT%H:%M:%S", &tm);
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    fprintf(stderr, "%s.%03dZ %s plinth[%s]: %s\n", ts, (int)(tv.tv_usec / 1000),
            names[level < 0 ? 0 : level > 3 ? 3 : level], n ? n->cfg.name : "-", line);
}
