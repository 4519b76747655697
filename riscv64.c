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
   guest, timer interrupts, G-stage faults, and everything else.
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

    sstatus (4.1.1)     bit 8 SPP   privilege before the trap; sret returns to it (1 = S)
                        bit 1 SIE   interrupts enabled in (H)S-mode
    sie/sip (4.1.3)     bit 5 STIE/STIP  supervisor timer interrupt
    hstatus (8.2.1)     bit 7 SPV   V before the trap; sret returns to V=SPV
                        bit 8 SPVP  privilege for HLV/HSV (1 = VS), set as sret would
    hvip (8.2.3)        bit 6 VSTIP a timer interrupt pending for the guest (VS-mode)
    hgatp (8.2.10)      63..60 MODE (8 = Sv39x4), 57..44 VMID, 43..0 PPN of the root

and the trap causes (`scause`, table 8.6 in 8.6.3):

| `scause` | meaning |
|---|---|
| interrupt 5 | supervisor timer interrupt: the host timer fired |
| 10 | environment call from VS-mode: the guest called SBI |
| 20, 21, 23 | instruction, load, store/AMO *guest-page fault*: the G-stage said no |
| 22 | virtual instruction: the guest tried something VS-mode may not do |
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
#define SIE_STIE (1UL << 5)
#define HSTATUS_SPV (1UL << 7)
#define HSTATUS_SPVP (1UL << 8)
#define HVIP_VSTIP (1UL << 6)
#define HGATP_MODE_SV39X4 (8UL << 60)

#define SCAUSE_INTERRUPT (1UL << 63)
#define IRQ_S_TIMER 5
#define EXC_VS_ECALL 10
#define EXC_INST_GUEST_PAGE_FAULT 20
#define EXC_LOAD_GUEST_PAGE_FAULT 21
#define EXC_VIRTUAL_INSTRUCTION 22
#define EXC_STORE_GUEST_PAGE_FAULT 23

/* HFENCE.GVMA rs1, rs2: forget cached G-stage translations (8.3.2). Old
   assemblers do not know the mnemonic, so it is spelled as its encoding:
   opcode SYSTEM, funct3 0, funct7 0b0110001. rs1 = GPA >> 2 (0: all), rs2 =
   VMID (0: all). */
