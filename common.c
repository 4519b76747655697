/*
## The bodies behind `common.h`

This file holds the few library routines a hypervisor cannot live without. None
of them is clever; all of them are small enough to check by eye, which matters
more here than speed: when something goes wrong in a hypervisor, `printf` is the
only window the student has, and it must not be the thing that is broken.
*/
#include "common.h"

/*
### Memory routines

Byte-at-a-time loops. The Makefile passes `-fno-tree-loop-distribute-patterns`
so that GCC does not "optimise" the loop in `memset` into a call to `memset`,
which would be an endless recursion.
*/
void *memcpy(void *dst, const void *src, size_t n)
{
    u8 *d = dst;
    const u8 *s = src;
    while (n--)
        *d++ = *s++;
    return dst;
}

void *memset(void *dst, int c, size_t n)
{
    u8 *d = dst;
    while (n--)
        *d++ = (u8)c;
    return dst;
}

int memcmp(const void *a, const void *b, size_t n)
{
    const u8 *x = a, *y = b;
    for (; n; n--, x++, y++)
        if (*x != *y)
            return *x - *y;
    return 0;
}

size_t strlen(const char *s)
{
    size_t n = 0;
    while (s[n])
        n++;
    return n;
}

/*
### `printf`

A format string is read one character at a time. Ordinary characters go
straight to the console; a `%` starts a *conversion*, read in this order:

    %  [-]  [0]  [width]  [l | ll | z]  conversion
       |     |      |          |            d i u x X p s c %
       |     |      |          length of the argument (long, long long, size_t)
       |     |      minimum field width
       |     pad numbers with zeros instead of spaces
       left-align in the field

Numbers are converted into a small buffer, least significant digit first, and
then printed backwards with the padding the field asks for.
*/
static void put_padded(const char *s, size_t len, int width, bool left,
                       char pad)
{
    int fill = width > (int)len ? width - (int)len : 0;
    if (!left)
        while (fill-- > 0)
            console_putchar(pad);
    while (len--)
        console_putchar(*s++);
    if (left)
        while (fill-- > 0)
            console_putchar(' ');
}

static void put_number(u64 v, unsigned base, bool upper, bool negative,
                       int width, bool left, char pad)
{
    const char *digits = upper ? "0123456789ABCDEF" : "0123456789abcdef";
    char buf[24];
    int i = sizeof(buf);
    do {
        buf[--i] = digits[v % base];
        v /= base;
    } while (v);
    if (negative) {
        // The sign goes before zero padding ("-0042"), after space padding.
        if (pad == '0') {
            console_putchar('-');
            width = width > 0 ? width - 1 : 0;
        } else {
            buf[--i] = '-';
        }
    }
    put_padded(&buf[i], sizeof(buf) - i, width, left, pad);
}

int vprintf(const char *fmt, va_list ap)
{
    for (; *fmt; fmt++) {
        if (*fmt != '%') {
            console_putchar(*fmt);
            continue;
        }
        fmt++;
        bool left = false;
        char pad = ' ';
        int width = 0, longs = 0;
        if (*fmt == '-') {
            left = true;
            fmt++;
        }
        if (*fmt == '0') {
            pad = '0';
            fmt++;
        }
        while (*fmt >= '0' && *fmt <= '9')
            width = width * 10 + (*fmt++ - '0');
        while (*fmt == 'l' || *fmt == 'z') {
            longs++;
            fmt++;
        }
        // On every architecture here long, long long and size_t are 64 bits.
        switch (*fmt) {
        case 'd':
        case 'i': {
            i64 v = longs ? va_arg(ap, i64) : va_arg(ap, int);
            put_number(v < 0 ? -(u64)v : (u64)v, 10, false, v < 0, width, left,
                       pad);
            break;
        }
        case 'u':
        case 'x':
        case 'X': {
            u64 v = longs ? va_arg(ap, u64) : va_arg(ap, unsigned int);
            put_number(v, *fmt == 'u' ? 10 : 16, *fmt == 'X', false, width,
                       left, pad);
            break;
        }
        case 'p':
            console_putchar('0');
            console_putchar('x');
            put_number((uintptr_t)va_arg(ap, void *), 16, false, false, width,
                       left, pad);
            break;
        case 's': {
            const char *s = va_arg(ap, const char *);
            if (!s)
                s = "(null)";
            put_padded(s, strlen(s), width, left, ' ');
            break;
        }
        case 'c':
            console_putchar(va_arg(ap, int));
            break;
        case '%':
            console_putchar('%');
            break;
        case '\0':
            return 0; // a lone '%' at the very end: nothing left to print
        default:
            // Unknown conversion: show it as written, so the mistake shows.
            console_putchar('%');
            console_putchar(*fmt);
        }
    }
    return 0;
}

