/*
# The shared kit: `common.h`

Every hypervisor in this book is a program with no operating system
underneath it. There is no C library, no `malloc`, no `printf`: the firmware
(or QEMU) jumps to our first instruction and from then on everything is ours
to provide. This header declares the small kit that all three architectures
share:

| part | what it gives | body in |
|---|---|---|
| types | fixed-width integers, `bool`, `size_t` | this header |
| console | `printf` with the usual conversions, `panic` | `common.c` |
| memory | `memcpy`, `memset`, `memcmp`, a page allocator | `common.c` |
| ELF | a loader that checks every field it trusts | `common.c` |
| boot | the words of `run.sh`'s command line, the verdict | `common.c` |
| device tree | a reader for QEMU's, a writer for Linux's | `common.c` |
| run ends | the four ways a run ends; a table of VM exits | `common.c` |
| disk | the VirtIO block driver and the FAT reader | `virtio.c`, `fat.c` |

It also declares the *contract*: the four functions every architecture file
must define so that the shared code can reach the outside world.

The header only uses the compiler's freestanding headers (`stdint.h`,
`stddef.h`, `stdarg.h`, `stdbool.h`), which exist even when there is no C
library. That has a happy side effect: the very same `fat.c` and ELF loader
compile on the host, where the unit tests in `tests/` run them against real disk
images.
*/
#ifndef HVBOOK_COMMON_H
#define HVBOOK_COMMON_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef uint8_t u8;
typedef uint16_t u16;
typedef uint32_t u32;
typedef uint64_t u64;
typedef int64_t i64;

#define PAGE_SIZE 4096UL
#define MiB (1024UL * 1024UL)

/* `x` rounded up or down to a multiple of `a`, a power of two. */
#define ALIGN_UP(x, a) (((x) + ((a) - 1)) & ~((u64)(a) - 1))
#define ALIGN_DOWN(x, a) ((x) & ~((u64)(a) - 1))
#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

/*
## The contract each architecture fulfils

The shared code needs exactly four things from the machine it runs on: a way
to put one character on the console, a way to switch the machine off, a
barrier that orders memory against device accesses (the VirtIO driver needs it
between filling a request and telling the device), and a clock, so that the
VirtIO driver can wait for a device for a number of seconds rather than a
number of loop turns. Each of `riscv64.c`, `aarch64.c` and `x86_64.c` defines
all four (and the host unit tests define them too, with the C library).

`time_us` counts microseconds from an arbitrary starting point; it never goes
backwards and does not wrap in any run we will see (2^64 microseconds is half
a million years). Only differences between two readings mean anything.

`power_off(success)` ends the run. Where the machine lets software choose
QEMU's exit status, it says which: RISC-V's test finisher and x86's
`isa-debug-exit` device carry success or failure. Arm's PSCI `SYSTEM_OFF`
cannot, and no exit status can stop a guest from *printing* what a successful
run prints; so `run.sh` trusts only the verdict line with its secret token,
described below.
*/
void console_putchar(int c);
_Noreturn void power_off(bool success);
void io_barrier(void); /* earlier memory and device accesses complete first */
u64 time_us(void);     /* microseconds since some moment; never goes back */

/*
## Console

`printf` understands `%d %i %u %x %X %p %s %c %%`, the length modifiers `l`
and `ll` (and `z` for `size_t`), a field width, zero padding (`%08x`) and
left alignment (`%-12s`). That is all the hypervisor ever prints with.
`panic` prints its message and powers the machine off with a failure status.
*/
int printf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
int vprintf(const char *fmt, va_list ap);
_Noreturn void panic(const char *fmt, ...)
    __attribute__((format(printf, 1, 2)));

/* The compiler may emit calls to these even when we never write them, for
   example to copy a large structure, so they keep their standard names. */
void *memcpy(void *dst, const void *src, size_t n);
void *memset(void *dst, int c, size_t n);
int memcmp(const void *a, const void *b, size_t n);
size_t strlen(const char *s);

/*
## Pages

The hypervisor owns all the RAM QEMU gives it beyond its own image. `page_init`
hands the allocator that range once; `page_alloc(n, align)` then returns `n`
zeroed, contiguous 4 KiB pages whose address is a multiple of `align` bytes (a
power of two, at least 4 KiB). Stage-2 root tables need that: RISC-V's Sv39x4
root is 16 KiB and must be 16 KiB aligned. Nothing is ever freed: a hypervisor
that runs one VM and stops has no reason to.

Because the hypervisor runs with its own address translation off (or, on x86,
with an identity map), the pointer returned is also the physical address of the
memory, which is what page tables and DMA descriptors want.
*/
void page_init(uintptr_t start, uintptr_t end);
void *page_alloc(size_t npages, size_t align);

