/* Unit tests for elf_load (common.c), on ELF files made by the real cross
   compilers from elf_prog.c (run.sh builds them).

   Usage: elf_test ELF_DIR

   ELF_DIR holds:
     good.elf      riscv64, linked at 0x80200000: text, data and bss in guest RAM
     entry-out.elf riscv64, linked at 0x90000000: outside the 16 MiB at 0x80000000
     data-out.elf  riscv64, text at 0x80200000 but .data at 0x90000000
     a64.elf       aarch64, linked at 0x40200000 (only if the compiler exists)
     entry-data.elf    riscv64, entry point = data_bytes (in the RW segment)
     entry-nowhere.elf riscv64, entry point 0x80100000 (in RAM, in no segment)
     overlap.elf       riscv64, .data linked 16 bytes into .text

   Broken files are good.elf with a few bytes changed in memory. */
#include <elf.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"

#define RISCV_RAM 0x80000000ull
#define ARM_RAM 0x40000000ull
#define RAM_SIZE (16 * MiB)

static const char *elf_dir;
static u8 *ram;

static u8 *load(const char *name, size_t *size)
{
    char p[600];
    snprintf(p, sizeof(p), "%s/%s", elf_dir, name);
    return load_file(p, size);
}

/* Headers are read with memcpy: a test must not make unaligned accesses of
   its own. */
static Elf64_Ehdr ehdr(const u8 *f)
{
    Elf64_Ehdr h;
    memcpy(&h, f, sizeof(h));
    return h;
}

static Elf64_Phdr phdr(const u8 *f, int i)
{
    Elf64_Ehdr h = ehdr(f);
    Elf64_Phdr p;
    memcpy(&p, f + h.e_phoff + (u64)i * sizeof(p), sizeof(p));
    return p;
}

static void set_phdr(u8 *f, int i, const Elf64_Phdr *p)
{
    Elf64_Ehdr h = ehdr(f);
    memcpy(f + h.e_phoff + (u64)i * sizeof(*p), p, sizeof(*p));
}

/* The index of the n-th PT_LOAD program header, or -1. */
static int nth_load(const u8 *f, int n)
{
    Elf64_Ehdr h = ehdr(f);
    for (int i = 0; i < h.e_phnum; i++)
        if (phdr(f, i).p_type == PT_LOAD && n-- == 0)
            return i;
    return -1;
}

static void fill_ram(void)
{
    memset(ram, 0xAA, RAM_SIZE);
}

static bool ram_untouched(void)
{
    for (size_t i = 0; i < RAM_SIZE; i++)
        if (ram[i] != 0xAA)
            return false;
    return true;
}

/* A good file: every PT_LOAD must be in RAM byte for byte, its tail zero, and
   the rest of RAM as it was. */
static void check_good(const char *name, const char *file, u16 machine, u64 gpa)
{
    size_t size;
    u8 *f = load(file, &size);
    char n[80];
    if (!f) {
        fail(name, "cannot read %s/%s", elf_dir, file);
        return;
    }
    fill_ram();
    u64 entry = 0;
    const char *err = elf_load(f, size, machine, gpa, RAM_SIZE, ram, &entry);
    if (!expect_ok(name, err)) {
        free(f);
        return;
    }
    Elf64_Ehdr h = ehdr(f);
    snprintf(n, sizeof(n), "%s-entry", name);
    if (entry != h.e_entry)
        fail(n, "entry 0x%lx, the file says 0x%lx", entry, (u64)h.e_entry);
    else
        pass(n);

    bool copied = true, zeroed = true, had_bss = false;
    u64 end = 0;
    for (int i = 0; i < h.e_phnum; i++) {
        Elf64_Phdr p = phdr(f, i);
        if (p.p_type != PT_LOAD)
            continue;
        const u8 *dst = ram + (p.p_paddr - gpa);
        if (memcmp(dst, f + p.p_offset, p.p_filesz) != 0)
            copied = false;
        for (u64 k = p.p_filesz; k < p.p_memsz; k++)
            if (dst[k] != 0)
                zeroed = false;
        had_bss |= p.p_memsz > p.p_filesz;
        if (p.p_paddr - gpa + p.p_memsz > end)
            end = p.p_paddr - gpa + p.p_memsz;
    }
    snprintf(n, sizeof(n), "%s-segments-copied", name);
    copied ? pass(n) : fail(n, "guest RAM differs from the file's segments");
    snprintf(n, sizeof(n), "%s-bss-zeroed", name);
    if (!had_bss)
        fail(n, "the test program has no segment with p_memsz > p_filesz");
    else
        zeroed ? pass(n) : fail(n, "the bytes between p_filesz and p_memsz are not zero");
    snprintf(n, sizeof(n), "%s-rest-untouched", name);
    if (ram[0] != 0xAA || ram[end] != 0xAA || ram[RAM_SIZE - 1] != 0xAA)
        fail(n, "bytes outside every segment were written");
    else
        pass(n);
    free(f);
}

