/*
 * test_util.h: the few macros the C unit tests share. A failed CHECK prints
 * file:line and the condition and marks the test failed; TEST_END returns
 * the exit status (non-zero when anything failed).
 */
#ifndef FC_TEST_UTIL_H
#define FC_TEST_UTIL_H

#include <stdio.h>
#include <stdlib.h>

static int test_failures, test_checks;

#define CHECK(cond) do { test_checks++; if (!(cond)) { test_failures++; \
    fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond); } } while (0)
#define CHECKF(cond, ...) do { test_checks++; if (!(cond)) { test_failures++; \
    fprintf(stderr, "%s:%d: check failed: %s: ", __FILE__, __LINE__, #cond); \
    fprintf(stderr, __VA_ARGS__); fprintf(stderr, "\n"); } } while (0)
#define TEST_END() (printf("%d checks, %d failed\n", test_checks, test_failures), test_failures ? 1 : 0)

#endif