/*
## Loading an ELF file

`elf_load` copies the program segments of an ELF64 executable into guest RAM.
It is handed the whole file (`image`, `size`), the window of guest-physical
addresses the guest owns (`ram_gpa`, `ram_size`), where that window lives in
the hypervisor's memory (`ram_host`), and the `e_machine` value this
architecture expects. It checks everything it relies on before it copies a
byte, and returns `NULL` with the entry point in `*entry`, or a sentence naming
the first problem it found.
*/
#define EM_X86_64 62
#define EM_AARCH64 183
#define EM_RISCV 243

const char *elf_load(const void *image, size_t size, u16 machine, u64 ram_gpa,
                     u64 ram_size, void *ram_host, u64 *entry);

/*
## What `run.sh` tells the hypervisor

Two facts reach the hypervisor from the command that started QEMU, through
the ordinary kernel command line (`qemu -append "..."`), which QEMU hands to
the first program it runs: on RISC-V and Arm inside the device tree (node
`/chosen`, property `bootargs`), on x86-64 in the Multiboot information.

| word | meaning |
|---|---|
| `hvbook.budget=S` | the guest's time budget in seconds; 0: none (a shell) |
| `hvbook.token=T` | a secret of this run, at most 32 letters and digits |
| `hvbook.guest=linux` | boot Linux from `/boot` (Arm only; default `gkernel`) |

The **time budget** is the hypervisor's answer to a guest that never shuts
down: a guest that spins with interrupts masked, or waits for an interrupt
that will never come, would otherwise hold the CPU for good. Every
architecture keeps a timer of its own that the guest cannot mask, and when the
budget is spent it stops the guest with a report (`report_budget_spent`).

The **token** makes the verdict unforgeable. The guest shares the console
with the hypervisor, so anything the hypervisor prints, a guest can print
too, `Hypervisor ok!` included. What a guest cannot print is a secret it has
never seen: the command line lives in the hypervisor's memory, which no
stage-2 table maps for the guest. So after a real guest shutdown,
`print_success` prints `Hypervisor ok!` and then `Verdict: pass <token>`, and
`run.sh` believes only that second line, with this run's token.
*/
#define BOOT_TOKEN_MAX 32
#define BUDGET_DEFAULT_S 20

struct boot_args {
    u32 budget_s;                  /* seconds; 0: no limit */
    char token[BOOT_TOKEN_MAX + 1];/* "" when run by hand without a token */
    bool linux_guest;              /* hvbook.guest=linux */
};
extern struct boot_args boot_args;

/* Parse a command line (NULL is an empty one) into `boot_args`; unknown words
   are ignored, malformed ones are reported and ignored. */
void boot_args_parse(const char *cmdline);
/* The `/chosen/bootargs` string of a flattened device tree, or NULL. */
const char *fdt_bootargs(const void *fdt);
/* Any property of the root node (`node` NULL) or of a child of the root
   ("chosen", "memory": the unit address is ignored); its length in *len. */
const void *fdt_property(const void *fdt, const char *node, const char *name,
                         u32 *len);
/* The first (base, size) pair of `/memory`'s `reg`: the machine's RAM. */
bool fdt_memory(const void *fdt, u64 *base, u64 *size);
/* "Hypervisor ok!" and the verdict line; only after a real guest shutdown. */
void print_success(void);
/* The report of a guest that outlived its budget (the caller then prints the
   exit table and powers off with a failure). */
void report_budget_spent(u64 guest_pc);

/*
## Writing a device tree for a guest

A guest kernel that is not hvbook's own (Linux) learns what machine it runs
on from a device tree the hypervisor writes for it: begin, then nodes with
properties in the order they nest, then finish, which returns the size of
the blob (or 0 when it did not fit in the buffer). Cells are 32-bit numbers;
a 64-bit address is two of them, high half first. The header names the boot
CPU by the `reg` of its `cpu` node: set `boot_cpuid` after `fdtw_begin` if
that is not 0.
*/
#define FDTW_MAX_STRINGS 512
#define FDTW_MAX_CELLS 16

struct fdt_writer {
    u8 *buf;
    u32 size, pos;           /* the buffer; where the structure block ends */
    char strings[FDTW_MAX_STRINGS]; /* property names, gathered until finish */
    u32 nstrings;
    u32 boot_cpuid;          /* the boot CPU's `reg`, for the header */
    bool overflow;           /* something did not fit: finish returns 0 */
};

void fdtw_begin(struct fdt_writer *w, void *buf, u32 size);
void fdtw_begin_node(struct fdt_writer *w, const char *name);
void fdtw_end_node(struct fdt_writer *w);
void fdtw_prop(struct fdt_writer *w, const char *name, const void *value,
               u32 len);
