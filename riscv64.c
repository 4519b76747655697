/*
# RISC-V: a hypervisor with the H extension

This chapter is one file, `riscv64.c`, read from top to bottom. By its end a
complete hypervisor has loaded a guest kernel from a disk, run it in a virtual
machine with its own memory, console and timer, and switched the machine off
when the guest asked to shut down.

## Privilege levels, with and without virtualization

A RISC-V CPU without the H extension has three privilege modes: machine mode
(M, the firmware: OpenSBI), supervisor mode (S, an operating-system kernel) and
user mode (U). The H extension ("RISC-V Privileged Specification", version
1.12, chapter 8, *Hypervisor Extension*) adds a bit, **V**, the
*virtualization mode*. With V=0 the CPU behaves as before, except that S-mode
is now *HS-mode*, which has the hypervisor CSRs; with V=1 the CPU runs a guest
in **VS-mode** (the guest kernel) or **VU-mode** (the guest's programs).

    V=0                          V=1 (the virtual machine)
    +-----------------------+    +-----------------------+
    | U   host programs     |    | VU  guest programs    |
    +-----------------------+    +-----------------------+
    | HS  hvbook            |    | VS  gkernel           |
    +-----------------------+----+-----------------------+
    | M   OpenSBI (firmware)                             |
    +----------------------------------------------------+

The guest in VS-mode believes it is an ordinary S-mode kernel. When it reads
`sstatus` it really reads `vsstatus`; its trap vector is `vstvec`; its page
table is `vsatp`. The hardware keeps a second copy of the supervisor CSRs for
it, so most of what a kernel does needs no help from the hypervisor at all.

## Two stages of address translation

With V=1 every memory access is translated twice. The guest's own page table
(`vsatp`) turns a guest-virtual address into a *guest-physical* address (GPA);
the hypervisor's **G-stage** table (`hgatp`) turns the GPA into a real,
host-physical address (HPA). The guest cannot see or change the second stage,
and that is the whole of memory isolation: a guest can only reach the host
memory the G-stage table maps.

    guest-virtual --[vsatp: guest's table]--> guest-physical
                                                   |
                          [hgatp: hvbook's G-stage table]
                                                   v
                                             host-physical

Our guest runs with `vsatp` = 0 (no first stage), so for it GPA = the
address in the instruction. The G-stage still applies.

## What happens in this file, in order

1. Constants and accessors for the CSRs we use.
2. Talking to the firmware: SBI calls from the hypervisor to OpenSBI.
3. The G-stage page table: building it, and 16 MiB of guest RAM.
4. The virtual CPU: its registers, and the CSRs that shape the VM.
5. The run loop, and one handler per kind of VM exit: SBI calls from the
   guest, the one timer shared by the guest and the hypervisor's own time
   budget, G-stage faults, the guest's own exceptions (passed on to it),
   and everything else.
6. `hv_main`, which ties it together.
*/
#include "common.h"
#include <stddef.h>