#define hfence_gvma(gpa_shr2, vmid) \
    __asm__ volatile(".insn r 0x73, 0, 0x31, x0, %0, %1" ::"r"(gpa_shr2), "r"(vmid) : "memory")

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
#define SBI_SRST_SHUTDOWN 0          /* reset_type */
#define SBI_SRST_REASON_NONE 0       /* reset_reason */
#define SBI_SRST_REASON_FAILURE 1

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
These three functions are the contract `common.h` asks every architecture
for. The console is OpenSBI's, through the legacy putchar call that every
OpenSBI version has.

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
    sbi_call(SBI_EXT_SRST, 0, SBI_SRST_SHUTDOWN,
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
   /cpus/timebase-frequency and which is 10 MHz on QEMU's virt machine, so
   ten ticks make a microsecond. (OpenSBI lets S-mode read `time` directly.) */
#define TIMEBASE_PER_US 10

u64 time_us(void)
{
    return csr_read(time) / TIMEBASE_PER_US;
}

/*
## 3. The G-stage table and guest memory

### The machine the guest sees

| guest-physical | what | how |
|---|---|---|
| 0x8000_0000 .. 0x80FF_FFFF | 16 MiB of RAM | mapped at set-up to host pages |
| 0x2200_0000 .. 0x23FF_FFFF | pflash1, 32 MiB | passed through on first touch |
| anything else | nothing | a VM fault: reported, the VM stops |

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
#define GSTAGE_DEVICE (PTE_R | PTE_W | PTE_U | PTE_A | PTE_D)

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

    for (int level = 2; level > leaf_level; level--) {
        u64 index = (gpa >> (12 + 9 * level)) & (level == 2 ? 0x7ff : 0x1ff);
        u64 pte = table[index];
        if (!(pte & PTE_V)) {
            u64 *next = page_alloc(1, PAGE_SIZE);
            pte = ((u64)(uintptr_t)next >> 12) << PTE_PPN_SHIFT | PTE_V;
            table[index] = pte;
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
       "Hypervisor Memory-Management Fence Instructions"). Its address
       operand is the GPA shifted right by 2. */
    hfence_gvma(gpa >> 2, 0);
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
        gstage_map(GUEST_RAM_GPA + off, (uintptr_t)guest_ram + off, 2 * MiB, GSTAGE_RAM);
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
_Static_assert(offsetof(struct vcpu, host) == 256, "start/riscv64.S expects host at 256");

void vcpu_enter(struct vcpu *v); /* start/riscv64.S: returns at the next exit */

static struct vcpu vcpu;

#define REG_A0 10
#define REG_A1 11
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

    hedeleg = 0xB10D                       hideleg = 0x444
      bit  0  instruction misaligned         bit  2  VS software interrupt
      bit  2  illegal instruction            bit  6  VS timer interrupt
      bit  3  breakpoint                     bit 10  VS external interrupt
      bit  8  ecall from VU-mode (a guest program's system call)
      bit 12  instruction page fault   \
      bit 13  load page fault           > faults in the guest's own tables
      bit 15  store/AMO page fault     /

Not delegated, and so VM exits: ecall from VS-mode (the guest calling SBI),
the guest-page faults of the G-stage (20, 21, 23), and virtual-instruction
exceptions (22).

**Counters.** `hcounteren` (8.2.4) lets the guest read `cycle`, `time` and
`instret` (bits 0, 1, 2) itself. Reading `time` is how the guest's
scheduler knows what time it is; without bit 1 every read would be a
virtual-instruction exit. `htimedelta` = 0: the guest's clock is the host's.

**Sstc.** With the Sstc extension a kernel can program its timer through
the `stimecmp` CSR instead of an SBI call. `henvcfg.STCE` (bit 63, 8.2.5)
decides whether the guest gets its own `vstimecmp`. hvbook leaves it 0: the
guest does not see Sstc, so it must ask for timer interrupts through SBI
`set_timer`, and that is the path this chapter teaches (section 5). A guest
that touches `stimecmp` anyway takes a virtual-instruction exit.

**Fresh code.** The kernel was copied into guest RAM as data; a `fence.i`
makes sure the CPU fetches those bytes and not stale instructions.

**Where the guest starts.** As OpenSBI would start a kernel: in S-mode (for
us VS-mode: `hstatus.SPV` = 1, `sstatus.SPP` = 1), at 0x8020_0000, with
`a0` = the hart ID and `a1` = the device tree address. hvbook builds no
device tree for the guest, so `a1` = 0, which tells a kernel that reads it
that there is none. The guest's own CSRs start at their reset values: `vsatp`
= 0 (no translation), `vsstatus` with interrupts off.
*/
#define HEDELEG_GUEST_TRAPS 0xB10DUL
#define HIDELEG_VS_INTERRUPTS 0x444UL
#define HCOUNTEREN_CY_TM_IR 0x7UL

static void vcpu_setup(u64 entry)
{
    csr_write(hedeleg, HEDELEG_GUEST_TRAPS);
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
        panic("this CPU does not support Sv39x4 G-stage translation (hgatp reads 0x%lx)",
              csr_read(hgatp));
    hfence_gvma(0, 0);

    /* The loader wrote the guest's code with ordinary stores; the guest
       will fetch it as instructions. RISC-V does not keep the two in step
       by itself: FENCE.I makes earlier stores visible to later instruction
       fetches on this hart (Unprivileged Specification, chapter 3,
       "Zifencei"). */
    __asm__ volatile("fence.i" ::: "memory");

    csr_set(hstatus, HSTATUS_SPV | HSTATUS_SPVP);
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
    |        +-- scause = timer interrupt -> inject_timer
    |        +-- scause = 20, 21, 23      -> handle_stage2_fault
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
    [EXIT_UNEXPECTED] = "unexpected",
};
static u64 exit_counts[EXIT_REASONS];

/* How the VM ended: still running, shut down by the guest, or stopped by
   the hypervisor after a fault. */
enum vm_state { VM_RUNNING, VM_SHUTDOWN, VM_FAULT };
static enum vm_state vm_state;

/*
### A VM fault

A guest that does something hvbook does not allow is stopped, never ignored
and never allowed to go on with garbage. `vm_fault` prints everything a
student needs to find the guest's mistake: what happened, the guest's PC,
and the trap registers, the way a kernel prints an "oops". (`vm_dump` is its
second half, for callers that print a more precise first line themselves.)
*/
static void vm_dump(u64 scause)
{
    printf("  scause 0x%lx  guest pc 0x%lx  stval 0x%lx  htval 0x%lx  htinst 0x%lx\n",
           scause, vcpu.pc, csr_read(stval), csr_read(htval), csr_read(htinst));
    printf("  guest ra 0x%lx  sp 0x%lx  a0 0x%lx  a7 0x%lx\n",
           vcpu.x[1], vcpu.x[2], vcpu.x[REG_A0], vcpu.x[REG_A7]);
    vm_state = VM_FAULT;
}

static void vm_fault(const char *what, u64 scause)
{
    printf("VM fault: %s\n", what);
    vm_dump(scause);
}

/*
### The guest's timer

A kernel needs a timer interrupt to preempt its threads. Our guest asks for
one the way any RISC-V kernel without Sstc does: SBI `set_timer(t)`, "raise a
supervisor timer interrupt when the `time` CSR reaches `t`". The hypervisor
cannot let the guest arm the real timer, which is the host's, but it can
arm it *on the guest's behalf* and pass the interrupt on:

    guest: set_timer(t)  -> VM exit (ecall)
      hvbook: arm the host timer for t (SBI to OpenSBI), unmask it (sie.STIE),
              clear hvip.VSTIP: the guest's old interrupt is answered
    ... time reaches t while the guest runs ...
    host timer interrupt -> VM exit (interrupt 5)
      inject_timer: set hvip.VSTIP; the guest now sees a pending VS timer
              interrupt and takes it through its own vstvec; mask the host
              timer (sie.STIE = 0) until the guest's next set_timer

Why mask? The host interrupt stays pending until someone arms the timer
again, and the guest will do that only from its interrupt handler. Leaving
it enabled would exit again at once, over and over, and the guest would
never get to run its handler. The interrupt was delegated with `hideleg`
bit 6, so the guest takes it without another exit.
*/
static void guest_set_timer(u64 deadline)
{
    sbi_call(SBI_EXT_TIME, 0, deadline, 0, 0);
    csr_clear(hvip, HVIP_VSTIP);
    csr_set(sie, SIE_STIE);
}

static void inject_timer(void)
{
    csr_set(hvip, HVIP_VSTIP);
    csr_clear(sie, SIE_STIE);
}

/*
### SBI calls from the guest

The guest's `ecall` arrives with its registers saved in `vcpu.x`: the
extension in `a7`, the function in `a6`, arguments from `a0`. We answer in
`a0` (error) and `a1` (value) and move the guest's PC past the 4-byte
`ecall`, as firmware would.

| extension | functions | what hvbook does |
|---|---|---|
| legacy 0x00..0x08 | set_timer, putchar, getchar, shutdown | as the newer ones; answer in `a0` only |
| BASE 0x10 | spec version, implementation ID and version, probe, machine IDs | describes hvbook |
| TIME | set_timer | the virtual timer above |
| DBCN | write, read, write_byte | the console; buffers checked against guest RAM |
| SRST | system_reset | a plain shutdown stops the VM normally; a reboot, or a shutdown giving a failure reason, stops it as a failure |
| any other | | `SBI_ERR_NOT_SUPPORTED`, and the guest goes on |

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
        return (struct sbiret){SBI_SUCCESS, 0}; // "not implemented" per the spec
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

static struct sbiret sbi_srst(u64 type, u64 reason)
{
    if (type != SBI_SRST_SHUTDOWN) {
        printf("Guest: SBI SRST reset type %lu: hvbook does not reboot VMs\n", type);
        vm_state = VM_FAULT;
    } else if (reason != SBI_SRST_REASON_NONE) {
        printf("Guest: SBI SRST shutdown, reason %lu: the guest reports a failure\n", reason);
        vm_state = VM_FAULT;
    } else {
        printf("Guest: SBI SRST shutdown\n");
        vm_state = VM_SHUTDOWN;
    }
    return (struct sbiret){SBI_SUCCESS, 0};
}

static void handle_hypercall(void)
{
    u64 eid = vcpu.x[REG_A7], fid = vcpu.x[REG_A6];
    u64 a0 = vcpu.x[REG_A0], a1 = vcpu.x[REG_A1], a2 = vcpu.x[12];
    struct sbiret ret = {SBI_ERR_NOT_SUPPORTED, 0};
    bool legacy = false;
    enum exit_reason reason = EXIT_SBI_OTHER;

    switch (eid) {
    case SBI_EXT_LEGACY_SET_TIMER:
        legacy = true;
        /* fall through */
    case SBI_EXT_TIME:
        if (legacy || fid == 0) {
            guest_set_timer(a0);
            ret = (struct sbiret){SBI_SUCCESS, 0};
        }
        reason = EXIT_SBI_SET_TIMER;
        break;
    case SBI_EXT_LEGACY_PUTCHAR:
        console_putchar((u8)a0);
        ret.error = 0;
        legacy = true;
        reason = EXIT_SBI_CONSOLE;
        break;
    case SBI_EXT_LEGACY_GETCHAR:
        ret.error = sbi_call(SBI_EXT_LEGACY_GETCHAR, 0, 0, 0, 0).error;
        legacy = true;
        reason = EXIT_SBI_CONSOLE;
        break;
    case SBI_EXT_LEGACY_SHUTDOWN:
        ret = sbi_srst(SBI_SRST_SHUTDOWN, SBI_SRST_REASON_NONE);
        legacy = true;
        break;
    case SBI_EXT_BASE:
        ret = sbi_base(fid, a0);
        break;
    case SBI_EXT_DBCN:
        ret = sbi_dbcn(fid, a0, a1, a2);
        reason = EXIT_SBI_CONSOLE;
        break;
    case SBI_EXT_SRST:
        if (fid == 0)
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
map. The faulting GPA is split over two CSRs (8.6.3): `htval` holds it
shifted right by two bits, and the low two bits are those of `stval`, which
holds the guest's (here: untranslated, so equal) address.

hvbook's rule of the house is *resource control* (see the preface): guest RAM is mapped
up front, and the *only* other thing the guest may reach is its pflash.
A first touch of the pflash window maps that 4 KiB page of the real device
straight through (GPA = HPA, the device's own address) and resumes the
guest at the same instruction, which now succeeds. Every later access to
that page runs at full speed with no exit: this is *pass-through*. Any other
GPA is a VM fault, and the VM stops.
*/
static void handle_stage2_fault(u64 scause)
{
    u64 gpa = (csr_read(htval) << 2) | (csr_read(stval) & 3);

    if (scause != EXC_INST_GUEST_PAGE_FAULT && gpa >= PFLASH_GPA &&
        gpa - PFLASH_GPA < PFLASH_SIZE) {
        u64 page = ALIGN_DOWN(gpa, PAGE_SIZE);
        gstage_map(page, page, PAGE_SIZE, GSTAGE_DEVICE);
        exit_counts[EXIT_PFLASH_FAULT]++;
        return; // retry the same instruction
    }
    exit_counts[EXIT_REFUSED_FAULT]++;
    printf("VM fault: the guest %s GPA 0x%lx, outside its RAM and its devices\n",
           scause == EXC_INST_GUEST_PAGE_FAULT ? "fetched from" :
           scause == EXC_LOAD_GUEST_PAGE_FAULT ? "read" : "wrote",
           gpa);
    vm_dump(scause);
}

/*
### The loop

`vcpu_run` is the loop drawn above. Before each entry it writes the guest's
PC to `sepc`; after each exit it reads it back, so that handlers see and
change `vcpu.pc` like any other register.
*/
static void vcpu_run(void)
{
    while (vm_state == VM_RUNNING) {
        csr_write(sepc, vcpu.pc);
        vcpu_enter(&vcpu);
        vcpu.pc = csr_read(sepc);
        u64 scause = csr_read(scause);

        if (scause == (SCAUSE_INTERRUPT | IRQ_S_TIMER)) {
            exit_counts[EXIT_TIMER_INTERRUPT]++;
            inject_timer();
            continue;
        }
        switch (scause) {
        case EXC_VS_ECALL:
            handle_hypercall();
            break;
        case EXC_INST_GUEST_PAGE_FAULT:
        case EXC_LOAD_GUEST_PAGE_FAULT:
        case EXC_STORE_GUEST_PAGE_FAULT:
            handle_stage2_fault(scause);
            break;
        case EXC_VIRTUAL_INSTRUCTION:
            exit_counts[EXIT_UNEXPECTED]++;
            vm_fault("virtual instruction (a CSR or instruction VS-mode may not use)", scause);
            break;
        default:
            exit_counts[EXIT_UNEXPECTED]++;
            vm_fault("unexpected exit", scause);
        }
    }
}

/*
A trap while the hypervisor itself runs is a bug in hvbook (or a device it
touched wrongly); `start/riscv64.S` sends it here.
*/
_Noreturn void hv_host_trap(u64 scause, u64 sepc, u64 stval, u64 sp)
{
    panic("trap in the hypervisor itself: scause 0x%lx sepc 0x%lx stval 0x%lx sp 0x%lx",
          scause, sepc, stval, sp);
}

/*
## 6. `hv_main`

The boot flow, the same on every architecture, as it goes on RISC-V:

    OpenSBI -> _start (start/riscv64.S) -> hv_main
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
        panic("this CPU has no H extension, so it cannot run a virtual machine.\n"
              "  Run QEMU with its default rv64 CPU (the H extension is on by default).");

    page_init((uintptr_t)_end, HOST_RAM_END);
    printf("Pre-allocating %lu MB guest RAM at 0x%lx...\n", GUEST_RAM_SIZE / MiB, GUEST_RAM_GPA);
    guest_ram_setup();
    printf("VM created success, loading images...\n");

    u64 entry = load_guest_kernel("/sbin/gkernel", EM_RISCV, GUEST_RAM_GPA, GUEST_RAM_SIZE,
                                  guest_ram, VIRTIO_MMIO_BASE, VIRTIO_MMIO_STRIDE,
                                  VIRTIO_MMIO_SLOTS);
    printf("bsp_entry: 0x%lx; ept: 0x%lx\n", entry, (u64)(uintptr_t)gstage_root);

    vcpu_setup(entry);
    printf("Entering VM run loop...\n");
    vcpu_run();

    if (vm_state == VM_SHUTDOWN)
        printf("Shutdown vm normally!\n");
    else
        printf("The VM was stopped after a fault.\n");
    print_exit_stats(exit_names, exit_counts, EXIT_REASONS);
    if (vm_state == VM_SHUTDOWN) {
        print_success();
        power_off(true);
    }
    printf("hvbook: stopping with a failure status.\n");
    power_off(false);
}