int printf(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    return 0;
}

/*
`panic` is for the hypervisor's own failures: a disk it cannot read, a guest
it cannot load, a trap it did not expect. A guest that misbehaves is *not* a
panic; each architecture reports that as a VM fault with the guest's state.
Both end the same way, with `power_off(false)`.
*/
_Noreturn void panic(const char *fmt, ...)
{
    va_list ap;
    printf("\nhvbook: panic: ");
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    printf("\n");
    power_off(false);
}

/*
### The page allocator

The simplest allocator that works: a *bump pointer*. `next` walks upwards
through the free range; an allocation rounds it up to the alignment asked for,
hands out the pages and moves past them.

    page_start                next                               page_end
    |  handed out, never back  |  free ............................ |

The pages are zeroed before they are handed out. For page tables that is not a
nicety but a rule: a zero entry is an *invalid* entry on all three
architectures, and a table full of leftover bytes would map random memory.

The test for "does it fit?" is where a bump allocator usually goes wrong.
Addresses are unsigned, and unsigned arithmetic in C wraps around instead of
going negative (C11, 6.2.5 paragraph 9). If rounding `next` up to a large
alignment lands *past* `page_end`, then `page_end - p` is not a small
negative number but an enormous positive one, every request "fits", and the
allocator hands out memory it does not own. So `page_alloc` first asks
whether the rounded address is still inside the pool, and only then
subtracts. (`tests/unit/kit_test.c` asks for one page at 64 KiB alignment
from a two-page pool, which used to come back as a page past the end.)
*/
static uintptr_t page_next, page_end;

void page_init(uintptr_t start, uintptr_t end)
{
    page_next = ALIGN_UP(start, PAGE_SIZE);
    page_end = ALIGN_DOWN(end, PAGE_SIZE);
}

void *page_alloc(size_t npages, size_t align)
{
    if (align < PAGE_SIZE)
        align = PAGE_SIZE;
    uintptr_t p = ALIGN_UP(page_next, align);
    // Three ways to run out, checked so that no subtraction can wrap: the
    // rounding wrapped past the top of the address space, the rounding
    // alone moved past the end of the pool, or the pages do not fit.
    if (p < page_next || p > page_end || npages > (page_end - p) / PAGE_SIZE)
        panic(
            "out of memory: %zu pages (aligned to %zu bytes) wanted, %zu free",
            npages, align, (size_t)((page_end - page_next) / PAGE_SIZE));
    page_next = p + npages * PAGE_SIZE;
    memset((void *)p, 0, npages * PAGE_SIZE);
    return (void *)p;
}