void fdtw_prop_u32(struct fdt_writer *w, const char *name, u32 value);
void fdtw_prop_cells(struct fdt_writer *w, const char *name, const u32 *cells,
                     int n);
void fdtw_prop_str(struct fdt_writer *w, const char *name, const char *s);
u32 fdtw_finish(struct fdt_writer *w);

/*
## Exit statistics, and how a run ends

Every architecture counts its VM exits by reason: how many hypercalls, timer
interrupts, stage-2 faults. It keeps the counters and a name for each; this
prints them as a table, followed by the total.
*/
void print_exit_stats(const char *const names[], const u64 counts[], int n);

/*
Every architecture's run loop goes on while the VM is `VM_RUNNING` and
stops when an exit handler moves it to one of the four ends. Only one of
them is a success:

- `VM_SHUTDOWN`: the guest asked to be switched off, normally.
- `VM_GUEST_FAILED`: the guest ended itself as a failure: a restart
  request, or a shutdown that carries a failure reason.
- `VM_FAULT`: hvbook stopped a guest that did something it may not; the
  report is printed already.
- `VM_OUT_OF_TIME`: hvbook stopped a guest that outlived its time budget;
  reported already.

`vm_finish` ends a run the same way on every architecture: a line that says
which end it was, the exit table, and then either the verdict
(`print_success`) and a clean power-off, or a failure.
*/
enum vm_state {
    VM_RUNNING,
    VM_SHUTDOWN,
    VM_GUEST_FAILED,
    VM_FAULT,
    VM_OUT_OF_TIME
};

_Noreturn void vm_finish(enum vm_state state, const char *const names[],
                         const u64 counts[], int n);

/*
## The disk: VirtIO block and FAT

Sectors are always 512 bytes at this interface, as in the VirtIO block
specification. A *block reader* is any function that reads `count` sectors
starting at `sector` into `buf` and returns 0, or -1 on failure; the FAT
reader is written against this type alone, so it does not care whether the
sectors come from a VirtIO device or, in the unit tests, from a file.
*/
#define SECTOR_SIZE 512

typedef int (*block_read_fn)(void *ctx, u64 sector, u32 count, void *buf);

/* `virtio.c`: look for a block device in `count` VirtIO-MMIO slots starting
   at `base`, `stride` bytes apart; NULL on success, else what went wrong. */
const char *virtio_blk_probe(uintptr_t base, uintptr_t stride, int count);
u64 virtio_blk_capacity(void); /* in sectors */
int virtio_blk_read(void *ctx, u64 sector, u32 count, void *buf);

/* `fat.c`: the state of one mounted FAT volume. The fields are described
   where they are filled in, in `fat_mount`. */
struct fat_fs {
    block_read_fn read;
    void *ctx;
    u64 total_sectors;   /* size of the volume, in 512-byte sectors */
    u32 bytes_per_sector;
    u32 cluster_bytes;
    u32 fat_type;        /* 12, 16 or 32 */
    u64 fat_start;       /* first sector of the first FAT */
    u32 fat_sectors;     /* sectors in one FAT */
    u64 root_start;      /* FAT12/16: first sector of the fixed root */
    u32 root_entries;    /* FAT12/16: how many entries it holds */
    u32 root_cluster;    /* FAT32: first cluster of the root directory */
    u64 data_start;      /* first sector of cluster 2 */
    u32 cluster_count;   /* data clusters: valid numbers are 2 .. count + 1 */
};

const char *fat_mount(struct fat_fs *fs, block_read_fn read, void *ctx);
/* Find `path` ("/sbin/gkernel"): its size in *size. */
const char *fat_stat(struct fat_fs *fs, const char *path, u32 *size);
/* Read the whole file into buf (at least `bufsize` bytes); its size in
   *size. */
const char *fat_read_file(struct fat_fs *fs, const char *path, void *buf,
                          size_t bufsize, u32 *size);

/*
## Loading the guest kernel

Every architecture loads its guest the same way, so the steps live once, in
`common.c`: find the VirtIO block device in the architecture's slots, mount
the FAT volume on it, read `path` into a scratch buffer, and hand that to
`elf_load`. It prints the two lines every architecture shows (`app: ...` and
`Loaded <n> bytes from ...`) and returns the guest's entry point; on any
problem it says what and where, and stops with `panic`.
*/
u64 load_guest_kernel(const char *path, u16 machine, u64 ram_gpa, u64 ram_size,
                      void *ram_host, uintptr_t virtio_base,
                      uintptr_t virtio_stride, int virtio_slots);

#endif