/*
## 1. The CSRs

A CSR (control and status register) is read and written with the `csrr` and
`csrw` instructions, which take the CSR's name as part of the instruction, so
the accessors must be macros. The assembler knows the hypervisor CSRs by name.

These are the bits we use, each from the Privileged Specification 1.12:

    sstatus (4.1.1)  bit 8 SPP    privilege before the trap; sret returns
                                  to it (1 = S)
                     bit 5 SPIE   SIE as it was before the trap
                     bit 1 SIE    interrupts enabled in (H)S-mode
    sie/sip (4.1.3)  bit 5 STIE/STIP  supervisor timer interrupt
    hvip (8.2.3)     bit 6 VSTIP  a timer interrupt pending for the guest
                                  (VS-mode)
    hgatp (8.2.10)   63..60 MODE  8 = Sv39x4
                     57..44 VMID
                     43..0  PPN   of the root table

`vsstatus` has the layout of `sstatus`, so the same three bit names serve
for the guest's copy. `hstatus` gets a table of its own in section 4,
where every one of its fields is chosen.

The trap causes (`scause`, table 8.6 in 8.6.3) come in two families. Some
are the hypervisor's business:

+-------------+----------------------------------------------------------------+
| `scause`    | meaning                                                        |
+=============+================================================================+
| interrupt 5 | supervisor timer interrupt: the host timer fired               |
+-------------+----------------------------------------------------------------+
| 10          | environment call from VS-mode: the guest called SBI            |
+-------------+----------------------------------------------------------------+
| 20, 21, 23  | instruction, load, store/AMO *guest-page fault*: the G-stage   |
|             | said no                                                        |
+-------------+----------------------------------------------------------------+
| 22          | virtual instruction: the guest tried something VS-mode may not |
|             | do                                                             |
+-------------+----------------------------------------------------------------+

The others are the *guest's* business, the exceptions an ordinary S-mode
kernel takes on bare hardware: 0 instruction address misaligned, 1
instruction access fault, 2 illegal instruction, 3 breakpoint, 4 load
address misaligned, 5 load access fault, 6 store/AMO address misaligned, 7
store/AMO access fault, 8 environment call from U-mode, and 12, 13, 15, the
page faults of the guest's own page tables.
*/
#define csr_read(csr)                                        \
    ({                                                       \
        u64 v_;                                              \
        __asm__ volatile("csrr %0, " #csr : "=r"(v_));       \
        v_;                                                  \
    })
#define csr_write(csr, v) __asm__ volatile("csrw " #csr ", %0" ::"rK"((u64)(v)))
#define csr_set(csr, v) __asm__ volatile("csrs " #csr ", %0" ::"rK"((u64)(v)))
#define csr_clear(csr, v) __asm__ volatile("csrc " #csr ", %0" ::"rK"((u64)(v)))

#define SSTATUS_SPP (1UL << 8)
#define SSTATUS_SPIE (1UL << 5)
#define SSTATUS_SIE (1UL << 1)
#define SIE_STIE (1UL << 5)
#define HVIP_VSTIP (1UL << 6)
#define HGATP_MODE_SV39X4 (8UL << 60)

#define SCAUSE_INTERRUPT (1UL << 63)
#define IRQ_S_TIMER 5
#define EXC_INST_MISALIGNED 0
#define EXC_INST_ACCESS_FAULT 1
#define EXC_ILLEGAL_INSTRUCTION 2
#define EXC_BREAKPOINT 3
#define EXC_LOAD_MISALIGNED 4
#define EXC_LOAD_ACCESS_FAULT 5
#define EXC_STORE_MISALIGNED 6
#define EXC_STORE_ACCESS_FAULT 7
#define EXC_U_ECALL 8
#define EXC_VS_ECALL 10
#define EXC_INST_PAGE_FAULT 12
#define EXC_LOAD_PAGE_FAULT 13
#define EXC_STORE_PAGE_FAULT 15
#define EXC_INST_GUEST_PAGE_FAULT 20
#define EXC_LOAD_GUEST_PAGE_FAULT 21
#define EXC_VIRTUAL_INSTRUCTION 22
#define EXC_STORE_GUEST_PAGE_FAULT 23

/* The guest's own exceptions, one bit per cause, as `hedeleg` wants them. */
#define GUEST_EXCEPTIONS                                                      \
    (1UL << EXC_INST_MISALIGNED | 1UL << EXC_INST_ACCESS_FAULT |              \
     1UL << EXC_ILLEGAL_INSTRUCTION | 1UL << EXC_BREAKPOINT |                 \
     1UL << EXC_LOAD_MISALIGNED | 1UL << EXC_LOAD_ACCESS_FAULT |              \
     1UL << EXC_STORE_MISALIGNED | 1UL << EXC_STORE_ACCESS_FAULT |            \
     1UL << EXC_U_ECALL | 1UL << EXC_INST_PAGE_FAULT |                        \
     1UL << EXC_LOAD_PAGE_FAULT | 1UL << EXC_STORE_PAGE_FAULT)

/*
`HFENCE.GVMA rs1, rs2` makes the hart forget the G-stage translations it
may have cached, and orders our earlier stores to the G-stage table before
the guest's later accesses that use it (8.3.2). Old assemblers do not know
the mnemonic, so it is spelled as its encoding: opcode SYSTEM, funct3 0,
funct7 0b0110001.

Its operands hold a trap for the unwary. "All addresses" and "all VMIDs"
are said by naming the register **`x0`**, not by a register that happens to
hold 0: `rs1` = a register holding 0 means "guest-physical address 0", and
`rs2` = a register holding 0 means "VMID 0". Hence two macros. The first
names `x0` twice and fences everything. The second names one address
(shifted right by 2, as the instruction wants it) in any VMID. Section 8.3.2
takes its rules from SFENCE.VMA's (4.2.1), and one of them matters here: a
fence for one address covers only the *leaf* entry that maps it, not the
tables on the way down, so a change that created a new table needs the
full fence.

QEMU flushes all its cached translations on any HFENCE, so no run can show
the difference; the machine code can. Debian 12's objdump does not decode
the H extension and prints the words. `0x62000073` is `hfence.gvma x0, x0`;
the per-address fence in `gstage_map` reads `0x62098073` in one build:
`rs1` (bits 19..15) is 19, the register `s3`, which holds the address, and
`rs2` (bits 24..20) is 0, `x0`. `tests/e2e-riscv64.sh` decodes every
HFENCE.GVMA in `hvbook.elf` and checks that each names `x0` as `rs2` and
that the full fence is there.
*/
#define hfence_gvma_all()                                                     \
    __asm__ volatile(".insn r 0x73, 0, 0x31, x0, x0, x0" ::: "memory")
#define hfence_gvma_gpa(gpa)                                                  \
    __asm__ volatile(".insn r 0x73, 0, 0x31, x0, %0, x0"                      \
                     ::"r"((u64)(gpa) >> 2) : "memory")

/*
## 2. Calling the firmware

The hypervisor is itself a supervisor-mode program on top of OpenSBI, and
asks it for the things only M-mode can do: print a character, arm the timer,
switch the machine off. An SBI call is an `ecall` with the extension ID
(EID) in `a7`, the function ID (FID) in `a6` and arguments in `a0`..`a5`; the
answer comes back as an error code in `a0` and a value in `a1` ("RISC-V
Supervisor Binary Interface Specification", v2.0, chapter 3).

The guest calls the *same* interface the same way, and that ecall comes to
us instead of OpenSBI: the hypervisor plays firmware for its guest. These are
the extensions and functions that appear in this file:
*/
#define SBI_EXT_LEGACY_SET_TIMER 0x00
#define SBI_EXT_LEGACY_PUTCHAR 0x01
#define SBI_EXT_LEGACY_GETCHAR 0x02
#define SBI_EXT_LEGACY_SHUTDOWN 0x08
#define SBI_EXT_BASE 0x10
#define SBI_EXT_TIME 0x54494D45 /* "TIME" */
#define SBI_EXT_SRST 0x53525354 /* "SRST": system reset */
#define SBI_EXT_DBCN 0x4442434E /* "DBCN": debug console */

#define SBI_BASE_GET_SPEC_VERSION 0
#define SBI_BASE_GET_IMPL_ID 1
#define SBI_BASE_GET_IMPL_VERSION 2
#define SBI_BASE_PROBE_EXTENSION 3
#define SBI_BASE_GET_MVENDORID 4
#define SBI_BASE_GET_MARCHID 5
#define SBI_BASE_GET_MIMPID 6
#define SBI_DBCN_WRITE 0
#define SBI_DBCN_READ 1
#define SBI_DBCN_WRITE_BYTE 2
#define SBI_TIME_SET_TIMER 0
#define SBI_SRST_SYSTEM_RESET 0
#define SBI_SRST_SHUTDOWN 0          /* reset_type */
#define SBI_SRST_WARM_REBOOT 2       /* the last defined type; 1: cold reboot */
#define SBI_SRST_REASON_NONE 0       /* reset_reason */
#define SBI_SRST_REASON_FAILURE 1    /* "system failure", the last defined */

#define SBI_SUCCESS 0
#define SBI_ERR_NOT_SUPPORTED (-2)
#define SBI_ERR_INVALID_PARAM (-3)

/* SBI 2.0 is spec version major 2, minor 0: (2 << 24) | 0. The
   implementation ID is ours to choose among the unregistered ones; "hvb"
   in ASCII is easy to recognise. */
#define SBI_SPEC_VERSION (2UL << 24)
#define SBI_IMPL_ID_HVBOOK 0x687662

struct sbiret {
    long error;
    long value;
};

static struct sbiret sbi_call(u64 eid, u64 fid, u64 a0, u64 a1, u64 a2)
{
    register u64 r_a0 __asm__("a0") = a0;
    register u64 r_a1 __asm__("a1") = a1;
    register u64 r_a2 __asm__("a2") = a2;
    register u64 r_a6 __asm__("a6") = fid;
    register u64 r_a7 __asm__("a7") = eid;
    __asm__ volatile("ecall"
                     : "+r"(r_a0), "+r"(r_a1)
                     : "r"(r_a2), "r"(r_a6), "r"(r_a7)
                     : "memory");
    return (struct sbiret){(long)r_a0, (long)r_a1};
}

/*
These three functions, and `time_us` after them, are the contract
`common.h` asks every architecture for. The console is OpenSBI's, through
the legacy putchar call that every OpenSBI version has.

Switching off has a wrinkle. SRST can say *why* the machine stops (reason 1
is "system failure"), but the OpenSBI 1.1 that Debian 12's QEMU ships ignores
the reason and makes QEMU exit with status 0 either way. A script must be
able to tell a clean shutdown from a failure, so on failure hvbook talks to
the device OpenSBI would have used itself: QEMU virt's *test finisher*
(`sifive_test`, at 0x10_0000). Writing 0x3333 | (code << 16) to it makes QEMU
exit with status `code`; 0x5555 means "pass". The guest cannot reach this
device: the G-stage does not map it.

The barrier is `fence iorw, iorw`: all
earlier memory (`rw`) *and* device (`io`) accesses happen before any later
one, which is what the VirtIO driver needs between writing a request to
memory and ringing the device's doorbell (Unprivileged Specification, 2.7,
"Memory Ordering Instructions").
*/
void console_putchar(int c)
{
    sbi_call(SBI_EXT_LEGACY_PUTCHAR, 0, (u8)c, 0, 0);
}

#define QEMU_TEST_FINISHER 0x100000UL
#define FINISHER_FAIL(code) (0x3333u | (u32)(code) << 16)

_Noreturn void power_off(bool success)
{
    if (!success)
        *(volatile u32 *)QEMU_TEST_FINISHER = FINISHER_FAIL(1);
    sbi_call(SBI_EXT_SRST, SBI_SRST_SYSTEM_RESET, SBI_SRST_SHUTDOWN,
             success ? SBI_SRST_REASON_NONE : SBI_SRST_REASON_FAILURE, 0);
    // Firmware without SRST: the legacy call, which cannot report failure.
    sbi_call(SBI_EXT_LEGACY_SHUTDOWN, 0, 0, 0, 0);
    for (;;)
        __asm__ volatile("wfi");
}

void io_barrier(void)
{
    __asm__ volatile("fence iorw, iorw" ::: "memory");
}

/* `time_us`, the clock of the contract: the `time` CSR counts at the
   platform's timebase frequency, which the device tree gives in
   /cpus/timebase-frequency and which is 10 MHz on QEMU's virt machine
   (`RISCV_ACLINT_DEFAULT_TIMEBASE_FREQ` in QEMU), so ten ticks make a
   microsecond. (OpenSBI lets S-mode read `time` directly.) The guest's time
   budget in section 5 is counted in the same ticks. */
#define TIMEBASE_HZ 10000000UL

u64 time_us(void)
{
    return csr_read(time) / (TIMEBASE_HZ / 1000000);
}

/*
## 3. The G-stage table and guest memory

### The machine the guest sees

+----------------------------+-----------------+-------------------------------+
| guest-physical             | what            | how                           |
+============================+=================+===============================+
| 0x8000_0000 .. 0x80FF_FFFF | 16 MiB of RAM   | mapped at set-up to host      |
|                            |                 | pages                         |
+----------------------------+-----------------+-------------------------------+
| 0x2200_0000 .. 0x23FF_FFFF | pflash1, 32 MiB | passed through for reading,   |
|                            |                 | on first touch                |
+----------------------------+-----------------+-------------------------------+
| anything else              | nothing         | a VM fault: reported, the VM  |
|                            |                 | stops                         |
+----------------------------+-----------------+-------------------------------+

The flash is the guest's to read, never to change: a CFI flash takes
"erase" and "program" commands as ordinary stores, and a guest that could
send them would leave its marks in the flash for whoever reads it next. So
it is mapped readable and nothing else (no W, no X), and a store to it, or
a jump into it, is a VM fault.

The guest kernel is loaded at 0x8020_0000, where OpenSBI would have put it on
a real machine; the first 2 MiB of its RAM are where firmware would live, and
stay unused.

The hypervisor itself runs from 0x8020_0000 of the *host's* RAM, so guest RAM
cannot be at the same host addresses: it is 16 MiB taken from the page
allocator, somewhere above the hypervisor. GPA and HPA differ, and only the
G-stage table knows how they correspond.
*/
#define GUEST_RAM_GPA 0x80000000UL
#define GUEST_RAM_SIZE (16 * MiB)
#define GUEST_ENTRY 0x80200000UL
#define PFLASH_GPA 0x22000000UL
#define PFLASH_SIZE (32 * MiB)

/* QEMU's virt machine places RAM at 0x8000_0000; run.sh gives it 128 MiB. */
#define HOST_RAM_END (0x80000000UL + 128 * MiB)

/* QEMU virt's VirtIO-MMIO slots: 8 of them, 4 KiB apart. */
#define VIRTIO_MMIO_BASE 0x10001000UL
#define VIRTIO_MMIO_STRIDE 0x1000UL
#define VIRTIO_MMIO_SLOTS 8

/*
### Sv39x4

The G-stage uses the same page-table format as the guest's own Sv39, widened
by two bits so that guest-physical addresses can be 41 bits long (8.5.1).
Those two bits go to the root level, which therefore has 2048 entries
instead of 512: it is 16 KiB, and must be 16 KiB aligned.

    GPA bit   40 ........ 30 | 29 ...... 21 | 20 ...... 12 | 11 ...... 0
              root index     | level-1 index| level-0 index| page offset
              (11 bits)      | (9 bits)     | (9 bits)     |
    a leaf at the root maps 1 GiB, at level 1 2 MiB, at level 0 4 KiB

Each entry is 64 bits (4.4.1, figure 4.21):

    63..54  reserved, 0
    53..10  PPN: the physical page number of the next table, or of the page
     7 D  dirty       6 A  accessed     5 G  global      4 U  user
     3 X  execute     2 W  write        1 R  read        0 V  valid

An entry with V=1 and R=W=X=0 points to the next-level table; one with any
of R, W, X set is a *leaf* that maps memory. Three details matter for a
G-stage table in particular:

- **U must be set** on every G-stage leaf. The hardware checks all G-stage
  accesses as if they were made from U-mode (8.5.1), so a leaf without U
  faults even though it looks valid.
- **A and D** are set from the start. Without the Svadu extension, a CPU
  may raise a page fault instead of setting them itself, and we have no
  use for the information.
- In a non-leaf entry, **D, A and U are reserved** and must be zero.
*/
#define PTE_V (1UL << 0)
#define PTE_R (1UL << 1)
#define PTE_W (1UL << 2)
#define PTE_X (1UL << 3)
#define PTE_U (1UL << 4)
#define PTE_A (1UL << 6)
#define PTE_D (1UL << 7)
#define PTE_PPN_SHIFT 10

#define GSTAGE_RAM (PTE_R | PTE_W | PTE_X | PTE_U | PTE_A | PTE_D)
#define GSTAGE_PFLASH (PTE_R | PTE_U | PTE_A)

#define SV39X4_ROOT_ENTRIES 2048
#define SV39X4_ROOT_BYTES (SV39X4_ROOT_ENTRIES * 8)

static u64 *gstage_root; /* 16 KiB, 16 KiB aligned */

/*
`gstage_map` maps one page of `size` bytes (4 KiB or 2 MiB) at `gpa` to the
host page at `hpa`. It walks down from the root, creating any missing
intermediate table on the way, until it reaches the level whose entries map
`size` bytes. An existing leaf in the way would mean two mappings overlap, a
bug, so it panics instead of quietly overwriting.

Guest RAM uses 2 MiB leaves: eight entries map all 16 MiB, and each TLB
entry covers 512 times more memory than a 4 KiB one would. Devices use 4 KiB
leaves, mapped one page at a time as the guest touches them.
*/
static void gstage_map(u64 gpa, u64 hpa, u64 size, u64 flags)
{
    int leaf_level = size == 2 * MiB ? 1 : 0;
    u64 *table = gstage_root;
    bool new_table = false;

    for (int level = 2; level > leaf_level; level--) {
        u64 index = (gpa >> (12 + 9 * level)) & (level == 2 ? 0x7ff : 0x1ff);
        u64 pte = table[index];
        if (!(pte & PTE_V)) {
            u64 *next = page_alloc(1, PAGE_SIZE);
            pte = ((u64)(uintptr_t)next >> 12) << PTE_PPN_SHIFT | PTE_V;
            table[index] = pte;
            new_table = true;
        } else if (pte & (PTE_R | PTE_W | PTE_X)) {
            panic("G-stage: GPA 0x%lx is already inside a larger mapping", gpa);
        }
        table = (u64 *)(uintptr_t)((pte >> PTE_PPN_SHIFT) << 12);
    }
    u64 index = (gpa >> (12 + 9 * leaf_level)) & 0x1ff;
    if (table[index] & PTE_V)
        panic("G-stage: GPA 0x%lx is mapped twice", gpa);
    table[index] = (hpa >> 12) << PTE_PPN_SHIFT | flags | PTE_V;

    /* The hardware may have cached translations, even of the invalid entry
       we just replaced: HFENCE.GVMA is an ordering fence, not only a cache
       flush, and the Privileged Specification requires one after every
       change to a G-stage table before the guest relies on it (8.3.2,
       "Hypervisor Memory-Management Fence Instructions"). A new leaf under
       existing tables needs only the fence for its own address; a new
       table on the way down needs the fence for everything, because a
       per-address fence does not cover non-leaf entries (4.2.1). */
    if (new_table)
        hfence_gvma_all();
    else
        hfence_gvma_gpa(gpa);
}

/*
`guest_ram_setup` allocates the guest's 16 MiB in one piece, 2 MiB aligned
so that 2 MiB leaves can map it, and maps it. The host address of guest RAM,
`guest_ram`, is kept: the loader writes the kernel through it, and the SBI
console reads the guest's buffers through it.
*/
static u8 *guest_ram;

static void guest_ram_setup(void)
{
    gstage_root = page_alloc(SV39X4_ROOT_BYTES / PAGE_SIZE, SV39X4_ROOT_BYTES);
    guest_ram = page_alloc(GUEST_RAM_SIZE / PAGE_SIZE, 2 * MiB);
    for (u64 off = 0; off < GUEST_RAM_SIZE; off += 2 * MiB)
        gstage_map(GUEST_RAM_GPA + off, (uintptr_t)guest_ram + off, 2 * MiB,
                   GSTAGE_RAM);
}

/*
A guest that hands the hypervisor an address, as the SBI debug console does
("print these n bytes at GPA x"), hands it a *guest*-physical address. Using
it directly would read whatever host memory happens to live there: the
original tutorial did exactly that. `guest_buffer` translates it instead,
and only if the whole buffer lies inside guest RAM; otherwise it returns
NULL and the guest gets an error code.
*/
static void *guest_buffer(u64 gpa, u64 len)
{
    if (gpa < GUEST_RAM_GPA || gpa - GUEST_RAM_GPA > GUEST_RAM_SIZE ||
        len > GUEST_RAM_SIZE - (gpa - GUEST_RAM_GPA))
        return NULL;
    return guest_ram + (gpa - GUEST_RAM_GPA);
}

/*
## 4. The virtual CPU

The guest's CSRs (`vsstatus`, `vstvec`, ...) live in the hardware; what the
hypervisor keeps is what the hardware does not keep for it: the 31 general
registers, which the guest and the hypervisor take turns using, and the
guest's program counter while it is not running. `start/riscv64.S` depends
on the first two fields being exactly where they are.
*/
struct vcpu {
    u64 x[32];     /* guest x0..x31; x[10] is a0, x[17] is a7 */
    u64 host[16];  /* host ra, sp, gp, tp, s0..s11 during the guest's turn */
    u64 pc;        /* where the guest resumes: sepc on entry */
};
_Static_assert(offsetof(struct vcpu, host) == 256,
               "start/riscv64.S expects host at 256");

void vcpu_enter(struct vcpu *v); /* start/riscv64.S: returns at the next exit */

static struct vcpu vcpu;

#define REG_A0 10
#define REG_A1 11
#define REG_A2 12
#define REG_A6 16
#define REG_A7 17

/*
### The CSRs that shape the virtual machine

`vcpu_setup` sets the hypervisor CSRs once, before the first entry.

**Delegation.** By default every trap taken while the guest runs comes to
HS-mode, the hypervisor. Most of them are the guest's own business: a
breakpoint in the guest, a page fault in the guest's own page tables, a
system call from a guest program. `hedeleg` and `hideleg` (8.2.2) send those
straight to the guest's VS-mode trap vector, with no VM exit at all:

    hedeleg = 0xB1FF                       hideleg = 0x444
      bits 0..7  misaligned addresses,       bit  2  VS software interrupt
                 access faults, illegal      bit  6  VS timer interrupt
                 instructions, breakpoints   bit 10  VS external interrupt
      bit  8  ecall from VU-mode (a guest program's system call)
      bit 12  instruction page fault   \
      bit 13  load page fault           > faults in the guest's own tables
      bit 15  store/AMO page fault     /

That is `GUEST_EXCEPTIONS` from section 1. Not delegated, and so VM exits:
ecall from VS-mode (the guest calling SBI), the guest-page faults of the
G-stage (20, 21, 23), and virtual-instruction exceptions (22); the hardware
will not let `hedeleg` delegate those (bits 10 and 20..23 are read-only
zero).

Every one of the guest's own exceptions is delegated, because a bit left
out turns that exception into a VM exit the guest never asked for: without
bits 4 and 6, a guest's misaligned atomic operation would come to hvbook,
where bare hardware hands it to the guest's own handler. On this
machine some of these traps take a detour: OpenSBI's `medeleg` keeps
misaligned addresses, access faults and illegal instructions in M-mode,
where the firmware emulates what it can and passes the rest down to the
mode that would have taken the trap. OpenSBI 1.1, Debian 12's, follows
`hedeleg` when it does, so the guest still gets the trap in its own
handler. A firmware that forwarded such a trap to HS-mode instead would not
stop the guest either: the run loop injects whatever it receives of the
guest's own exceptions (`inject_exception`, section 5).

**Counters.** `hcounteren` (8.2.4) lets the guest read `cycle`, `time` and
`instret` (bits 0, 1, 2) itself. Reading `time` is how the guest's
scheduler knows what time it is; without bit 1 every read would be a
virtual-instruction exit. `htimedelta` = 0: the guest's clock is the host's.

**Sstc.** With the Sstc extension a kernel can program its timer through
the `stimecmp` CSR instead of an SBI call. `henvcfg.STCE` (bit 63, 8.2.5)
decides whether the guest gets its own `vstimecmp`. hvbook leaves it 0: the
guest does not see Sstc, so it must ask for timer interrupts through SBI
`set_timer`, and that is the path this chapter teaches (section 5). A guest
that touches `stimecmp` anyway takes a virtual-instruction exit, which
hvbook answers as a CPU without Sstc would: with an illegal-instruction
exception for the guest (section 5).

**Fresh code.** The kernel was copied into guest RAM as data; a `fence.i`
makes sure the CPU fetches those bytes and not stale instructions.

**`hstatus`** (8.2.1) is written whole, field by field, never inherited:
whatever the firmware or an earlier program left in it is not a decision.

+--------+-------+-------+-----------------------------------------------------+
| bits   | field | value | why                                                 |
+========+=======+=======+=====================================================+
| 5      | VSBE  | 0     | the guest's data accesses are little-endian, as on  |
|        |       |       | bare RISC-V                                         |
+--------+-------+-------+-----------------------------------------------------+
| 6      | GVA   | 0     | written by the hardware on each trap: was `stval` a |
|        |       |       | guest-virtual address?                              |
+--------+-------+-------+-----------------------------------------------------+
| 7      | SPV   | 1     | `sret` enters the guest (V=1); every trap from the  |
|        |       |       | guest sets it again                                 |
+--------+-------+-------+-----------------------------------------------------+
| 8      | SPVP  | 1     | the privilege HLV/HSV act as (VS); set like SPV by  |
|        |       |       | every trap from the guest                           |
+--------+-------+-------+-----------------------------------------------------+
| 9      | HU    | 0     | U-mode may not use HLV/HSV: hvbook runs no programs |
|        |       |       | of its own in U-mode                                |
+--------+-------+-------+-----------------------------------------------------+
| 17..12 | VGEIN | 0     | no guest external interrupt line: hvbook gives the  |
|        |       |       | guest no interrupt controller                       |
+--------+-------+-------+-----------------------------------------------------+
| 20     | VTVM  | 0     | the guest manages its own page tables (`satp`,      |
|        |       |       | `sfence.vma`) without exits: the G-stage already    |
|        |       |       | confines it                                         |
+--------+-------+-------+-----------------------------------------------------+
| 21     | VTW   | 0     | the guest's `wfi` really waits; the hypervisor's    |
|        |       |       | own timer (section 5) still wakes the hart, since   |
|        |       |       | HS-mode interrupts are always enabled while V=1     |
|        |       |       | (3.1.6.1, 3.3.3)                                    |
+--------+-------+-------+-----------------------------------------------------+
| 22     | VTSR  | 0     | the guest's `sret` returns within the guest with no |
|        |       |       | exit                                                |
+--------+-------+-------+-----------------------------------------------------+
| 33..32 | VSXL  | 2     | the guest is a 64-bit kernel                        |
+--------+-------+-------+-----------------------------------------------------+

All other bits are reserved in version 1.12 and written 0.

**Where the guest starts.** As OpenSBI would start a kernel: in S-mode (for
us VS-mode: `hstatus.SPV` = 1, `sstatus.SPP` = 1), at 0x8020_0000, with
`a0` = the hart ID and `a1` = the device tree address. hvbook builds no
device tree for the guest, so `a1` = 0, which tells a kernel that reads it
that there is none. The guest's own CSRs start at their reset values: `vsatp`
= 0 (no translation), `vsstatus` with interrupts off.
*/
#define HIDELEG_VS_INTERRUPTS 0x444UL
#define HCOUNTEREN_CY_TM_IR 0x7UL

#define HSTATUS_VSBE (1UL << 5)
#define HSTATUS_GVA (1UL << 6)
#define HSTATUS_SPV (1UL << 7)
#define HSTATUS_SPVP (1UL << 8)
#define HSTATUS_HU (1UL << 9)
#define HSTATUS_VGEIN_SHIFT 12
#define HSTATUS_VTVM (1UL << 20)
#define HSTATUS_VTW (1UL << 21)
#define HSTATUS_VTSR (1UL << 22)
#define HSTATUS_VSXL_64 (2UL << 32)

/* The table above: VSXL, SPVP and SPV set; VSBE, GVA, HU, VGEIN, VTVM, VTW
   and VTSR clear. */
#define HSTATUS_GUEST (HSTATUS_VSXL_64 | HSTATUS_SPVP | HSTATUS_SPV)

static void vcpu_setup(u64 entry)
{
    csr_write(hedeleg, GUEST_EXCEPTIONS);
    csr_write(hideleg, HIDELEG_VS_INTERRUPTS);
    csr_write(hcounteren, HCOUNTEREN_CY_TM_IR);
    csr_write(htimedelta, 0);
    csr_write(henvcfg, 0);
    csr_write(hvip, 0);

    csr_write(vsstatus, 0);
    csr_write(vsatp, 0);
    csr_write(vstvec, 0);
    csr_write(vsie, 0);

    /* hgatp: Sv39x4, VMID 0, the root's physical page number. hgatp is
       WARL: a write asking for a mode the CPU lacks is simply ignored
       (8.2.10), so read it back rather than trust it. The write changes
       which table the guest uses, so it is followed by a fence too. */
    u64 hgatp = HGATP_MODE_SV39X4 | ((uintptr_t)gstage_root >> 12);
    csr_write(hgatp, hgatp);
    if (csr_read(hgatp) != hgatp)
        panic("this CPU does not support Sv39x4 G-stage translation "
              "(hgatp reads 0x%lx)", csr_read(hgatp));
    hfence_gvma_all();

    /* The loader wrote the guest's code with ordinary stores; the guest
       will fetch it as instructions. RISC-V does not keep the two in step
       by itself: FENCE.I makes earlier stores visible to later instruction
       fetches on this hart (Unprivileged Specification, chapter 3,
       "Zifencei"). */
    __asm__ volatile("fence.i" ::: "memory");

    csr_write(hstatus, HSTATUS_GUEST);
    csr_set(sstatus, SSTATUS_SPP);

    memset(&vcpu, 0, sizeof(vcpu));
    vcpu.pc = entry;
    vcpu.x[REG_A0] = 0; // hart ID
    vcpu.x[REG_A1] = 0; // no device tree
}

/*
## 5. The run loop and the VM exits

Everything so far was preparation. The run loop is the hypervisor: enter
the guest, wait for it to exit, handle the exit, enter again.

    +--> vcpu_enter: sret into the guest ------------------+
    |                                                      | the guest runs
    |    trap_entry: a VM exit <---------------------------+
    |        |
    |        +-- scause = ecall from VS   -> handle_hypercall
    |        +-- scause = timer interrupt -> handle_timer_interrupt:
    |        |                               inject_timer, or the budget
    |        |                               is spent
    |        +-- scause = 20, 21, 23      -> handle_stage2_fault
    |        +-- scause = 22, or one of
    |        |   the guest's own causes   -> inject_exception
    |        +-- anything else            -> report, stop
    |        |
    +--------+ (unless the VM stopped)

Each exit is counted by reason, for the table printed at the end.
*/
enum exit_reason {
    EXIT_SBI_CONSOLE,
    EXIT_SBI_SET_TIMER,
    EXIT_SBI_OTHER,
    EXIT_TIMER_INTERRUPT,
    EXIT_PFLASH_FAULT,
    EXIT_REFUSED_FAULT,
    EXIT_INJECTED,
    EXIT_UNEXPECTED,
    EXIT_REASONS
};

static const char *const exit_names[EXIT_REASONS] = {
    [EXIT_SBI_CONSOLE] = "SBI console",
    [EXIT_SBI_SET_TIMER] = "SBI set_timer",
    [EXIT_SBI_OTHER] = "SBI other",
    [EXIT_TIMER_INTERRUPT] = "timer interrupt",
    [EXIT_PFLASH_FAULT] = "G-stage fault: pflash",
    [EXIT_REFUSED_FAULT] = "G-stage fault: refused",
    [EXIT_INJECTED] = "exception injected",
    [EXIT_UNEXPECTED] = "unexpected",
};
static u64 exit_counts[EXIT_REASONS];

/* How the VM ended, or that it still runs (`common.h`, "how a run ends"). */
static enum vm_state vm_state;

/*
### What the exit left behind

A trap into HS-mode writes four CSRs that say what happened: `scause`, and
with it `stval` (the faulting address or instruction), `htval` (for a
guest-page fault, the guest-physical address shifted right by 2) and
`htinst` (a transformed form of the trapping instruction, or 0). The
hardware writes all four on *every* trap, zero where it has nothing to say
(the descriptions of `htval` and `htinst` in 8.2), so they describe the
latest exit and nothing older. The run loop copies them into `vmexit` the
moment the guest has left, and every handler and every report reads that
copy. A report can then print only
values from the exit it reports, whatever the hypervisor did in between.
*/
struct vm_exit {
    u64 scause, stval, htval, htinst;
};
static struct vm_exit vmexit;

/*
### A VM fault

A guest that does something hvbook does not allow is stopped, never ignored
and never allowed to go on with garbage. `vm_fault` prints everything a
student needs to find the guest's mistake: what happened, the guest's PC,
and the trap registers, the way a kernel prints an "oops". (`vm_dump` is its
second half, for callers that print a more precise first line themselves.)
*/
static void vm_dump(void)
{
    printf("  scause 0x%lx  guest pc 0x%lx  stval 0x%lx  htval 0x%lx"
           "  htinst 0x%lx\n",
           vmexit.scause, vcpu.pc, vmexit.stval, vmexit.htval, vmexit.htinst);
    printf("  guest ra 0x%lx  sp 0x%lx  a0 0x%lx  a7 0x%lx\n",
           vcpu.x[1], vcpu.x[2], vcpu.x[REG_A0], vcpu.x[REG_A7]);
    vm_state = VM_FAULT;
}

static void vm_fault(const char *what)
{
    printf("VM fault: %s\n", what);
    vm_dump();
}

/*
### One timer, two deadlines

A kernel needs a timer interrupt to preempt its threads. Our guest asks for
one the way any RISC-V kernel without Sstc does: SBI `set_timer(t)`, "raise a
supervisor timer interrupt when the `time` CSR reaches `t`". The hypervisor
cannot let the guest arm the real timer, which is the host's, but it can
arm it *on the guest's behalf* and pass the interrupt on.

The hypervisor wants the same timer for itself. A guest that masks its
interrupts and executes `wfi` with nothing armed, or simply spins, never
traps on its own, and without a deadline of its own the hypervisor would
never run again: Popek and Goldberg's *resource control* says it must get
the CPU back whatever the guest does. So hvbook gives the guest a time
budget (`boot_args.budget_s`, in seconds, from `run.sh --budget`; 0 means no
limit), counted from the guest's first instruction, and keeps two
deadlines:

    guest_deadline   what the guest last asked for with set_timer (or never)
    budget_deadline  when the guest's budget runs out (or never)

and always arms the **earlier** of the two. When the timer fires, the
exit handler looks at the clock to see whose deadline it was:

    guest: set_timer(t)  -> VM exit (ecall)
      hvbook: guest_deadline = t; clear hvip.VSTIP (the guest's old
              interrupt is answered); arm the earlier deadline
    ... time reaches the armed deadline ...
    host timer interrupt -> VM exit (interrupt 5)
      the budget is spent   -> report_budget_spent, stop the VM
      the guest's deadline  -> inject_timer: set hvip.VSTIP, so the guest
              sees a pending VS timer interrupt and takes it through its own
              vstvec (delegated by hideleg bit 6, no exit); guest_deadline =
              never: the interrupt stays pending until the guest's next
              set_timer, as SBI 6.1 says
      then arm the earlier of what is left

Re-arming matters: the host interrupt stays pending until the timer is
armed again, and an enabled pending interrupt would exit again at once,
over and over. Re-arming for a later deadline withdraws it.

Why can the guest not escape this? Masking interrupts in VS-mode
(`vsstatus.SIE` = 0) masks only the guest's own interrupts: an interrupt
for a more privileged mode is always enabled (3.1.6.1), and HS-mode is more
privileged than anything at V=1. And `wfi` wakes for any pending enabled
interrupt, whatever the global enable bits say (3.3.3).

Deadlines are in ticks of the `time` CSR, `TIMEBASE_HZ` per second (section
2); `TIME_NEVER`, the largest, is a deadline that never comes.
*/
#define TIME_NEVER (~0UL)

static u64 guest_deadline = TIME_NEVER;
static u64 budget_deadline = TIME_NEVER;

static void timer_arm_earliest(void)
{
    u64 next =
        guest_deadline < budget_deadline ? guest_deadline : budget_deadline;
    sbi_call(SBI_EXT_TIME, SBI_TIME_SET_TIMER, next, 0, 0);
    if (next == TIME_NEVER)
        csr_clear(sie, SIE_STIE);
    else
        csr_set(sie, SIE_STIE);
}

static void budget_start(void)
{
    if (boot_args.budget_s)
        budget_deadline =
            csr_read(time) + (u64)boot_args.budget_s * TIMEBASE_HZ;

    timer_arm_earliest();
}

static void guest_set_timer(u64 deadline)
{
    guest_deadline = deadline;
    csr_clear(hvip, HVIP_VSTIP);
    timer_arm_earliest();
}

static void inject_timer(void)
{
    csr_set(hvip, HVIP_VSTIP);
    guest_deadline = TIME_NEVER;
}

static void handle_timer_interrupt(void)
{
    u64 now = csr_read(time);

    if (now >= budget_deadline) {
        report_budget_spent(vcpu.pc);
        vm_state = VM_OUT_OF_TIME;
        return;
    }
    if (now >= guest_deadline)
        inject_timer();
    timer_arm_earliest();
}

/*
### The guest's own exceptions

Some exits are not the hypervisor's business at all. Delegation (section
4) sends the guest's own exceptions straight to it, but two kinds still
arrive here: virtual-instruction exceptions, which cannot be delegated, and
any of the guest's own exceptions that firmware forwarded to HS-mode. On
bare hardware the guest kernel takes these itself, and a kernel that
installed a handler expects to handle them. The rule of the house is that
they go on to the guest, not to a VM fault: hvbook *injects* them, doing by
hand what the hardware does when it delivers a trap to VS-mode (8.6,
"Trap Entry", which follows the trap entry of an ordinary S-mode, 4.1.1):

+-------------------+----------------------------------------------------------+
| the hardware sets | to                                                       |
+===================+==========================================================+
| `vscause`         | the cause                                                |
+-------------------+----------------------------------------------------------+
| `vsepc`           | the address of the instruction that trapped: the guest's |
|                   | PC                                                       |
+-------------------+----------------------------------------------------------+
| `vstval`          | what the exception reports: the faulting address, or the |
|                   | instruction's bits (or 0)                                |
+-------------------+----------------------------------------------------------+
| `vsstatus.SPP`    | the privilege the guest was in: 1 for VS, 0 for VU. The  |
|                   | trap to HS-mode recorded it in `sstatus.SPP`             |
+-------------------+----------------------------------------------------------+
| `vsstatus.SPIE`   | the old `vsstatus.SIE`                                   |
+-------------------+----------------------------------------------------------+
| `vsstatus.SIE`    | 0: the handler starts with interrupts masked             |
+-------------------+----------------------------------------------------------+
| PC                | the BASE field of `vstvec` (its low two bits are the     |
|                   | mode; exceptions always go to BASE)                      |
+-------------------+----------------------------------------------------------+

and the next `sret` must land in VS-mode, where the guest's handler runs:
`sstatus.SPP` = 1 (`hstatus.SPV` is already 1).

A **virtual-instruction** exception (22) is the one translation. It says
the guest used something that VS- or VU-mode may not: a hypervisor CSR, the
`stimecmp` of the Sstc extension hvbook hides, `wfi` in a guest program
(VU-mode), and so on. hvbook emulates none of these, so the guest gets what
a CPU without them would raise: an **illegal-instruction** exception (2),
with the same `stval`. Bare, a program's `wfi` in U-mode is illegal too
when the CPU has S-mode (3.3.3).
*/
static bool guest_exception(u64 scause)
{
    return scause < 64 && (GUEST_EXCEPTIONS >> scause & 1);
}

static void inject_exception(u64 cause)
{
    u64 old = csr_read(vsstatus);
    u64 vs = old & ~(SSTATUS_SPP | SSTATUS_SPIE | SSTATUS_SIE);

    if (old & SSTATUS_SIE)
        vs |= SSTATUS_SPIE;
    if (csr_read(sstatus) & SSTATUS_SPP) // the guest was in VS-mode, not VU
        vs |= SSTATUS_SPP;
    csr_write(vsstatus, vs);
    csr_write(vscause, cause);
    csr_write(vsepc, vcpu.pc);
    csr_write(vstval, vmexit.stval);

    vcpu.pc = csr_read(vstvec) & ~3UL;
    csr_set(sstatus, SSTATUS_SPP);
    exit_counts[EXIT_INJECTED]++;
}

/*
### SBI calls from the guest

The guest's `ecall` arrives with its registers saved in `vcpu.x`: the
extension in `a7`, the function in `a6`, arguments from `a0`. We answer in
`a0` (error) and `a1` (value) and move the guest's PC past the 4-byte
`ecall`, as firmware would.

+-------------------+----------------------------+-----------------------------+
| extension         | functions                  | what hvbook does            |
+===================+============================+=============================+
| legacy 0x00..0x0F | set_timer, putchar,        | as the newer ones; answer   |
|                   | getchar, shutdown; the     | in `a0` only                |
|                   | others are not supported   |                             |
+-------------------+----------------------------+-----------------------------+
| BASE 0x10         | spec version,              | describes hvbook            |
|                   | implementation ID and      |                             |
|                   | version, probe, machine    |                             |
|                   | IDs                        |                             |
+-------------------+----------------------------+-----------------------------+
| TIME              | set_timer                  | the shared timer above      |
+-------------------+----------------------------+-----------------------------+
| DBCN              | write, read, write_byte    | the console; buffers        |
|                   |                            | checked against guest RAM   |
+-------------------+----------------------------+-----------------------------+
| SRST              | system_reset               | see `sbi_srst`              |
+-------------------+----------------------------+-----------------------------+
| any other         |                            | `SBI_ERR_NOT_SUPPORTED`,    |
|                   |                            | and the guest goes on       |
+-------------------+----------------------------+-----------------------------+

Every extension ID below 0x10 is a *legacy* one (SBI 2.0, chapter 5), and
legacy calls follow older rules: `a6` is ignored, the answer is in `a0`
alone, and every other register, `a1` included, must come back as the
guest left it. That holds for the legacy IDs hvbook does not implement
too: they get `SBI_ERR_NOT_SUPPORTED` in `a0` and nothing else changes.

The guest's buffers for DBCN are guest-physical; they go through
`guest_buffer`, and one outside guest RAM is answered with
`SBI_ERR_INVALID_PARAM` (SBI 2.0, 12.1), not followed.
*/
static bool sbi_extension_present(u64 eid)
{
    switch (eid) {
    case SBI_EXT_LEGACY_SET_TIMER:
    case SBI_EXT_LEGACY_PUTCHAR:
    case SBI_EXT_LEGACY_GETCHAR:
    case SBI_EXT_LEGACY_SHUTDOWN:
    case SBI_EXT_BASE:
    case SBI_EXT_TIME:
    case SBI_EXT_SRST:
    case SBI_EXT_DBCN:
        return true;
    }
    return false;
}

static struct sbiret sbi_base(u64 fid, u64 arg0)
{
    switch (fid) {
    case SBI_BASE_GET_SPEC_VERSION:
        return (struct sbiret){SBI_SUCCESS, SBI_SPEC_VERSION};
    case SBI_BASE_GET_IMPL_ID:
        return (struct sbiret){SBI_SUCCESS, SBI_IMPL_ID_HVBOOK};
    case SBI_BASE_GET_IMPL_VERSION:
        return (struct sbiret){SBI_SUCCESS, 1};
    case SBI_BASE_PROBE_EXTENSION:
        return (struct sbiret){SBI_SUCCESS, sbi_extension_present(arg0)};
    case SBI_BASE_GET_MVENDORID:
    case SBI_BASE_GET_MARCHID:
    case SBI_BASE_GET_MIMPID:
        return (struct sbiret){SBI_SUCCESS, 0}; // "not implemented", says SBI
    }
    return (struct sbiret){SBI_ERR_NOT_SUPPORTED, 0};
}

static struct sbiret sbi_dbcn(u64 fid, u64 num_bytes, u64 base_lo, u64 base_hi)
{
    if (fid == SBI_DBCN_WRITE_BYTE) {
        console_putchar((u8)num_bytes);
        return (struct sbiret){SBI_SUCCESS, 0};
    }
    if (fid != SBI_DBCN_WRITE && fid != SBI_DBCN_READ)
        return (struct sbiret){SBI_ERR_NOT_SUPPORTED, 0};

    // On RV64 the whole address is in base_lo; base_hi must be 0.
    u8 *buf = base_hi ? NULL : guest_buffer(base_lo, num_bytes);
    if (!buf)
        return (struct sbiret){SBI_ERR_INVALID_PARAM, 0};
    u64 n = 0;
    if (fid == SBI_DBCN_WRITE) {
        for (; n < num_bytes; n++)
            console_putchar(buf[n]);
    } else {
        // Read what is waiting, without blocking: the legacy getchar
        // answers -1 when there is nothing.
        for (; n < num_bytes; n++) {
            long c = sbi_call(SBI_EXT_LEGACY_GETCHAR, 0, 0, 0, 0).error;
            if (c < 0)
                break;
            buf[n] = (u8)c;
        }
    }
    return (struct sbiret){SBI_SUCCESS, (long)n};
}

/*
`system_reset(reset_type, reset_reason)` (SBI 2.0, 10.1) takes two 32-bit
numbers. The RISC-V calling convention sign-extends a 32-bit argument to
fill its 64-bit register, so only the low 32 bits of `a0` and `a1` carry
meaning. The specification defines three types (0 shutdown, 1 cold reboot,
2 warm reboot) and two reasons (0 none, 1 system failure); the other values
are reserved, or left to the SBI implementation or the platform, and
hvbook defines none of its own. What hvbook does with each:

+---------------------+-----------------+--------------------------------------+
| type                | reason          | what happens                         |
+=====================+=================+======================================+
| shutdown            | none            | the VM stops normally:               |
|                     |                 | `Shutdown vm normally!`              |
+---------------------+-----------------+--------------------------------------+
| shutdown            | system failure  | the guest says its run failed (say,  |
|                     |                 | its own self-check did): the VM      |
|                     |                 | stops, and hvbook powers off with a  |
|                     |                 | failure status                       |
+---------------------+-----------------+--------------------------------------+
| cold or warm reboot | none or failure | hvbook does not reboot VMs: the VM   |
|                     |                 | stops, with a failure status         |
+---------------------+-----------------+--------------------------------------+
| anything else       |                 | `SBI_ERR_INVALID_PARAM`, and the     |
|                     |                 | guest goes on                        |
+---------------------+-----------------+--------------------------------------+

A failing status for a guest's own failure matters: the guest shares the
console with the hypervisor and may print whatever it likes, but only the
status of the run tells a script whether the guest was content.
*/
static struct sbiret sbi_srst(u64 a0, u64 a1)
{
    u32 type = (u32)a0, reason = (u32)a1;

    if (type > SBI_SRST_WARM_REBOOT || reason > SBI_SRST_REASON_FAILURE)
        return (struct sbiret){SBI_ERR_INVALID_PARAM, 0};
    if (type != SBI_SRST_SHUTDOWN) {
        printf("Guest: SBI SRST reset type %u: hvbook does not reboot VMs\n",
               type);
        vm_state = VM_GUEST_FAILED;
    } else if (reason == SBI_SRST_REASON_FAILURE) {
        printf("Guest: SBI SRST shutdown, reason %u: the guest reports a "
               "failure\n", reason);
        vm_state = VM_GUEST_FAILED;
    } else {
        printf("Guest: SBI SRST shutdown\n");
        vm_state = VM_SHUTDOWN;
    }
    return (struct sbiret){SBI_SUCCESS, 0};
}

static void handle_hypercall(void)
{
    u64 eid = vcpu.x[REG_A7], fid = vcpu.x[REG_A6];
    u64 a0 = vcpu.x[REG_A0], a1 = vcpu.x[REG_A1], a2 = vcpu.x[REG_A2];
    struct sbiret ret = {SBI_ERR_NOT_SUPPORTED, 0};
    bool legacy = eid < SBI_EXT_BASE;
    enum exit_reason reason = EXIT_SBI_OTHER;

    switch (eid) {
    case SBI_EXT_LEGACY_SET_TIMER:
    case SBI_EXT_TIME:
        if (legacy || fid == SBI_TIME_SET_TIMER) {
            guest_set_timer(a0);
            ret = (struct sbiret){SBI_SUCCESS, 0};
        }
        reason = EXIT_SBI_SET_TIMER;
        break;
    case SBI_EXT_LEGACY_PUTCHAR:
        console_putchar((u8)a0);
        ret.error = SBI_SUCCESS;
        reason = EXIT_SBI_CONSOLE;
        break;
    case SBI_EXT_LEGACY_GETCHAR:
        ret.error = sbi_call(SBI_EXT_LEGACY_GETCHAR, 0, 0, 0, 0).error;
        reason = EXIT_SBI_CONSOLE;
        break;
    case SBI_EXT_LEGACY_SHUTDOWN:
        ret = sbi_srst(SBI_SRST_SHUTDOWN, SBI_SRST_REASON_NONE);
        break;
    case SBI_EXT_BASE:
        ret = sbi_base(fid, a0);
        break;
    case SBI_EXT_DBCN:
        ret = sbi_dbcn(fid, a0, a1, a2);
        reason = EXIT_SBI_CONSOLE;
        break;
    case SBI_EXT_SRST:
        if (fid == SBI_SRST_SYSTEM_RESET)
            ret = sbi_srst(a0, a1);
        break;
    }
    exit_counts[reason]++;

    vcpu.x[REG_A0] = (u64)ret.error;
    if (!legacy)
        vcpu.x[REG_A1] = (u64)ret.value; // legacy calls leave a1 alone
    vcpu.pc += 4;
}

/*
### G-stage faults: pass through, or refuse

A guest-page fault means the guest touched a GPA that the G-stage does not
map, or touched it in a way the mapping does not allow. The faulting GPA is
split over two CSRs (8.6.3): `htval` holds it shifted right by two bits,
and the low two bits are those of `stval`, which holds the guest's (here:
untranslated, so equal) address.

hvbook's rule of the house is *resource control* (see the preface): guest
RAM is mapped up front, and the *only* other thing the guest may reach is
its pflash, and that only for reading. A first read of the pflash window
maps that 4 KiB page of the real device straight through (GPA = HPA, the
device's own address), readable and nothing else, and resumes the guest at
the same instruction, which now succeeds. Every later read of that page
runs at full speed with no exit: this is *pass-through*.

Everything else is a VM fault, and the report says which rule was broken:

- a store or an atomic operation in the pflash window: the flash is
  read-only. The store faults whether or not a read mapped the page before,
  since the page is never mapped writable;
- an instruction fetch from the pflash window: the flash holds data, and
  hvbook maps it without execute permission;
- any access to any other GPA: it is outside the guest's RAM and its
  devices.
*/
static bool in_pflash(u64 gpa)
{
    return gpa >= PFLASH_GPA && gpa - PFLASH_GPA < PFLASH_SIZE;
}

static void handle_stage2_fault(void)
{
    u64 gpa = (vmexit.htval << 2) | (vmexit.stval & 3);

    if (in_pflash(gpa) && vmexit.scause == EXC_LOAD_GUEST_PAGE_FAULT) {
        u64 page = ALIGN_DOWN(gpa, PAGE_SIZE);
        gstage_map(page, page, PAGE_SIZE, GSTAGE_PFLASH);
        exit_counts[EXIT_PFLASH_FAULT]++;
        return; // retry the same instruction
    }

    exit_counts[EXIT_REFUSED_FAULT]++;
    const char *access = "wrote";
    if (vmexit.scause == EXC_INST_GUEST_PAGE_FAULT)
        access = "fetched an instruction from";
    else if (vmexit.scause == EXC_LOAD_GUEST_PAGE_FAULT)
        access = "read";
    if (in_pflash(gpa))
        printf("VM fault: the guest %s GPA 0x%lx, in its pflash window, "
               "which is %s\n", access, gpa,
               vmexit.scause == EXC_INST_GUEST_PAGE_FAULT ? "not executable"
                                                          : "read-only");
    else
        printf("VM fault: the guest %s GPA 0x%lx, outside its RAM and its "
               "devices\n", access, gpa);
    vm_dump();
}

/*
### The loop

`vcpu_run` is the loop drawn above. It starts the guest's time budget, then
enters the guest. Before each entry it writes the guest's PC to `sepc`;
after each exit it reads it back, so that handlers see and change
`vcpu.pc` like any other register, and it keeps the trap CSRs in `vmexit`.
*/
static void vcpu_run(void)
{
    budget_start();
    while (vm_state == VM_RUNNING) {
        csr_write(sepc, vcpu.pc);
        vcpu_enter(&vcpu);
        vcpu.pc = csr_read(sepc);
        vmexit = (struct vm_exit){
            .scause = csr_read(scause),
            .stval = csr_read(stval),
            .htval = csr_read(htval),
            .htinst = csr_read(htinst),
        };

        if (vmexit.scause == (SCAUSE_INTERRUPT | IRQ_S_TIMER)) {
            exit_counts[EXIT_TIMER_INTERRUPT]++;
            handle_timer_interrupt();
            continue;
        }
        switch (vmexit.scause) {
        case EXC_VS_ECALL:
            handle_hypercall();
            break;
        case EXC_INST_GUEST_PAGE_FAULT:
        case EXC_LOAD_GUEST_PAGE_FAULT:
        case EXC_STORE_GUEST_PAGE_FAULT:
            handle_stage2_fault();
            break;
        case EXC_VIRTUAL_INSTRUCTION:
            inject_exception(EXC_ILLEGAL_INSTRUCTION);
            break;
        default:
            if (guest_exception(vmexit.scause)) {
                inject_exception(vmexit.scause);
            } else {
                exit_counts[EXIT_UNEXPECTED]++;
                vm_fault("unexpected exit");
            }
        }
    }
}

/*
A trap while the hypervisor itself runs is a bug in hvbook (or a device it
touched wrongly); `start/riscv64.S` sends it here.
*/
_Noreturn void hv_host_trap(u64 scause, u64 sepc, u64 stval, u64 sp)
{
    panic("trap in the hypervisor itself: scause 0x%lx sepc 0x%lx "
          "stval 0x%lx sp 0x%lx",
          scause, sepc, stval, sp);
}

/*
## 6. `hv_main`

The boot flow, the same on every architecture, as it goes on RISC-V:

    OpenSBI -> _start (start/riscv64.S) -> hv_main
      boot arguments (run.sh's -append) from the device tree
      check for the H extension
      page allocator: everything between the end of hvbook and the end of RAM
      16 MiB of guest RAM, mapped by the G-stage table
      VirtIO block device -> FAT -> /sbin/gkernel -> ELF loader -> guest RAM
      vCPU set-up, run loop
      statistics, power off
*/
extern char _end[];
int hv_probe_h(void); /* start/riscv64.S */

void hv_main(u64 hartid, u64 dtb)
{
    (void)hartid;
    // OpenSBI passes on the device tree QEMU made; run.sh's -append is in it.
    boot_args_parse(fdt_bootargs((const void *)(uintptr_t)dtb));
    printf("\nhvbook: RISC-V hypervisor (HS-mode)\n");
    printf("Starting virtualization...\n");
    if (!hv_probe_h())
        panic("this CPU has no H extension, so it cannot run a virtual "
              "machine.\n  Run QEMU with its default rv64 CPU (the H "
              "extension is on by default).");

    page_init((uintptr_t)_end, HOST_RAM_END);
    printf("Pre-allocating %lu MB guest RAM at 0x%lx...\n",
           GUEST_RAM_SIZE / MiB, GUEST_RAM_GPA);

    guest_ram_setup();
    printf("VM created success, loading images...\n");

    u64 entry = load_guest_kernel("/sbin/gkernel", EM_RISCV, GUEST_RAM_GPA,
                                  GUEST_RAM_SIZE, guest_ram, VIRTIO_MMIO_BASE,
                                  VIRTIO_MMIO_STRIDE, VIRTIO_MMIO_SLOTS);
    printf("bsp_entry: 0x%lx; ept: 0x%lx\n", entry,
           (u64)(uintptr_t)gstage_root);

    vcpu_setup(entry);
    printf("Entering VM run loop...\n");
    vcpu_run();

    vm_finish(vm_state, exit_names, exit_counts, EXIT_REASONS);
}