/*
### The ELF loader

The guest kernel is an ordinary ELF64 executable, the format every compiler
here produces. Only two of its structures matter for loading (System V ABI,
"ELF-64 Object File Format", and the `elf(5)` manual page):

The **file header**, at offset 0:

| offset | field | what we require |
|---|---|---|
| 0 | `e_ident[0..3]` | `0x7f 'E' 'L' 'F'` |
| 4 | `e_ident[EI_CLASS]` | 2: 64-bit |
| 5 | `e_ident[EI_DATA]` | 1: little-endian |
| 6 | `e_ident[EI_VERSION]` | 1: `EV_CURRENT` |
| 16 | `e_type` | 2: executable (`ET_EXEC`) |
| 18 | `e_machine` | this architecture |
| 20 | `e_version` | 1: `EV_CURRENT` |
| 24 | `e_entry` | inside a loaded, executable segment |
| 32 | `e_phoff` | the program headers lie inside the file |
| 54 | `e_phentsize` | 56, the size of one program header |
| 56 | `e_phnum` | at least one |

The **program headers**, one per *segment*. A segment of type `PT_LOAD` says:
copy `p_filesz` bytes from file offset `p_offset` to (guest-physical) address
`p_paddr`, then fill with zeros up to `p_memsz` bytes; that tail is the
program's `.bss`. A kernel runs with its MMU off, so it is linked at physical
addresses and the loader uses `p_paddr`.

Every number in the file is untrusted: the file came from a disk image anyone
can edit. So every sum is checked for overflow before it is compared, and
every segment must fit the file (what we copy from) and guest RAM (where we
copy to).

Three more rules keep the loader from accepting a file that only looks like
a program:

- **The version fields.** The generic ABI defines exactly one version,
  `EV_CURRENT` = 1, for both `e_ident[EI_VERSION]` and `e_version` ("ELF
  Header" in the System V gABI). A zero there is "invalid version": whatever
  wrote the file was not following this format, so nothing else in it can
  be trusted either.
- **The entry point is code the file provides.** The gABI defines
  `e_entry` as the address where the system first hands control to the
  program, so it must fall inside the file bytes of a `PT_LOAD` segment
  whose flags include `PF_X` (execute); like `p_paddr`, it is taken as a
  physical address. An entry point in the data, in the zero-filled tail, or
  between segments would start the guest on bytes that were never meant to
  run; bare hardware would run them all the same, so the loader is the last
  place to notice.
- **Segments do not overlap.** The gABI has loadable segments listed in
  ascending address order, and a linker never lays two of them over each
  other. If a file did, the later copy would silently overwrite part of the
  earlier one, and which bytes the guest ran would depend on the order of
  the headers. Checking every pair is quadratic, so the loader also refuses
  more than `ELF_MAX_LOADS` loadable segments: a kernel has two or three.
*/
struct elf64_ehdr {
    u8 e_ident[16];
    u16 e_type, e_machine;
    u32 e_version;
    u64 e_entry, e_phoff, e_shoff;
    u32 e_flags;
    u16 e_ehsize, e_phentsize, e_phnum, e_shentsize, e_shnum, e_shstrndx;
};

struct elf64_phdr {
    u32 p_type, p_flags;
    u64 p_offset, p_vaddr, p_paddr, p_filesz, p_memsz, p_align;
};

#define EV_CURRENT 1
#define ET_EXEC 2
#define PT_LOAD 1
#define PF_X 1 /* p_flags: the segment holds code */
#define ELF_MAX_LOADS 16

/* Is [start, start + len) inside [base, base + size)? Written so that no sum
   can wrap around: a wrapped sum would make a huge segment look small. */
static bool range_inside(u64 start, u64 len, u64 base, u64 size)
{
    return start >= base && start - base <= size &&
           len <= size - (start - base);
}

/* Copy program header `i` out of the file. The file is untrusted, and so is
   `e_phoff`: it may be odd, and a struct read from an odd address is an
   alignment fault on some CPUs (AArch64 with its MMU off, for one). A byte
   copy into an aligned local has no such problem. */
static struct elf64_phdr elf_phdr(const void *image,
                                  const struct elf64_ehdr *eh, int i)
{
    struct elf64_phdr ph;
    memcpy(&ph, (const u8 *)image + eh->e_phoff + (u64)i * sizeof(ph),
           sizeof(ph));
    return ph;
}