/* Load `f` (possibly modified) and expect an error containing `want`, with
   guest RAM left exactly as it was. */
static void check_bad(const char *name, const u8 *f, size_t size, u16 machine, const char *want)
{
    u64 entry = 0;
    fill_ram();
    if (expect_error(name, elf_load(f, size, machine, RISCV_RAM, RAM_SIZE, ram, &entry), want)) {
        char n[80];
        snprintf(n, sizeof(n), "%s-nothing-copied", name);
        ram_untouched() ? pass(n) : fail(n, "guest RAM was written before the error was found");
    }
}

/* A fresh, writable copy of good.elf with `extra` spare bytes at the end. */
static u8 *good_copy(size_t *size, size_t extra)
{
    size_t n;
    u8 *g = load("good.elf", &n);
    if (!g)
        return NULL;
    u8 *c = malloc(n + extra);
    memcpy(c, g, n);
    memset(c + n, 0, extra);
    free(g);
    *size = n;
    return c;
}

static void test_broken(void)
{
    size_t size;
    u8 *f;
    Elf64_Ehdr h;
    Elf64_Phdr p;

    if (!(f = good_copy(&size, 0))) {
        fail("elf-broken", "cannot read %s/good.elf", elf_dir);
        return;
    }
    int first = nth_load(f, 0), second = nth_load(f, 1);
    free(f);
    if (first < 0 || second < 0) {
        fail("elf-broken", "good.elf should have two PT_LOAD segments");
        return;
    }

    f = good_copy(&size, 0);
    f[1] = 'X';
    check_bad("elf-bad-magic", f, size, EM_RISCV, "bad magic");
    free(f);

    f = good_copy(&size, 0);
    check_bad("elf-wrong-machine", f, size, EM_AARCH64, "another machine");
    f[EI_CLASS] = ELFCLASS32;
    check_bad("elf-32-bit", f, size, EM_RISCV, "not a 64-bit ELF");
    free(f);

    f = good_copy(&size, 0);
    f[EI_DATA] = ELFDATA2MSB;
    check_bad("elf-big-endian", f, size, EM_RISCV, "not little-endian");
    free(f);

    f = good_copy(&size, 0);
    h = ehdr(f);
    h.e_type = ET_DYN;
    memcpy(f, &h, sizeof(h));
    check_bad("elf-not-executable", f, size, EM_RISCV, "not an executable");
    free(f);

    f = good_copy(&size, 0);
    check_bad("elf-truncated-20-bytes", f, 20, EM_RISCV, "shorter than an ELF header");
    h = ehdr(f);
    check_bad("elf-truncated-in-phdrs", f, h.e_phoff + sizeof(Elf64_Phdr) + 20, EM_RISCV,
              "program header table runs past the end of the file");
    p = phdr(f, second);
    check_bad("elf-truncated-in-segment", f, p.p_offset + p.p_filesz / 2, EM_RISCV,
              "runs past the end of the file");
    free(f);

    f = good_copy(&size, 0);
    h = ehdr(f);
    h.e_phnum = 0xFFFF;
    memcpy(f, &h, sizeof(h));
    check_bad("elf-phnum-huge", f, size, EM_RISCV, "program header table runs past");
    h.e_phnum = 0;
    memcpy(f, &h, sizeof(h));
    check_bad("elf-phnum-zero", f, size, EM_RISCV, "no program headers");
    free(f);

    f = good_copy(&size, 0);
    h = ehdr(f);
    for (int i = 0; i < h.e_phnum; i++) {
        p = phdr(f, i);
        if (p.p_type == PT_LOAD)
            p.p_type = PT_NOTE;
        set_phdr(f, i, &p);
    }
    check_bad("elf-no-load-segment", f, size, EM_RISCV, "no PT_LOAD");
    free(f);

    f = good_copy(&size, 0);
    p = phdr(f, second);
    p.p_filesz = p.p_memsz + 1;
    set_phdr(f, second, &p);
    check_bad("elf-filesz-above-memsz", f, size, EM_RISCV, "p_filesz > p_memsz");
    free(f);

    f = good_copy(&size, 0);
    p = phdr(f, second);
    p.p_offset = size - 4;
    set_phdr(f, second, &p);
    check_bad("elf-offset-plus-filesz-past-file", f, size, EM_RISCV, "runs past the end of the file");
    p.p_offset = 0xFFFFFFFFFFFFFFF0ull;   /* offset + filesz wraps around to a small number */
    set_phdr(f, second, &p);
    check_bad("elf-offset-overflow", f, size, EM_RISCV, "runs past the end of the file");
    free(f);

    /* p_vaddr (and p_paddr, whichever the loader uses) near 2^64: the end
       address wraps around and would look small if added naively. */
    f = good_copy(&size, 0);
    p = phdr(f, second);
    p.p_vaddr = p.p_paddr = 0xFFFFFFFFFFFFF000ull;
    p.p_memsz = 0x2000;
    set_phdr(f, second, &p);
    check_bad("elf-address-overflow", f, size, EM_RISCV, "outside guest RAM");
    free(f);

    f = good_copy(&size, 0);
    p = phdr(f, second);
    p.p_memsz = 0xFFFFFFFFFFFFFF00ull;
    set_phdr(f, second, &p);
    check_bad("elf-memsz-overflow", f, size, EM_RISCV, "outside guest RAM");
    free(f);

    /* The version fields: EV_CURRENT (1) in both places, and nothing else. */
    f = good_copy(&size, 0);
    h = ehdr(f);
    h.e_version = 0;
    memcpy(f, &h, sizeof(h));
    check_bad("elf-version-zero", f, size, EM_RISCV, "invalid version");
    h.e_version = 2;
    memcpy(f, &h, sizeof(h));
    check_bad("elf-version-two", f, size, EM_RISCV, "invalid version");
    free(f);
    f = good_copy(&size, 0);
    f[EI_VERSION] = EV_NONE;
    check_bad("elf-ident-version-zero", f, size, EM_RISCV, "invalid version");
    free(f);

    /* The entry point just past the file bytes of the text segment: inside
       guest RAM, but not code the file provides. */
    f = good_copy(&size, 0);
    h = ehdr(f);
    p = phdr(f, first);
    h.e_entry = p.p_paddr + p.p_filesz;
    memcpy(f, &h, sizeof(h));
    check_bad("elf-entry-past-text", f, size, EM_RISCV, "executable (PF_X) segment");
    free(f);

    /* Seventeen loadable segments, none overlapping: a program header table
       of our own at the end of the file, each segment a 16-byte copy of the
       text at its own address. */
    f = good_copy(&size, 17 * sizeof(Elf64_Phdr));
    h = ehdr(f);
    p = phdr(f, first);
    for (int i = 0; i < 17; i++) {
        Elf64_Phdr q = p;
        q.p_paddr = q.p_vaddr = p.p_paddr + (u64)i * 0x10000;
        q.p_filesz = q.p_memsz = 16;
        memcpy(f + size + (size_t)i * sizeof(q), &q, sizeof(q));
    }
    h.e_phoff = size;
    h.e_phnum = 17;
    h.e_entry = p.p_paddr;
    memcpy(f, &h, sizeof(h));
    check_bad("elf-too-many-segments", f, size + 17 * sizeof(Elf64_Phdr), EM_RISCV,
              "more than 16 PT_LOAD");
    /* ... and sixteen load. */
    h.e_phnum = 16;
    memcpy(f, &h, sizeof(h));
    u64 entry;
    fill_ram();
    expect_ok("elf-sixteen-segments", elf_load(f, size + 17 * sizeof(Elf64_Phdr), EM_RISCV,
                                               RISCV_RAM, RAM_SIZE, ram, &entry));
    /* Two of them at the same address: an overlap the linker did not make. */
    {
        Elf64_Phdr q;
        memcpy(&q, f + size + 5 * sizeof(q), sizeof(q));
        q.p_paddr = p.p_paddr + 3 * 0x10000 + 8;
        memcpy(f + size + 5 * sizeof(q), &q, sizeof(q));
        check_bad("elf-overlap-patched", f, size + 17 * sizeof(Elf64_Phdr), EM_RISCV,
                  "two segments overlap");
        /* ... but an empty segment inside another overlaps nothing. */
        q.p_memsz = q.p_filesz = 0;
        memcpy(f + size + 5 * sizeof(q), &q, sizeof(q));
        fill_ram();
        expect_ok("elf-empty-segment-overlaps-nothing",
                  elf_load(f, size + 17 * sizeof(Elf64_Phdr), EM_RISCV, RISCV_RAM, RAM_SIZE, ram,
                           &entry));
    }
    free(f);

    /* The program header table at an odd offset. Reading it through a
       struct pointer is undefined behaviour in C (UBSan stops the program),
       and on AArch64 with the MMU off it is an alignment fault. Run it in a
       child, so a crash is one FAIL and not the end of the test run. */
    f = good_copy(&size, 64 * 8 + 1);
    h = ehdr(f);
    memcpy(f + size + 1, f + h.e_phoff, (size_t)h.e_phnum * sizeof(Elf64_Phdr));
    h.e_phoff = size + 1;
    memcpy(f, &h, sizeof(h));
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        u64 entry;
        fill_ram();
        elf_load(f, size + 1 + (size_t)h.e_phnum * sizeof(Elf64_Phdr), EM_RISCV, RISCV_RAM, RAM_SIZE,
                 ram, &entry);
        _exit(0);
    }
    int status = 0;
    waitpid(pid, &status, 0);
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
        pass("elf-misaligned-phdr-table");
    else
        fail("elf-misaligned-phdr-table", "elf_load crashed on a program header table at an odd "
             "offset: a misaligned access (the sanitizer report is on stderr, build/unit/elf-test.err)");
    free(f);
}

