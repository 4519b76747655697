/* Unit tests for the kit in common.c: the page allocator, and the boot
   arguments (fdt_bootargs on device trees QEMU itself wrote, then
   boot_args_parse on good and malformed command lines).

   Usage: kit_test DTB_DIR

   DTB_DIR holds (run.sh makes them with QEMU's dumpdtb):
     riscv64.dtb  qemu-system-riscv64 -M virt, -append 'hvbook.budget=5 hvbook.token=abc'
     aarch64.dtb  qemu-system-aarch64 -M virt, the same -append
     noargs.dtb   qemu-system-riscv64 -M virt with no -append at all
   A file whose QEMU is not installed is missing; its checks are skipped, as
   elf_test skips the AArch64 file when there is no AArch64 compiler. The
   damaged copies are made from riscv64.dtb, or aarch64.dtb without it.

   page_alloc and boot_args_parse stop the program (panic, power_off) or
   print on failure, so those checks run in a child process and look at its
   exit status and output. */
#define _GNU_SOURCE /* memmem */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"

static const char *dtb_dir;

/* Run fn(arg) in a child with its output captured in out[] (NUL-terminated).
   Returns the child's exit status, or -1 if it was killed by a signal. */
static int in_child(void (*fn)(void *), void *arg, char *out, size_t outsize)
{
    int fds[2];
    if (pipe(fds) != 0)
        return -1;
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        close(fds[0]);
        dup2(fds[1], 1);
        fn(arg);
        fflush(stdout);
        _exit(0);
    }
    close(fds[1]);
    size_t n = 0;
    ssize_t r;
    while (n + 1 < outsize && (r = read(fds[0], out + n, outsize - 1 - n)) > 0)
        n += (size_t)r;
    out[n] = 0;
    close(fds[0]);
    int status = 0;
    waitpid(pid, &status, 0);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

/* ---------------------------------------------------------------------------
   page_alloc. The pool is a piece of a host buffer; the rest of the buffer
   is there so that a wrong answer is a pointer we can look at, not a crash. */
#define ARENA (256 * 1024)
static u8 *arena; /* 64 KiB aligned, ARENA bytes */

static void alloc_past_pool(void *arg)
{
    (void)arg;
    // Pool: two pages at arena + 4 KiB. 64 KiB alignment moves the address
    // to arena + 64 KiB, far past the pool's end at arena + 12 KiB.
    page_init((uintptr_t)arena + 4096, (uintptr_t)arena + 3 * 4096);
    void *p = page_alloc(1, 64 * 1024);
    printf("returned %p\n", p);
}

static void alloc_exact(void *arg)
{
    (void)arg;
    page_init((uintptr_t)arena + 4096, (uintptr_t)arena + 3 * 4096);
    u8 *a = page_alloc(1, 4096), *b = page_alloc(1, 8192);
    printf("a=%lu b=%lu\n", (unsigned long)(a - arena), (unsigned long)(b - arena));
    page_alloc(1, 4096); // the pool is empty now: this one must panic
    printf("returned a third page\n");
}

static void alloc_overflow(void *arg)
{
    (void)arg;
    page_init((uintptr_t)arena + 4096, (uintptr_t)arena + 3 * 4096);
    page_alloc(~(size_t)0 / 2, 4096); // npages * PAGE_SIZE would wrap
    printf("returned\n");
}

static void test_page_alloc(void)
{
    char out[512];
    arena = aligned_alloc(64 * 1024, ARENA);
    memset(arena, 0xAA, ARENA);

    int st = in_child(alloc_past_pool, NULL, out, sizeof(out));
    if (st == 1 && strstr(out, "out of memory"))
        pass("page-alloc-alignment-past-pool");
    else
        fail("page-alloc-alignment-past-pool",
             "an alignment that moves past the pool's end must panic (status %d, output: %.80s)",
             st, out);

    st = in_child(alloc_exact, NULL, out, sizeof(out));
    if (st == 1 && strstr(out, "a=4096 b=8192") && strstr(out, "out of memory"))
        pass("page-alloc-fills-pool-then-stops");
    else
        fail("page-alloc-fills-pool-then-stops", "status %d, output: %.120s", st, out);

    st = in_child(alloc_overflow, NULL, out, sizeof(out));
    if (st == 1 && strstr(out, "out of memory"))
        pass("page-alloc-huge-count");
    else
        fail("page-alloc-huge-count", "status %d, output: %.80s", st, out);

    // Zeroed pages, in this process: the pool is the whole arena.
    page_init((uintptr_t)arena, (uintptr_t)arena + ARENA);
    u8 *p = page_alloc(2, 16384);
    bool zero = ((uintptr_t)p & 16383) == 0;
    for (int i = 0; i < 8192 && zero; i++)
        zero = p[i] == 0;
    zero ? pass("page-alloc-aligned-and-zeroed") : fail("page-alloc-aligned-and-zeroed",
                                                         "page at %p not aligned or not zero", p);
    free(arena);
}