const char *elf_load(const void *image, size_t size, u16 machine, u64 ram_gpa,
                     u64 ram_size, void *ram_host, u64 *entry)
{
    struct elf64_ehdr ehdr, *eh = &ehdr;

    if (size < sizeof(*eh))
        return "ELF: the file is shorter than an ELF header (64 bytes)";
    memcpy(eh, image, sizeof(*eh));
    if (memcmp(eh->e_ident, "\177ELF", 4) != 0)
        return "ELF: bad magic, this is not an ELF file";
    if (eh->e_ident[4] != 2)
        return "ELF: not a 64-bit ELF file (EI_CLASS is not ELFCLASS64)";
    if (eh->e_ident[5] != 1)
        return "ELF: not little-endian (EI_DATA is not ELFDATA2LSB)";
    if (eh->e_ident[6] != EV_CURRENT || eh->e_version != EV_CURRENT)
        return "ELF: invalid version (EI_VERSION and e_version must both be "
               "EV_CURRENT, 1)";
    if (eh->e_type != ET_EXEC)
        return "ELF: not an executable (e_type is not ET_EXEC)";
    if (eh->e_machine != machine)
        return "ELF: built for another machine (e_machine does not match this "
               "architecture)";
    if (eh->e_phentsize != sizeof(struct elf64_phdr))
        return "ELF: unexpected program header size (e_phentsize is not 56)";
    if (eh->e_phnum == 0)
        return "ELF: no program headers, nothing to load";
    if (!range_inside(eh->e_phoff, (u64)eh->e_phnum * sizeof(struct elf64_phdr),
                      0, size))
        return "ELF: the program header table runs past the end of the file";

    // First check every segment, then copy: a file that fails half-way must
    // not leave a half-loaded guest behind. The loadable segments are kept
    // in `seg` for the checks that compare them with each other.
    struct elf64_phdr seg[ELF_MAX_LOADS];
    int loads = 0;
    bool entry_ok = false;
    for (int i = 0; i < eh->e_phnum; i++) {
        struct elf64_phdr ph = elf_phdr(image, eh, i);
        if (ph.p_type != PT_LOAD)
            continue;
        if (loads == ELF_MAX_LOADS)
            return "ELF: more than 16 PT_LOAD segments "
                   "(a kernel has two or three)";
        if (ph.p_filesz > ph.p_memsz)
            return "ELF: a segment has more bytes in the file than in memory "
                   "(p_filesz > p_memsz)";
        if (!range_inside(ph.p_offset, ph.p_filesz, 0, size))
            return "ELF: a segment runs past the end of the file "
                   "(truncated file?)";
        if (!range_inside(ph.p_paddr, ph.p_memsz, ram_gpa, ram_size))
            return "ELF: a segment lies outside guest RAM";
        // Both ranges are inside guest RAM now, so these sums cannot wrap.
        // (A segment of no bytes overlaps nothing.)
        for (int j = 0; j < loads && ph.p_memsz; j++)
            if (seg[j].p_memsz &&
                ph.p_paddr < seg[j].p_paddr + seg[j].p_memsz &&
                seg[j].p_paddr < ph.p_paddr + ph.p_memsz)
                return "ELF: two segments overlap in guest memory";
        if ((ph.p_flags & PF_X) &&
            range_inside(eh->e_entry, 1, ph.p_paddr, ph.p_filesz))
            entry_ok = true;
        seg[loads++] = ph;
    }
    if (loads == 0)
        return "ELF: no PT_LOAD segment, nothing to load";
    if (!entry_ok)
        return "ELF: the entry point is not in the file bytes of an executable "
               "(PF_X) segment";

    for (int i = 0; i < eh->e_phnum; i++) {
        struct elf64_phdr ph = elf_phdr(image, eh, i);
        if (ph.p_type != PT_LOAD)
            continue;
        u8 *dst = (u8 *)ram_host + (ph.p_paddr - ram_gpa);
        memcpy(dst, (const u8 *)image + ph.p_offset, ph.p_filesz);
        memset(dst + ph.p_filesz, 0, ph.p_memsz - ph.p_filesz);
    }
    *entry = eh->e_entry;
    return NULL;
}

/*
### Loading the guest kernel

The steps, each of which can fail with its own message:

    virtio_blk_probe   is there a disk?
    fat_mount          is it a FAT volume we can read?
    fat_stat           is the file there, and does it fit in guest RAM?
    fat_read_file      read it whole into a scratch buffer
    elf_load           is it an ELF file for this machine that fits? copy it

The scratch buffer comes from the page allocator and is never given back;
the loaded segments are copies in guest RAM, so the guest never sees it.
*/
u64 load_guest_kernel(const char *path, u16 machine, u64 ram_gpa, u64 ram_size,
                      void *ram_host, uintptr_t virtio_base,
                      uintptr_t virtio_stride, int virtio_slots)
{
    static struct fat_fs fs;
    const char *err;
    u32 size;
    u64 entry;

    printf("app: %s\n", path);
    if ((err = virtio_blk_probe(virtio_base, virtio_stride, virtio_slots)))
        panic("cannot load %s: %s", path, err);
    if ((err = fat_mount(&fs, virtio_blk_read, NULL)))
        panic("cannot load %s: %s", path, err);
    if ((err = fat_stat(&fs, path, &size)))
        panic("cannot load %s: %s", path, err);
    if (size > ram_size)
        panic("cannot load %s: it is %u bytes, "
              "more than the guest's %lu bytes of RAM",
              path, size, ram_size);
    void *buf =
        page_alloc(ALIGN_UP((u64)size + 1, PAGE_SIZE) / PAGE_SIZE, PAGE_SIZE);
    if ((err = fat_read_file(&fs, path, buf, size, &size)))
        panic("cannot load %s: %s", path, err);
    printf("Loaded %u bytes from %s\n", size, path);
    err = elf_load(buf, size, machine, ram_gpa, ram_size, ram_host, &entry);
    if (err)
        panic("cannot load %s: %s", path, err);
    return entry;
}

