/* crashspec.h — the deterministic workload of kv/'s crash test, shared by the writer
 * (tests/tools/kv_crash_writer.c) and the checker (test_kv_crash.c): what batch b
 * appends to the Raft log and applies, so the checker can rebuild the expected state. */
#ifndef PLINTH_KV_CRASHSPEC_H
#define PLINTH_KV_CRASHSPEC_H

#include <stdio.h>

#define CS_KEYS 100

static inline int cs_entries(unsigned long b) { return 1 + (int)(b % 5); }
static inline int cs_puts(unsigned long b) { return 1 + (int)(b % 7); }
static inline int cs_key(unsigned long b, int j) { return (int)((b * 7 + (unsigned long)j * 13) % CS_KEYS); }
static inline void cs_value(char *buf, size_t cap, unsigned long b, int j)
{
    snprintf(buf, cap, "batch-%lu.%d-%0*d", b, j, (int)(b % 50), 0);
}
static inline void cs_entry(char *buf, size_t cap, unsigned long b, int j)
{
    snprintf(buf, cap, "entry-%lu.%d", b, j);
}
/* every 40th batch also compacts to (revision - 30) */
static inline int cs_compacts(unsigned long b) { return b % 40 == 0; }

#endif