/* ---------------------------------------------------------------------------
   fdt_bootargs on device trees written by QEMU. */
static u8 *load_dtb(const char *name, size_t *size)
{
    char p[600];
    snprintf(p, sizeof(p), "%s/%s", dtb_dir, name);
    return load_file(p, size);
}

static u32 get_be32(const u8 *p)
{
    return (u32)p[0] << 24 | (u32)p[1] << 16 | (u32)p[2] << 8 | p[3];
}

static void put_be32(u8 *p, u32 v)
{
    p[0] = (u8)(v >> 24);
    p[1] = (u8)(v >> 16);
    p[2] = (u8)(v >> 8);
    p[3] = (u8)v;
}

#define WANT_ARGS "hvbook.budget=5 hvbook.token=abc"

static void check_dtb(const char *name, const char *file)
{
    size_t size;
    u8 *f = load_dtb(file, &size);
    if (!f)
        return; // that QEMU is not installed

    const char *args = fdt_bootargs(f);
    if (!args)
        fail(name, "no bootargs found in QEMU's own device tree");
    else if (strcmp(args, WANT_ARGS) != 0)
        fail(name, "bootargs \"%s\", QEMU was given \"%s\"", args, WANT_ARGS);
    else if ((const u8 *)args < f || (const u8 *)args >= f + size)
        fail(name, "the string returned is not inside the blob");
    else
        pass(name);
    free(f);
}

/* The offset of the bootargs value in the blob, found independently: the
   property's name in the strings block, then the FDT_PROP that uses it. */
static long find_bootargs_prop(const u8 *f)
{
    u32 off_struct = get_be32(f + 8), off_strings = get_be32(f + 12);
    u32 size_strings = get_be32(f + 32), size_struct = get_be32(f + 36);
    long nameoff = -1;
    for (u32 i = 0; i + 9 <= size_strings; i++)
        if (memcmp(f + off_strings + i, "bootargs", 9) == 0 &&
            (i == 0 || f[off_strings + i - 1] == 0))
            nameoff = i;
    if (nameoff < 0)
        return -1;
    for (u32 i = 0; i + 12 <= size_struct; i += 4)
        if (get_be32(f + off_struct + i) == 3 && get_be32(f + off_struct + i + 8) == (u32)nameoff)
            return (long)(off_struct + i); // the FDT_PROP token
    return -1;
}

static void expect_no_args(const char *name, const u8 *blob, const char *why)
{
    const char *a = fdt_bootargs(blob);
    if (a == NULL)
        pass(name);
    else
        fail(name, "%s, yet fdt_bootargs returned \"%.40s\"", why, a);
}