/*
### The command line from `run.sh`

A *flattened device tree* (the "Devicetree Specification", v0.4, chapter 5)
is a header, then a *structure block* of 32-bit big-endian tokens, then a
*strings block* with the property names. The header fields we use:

| offset | field | meaning |
|---|---|---|
| 0 | `magic` | 0xd00d_feed |
| 4 | `totalsize` | bytes in the whole blob |
| 8 | `off_dt_struct` | where the structure block starts |
| 12 | `off_dt_strings` | where the strings block starts |
| 20 | `version` | 17 for the format described here |
| 24 | `last_comp_version` | the oldest reader's version: 17 or less |
| 36 | `size_dt_struct` | how long the structure block is |

The structure block is a walk of the tree: `FDT_BEGIN_NODE` (1) and the
node's name, padded to 4 bytes; `FDT_PROP` (3), the value's length, the
offset of the property's name in the strings block, and the value, padded;
`FDT_END_NODE` (2); `FDT_NOP` (4), to skip; `FDT_END` (9). We look for the
property `bootargs` in the node `chosen`, a child of the root. Every offset is
checked against the blob's size before it is used: the blob comes from QEMU,
but a reader that trusts sizes is a bad habit to learn. So is the version:
`size_dt_struct` exists only from version 17 on, and a blob whose
`last_comp_version` is above 17 says that a version-17 reader cannot
understand it (Devicetree Specification, 5.2), so both are checked first.
*/
#define FDT_READ_VERSION 17
#define FDT_MAGIC 0xd00dfeedU
#define FDT_BEGIN_NODE 1
#define FDT_END_NODE 2
#define FDT_PROP 3
#define FDT_NOP 4
#define FDT_END 9

static u32 be32(const u8 *p)
{
    return (u32)p[0] << 24 | (u32)p[1] << 16 | (u32)p[2] << 8 | p[3];
}

/* Does the NUL-terminated string at `s`, at most `max` bytes, equal `want`?
   A node name may carry a unit address ("chosen@0"), which `node` accepts;
   a property name must match in full. */
static bool fdt_name_is(const u8 *s, u32 max, const char *want, bool node)
{
    u32 i = 0;
    for (; want[i]; i++)
        if (i >= max || s[i] != (u8)want[i])
            return false;
    return i < max && (s[i] == 0 || (node && s[i] == '@'));
}

