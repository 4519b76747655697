/* See harness.h. This file uses the host C library; the code under test
   (fat.c, common.c) does not. common.c's printf and memcpy replace the C
   library's in the test programs, so our output goes through common.c's
   printf too, which tests it a little along the way. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"

int test_failures;
bool console_muted;

void console_putchar(int c)
{
    if (!console_muted)
        putchar(c);
}

void io_barrier(void)
{
    __atomic_thread_fence(__ATOMIC_SEQ_CST);
}

_Noreturn void power_off(bool success)
{
    fflush(stdout);
    exit(success ? 0 : 1);
}

void pass(const char *name)
{
    printf("PASS %s\n", name);
}

void fail(const char *name, const char *fmt, ...)
{
    va_list ap;
    test_failures++;
    printf("FAIL %s: ", name);
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    printf("\n");
}

bool expect_ok(const char *name, const char *err)
{
    if (err) {
        fail(name, "unexpected error: %s", err);
        return false;
    }
    pass(name);
    return true;
}

bool expect_error(const char *name, const char *err, const char *want)
{
    if (!err) {
        fail(name, "succeeded, but should have failed with \"%s\"", want);
        return false;
    }
    if (!strstr(err, want)) {
        fail(name, "wanted an error containing \"%s\", got: %s", want, err);
        return false;
    }
    pass(name);
    return true;
}

u8 *load_file(const char *path, size_t *size)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    u8 *buf = malloc(n > 0 ? (size_t)n : 1);
    if (buf && fread(buf, 1, (size_t)n, f) != (size_t)n) {
        free(buf);
        buf = NULL;
    }
    fclose(f);
    *size = (size_t)n;
    return buf;
}

static void on_alarm(int sig)
{
    (void)sig;
    static const char msg[] = "FAIL watchdog: the test program hung (a loop that never ends?)\n";
    fflush(stdout);
    if (write(1, msg, sizeof(msg) - 1) < 0)
        _exit(3);
    _exit(2);
}

void harness_start(unsigned timeout_seconds)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    signal(SIGALRM, on_alarm);
    alarm(timeout_seconds);
}