static void test_fdt(void)
{
    check_dtb("fdt-riscv64-qemu-bootargs", "riscv64.dtb");
    check_dtb("fdt-aarch64-qemu-bootargs", "aarch64.dtb");
    expect_no_args("fdt-null", NULL, "there is no blob");

    size_t size;
    u8 *f = load_dtb("noargs.dtb", &size);
    if (f) {
        const char *a = fdt_bootargs(f);
        // QEMU writes an empty bootargs, or none, when there is no -append.
        if (a == NULL || a[0] == 0)
            pass("fdt-qemu-no-append");
        else
            fail("fdt-qemu-no-append", "bootargs \"%s\" from a run without -append", a);
        free(f);
    }

    u8 *good = load_dtb("riscv64.dtb", &size);
    if (!good)
        good = load_dtb("aarch64.dtb", &size);
    if (!good)
        return; // neither QEMU is installed
    // QEMU pads the file it dumps to 1 MiB; the blob is totalsize bytes.
    u32 total = get_be32(good + 4);
    if (total <= size)
        size = total;
    long prop = find_bootargs_prop(good);
    if (total != size || prop < 0) {
        fail("fdt-corrupted", "QEMU's tree: totalsize %u, file %zu bytes, bootargs at %ld", total,
             size, prop);
        free(good);
        return;
    }
    u8 *c = malloc(size);
#define FRESH() memcpy(c, good, size)

    FRESH();
    c[0] ^= 0xFF;
    expect_no_args("fdt-bad-magic", c, "the magic is wrong");

    FRESH();
    put_be32(c + 8, total + 8);
    expect_no_args("fdt-struct-past-end", c, "off_dt_struct is past totalsize");

    FRESH();
    put_be32(c + 20, 16);
    expect_no_args("fdt-version-16", c, "version 16 has no size_dt_struct");

    FRESH();
    put_be32(c + 24, 18);
    expect_no_args("fdt-last-comp-18", c, "last_comp_version says a v17 reader cannot read it");

    FRESH();
    put_be32(c + 36, 0xFFFFFFF0u);
    expect_no_args("fdt-struct-size-huge", c, "size_dt_struct wraps past totalsize");

    FRESH();
    put_be32(c + 12, total + 1);
    expect_no_args("fdt-strings-past-end", c, "off_dt_strings is past totalsize");

    FRESH();
    put_be32(c + prop + 4, 0x7FFFFFF0u); // the value's length
    expect_no_args("fdt-prop-len-huge", c, "the bootargs value is longer than the blob");

    FRESH();
    put_be32(c + prop + 8, 0xFFFFFF00u); // the name's offset
    expect_no_args("fdt-prop-nameoff-huge", c, "the property's name is outside the strings");

    FRESH();
    {
        u32 len = get_be32(c + prop + 4);
        c[prop + 12 + len - 1] = 'X'; // the string's terminating NUL
    }
    expect_no_args("fdt-bootargs-unterminated", c, "the value has no terminating NUL");

    FRESH();
    put_be32(c + prop, 0x12345678u); // an unknown token where FDT_PROP was
    expect_no_args("fdt-unknown-token", c, "the walk meets a token it does not know");

    /* /chosen renamed: its bootargs are then another node's property. */
    FRESH();
    {
        u8 *ch = memmem(c + get_be32(c + 8), get_be32(c + 36), "chosen", 7);
        if (ch) {
            ch[0] = 'k';
            expect_no_args("fdt-bootargs-outside-chosen", c, "no node is called chosen");
        } else {
            fail("fdt-bootargs-outside-chosen", "no chosen node in QEMU's tree");
        }
    }

    /* Truncated copies. The function has no size argument: it trusts the
       header's totalsize, so a truncated blob is one whose totalsize says so.
       Cut at every 4-byte boundary; each copy is a buffer of exactly that size
       (at least the 40-byte header), so any read past it is an ASan report. */
    int cuts = 0, found = 0;
    for (u32 cut = 0; cut < total; cut += 4) {
        size_t n = cut < 40 ? 40 : cut;
        u8 *t = malloc(n);
        memcpy(t, good, n < size ? n : size);
        put_be32(t + 4, cut);
        const char *a = fdt_bootargs(t);
        found += a != NULL;
        if (a && (strcmp(a, WANT_ARGS) != 0 || (const u8 *)a + strlen(a) >= t + n)) {
            fail("fdt-truncated", "cut at %u: returned a wrong or overrunning string", cut);
            cuts = -1;
            free(t);
            break;
        }
        cuts++;
        free(t);
    }
    if (cuts > 0) {
        printf("PASS fdt-truncated (%d cuts, bootargs found in %d)\n", cuts, found);
    }

    /* Random damage: flip bytes anywhere in the blob. Whatever it answers,
       it must not read outside the blob (ASan) or loop (the watchdog). */
    u64 rng = 0x2545F4914F6CDD1Dull;
    for (int round = 0; round < 20000; round++) {
        FRESH();
        for (int k = 0; k < 4; k++) {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            c[8 + rng % (size - 8)] = (u8)(rng >> 32);
        }
        put_be32(c + 4, (u32)size); // the buffer really is this long
        const char *a = fdt_bootargs(c);
        if (a && ((const u8 *)a < c || (const u8 *)a >= c + size)) {
            fail("fdt-random-damage", "round %d returned a pointer outside the blob", round);
            break;
        }
        if (round == 19999)
            pass("fdt-random-damage-20000");
    }
#undef FRESH
    free(c);
    free(good);
}

/* ---------------------------------------------------------------------------
   fdt_memory on QEMU's trees (its default RAM: 128 MiB), and the device-tree
   writer: what it writes, the reader (and dtc's rules) must read back. */
static void check_memory(const char *name, const char *file, u64 base)
{
    size_t size;
    u64 b = 0, sz = 0;
    u8 *f = load_dtb(file, &size);
    if (!f)
        return;
    if (!fdt_memory(f, &b, &sz))
        fail(name, "no /memory reg found");
    else if (b != base || sz != 128 * MiB)
        fail(name, "memory 0x%lx + 0x%lx, expected 0x%lx + 128 MiB",
             (unsigned long)b, (unsigned long)sz, (unsigned long)base);
    else
        pass(name);
    free(f);
}