/*
`fdt_property` is that walk, for any property of the root node (`node` is
NULL) or of one of its children (`"chosen"`, `"memory"`): it returns the
value and its length, or NULL. `fdt_bootargs` asks it for `bootargs` in
`chosen`, which must be a string: its last byte a NUL.
*/
const void *fdt_property(const void *fdt, const char *node, const char *name,
                         u32 *len_out)
{
    const u8 *b = fdt;
    if (b == NULL || be32(b) != FDT_MAGIC || be32(b + 20) < FDT_READ_VERSION ||
        be32(b + 24) > FDT_READ_VERSION)
        return NULL;
    u32 total = be32(b + 4), off_struct = be32(b + 8);
    u32 off_strings = be32(b + 12);
    u32 size_struct = be32(b + 36);
    if (off_struct > total || size_struct > total - off_struct ||
        off_strings > total)
        return NULL;
    const u8 *p = b + off_struct, *end = p + size_struct;
    int depth = 0;
    bool in_node = false;
    while (p + 4 <= end) {
        u32 token = be32(p);
        p += 4;
        if (token == FDT_BEGIN_NODE) {
            u32 room = (u32)(end - p), len = 0;
            while (len < room && p[len])
                len++;
            if (len == room)
                return NULL;
            depth++;
            in_node = node ? depth == 2 && fdt_name_is(p, room, node, true)
                           : depth == 1;
            p += ALIGN_UP(len + 1, 4);
        } else if (token == FDT_END_NODE) {
            depth--;
            in_node = !node && depth == 1;
        } else if (token == FDT_PROP) {
            if (end - p < 8)
                return NULL;
            u32 len = be32(p), nameoff = be32(p + 4);
            p += 8;
            if (len > (u32)(end - p) || nameoff >= total - off_strings)
                return NULL;
            const u8 *pname = b + off_strings + nameoff;
            if (in_node && fdt_name_is(pname, total - off_strings - nameoff,
                                       name, false)) {
                *len_out = len;
                return p;
            }
            p += ALIGN_UP(len, 4);
        } else if (token != FDT_NOP) {
            return NULL; // FDT_END, or something we do not understand
        }
    }
    return NULL;
}

const char *fdt_bootargs(const void *fdt)
{
    u32 len;
    const u8 *v = fdt_property(fdt, "chosen", "bootargs", &len);
    return v && len > 0 && v[len - 1] == 0 ? (const char *)v : NULL;
}

/*
The hypervisor's own RAM is where the device tree's `/memory` node says:
its `reg` property is pairs of (address, size), each number
`#address-cells` and `#size-cells` 32-bit cells long, as the root node
declares (the Devicetree Specification, 2.3.5, gives 2 and 1 when it does
not). `fdt_memory` takes the first pair. A property name matches only in
full, but a node name is compared without its unit address, so
`memory@40000000` is found as `memory`.
*/
static bool fdt_cells(const u8 *p, u32 cells, u64 *out)
{
    if (cells < 1 || cells > 2)
        return false;
    *out = cells == 2 ? (u64)be32(p) << 32 | be32(p + 4) : be32(p);
    return true;
}

bool fdt_memory(const void *fdt, u64 *base, u64 *size)
{
    u32 len, acells = 2, scells = 1;
    const u8 *v = fdt_property(fdt, NULL, "#address-cells", &len);
    if (v && len == 4)
        acells = be32(v);
    v = fdt_property(fdt, NULL, "#size-cells", &len);
    if (v && len == 4)
        scells = be32(v);
    v = fdt_property(fdt, "memory", "reg", &len);
    if (!v || len < 4 * (acells + scells))
        return false;
    return fdt_cells(v, acells, base) &&
           fdt_cells(v + 4 * acells, scells, size);
}

/*
The command line itself is words separated by spaces. We take the ones that
start with `hvbook.` and leave the rest alone: on a real machine the same
line could carry options for other programs.
*/
struct boot_args boot_args = {.budget_s = BUDGET_DEFAULT_S};

/* If the word at `w` starts with `prefix`, the value after it; else NULL. */
static const char *word_value(const char *w, const char *prefix)
{
    while (*prefix)
        if (*w++ != *prefix++)
            return NULL;
    return w;
}

void boot_args_parse(const char *cmdline)
{
    const char *p = cmdline ? cmdline : "";
    while (*p) {
        while (*p == ' ')
            p++;
        const char *w = p;
        while (*p && *p != ' ')
            p++;
        const char *d;
        if ((d = word_value(w, "hvbook.budget="))) {
            u64 v = 0;
            bool ok = d < p;
            for (; d < p && ok; d++) {
                ok = *d >= '0' && *d <= '9' && v < 1000000;
                v = v * 10 + (u64)(*d - '0');
            }
            if (ok)
                boot_args.budget_s = (u32)v;
            else
                printf("hvbook: ignoring a malformed hvbook.budget "
                       "(seconds, a number)\n");
        } else if ((d = word_value(w, "hvbook.guest="))) {
            if (word_value(d, "linux") == p)
                boot_args.linux_guest = true;
            else if (word_value(d, "gkernel") == p)
                boot_args.linux_guest = false;
            else
                printf("hvbook: ignoring an unknown hvbook.guest "
                       "(linux or gkernel)\n");
        } else if ((d = word_value(w, "hvbook.token="))) {
            const char *t = d;
            size_t n = (size_t)(p - t);
            bool ok = n > 0 && n <= BOOT_TOKEN_MAX;
            for (size_t i = 0; i < n && ok; i++)
                ok = (t[i] >= '0' && t[i] <= '9') ||
                     (t[i] >= 'a' && t[i] <= 'z') ||
                     (t[i] >= 'A' && t[i] <= 'Z');
            if (ok) {
                memcpy(boot_args.token, t, n);
                boot_args.token[n] = 0;
            } else {
                printf("hvbook: ignoring a malformed hvbook.token\n");
            }
        }
    }
}