int main(int argc, char **argv)
{
    harness_start(30);
    if (argc != 2) {
        fail("elf-test-usage", "usage: elf_test ELF_DIR");
        return 1;
    }
    elf_dir = argv[1];
    ram = malloc(RAM_SIZE);

    check_good("elf-good", "good.elf", EM_RISCV, RISCV_RAM);

    size_t size;
    u8 *f = load("entry-out.elf", &size);
    if (f)
        check_bad("elf-outside-guest-ram", f, size, EM_RISCV, "outside guest RAM");
    else
        fail("elf-outside-guest-ram", "cannot read %s/entry-out.elf", elf_dir);
    free(f);
    f = load("data-out.elf", &size);
    if (f)
        check_bad("elf-segment-outside-guest-ram", f, size, EM_RISCV, "a segment lies outside guest RAM");
    else
        fail("elf-segment-outside-guest-ram", "cannot read %s/data-out.elf", elf_dir);
    free(f);

    /* Files the linker made that must not load. */
    static const struct {
        const char *name, *file, *want;
    } refused[] = {
        {"elf-entry-in-data-segment", "entry-data.elf", "executable (PF_X) segment"},
        {"elf-entry-in-no-segment", "entry-nowhere.elf", "executable (PF_X) segment"},
        {"elf-overlapping-segments", "overlap.elf", "two segments overlap"},
    };
    for (size_t i = 0; i < ARRAY_SIZE(refused); i++) {
        f = load(refused[i].file, &size);
        if (f)
            check_bad(refused[i].name, f, size, EM_RISCV, refused[i].want);
        else
            fail(refused[i].name, "cannot read %s/%s", elf_dir, refused[i].file);
        free(f);
    }

    f = load("a64.elf", &size);
    if (f) {
        check_bad("elf-aarch64-file-on-riscv", f, size, EM_RISCV, "another machine");
        check_good("elf-aarch64-good", "a64.elf", EM_AARCH64, ARM_RAM);
        free(f);
    }

    test_broken();
    free(ram);
    return 0;
}