static void test_fdt_writer(void)
{
    check_memory("fdt-memory-riscv64-qemu", "riscv64.dtb", 0x80000000UL);
    check_memory("fdt-memory-aarch64-qemu", "aarch64.dtb", 0x40000000UL);

    static struct fdt_writer w;
    u8 buf[1024];
    memset(buf, 0xAA, sizeof(buf));
    fdtw_begin(&w, buf, 512); // the rest is a canary
    w.boot_cpuid = 0x101;     // its cpu node's reg: Aff1 1, Aff0 1
    fdtw_begin_node(&w, "");
    fdtw_prop_u32(&w, "#address-cells", 2);
    fdtw_prop_u32(&w, "#size-cells", 2);
    fdtw_begin_node(&w, "chosen");
    fdtw_prop_str(&w, "bootargs", WANT_ARGS);
    fdtw_end_node(&w);
    u32 reg[] = {0, 0x40000000, 0, 0x8000000};
    fdtw_begin_node(&w, "memory@40000000");
    fdtw_prop_str(&w, "device_type", "memory");
    fdtw_prop_cells(&w, "reg", reg, 4);
    fdtw_end_node(&w);
    fdtw_begin_node(&w, "uart@9000000");
    fdtw_prop_cells(&w, "reg", reg, 4); // a second "reg": one string
    fdtw_prop(&w, "interrupt-controller", NULL, 0);
    fdtw_end_node(&w);
    fdtw_end_node(&w);
    u32 total = fdtw_finish(&w);

    const char *a = fdt_bootargs(buf);
    u64 base = 0, size = 0;
    u32 nreg = 0;
    const char *strings = (const char *)buf + get_be32(buf + 12);
    u32 nstrings = get_be32(buf + 32);
    int regs = 0;
    for (u32 i = 0; i + 4 <= nstrings; i++)
        regs += memcmp(strings + i, "reg", 4) == 0 && (i == 0 || strings[i - 1] == 0);
    bool canary = true;
    for (u32 i = 512; i < sizeof(buf); i++)
        canary = canary && buf[i] == 0xAA;
    if (total == 0 || total > 512 || get_be32(buf) != 0xd00dfeed ||
        get_be32(buf + 4) != total)
        fail("fdtw-header", "finish returned %u, magic 0x%x, totalsize %u", total,
             get_be32(buf), get_be32(buf + 4));
    else if (get_be32(buf + 28) != 0x101)
        fail("fdtw-header", "boot_cpuid_phys %u, not the 0x101 asked for",
             get_be32(buf + 28));
    else if (get_be32(buf + 20) != 17 || get_be32(buf + 24) != 16 ||
             get_be32(buf + 16) != 40 || get_be32(buf + 8) != 56 ||
             get_be32(buf + 12) + nstrings != total)
        fail("fdtw-header", "version %u/%u, rsvmap at %u, struct at %u, strings at %u",
             get_be32(buf + 20), get_be32(buf + 24), get_be32(buf + 16), get_be32(buf + 8),
             get_be32(buf + 12));
    else if (!a || strcmp(a, WANT_ARGS) != 0)
        fail("fdtw-read-back", "bootargs \"%s\"", a ? a : "(none)");
    else if (!fdt_memory(buf, &base, &size) || base != 0x40000000 || size != 0x8000000)
        fail("fdtw-read-back", "memory 0x%lx + 0x%lx", (unsigned long)base,
             (unsigned long)size);
    else if (!fdt_property(buf, "uart", "interrupt-controller", &nreg) || nreg != 0)
        fail("fdtw-read-back", "the empty property is missing or not empty");
    else if (regs != 1)
        fail("fdtw-strings-once", "\"reg\" is %d times in the strings block", regs);
    else if (!canary)
        fail("fdtw-bounds", "the writer wrote past the buffer it was given");
    else
        pass("fdtw-writes-what-the-reader-reads");

    // A buffer too small: finish says 0, nothing is written past the end.
    memset(buf, 0xAA, sizeof(buf));
    fdtw_begin(&w, buf, 100);
    fdtw_begin_node(&w, "");
    fdtw_prop_str(&w, "bootargs", WANT_ARGS WANT_ARGS);
    fdtw_end_node(&w);
    total = fdtw_finish(&w);
    canary = true;
    for (u32 i = 100; i < sizeof(buf); i++)
        canary = canary && buf[i] == 0xAA;
    if (total == 0 && canary)
        pass("fdtw-overflow-refused");
    else
        fail("fdtw-overflow-refused", "finish returned %u, canary %s", total,
             canary ? "intact" : "overwritten");
}