void print_success(void)
{
    printf("Hypervisor ok!\n");
    if (boot_args.token[0])
        printf("Verdict: pass %s\n", boot_args.token);
}

void report_budget_spent(u64 guest_pc)
{
    printf("VM stopped: the guest did not shut down within its time "
           "budget of %u s (guest pc 0x%lx)\n",
           boot_args.budget_s, (unsigned long)guest_pc);
}

/*
### Exit statistics

Popek and Goldberg's *efficiency* property says most guest instructions run
directly on the CPU and only a few trap to the hypervisor. This table, printed
when the guest has shut down, lets you see how few: every exit reason with its
count, and the total. Reasons that never happened are left out.
*/
void print_exit_stats(const char *const names[], const u64 counts[], int n)
{
    u64 total = 0;
    printf("VM exits by reason:\n");
    for (int i = 0; i < n; i++) {
        if (counts[i] == 0)
            continue;
        printf("  %-28s %8lu\n", names[i], counts[i]);
        total += counts[i];
    }
    printf("  %-28s %8lu\n", "total", total);
}

_Noreturn void vm_finish(enum vm_state state, const char *const names[],
                         const u64 counts[], int n)
{
    if (state == VM_SHUTDOWN)
        printf("Shutdown vm normally!\n");
    else if (state == VM_GUEST_FAILED)
        printf("The guest ended the VM with a failure.\n");
    else if (state == VM_FAULT)
        printf("The VM was stopped after a fault.\n");
    // VM_OUT_OF_TIME: report_budget_spent has said it all.
    print_exit_stats(names, counts, n);
    if (state == VM_SHUTDOWN) {
        print_success();
        power_off(true);
    }
    printf("hvbook: stopping with a failure status.\n");
    power_off(false);
}

/*
### Writing a device tree

A guest kernel that is not our own learns its machine from a device tree,
and the hypervisor is the only one who knows that machine: so it writes
the tree itself, from the same constants its device models use, and the
tree cannot describe a device hvbook does not have. The writer produces
the format `fdt_property` reads (Devicetree Specification v0.4, chapter
5), in one pass:

    offset 0    header, 40 bytes (filled in last, by fdtw_finish)
    40          memory reservation block: one empty entry, 16 zero bytes
    56          structure block: BEGIN_NODE, PROP, END_NODE tokens ...
    ...         strings block: each property name once, NUL-terminated

The structure block grows from the front of the caller's buffer; the
property names collect in `w->strings` and are copied behind it when the
tree is finished, because only then is it known where the structure block
ends. Names are kept once: a second `reg` points at the first one's bytes.
Every write checks the room left; a tree that does not fit sets
`w->overflow`, writes nothing more, and `fdtw_finish` returns 0 instead of
the size. Cells and header fields are big-endian, whatever the CPU.
*/
#define FDT_HEADER_SIZE 40
#define FDT_RSVMAP_SIZE 16
#define FDT_VERSION 17
#define FDT_LAST_COMP_VERSION 16

static void put_be32(u8 *p, u32 v)
{
    p[0] = (u8)(v >> 24);
    p[1] = (u8)(v >> 16);
    p[2] = (u8)(v >> 8);
    p[3] = (u8)v;
}

static void fdtw_bytes(struct fdt_writer *w, const void *data, u32 len)
{
    u32 padded = (u32)ALIGN_UP(len, 4);
    if (w->overflow || padded > w->size - w->pos) {
        w->overflow = true;
        return;
    }
    memcpy(w->buf + w->pos, data, len);
    memset(w->buf + w->pos + len, 0, padded - len);
    w->pos += padded;
}

