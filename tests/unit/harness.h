/* The host side of the unit tests: what common.c needs from "the machine"
   (console_putchar, power_off) and a few helpers to report results.

   Every check prints exactly one line, "PASS <name>" or "FAIL <name>: <why>",
   which is what tests/run-all.sh counts. */
#ifndef HVBOOK_TEST_HARNESS_H
#define HVBOOK_TEST_HARNESS_H

#include "common.h"

extern int test_failures;
/* While true, console_putchar drops what the code under test prints. */
extern bool console_muted;

void pass(const char *name);
void fail(const char *name, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* PASS if err is NULL, else FAIL with the error. Returns !err. */
bool expect_ok(const char *name, const char *err);
/* PASS if err is non-NULL and contains want, else FAIL saying what came instead. */
bool expect_error(const char *name, const char *err, const char *want);

/* Read a whole host file into a fresh malloc'd buffer of exactly its size
   (so AddressSanitizer catches any access past the end). NULL if unreadable. */
u8 *load_file(const char *path, size_t *size);

/* Start a test program: line-buffered output and a watchdog that turns a
   hang into a failure instead of a stuck test run. */
void harness_start(unsigned timeout_seconds);

#endif