/* ---------------------------------------------------------------------------
   boot_args_parse. It reports malformed words with printf, so each case runs
   in a child that prints the result. */
struct parse_case {
    const char *name, *cmdline;
    u32 budget;          /* expected budget_s */
    const char *token;   /* expected token */
    bool complains;      /* expects a "malformed" line */
};

static void parse_in_child(void *arg)
{
    const struct parse_case *pc = arg;
    boot_args_parse(pc->cmdline);
    printf("\nbudget=%u token=[%s]\n", boot_args.budget_s, boot_args.token);
}

static void test_parse(void)
{
    static const struct parse_case cases[] = {
        {"args-qemu-line", WANT_ARGS, 5, "abc", false},
        {"args-null", NULL, BUDGET_DEFAULT_S, "", false},
        {"args-empty", "", BUDGET_DEFAULT_S, "", false},
        {"args-only-spaces", "    ", BUDGET_DEFAULT_S, "", false},
        {"args-other-words", "console=ttyS0 root=/dev/vda quiet", BUDGET_DEFAULT_S, "", false},
        {"args-extra-spaces", "  hvbook.token=Z9   hvbook.budget=0  ", 0, "Z9", false},
        {"args-budget-zero", "hvbook.budget=0", 0, "", false},
        {"args-budget-largest", "hvbook.budget=9999999", 9999999, "", false},
        {"args-budget-too-large", "hvbook.budget=99999999", BUDGET_DEFAULT_S, "", true},
        {"args-budget-2-to-32", "hvbook.budget=4294967296", BUDGET_DEFAULT_S, "", true},
        {"args-budget-huge", "hvbook.budget=184467440737095516160", BUDGET_DEFAULT_S, "", true},
        {"args-budget-empty", "hvbook.budget=", BUDGET_DEFAULT_S, "", true},
        {"args-budget-negative", "hvbook.budget=-5", BUDGET_DEFAULT_S, "", true},
        {"args-budget-letters", "hvbook.budget=5s", BUDGET_DEFAULT_S, "", true},
        {"args-budget-hex", "hvbook.budget=0x10", BUDGET_DEFAULT_S, "", true},
        {"args-budget-plus", "hvbook.budget=+5", BUDGET_DEFAULT_S, "", true},
        {"args-budget-bad-keeps-good", "hvbook.budget=7 hvbook.budget=x", 7, "", true},
        {"args-budget-last-wins", "hvbook.budget=7 hvbook.budget=9", 9, "", false},
        {"args-budget-prefix-only", "hvbook.budgetary=5 xhvbook.budget=5", BUDGET_DEFAULT_S, "",
         false},
        {"args-token-32", "hvbook.token=0123456789abcdefABCDEF0123456789", BUDGET_DEFAULT_S,
         "0123456789abcdefABCDEF0123456789", false},
        {"args-token-33", "hvbook.token=0123456789abcdefABCDEF0123456789x", BUDGET_DEFAULT_S, "",
         true},
        {"args-token-empty", "hvbook.token=", BUDGET_DEFAULT_S, "", true},
        {"args-token-punctuation", "hvbook.token=abc;rm", BUDGET_DEFAULT_S, "", true},
        {"args-token-newline", "hvbook.token=abc\nVerdict", BUDGET_DEFAULT_S, "", true},
        {"args-token-high-bytes", "hvbook.token=ab\xc3\xa9", BUDGET_DEFAULT_S, "", true},
        {"args-token-bad-keeps-good", "hvbook.token=good hvbook.token=b@d", BUDGET_DEFAULT_S,
         "good", true},
    };
    for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
        const struct parse_case *pc = &cases[i];
        char out[512], want[128];
        int st = in_child(parse_in_child, (void *)pc, out, sizeof(out));
        snprintf(want, sizeof(want), "budget=%u token=[%s]", pc->budget, pc->token);
        bool complained = strstr(out, "malformed") != NULL;
        if (st != 0)
            fail(pc->name, "the parser stopped the program (status %d): %.100s", st, out);
        else if (!strstr(out, want))
            fail(pc->name, "wanted %s, got: %.100s", want, out);
        else if (complained && !pc->complains)
            fail(pc->name, "a good line was reported as malformed: %.100s", out);
        else if (!complained && pc->complains)
            fail(pc->name, "a malformed word went unreported");
        else
            pass(pc->name);
    }
}

int main(int argc, char **argv)
{
    harness_start(30);
    if (argc != 2) {
        fail("kit-test-usage", "usage: kit_test DTB_DIR");
        return 1;
    }
    dtb_dir = argv[1];
    test_page_alloc();
    test_fdt();
    test_fdt_writer();
    test_parse();
    return 0;
}