static void fdtw_token(struct fdt_writer *w, u32 token)
{
    u8 b[4];
    put_be32(b, token);
    fdtw_bytes(w, b, 4);
}

void fdtw_begin(struct fdt_writer *w, void *buf, u32 size)
{
    w->buf = buf;
    w->size = size;
    w->pos = 0;
    w->nstrings = 0;
    w->boot_cpuid = 0;
    w->overflow = size < FDT_HEADER_SIZE + FDT_RSVMAP_SIZE;
    if (!w->overflow) {
        memset(w->buf, 0, FDT_HEADER_SIZE + FDT_RSVMAP_SIZE);
        w->pos = FDT_HEADER_SIZE + FDT_RSVMAP_SIZE;
    }
}

void fdtw_begin_node(struct fdt_writer *w, const char *name)
{
    fdtw_token(w, FDT_BEGIN_NODE);
    fdtw_bytes(w, name, (u32)strlen(name) + 1);
}

void fdtw_end_node(struct fdt_writer *w)
{
    fdtw_token(w, FDT_END_NODE);
}

/* The offset of `name` in the strings block, adding it if it is new. */
static u32 fdtw_string(struct fdt_writer *w, const char *name)
{
    u32 len = (u32)strlen(name) + 1, here;
    // compare whole names only: never read past the last one kept
    for (u32 off = 0; off < w->nstrings; off += here) {
        here = (u32)strlen(w->strings + off) + 1;
        if (here == len && memcmp(w->strings + off, name, len) == 0)
            return off;
    }
    if (len > sizeof(w->strings) - w->nstrings) {
        w->overflow = true;
        return 0;
    }
    memcpy(w->strings + w->nstrings, name, len);
    w->nstrings += len;
    return w->nstrings - len;
}

void fdtw_prop(struct fdt_writer *w, const char *name, const void *value,
               u32 len)
{
    u8 head[8];
    put_be32(head, len);
    put_be32(head + 4, fdtw_string(w, name));
    fdtw_token(w, FDT_PROP);
    fdtw_bytes(w, head, 8);
    fdtw_bytes(w, value, len);
}

void fdtw_prop_cells(struct fdt_writer *w, const char *name, const u32 *cells,
                     int n)
{
    u8 v[4 * FDTW_MAX_CELLS];
    if (n > FDTW_MAX_CELLS) {
        w->overflow = true;
        return;
    }
    for (int i = 0; i < n; i++)
        put_be32(v + 4 * i, cells[i]);
    fdtw_prop(w, name, v, 4 * (u32)n);
}

void fdtw_prop_u32(struct fdt_writer *w, const char *name, u32 value)
{
    fdtw_prop_cells(w, name, &value, 1);
}

void fdtw_prop_str(struct fdt_writer *w, const char *name, const char *s)
{
    fdtw_prop(w, name, s, (u32)strlen(s) + 1);
}

/* The header (Devicetree Specification, 5.2), ten 32-bit fields in this
   order: magic, total size, where the structure block, the strings block
   and the memory reservation block start, the version (17) and the oldest
   one it is compatible with (16), the boot CPU (`boot_cpuid`: the spec
   asks for the `reg` of its `cpu` node), and the sizes of the strings and
   the structure blocks. */
u32 fdtw_finish(struct fdt_writer *w)
{
    fdtw_token(w, FDT_END);
    u32 off_struct = FDT_HEADER_SIZE + FDT_RSVMAP_SIZE;
    u32 size_struct = w->pos - off_struct, off_strings = w->pos;
    if (w->overflow || w->nstrings > w->size - w->pos)
        return 0;
    memcpy(w->buf + off_strings, w->strings, w->nstrings);
    u32 total = off_strings + w->nstrings;
    u32 fields[10] = {FDT_MAGIC, total, off_struct, off_strings,
                      FDT_HEADER_SIZE, FDT_VERSION, FDT_LAST_COMP_VERSION,
                      w->boot_cpuid, w->nstrings, size_struct};
    for (int i = 0; i < 10; i++)
        put_be32(w->buf + 4 * i, fields[i]);
    return total;
}
