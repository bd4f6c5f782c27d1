/* testlib — shared helpers for plinth's test programs: the result line that
 * tests/run.sh sums, and a cmocka runner that prints it. */
#ifndef PLINTH_TESTLIB_H
#define PLINTH_TESTLIB_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

/* Prints "# plinth-result: P passed, F failed" (the line tests/run.sh sums). */
void test_result_line(int passed, int failed);

/* Runs a cmocka group and prints the result line; returns the process exit code. */
int test_run_group(const char *name, const struct CMUnitTest *tests, size_t n,
                   CMFixtureFunction setup, CMFixtureFunction teardown);

#define PLINTH_RUN_TESTS(name, tests) \
    test_run_group((name), (tests), sizeof(tests) / sizeof((tests)[0]), NULL, NULL)

/* A fresh empty directory under $TMPDIR (or /tmp) for a test; the caller owns the string. */
char *test_tmpdir(const char *tag);
/* rm -rf of a directory made by test_tmpdir. */
void test_rmdir(const char *path);

#endif
