/*
# AArch64: a hypervisor at EL2

This chapter is one file, `aarch64.c`, read from top to bottom, with its
companion `start/aarch64.S`. By its end a complete hypervisor has loaded a
guest kernel from a disk, run it at EL1 in a virtual machine with its own
memory, console, interrupt controller and timer, and switched the machine off
when the guest asked to shut down. If you have read the RISC-V chapter, the
shape will be familiar: the same run loop, the same handlers with the same
names. What differs is how Arm spells each idea.

## Exception levels, with and without virtualization

An Armv8-A CPU runs at one of four *exception levels* (Arm ARM DDI0487, D1
"The AArch64 System Level Programmers' Model"): EL0 for programs, EL1 for an operating-system
kernel, EL2 for a hypervisor and EL3 for the secure monitor (firmware).
Unlike RISC-V, which added a *mode bit* V beside its privilege levels, Arm
gave the hypervisor a level of its own, *below* the kernel:

    +-----------------------+
    | EL0  guest programs   |
    +-----------------------+
    | EL1  gkernel          |   a normal kernel, unaware of EL2
    +-----------------------+
    | EL2  hvbook           |   this file
    +-----------------------+
    | EL3  firmware (QEMU plays it: PSCI)                |
    +----------------------------------------------------+

An exception is taken to the same or a higher level, never a lower one. So
when the guest kernel at EL1 executes `HVC` (hypervisor call), touches memory
the hypervisor did not map, or is hit by an interrupt the hypervisor asked
for, the CPU saves where the guest was in `ELR_EL2` and `SPSR_EL2`, records
the reason in `ESR_EL2`, and jumps to EL2's vector table. That is a *VM
exit*. `ERET` from EL2 goes back down: a *VM entry*.

What decides which guest actions come to EL2 is one register, `HCR_EL2`, the
Hypervisor Configuration Register; section 5 sets it bit by bit.

The guest's EL1 has its *own* copies of every system register it uses
(`SCTLR_EL1`, `VBAR_EL1`, `TTBR0_EL1` and so on), distinct from EL2's. The
kernel programs them as on bare metal, and EL2 code never needs them. This
is why an Arm hypervisor with a single virtual CPU has so little to save.

## Two stages of address translation

With `HCR_EL2.VM` = 1 every EL1 and EL0 memory access is translated twice.
The guest's own tables (`TTBR0_EL1`/`TTBR1_EL1`) turn a virtual address into
an *intermediate physical address* (IPA), the address the guest believes is
physical; the hypervisor's **stage 2** tables (`VTTBR_EL2`) turn the IPA into a
real physical address (PA). The guest cannot see or change stage 2, and that
is the whole of memory isolation: a guest can only reach the memory stage 2
maps.

    guest-virtual --[TTBRn_EL1: guest's stage 1]--> IPA
                                                     |
                        [VTTBR_EL2: hvbook's stage 2]
                                                     v
                                              physical address

Our guest runs with its MMU off (stage 1 off), so for it IPA = the address in
the instruction. Stage 2 still applies.

## What happens in this file, in order

1. Accessors for system registers, and how to read an exception syndrome.
2. The machine below us: PSCI to power off, the PL011 console, a barrier.
3. Stage 2: its tables and 16 MiB of guest RAM.
4. The interrupt controller: setting up the physical GICv3 at EL2.
5. The virtual CPU: its registers, `HCR_EL2`, and the state it starts in.
6. The run loop, and one handler per kind of VM exit: hypercalls (PSCI),
   stage-2 faults (pass-through and device emulation), the timer interrupt,
   and everything else.
7. `hv_main`, which ties it together.
*/
#include "common.h"
#include <stddef.h>

/*
## 1. System registers and syndromes

A system register is read with `MRS` and written with `MSR`, and the
register's name is part of the instruction, so the accessors must be macros.
The assembler knows the EL2 and GIC registers by name. After writing a
register that changes how the CPU behaves (translation, interrupt routing),
an `ISB` makes sure later instructions see the change (Arm ARM,
"Synchronization requirements for AArch64 System registers", in the
chapter on the AArch64 system registers: *context-changing* writes need an
ISB).
*/
#define sysreg_read(r)                                        \
    ({                                                        \
        u64 v_;                                               \
        __asm__ volatile("mrs %0, " #r : "=r"(v_));           \
        v_;                                                   \
    })
#define sysreg_write(r, v) __asm__ volatile("msr " #r ", %0" ::"r"((u64)(v)) : "memory")
#define isb() __asm__ volatile("isb" ::: "memory")
#define dsb(opt) __asm__ volatile("dsb " #opt ::: "memory")

/*
### The exception syndrome, `ESR_EL2`

Every synchronous exit comes with a 64-bit syndrome (Arm ARM, register
description ESR_EL2):

    31..26  EC   exception class: what kind of exit
        25  IL   instruction length: 1 = a 32-bit instruction (always, in A64)
     24..0  ISS  instruction-specific syndrome: details, per class

These are the classes this chapter meets; the run loop handles the first
four and reports all others.

| EC | exit | from |
|---|---|---|
| 0x16 | `HVC` executed at EL1 | the guest calling the hypervisor (PSCI) |
| 0x17 | `SMC` executed at EL1, trapped by `HCR_EL2.TSC` | the guest calling firmware |
| 0x24 | data abort from a lower level | a stage-2 fault on a load or store |
| 0x20 | instruction abort from a lower level | a stage-2 fault on a fetch |
| 0x01 | `WFI`/`WFE` trapped | (we do not trap them: see `HCR_EL2`) |
| 0x18 | `MSR`/`MRS`/system instruction trapped | a register we keep from the guest |
| 0x21, 0x25 | instruction or data abort at EL2 itself | a bug in the hypervisor |
*/
#define ESR_EC(esr) (((esr) >> 26) & 0x3f)
#define ESR_ISS(esr) ((esr) & 0x1ffffff)

#define EC_UNKNOWN 0x00
#define EC_WFX 0x01
#define EC_FP 0x07
#define EC_PAUTH 0x09
#define EC_ILLEGAL 0x0e
#define EC_HVC64 0x16
#define EC_SMC64 0x17
#define EC_SYSREG 0x18
#define EC_SVE 0x19
#define EC_IABT_LOW 0x20
#define EC_IABT_CUR 0x21
#define EC_PC_ALIGN 0x22
#define EC_DABT_LOW 0x24
#define EC_DABT_CUR 0x25
#define EC_SP_ALIGN 0x26
#define EC_SERROR 0x2f
#define EC_BRK 0x3c

static const char *ec_name(u64 ec)
{
    switch (ec) {
    case EC_UNKNOWN: return "unknown reason (an undefined instruction?)";
    case EC_WFX: return "WFI/WFE";
    case EC_FP: return "FP/SIMD access trapped";
    case EC_PAUTH: return "pointer authentication trapped";
    case EC_ILLEGAL: return "illegal execution state";
    case EC_HVC64: return "HVC";
    case EC_SMC64: return "SMC";
    case EC_SYSREG: return "system register access trapped";
    case EC_SVE: return "SVE access trapped";
    case EC_IABT_LOW: return "instruction abort from EL1/EL0";
    case EC_IABT_CUR: return "instruction abort at EL2 itself";
    case EC_PC_ALIGN: return "PC alignment fault";
    case EC_DABT_LOW: return "data abort from EL1/EL0";
    case EC_DABT_CUR: return "data abort at EL2 itself";
    case EC_SP_ALIGN: return "SP alignment fault";
    case EC_SERROR: return "SError";
    case EC_BRK: return "BRK instruction";
    }
    return "not expected here";
}

/*
For a data abort the ISS says a great deal about the access that failed,
enough to *replay* it in software, which is how device emulation works
(Arm ARM, ESR_EL2, "ISS encoding for an exception from a Data Abort"):

    24  ISV   1: bits 23..14 below are valid (a single load or store of
              one general register; not LDP/STP, not writeback forms)
 23..22 SAS   access size: 0 byte, 1 halfword, 2 word, 3 doubleword
    21  SSE   a load that sign-extends (LDRSB, LDRSH, LDRSW)
 20..16 SRT   the register transferred (31 = XZR for a store)
    15  SF    1: a 64-bit register (Xn), 0: a 32-bit one (Wn)
     7  S1PTW 1: the fault came from the guest's own stage-1 table walk
     6  WnR   1: a write, 0: a read
  5..0  DFSC  fault status: 0b0001LL translation fault at level LL,
              0b0010LL access flag fault, 0b0011LL permission fault

For instruction and data aborts taken to EL2 on a stage-2 fault, the CPU also
records the faulting IPA in `HPFAR_EL2` (bits 47..4 hold IPA bits 51..12)
and the virtual address in `FAR_EL2`, whose low 12 bits complete the IPA.
*/
#define ISS_ISV (1UL << 24)
#define ISS_SAS(iss) (((iss) >> 22) & 3)
#define ISS_SSE (1UL << 21)
#define ISS_SRT(iss) (((iss) >> 16) & 0x1f)
#define ISS_SF (1UL << 15)
#define ISS_S1PTW (1UL << 7)
#define ISS_WNR (1UL << 6)
#define ISS_FSC(iss) ((iss) & 0x3f)
#define FSC_TYPE(fsc) ((fsc) & 0x3c)
#define FSC_TRANSLATION 0x04
#define FSC_ACCESS_FLAG 0x08
#define FSC_PERMISSION 0x0c

#define HPFAR_FIPA_MASK 0x0000fffffffffff0UL

/*
## 2. The machine below us

### Switching off: PSCI

Arm machines switch off through the *Power State Coordination Interface*
(Arm DEN0022, PSCI): a call to the firmware below, made with `SMC` (or
`HVC`) following the SMC Calling Convention (Arm DEN0028, SMCCC): function
id in `w0`, arguments in `x1` .. `x3`, result in `x0`. QEMU implements PSCI
itself. With `virtualization=on` its "firmware" sits at EL3 and answers `SMC`
from EL2; without it the CPU starts at EL1 and QEMU answers `HVC` instead.
The two calls are in `start/aarch64.S`.

These are the function ids of the PSCI calls in this chapter, and the two
SMCCC answers we give (DEN0022, chapter 5 "PSCI Functions"; DEN0028, "Return
codes"). The `0x84` prefix means "fast call, 32-bit convention, standard
secure service".
*/
#define PSCI_VERSION 0x84000000U
#define PSCI_SYSTEM_OFF 0x84000008U
#define PSCI_SYSTEM_RESET 0x84000009U
#define PSCI_FEATURES 0x8400000AU
#define PSCI_SUCCESS 0
#define SMCCC_NOT_SUPPORTED (-1L)
#define PSCI_VERSION_1_1 0x00010001UL

u64 psci_smc(u64 fn, u64 a1, u64 a2, u64 a3); /* start/aarch64.S */
u64 psci_hvc(u64 fn, u64 a1, u64 a2, u64 a3);

static u64 current_el(void)
{
    return (sysreg_read(CurrentEL) >> 2) & 3;
}

/*
`power_off` is the second function of the `common.h` contract. QEMU's PSCI
`SYSTEM_OFF` always exits QEMU with status 0, whatever we meant: PSCI has no
way to say "off, with a failure". So on Arm the *output* carries the verdict,
which is what `run.sh` reads: `Hypervisor ok!` is printed only after a real
guest shutdown, and a failure never prints it. (QEMU's semihosting could
report an exit status, but it would also give a guest at EL1 a door to the
host's files, so it stays off.)
*/
_Noreturn void power_off(bool success)
{
    (void)success; // see above: PSCI cannot carry it
    if (current_el() == 2)
        psci_smc(PSCI_SYSTEM_OFF, 0, 0, 0);
    else if (current_el() == 1)
        psci_hvc(PSCI_SYSTEM_OFF, 0, 0, 0);
    for (;;) // at EL3 (secure=on) there is no PSCI firmware to ask
        __asm__ volatile("wfi");
}

/*
### The console: a PL011 UART

QEMU's `virt` machine has one Arm PL011 UART at 0x0900_0000 (ARM DDI0183,
"PrimeCell UART (PL011) Technical Reference Manual", 3.3 "Register
descriptions"). The hypervisor owns it. To send a byte, wait while the flag
register says the transmit FIFO is full, then write the data register:

| offset | register | bits we use |
|---|---|---|
| 0x000 | `UARTDR` data | 7..0: the byte to send |
| 0x018 | `UARTFR` flags | 5 TXFF: transmit FIFO full |

On real hardware firmware would have set the baud rate and enabled the UART;
QEMU's model transmits without any of that.

The guest has a PL011 at the same address, but not this one: its accesses
come to us as stage-2 faults and are *emulated* (section 6), ending up here
one byte at a time.
*/
#define PL011_BASE 0x09000000UL
#define PL011_SIZE 0x1000UL
#define PL011_DR 0x000
#define PL011_FR 0x018
#define PL011_FR_TXFF (1U << 5)

static inline u32 mmio_read32(uintptr_t addr)
{
    return *(volatile u32 *)addr;
}

static inline void mmio_write32(uintptr_t addr, u32 v)
{
    *(volatile u32 *)addr = v;
}

static inline void mmio_write8(uintptr_t addr, u8 v)
{
    *(volatile u8 *)addr = v;
}

void console_putchar(int c)
{
    while (mmio_read32(PL011_BASE + PL011_FR) & PL011_FR_TXFF)
        ;
    mmio_write32(PL011_BASE + PL011_DR, (u8)c);
}

/*
The third item of the contract: a barrier that orders memory and device
accesses. `DSB SY` waits until every earlier memory access, to RAM or to a
device, has completed before any later one starts (Arm ARM, B2 "The AArch64
Application Level Memory Model", Memory barriers: Data Synchronization
Barrier). The VirtIO driver calls it between
writing a request into memory and ringing the device's doorbell.
*/
void io_barrier(void)
{
    dsb(sy);
}

/* `time_us`, the clock of the contract: the generic timer's physical
   counter `CNTPCT_EL0` counts at `CNTFRQ_EL0` Hz (62.5 MHz on QEMU 7.2, 1 GHz
   on newer ones). Whole seconds and the remainder are converted separately,
   so that no product overflows 64 bits. The `isb` keeps the counter read
   from being taken early, ahead of the code before it. */
u64 time_us(void)
{
    isb();
    u64 count = sysreg_read(CNTPCT_EL0), hz = sysreg_read(CNTFRQ_EL0);
    return count / hz * 1000000 + count % hz * 1000000 / hz;
}

/*
### Caches: why everything here is simple

The hypervisor runs with its MMU off (`SCTLR_EL2.M` = 0) and its data cache
off (`C` = 0), so every load and store it makes goes straight to memory. That
makes three things simple that are subtle on real hardware: the page tables
it writes are in memory when the stage-2 walker reads them (as long as the
walker, too, reads without caching: see `VTCR_EL2` below); the guest kernel
it copies into guest RAM is in memory when the guest fetches it; and VirtIO
DMA needs no cache maintenance. A hypervisor that turns its caches on must
clean them at each of those three places.
*/

/*
## 3. Stage 2 and guest memory

### The machine the guest sees

| IPA | what | how |
|---|---|---|
| 0x0400_0000 .. 0x07FF_FFFF | pflash1, 64 MiB | passed through on first touch |
| 0x0800_0000 .. 0x0800_FFFF | GICv3 distributor | emulated |
| 0x080A_0000 .. 0x080B_FFFF | GICv3 redistributor of CPU 0 | emulated |
| 0x0900_0000 .. 0x0900_0FFF | PL011 UART | emulated |
| 0x4000_0000 .. 0x40FF_FFFF | 16 MiB of RAM | mapped at set-up to host frames |
| anything else | nothing | a VM fault: reported, the VM stops |

These are the addresses of QEMU's `virt` board, so the guest, written for that
board, finds everything where it expects. The kernel is loaded where its ELF
file says (0x4008_0000 for `gkernel`).

The hypervisor itself runs from 0x4020_0000 of the *physical* RAM, with
QEMU's device tree below it at 0x4000_0000, so guest RAM cannot be at the
same physical addresses: it is 16 MiB taken from the page allocator,
somewhere above the hypervisor. IPA and PA differ, and only
the stage-2 tables know how they correspond.
*/
#define GUEST_RAM_IPA 0x40000000UL
#define GUEST_RAM_SIZE (16 * MiB)
#define PFLASH_IPA 0x04000000UL
#define PFLASH_SIZE (64 * MiB)
#define GICD_BASE 0x08000000UL
#define GICD_SIZE 0x10000UL
#define GICR_BASE 0x080A0000UL
#define GICR_SIZE 0x20000UL /* one redistributor: RD_base + SGI_base frames */

/* QEMU's virt machine places RAM at 0x4000_0000; run.sh gives it 256 MiB. */
#define HOST_RAM_BASE 0x40000000UL
#define HOST_RAM_END (HOST_RAM_BASE + 256 * MiB)

/* QEMU virt's VirtIO-MMIO slots: 32 of them, 0x200 bytes apart. */
#define VIRTIO_MMIO_BASE 0x0a000000UL
#define VIRTIO_MMIO_STRIDE 0x200UL
#define VIRTIO_MMIO_SLOTS 32

/*
### How big is the IPA space? `VTCR_EL2`

Stage 2 uses the VMSAv8-64 translation table format with a 4 KiB granule
(Arm ARM, D8 "The AArch64 Virtual Memory System Architecture"): each table
is one 4 KiB page of 512 eight-byte descriptors, and each level resolves 9
bits of the address:

    IPA bit  47 ..... 39 | 38 ..... 30 | 29 ..... 21 | 20 ..... 12 | 11 .. 0
             level 0     | level 1     | level 2     | level 3     | offset
             (512 GiB)   | (1 GiB)     | (2 MiB)     | (4 KiB)     |

How many of those levels a walk uses depends on the size of the IPA space,
which the hypervisor chooses. We give the guest as large a space as the
CPU's physical addresses: `ID_AA64MMFR0_EL1.PARange` (bits 3..0) says how
many bits those have. The 4 KiB granule without FEAT_LPA2 stops at 48 bits,
so a CPU that reports 52 (QEMU's `max` does) gets 48. A walk then starts at
the level whose table the space just fills:

| PARange | bits | `T0SZ` = 64 - bits | first level (`SL0`) | walk |
|---|---|---|---|---|
| 0 | 32 | 32 | 1 (0b01) | 1, 2, 3 |
| 1 | 36 | 28 | 1 (0b01) | 1, 2, 3 |
| 2, 3, 4 | 40, 42, 44 | 24, 22, 20 | 0 (0b10) | 0, 1, 2, 3 |
| 5, 6 | 48 | 16 | 0 (0b10) | 0, 1, 2, 3 |

`VTCR_EL2` (Arm ARM, register description VTCR_EL2) describes all of this to
the hardware:

| bits | field | value | meaning |
|---|---|---|---|
| 31 | RES1 | 1 | |
| 19 | VS | 0 | 8-bit VMIDs |
| 18..16 | PS | PARange, at most 0b101 | physical address size of stage-2 output |
| 15..14 | TG0 | 0b00 | 4 KiB granule |
| 13..12 | SH0 | 0b11 | table walks are Inner Shareable |
| 11..10 | ORGN0 | 0b00 | walks read the tables Non-cacheable (outer) |
| 9..8 | IRGN0 | 0b00 | and Non-cacheable (inner) |
| 7..6 | SL0 | see above | the level the walk starts at |
| 5..0 | T0SZ | 64 - IPA bits | size of the IPA space |

Why non-cacheable walks? The hypervisor writes the tables with its data cache
off (see "Caches" above). A walker allowed to cache them could keep a stale
copy of a table we later change.
*/
#define VTCR_RES1 (1UL << 31)
#define VTCR_PS_SHIFT 16
#define VTCR_TG0_4K (0UL << 14)
#define VTCR_SH0_INNER (3UL << 12)
#define VTCR_ORGN0_NC (0UL << 10)
#define VTCR_IRGN0_NC (0UL << 8)
#define VTCR_SL0_SHIFT 6

/*
### Stage-2 descriptors

Every entry is 64 bits. Bits 1..0 say what it is: `0b11` at levels 0..2 is
a *table* descriptor pointing to the next level, at level 3 a *page*;
`0b01` at levels 1 and 2 is a *block*, mapping 1 GiB or 2 MiB in one entry;
bit 0 = 0 is invalid, and any access through it is a *translation fault*.
The attributes of a stage-2 block or page (Arm ARM, D8 "Stage 2 memory
region attributes" and "Stage 2 access permissions"):

| bits | field | RAM | device | meaning |
|---|---|---|---|---|
| 54 | XN | 0 | 1 | execute never: no instruction fetch from a device |
| 47..12 | output address | frame | frame | the physical page (or block) |
| 10 | AF | 1 | 1 | access flag; 0 would fault on first use |
| 9..8 | SH | 0b11 | 0b00 | shareability: Inner Shareable for RAM |
| 7..6 | S2AP | 0b11 | 0b11 | 0b00 none, 0b01 read, 0b10 write, 0b11 read/write |
| 5..2 | MemAttr | 0b1111 | 0b0001 | Normal Write-Back / Device-nGnRE |
| 1..0 | type | 0b01 or 0b11 | 0b11 | block, or page |

**MemAttr** is how the hypervisor limits what the guest may assume about
memory. Stage 1 and stage 2 attributes are *combined*, and the stronger
(less cacheable, more ordered) wins. RAM gets the weakest, Normal
Write-Back, so that whatever the guest's own stage 1 says is what happens.
A device gets Device-nGnRE (no gathering, no reordering; early write
acknowledgement allowed): whatever a confused guest's stage 1 says, its
accesses to the device stay device accesses.

A table descriptor has only its type bits and the next table's address.
*/
#define S2_VALID (1UL << 0)
#define S2_TABLE (3UL << 0)
#define S2_PAGE (3UL << 0)
#define S2_BLOCK (1UL << 0)
#define S2_MEMATTR_NORMAL_WB (0xfUL << 2)
#define S2_MEMATTR_DEVICE_nGnRE (0x1UL << 2)
#define S2AP_RW (3UL << 6)
#define S2_SH_INNER (3UL << 8)
#define S2_AF (1UL << 10)
#define S2_XN (1UL << 54)
#define S2_ADDR_MASK 0x0000fffffffff000UL

#define S2_RAM (S2_MEMATTR_NORMAL_WB | S2AP_RW | S2_SH_INNER | S2_AF)
#define S2_DEVICE (S2_MEMATTR_DEVICE_nGnRE | S2AP_RW | S2_AF | S2_XN)

static u64 *s2_root;        /* one 4 KiB table at the first level */
static int s2_start_level;  /* 0 or 1: where walks start */

/* The guest's VMID: tags its TLB entries, so that they can never be used for
   another VM. */
#define GUEST_VMID 1UL

/*
### Setting up the translation regime

`s2_setup` reads the CPU's physical address size, picks the IPA size and the
start level as in the table above, allocates the (empty) root table, and
writes the two registers. Nothing is translated yet: stage 2 applies only
once `HCR_EL2.VM` is set (section 5), and only to EL1 and EL0. But from now
on the VMID is the guest's, so the TLB maintenance in `s2_map` below is aimed
at the right VM from the first mapping. `VTTBR_EL2` (Arm ARM, register
description VTTBR_EL2) holds the root:

| bits | field | value |
|---|---|---|
| 55..48 | VMID | 1 |
| 47..1 | BADDR | physical address of the root table |
| 0 | CnP | 0: this CPU's TLB entries are its own |
*/
static void s2_setup(void)
{
    static const u8 pa_bits[] = {32, 36, 40, 42, 44, 48, 52};
    u64 parange = sysreg_read(ID_AA64MMFR0_EL1) & 0xf;
    if (parange > 5)
        parange = 5; // 48 bits: the most a 4 KiB granule gives without LPA2
    int ipa_bits = pa_bits[parange];
    s2_start_level = ipa_bits > 39 ? 0 : 1;

    s2_root = page_alloc(1, PAGE_SIZE);
    u64 vtcr = VTCR_RES1 | (parange << VTCR_PS_SHIFT) | VTCR_TG0_4K | VTCR_SH0_INNER |
           VTCR_ORGN0_NC | VTCR_IRGN0_NC |
           ((u64)(s2_start_level == 0 ? 2 : 1) << VTCR_SL0_SHIFT) | (u64)(64 - ipa_bits);
    sysreg_write(VTCR_EL2, vtcr);
    sysreg_write(VTTBR_EL2, (GUEST_VMID << 48) | (uintptr_t)s2_root);
    isb();
}

/*
### Forgetting old translations

The CPU caches translations in its TLBs, and stage-2 entries are cached too,
both alone and combined with the guest's stage 1. After changing a stage-2
entry the Arm ARM prescribes this sequence (D8 "TLB maintenance", the
example "Invalidating a stage 2 translation table entry"):

    DSB ISHST            the new descriptor is in memory before anything below
    TLBI IPAS2E1IS, ipa  forget stage-2 entries for this IPA (current VMID)
    DSB ISH              ... and wait until that has happened
    TLBI VMALLE1IS       forget combined stage 1+2 entries of this VMID: they
                         may hold the old stage-2 result under a guest VA
    DSB ISH
    ISB                  later instructions of this CPU see the new state

Strictly, an entry that was *invalid* before cannot be cached (TLBs never
hold translation faults), so creating a mapping needs no invalidation. We do
it anyway: it costs nothing that matters here, and the code stays right if
someone later changes an existing entry.

The operand of `TLBI IPAS2E1IS` is IPA bits 47..12, in bits 35..0.
*/
static void s2_flush_ipa(u64 ipa)
{
    dsb(ishst);
    __asm__ volatile("tlbi ipas2e1is, %0" ::"r"(ipa >> 12) : "memory");
    dsb(ish);
    __asm__ volatile("tlbi vmalle1is" ::: "memory");
    dsb(ish);
    isb();
}

/*
`s2_map` maps one block or page of `size` bytes (2 MiB or 4 KiB) at `ipa` to
the physical memory at `pa`. It walks down from the root, creating any
missing intermediate table on the way, until it reaches the level whose
entries map `size` bytes: level 2 for 2 MiB, level 3 for 4 KiB. An existing
block or page in the way would mean two mappings overlap, a bug, so it
panics instead of quietly overwriting.

Guest RAM uses 2 MiB blocks: eight entries map all 16 MiB. Devices use 4 KiB
pages, mapped one at a time as the guest touches them.
*/
static void s2_map(u64 ipa, u64 pa, u64 size, u64 attrs)
{
    int leaf_level = size == 2 * MiB ? 2 : 3;
    u64 *table = s2_root;

    for (int level = s2_start_level; level < leaf_level; level++) {
        u64 index = (ipa >> (39 - 9 * level)) & 0x1ff;
        u64 desc = table[index];
        if (!(desc & S2_VALID)) {
            u64 *next = page_alloc(1, PAGE_SIZE);
            desc = (uintptr_t)next | S2_TABLE;
            table[index] = desc;
        } else if ((desc & 3) != S2_TABLE) {
            panic("stage 2: IPA 0x%lx is already inside a block mapping", ipa);
        }
        table = (u64 *)(uintptr_t)(desc & S2_ADDR_MASK);
    }
    u64 index = (ipa >> (39 - 9 * leaf_level)) & 0x1ff;
    if (table[index] & S2_VALID)
        panic("stage 2: IPA 0x%lx is mapped twice", ipa);
    table[index] = (pa & S2_ADDR_MASK) | attrs | (leaf_level == 3 ? S2_PAGE : S2_BLOCK);
    s2_flush_ipa(ipa);
}

/*
`guest_ram_setup` allocates the guest's 16 MiB in one piece, 2 MiB aligned
so that 2 MiB blocks can map it, and maps it. Its address in the
hypervisor's memory, `guest_ram`, is kept: the loader writes the kernel
through it.
*/
static u8 *guest_ram;

static void guest_ram_setup(void)
{
    s2_setup();
    guest_ram = page_alloc(GUEST_RAM_SIZE / PAGE_SIZE, 2 * MiB);
    for (u64 off = 0; off < GUEST_RAM_SIZE; off += 2 * MiB)
        s2_map(GUEST_RAM_IPA + off, (uintptr_t)guest_ram + off, 2 * MiB, S2_RAM);
}

/*
## 4. The interrupt controller

### Who owns the GIC

QEMU's `virt` board with `gic-version=3` has an Arm GICv3 (Arm IHI0069,
"GIC Architecture Specification, GICv3 and GICv4"). It has three parts:

| part | where | what it does |
|---|---|---|
| distributor (GICD) | MMIO, 0x0800_0000 | global settings; shared interrupts (SPIs) |
| redistributor (GICR) | MMIO, 0x080A_0000, one per CPU | that CPU's private interrupts (SGIs, PPIs) |
| CPU interface | system registers `ICC_*_EL1` | acknowledge and end interrupts, priority mask |

and, for hypervisors, a **virtual CPU interface** (IHI0069, chapter 6
"Virtual Interrupt Handling and Prioritization"). With `HCR_EL2.IMO` and
`FMO` set, every `ICC_*_EL1` access the guest makes at EL1 goes, in
hardware, to a virtual twin `ICV_*_EL1` instead. The virtual interface
presents to the guest whatever the hypervisor puts in its **list registers**
`ICH_LR<n>_EL2`: one entry per virtual interrupt, with its number, priority
and state. The guest acknowledges and ends *virtual* interrupts with the
very instructions it would use on bare metal, and never reaches the physical
CPU interface.

The distributor and redistributor have no such twin: they are memory-mapped,
so the guest's accesses to them are stage-2 faults, and the hypervisor can
pass them through or emulate them. hvbook **emulates** them (section 6): the
physical GIC stays in the hypervisor's hands, and a guest cannot, say,
disable an interrupt the hypervisor relies on, or route one elsewhere.

### The timer interrupt, end to end

The guest uses the EL1 *virtual* timer (`CNTV_CVAL_EL0`, `CNTV_CTL_EL0`),
exactly as on bare metal; those registers are the guest's own and do not
trap. When it fires it raises PPI 27 (INTID 27) at the redistributor. The
path from there:

    CNTV fires -> PPI 27 pending at the physical GIC
      -> physical IRQ; IMO = 1 routes it to EL2: a VM exit
    hvbook (inject_timer):
      ICC_IAR1_EL1 -> 27         acknowledge: 27 is now *active* physically
      ICC_EOIR1_EL1 <- 27        with EOImode = 1 this only drops the running
                                 priority; 27 stays active, so it cannot fire
                                 again and again while the guest handles it
      ICH_LR<n>_EL2 <- pending, HW = 1, pINTID 27, vINTID 27
    ERET: the guest sees a virtual IRQ (vIRQ) and takes it at its VBAR_EL1
    guest: ICC_IAR1_EL1 (really ICV_IAR1_EL1) -> 27, sets a new deadline,
           ICC_EOIR1_EL1 (really ICV_EOIR1_EL1) <- 27
      -> the virtual interrupt is deactivated, and because HW = 1 the GIC
         deactivates physical INTID 27 too: the next tick can come.

No exit is needed to end the interrupt; one exit per tick is all it costs.

### Setting up the physical GIC

`gic_setup` runs once at EL2. The order matters; each step comes from the
register descriptions in IHI0069 (chapter 12, "System and memory-mapped
registers"):

1. **Distributor**: `GICD_CTLR` = `ARE` | `EnableGrp1`. `ARE` (affinity
   routing, bit 4) is GICv3's native mode; `EnableGrp1` (bit 1) lets Group 1
   interrupts through (QEMU's GIC without EL3 has a single security state,
   `DS` = 1, where bit 1 is simply "Group 1"). Then wait while `RWP` (bit 31)
   says the write is still taking effect.
2. **Wake the redistributor**: clear `GICR_WAKER.ProcessorSleep` (bit 1),
   then wait until `ChildrenAsleep` (bit 2) reads 0. Until then the
   redistributor forwards nothing to the CPU.
3. **PPI 27** in the redistributor's SGI frame: Group 1 (`GICR_IGROUPR0`
   bit 27), a middle priority (`GICR_IPRIORITYR`, one byte per INTID), and
   *disabled* for now (`GICR_ICENABLER0`). It is enabled when the guest
   enables its own timer interrupt: see the GIC emulation in section 6.
4. **CPU interface at EL2**: `ICC_SRE_EL2` = `SRE` | `DFB` | `DIB` | `Enable`:
   use the system-register interface at EL2 (`SRE`, bit 0), with FIQ and IRQ
   bypass disabled (bits 1, 2), and let EL1 use *its* system-register
   interface (`Enable`, bit 3; without it, every guest `ICC_SRE_EL1` access
   would trap).
5. `ICC_PMR_EL1` = 0xFF: accept every priority; `ICC_BPR1_EL1` = 0;
   `ICC_CTLR_EL1.EOImode` (bit 1) = 1: an EOI only drops priority, and
   deactivation is separate (here: done by the guest, through the HW bit);
   `ICC_IGRPEN1_EL1` = 1: Group 1 interrupts on. At EL2, the `ICC_*_EL1` names
   are the *physical* CPU interface.
6. **Virtual interface**: clear the list registers and the active-priority
   registers (`ICH_AP0R<n>_EL2`, `ICH_AP1R<n>_EL2`; how many depends on
   `ICH_VTR_EL2.PREbits`), zero `ICH_VMCR_EL2` (the guest's virtual
   priority mask and enables, as after reset), and set `ICH_HCR_EL2.En`
   (bit 0), which turns the virtual CPU interface on.

The hypervisor itself never unmasks interrupts at EL2 (`PSTATE.I` stays set
there). A physical IRQ that arrives while the hypervisor runs waits until
the next `ERET`, and is then taken at once, as a VM exit.
*/
#define GICD_CTLR 0x0000
#define GICD_TYPER 0x0004
#define GICD_IIDR 0x0008
#define GICD_PIDR2 0xffe8
#define GICD_CTLR_ENABLE_GRP0 (1U << 0)
#define GICD_CTLR_ENABLE_GRP1 (1U << 1)
#define GICD_CTLR_ARE (1U << 4)
#define GICD_CTLR_DS (1U << 6)
#define GICD_CTLR_RWP (1U << 31)

#define GICR_SGI 0x10000 /* the second 64 KiB frame of a redistributor */
#define GICR_CTLR 0x0000
#define GICR_IIDR 0x0004
#define GICR_TYPER 0x0008
#define GICR_WAKER 0x0014
#define GICR_PIDR2 0xffe8
#define GICR_WAKER_PROCESSOR_SLEEP (1U << 1)
#define GICR_WAKER_CHILDREN_ASLEEP (1U << 2)
#define GICR_IGROUPR0 (GICR_SGI + 0x0080)
#define GICR_ISENABLER0 (GICR_SGI + 0x0100)
#define GICR_ICENABLER0 (GICR_SGI + 0x0180)
#define GICR_IPRIORITYR (GICR_SGI + 0x0400)
#define GICR_ICFGR0 (GICR_SGI + 0x0c00)
#define GICR_ICFGR1 (GICR_SGI + 0x0c04)

#define ICC_SRE_SRE (1UL << 0)
#define ICC_SRE_DFB (1UL << 1)
#define ICC_SRE_DIB (1UL << 2)
#define ICC_SRE_ENABLE (1UL << 3)
#define ICC_CTLR_EOIMODE (1UL << 1)
#define ICH_HCR_EN (1UL << 0)
#define INTID_SPURIOUS_FIRST 1020 /* 1020..1023: no interrupt to acknowledge */

/* The EL1 virtual timer's interrupt on QEMU virt (and on most boards). */
#define TIMER_PPI 27
#define HV_TIMER_PRIORITY 0x80

/*
A list register's number is part of the instruction that accesses it, so
"list register n" is a `switch` over the sixteen an implementation may have
(`ICH_VTR_EL2.ListRegs` + 1 says how many this one has).
*/
#define LR_CASE(n)                               \
    case n:                                      \
        if (write)                               \
            sysreg_write(ICH_LR##n##_EL2, v);    \
        else                                     \
            v = sysreg_read(ICH_LR##n##_EL2);    \
        break;

static u64 ich_lr(int n, bool write, u64 v)
{
    switch (n) {
        LR_CASE(0) LR_CASE(1) LR_CASE(2) LR_CASE(3)
        LR_CASE(4) LR_CASE(5) LR_CASE(6) LR_CASE(7)
        LR_CASE(8) LR_CASE(9) LR_CASE(10) LR_CASE(11)
        LR_CASE(12) LR_CASE(13) LR_CASE(14) LR_CASE(15)
    }
    return v;
}

static int num_lrs;

static void gic_setup(void)
{
    // 1. Distributor.
    mmio_write32(GICD_BASE + GICD_CTLR, GICD_CTLR_ARE | GICD_CTLR_ENABLE_GRP1);
    while (mmio_read32(GICD_BASE + GICD_CTLR) & GICD_CTLR_RWP)
        ;
    // 2. Wake this CPU's redistributor.
    u32 waker = mmio_read32(GICR_BASE + GICR_WAKER);
    mmio_write32(GICR_BASE + GICR_WAKER, waker & ~GICR_WAKER_PROCESSOR_SLEEP);
    while (mmio_read32(GICR_BASE + GICR_WAKER) & GICR_WAKER_CHILDREN_ASLEEP)
        ;
    // 3. Every SGI and PPI off; PPI 27 Group 1, middle priority.
    mmio_write32(GICR_BASE + GICR_ICENABLER0, 0xffffffff);
    mmio_write32(GICR_BASE + GICR_IGROUPR0,
                 mmio_read32(GICR_BASE + GICR_IGROUPR0) | 1U << TIMER_PPI);
    mmio_write8(GICR_BASE + GICR_IPRIORITYR + TIMER_PPI, HV_TIMER_PRIORITY);

    // 4. and 5. The physical CPU interface, as EL2 sees it.
    sysreg_write(ICC_SRE_EL2, ICC_SRE_SRE | ICC_SRE_DFB | ICC_SRE_DIB | ICC_SRE_ENABLE);
    isb();
    if (!(sysreg_read(ICC_SRE_EL2) & ICC_SRE_SRE))
        panic("GICv3: the system-register CPU interface cannot be enabled at EL2");
    sysreg_write(ICC_PMR_EL1, 0xff);
    sysreg_write(ICC_BPR1_EL1, 0);
    sysreg_write(ICC_CTLR_EL1, ICC_CTLR_EOIMODE);
    sysreg_write(ICC_IGRPEN1_EL1, 1);
    isb();

    // 6. The virtual CPU interface.
    u64 vtr = sysreg_read(ICH_VTR_EL2);
    num_lrs = (int)(vtr & 0x1f) + 1;
    int prebits = (int)((vtr >> 26) & 7) + 1;
    for (int n = 0; n < num_lrs; n++)
        ich_lr(n, true, 0);
    sysreg_write(ICH_AP0R0_EL2, 0);
    sysreg_write(ICH_AP1R0_EL2, 0);
    if (prebits >= 6) {
        sysreg_write(ICH_AP0R1_EL2, 0);
        sysreg_write(ICH_AP1R1_EL2, 0);
    }
    if (prebits == 7) {
        sysreg_write(ICH_AP0R2_EL2, 0);
        sysreg_write(ICH_AP1R2_EL2, 0);
        sysreg_write(ICH_AP0R3_EL2, 0);
        sysreg_write(ICH_AP1R3_EL2, 0);
    }
    sysreg_write(ICH_VMCR_EL2, 0);
    sysreg_write(ICH_HCR_EL2, ICH_HCR_EN);
    isb();
}

/*
## 5. The virtual CPU

What the hypervisor keeps for the guest is what the hardware does not keep
for it while EL2 runs: the 31 general registers, which the guest and the
hypervisor take turns using, and the five registers that describe the last
exit. `start/aarch64.S` depends on the layout (see the table there).
*/
struct vcpu {
    u64 x[31];  /* guest x0..x30; x30 is the link register */
    u64 elr;    /* ELR_EL2: the guest PC to resume at */
    u64 spsr;   /* SPSR_EL2: the guest's PSTATE (EL1h, DAIF masks...) */
    u64 esr;    /* ESR_EL2: syndrome of the last exit */
    u64 far;    /* FAR_EL2: faulting virtual address */
    u64 hpfar;  /* HPFAR_EL2: faulting IPA, bits 51..12 in 47..4 */
    u64 host[13]; /* host x19..x30 and sp during the guest's turn */
};
_Static_assert(offsetof(struct vcpu, elr) == 248, "start/aarch64.S expects elr at 248");
_Static_assert(offsetof(struct vcpu, hpfar) == 280, "start/aarch64.S expects hpfar at 280");
_Static_assert(offsetof(struct vcpu, host) == 288, "start/aarch64.S expects host at 288");

/* start/aarch64.S: runs the guest, returns at the next exit with its kind. */
u64 vcpu_enter(struct vcpu *v);
#define EXIT_KIND_SYNC 0
#define EXIT_KIND_IRQ 1
#define EXIT_KIND_FIQ 2
#define EXIT_KIND_SERROR 3
#define EXIT_KIND_AARCH32 4

static struct vcpu vcpu;

/*
### `HCR_EL2`: what comes to the hypervisor

Every bit of `HCR_EL2` not listed is 0 (Arm ARM, register description
HCR_EL2). The ones that matter:

| bit | name | value | why |
|---|---|---|---|
| 0 | VM | 1 | stage-2 translation on for EL1 and EL0: isolation |
| 1 | SWIO | 1 | a guest "invalidate data cache by set/way" cleans as well: it must never discard dirty lines that are not only the guest's |
| 3 | FMO | 1 | physical FIQs come to EL2; the guest gets *virtual* FIQs and its `ICC_*` accesses go to `ICV_*` |
| 4 | IMO | 1 | the same for IRQs: the timer's physical IRQ is ours, the guest sees the virtual one we inject |
| 5 | AMO | 1 | physical SErrors come to EL2: a system error caused while the guest ran is reported, not left to the guest |
| 13, 14 | TWI, TWE | 0 | `WFI`/`WFE` are *not* trapped: a guest waiting for its timer really sleeps, and the physical IRQ, routed to EL2, wakes the CPU. Trapping them would only add exits |
| 19 | TSC | 1 | `SMC` traps to EL2: QEMU's PSCI firmware answers `SMC` and must never see the guest's; we answer for it |
| 27 | TGE | 0 | the guest's own exceptions (system calls, its page faults) stay at EL1 |
| 29 | HCD | 0 | `HVC` is enabled: it is the guest's way to call us |
| 31 | RW | 1 | EL1 is AArch64 |
| 34 | E2H | 0 | a classic EL2 hypervisor, not a host kernel (no VHE) |
| 40, 41 | APK, API | 1 if present | pointer-authentication keys and instructions are the guest's: do not trap them (set only when the CPU has FEAT_PAuth; RES0 otherwise) |
*/
#define HCR_VM (1UL << 0)
#define HCR_SWIO (1UL << 1)
#define HCR_FMO (1UL << 3)
#define HCR_IMO (1UL << 4)
#define HCR_AMO (1UL << 5)
#define HCR_TSC (1UL << 19)
#define HCR_RW (1UL << 31)
#define HCR_APK (1UL << 40)
#define HCR_API (1UL << 41)

/*
### The other EL2 registers that shape the VM

Each of these comes out of reset UNKNOWN, so each is written:

| register | value | why |
|---|---|---|
| `VTCR_EL2`, `VTTBR_EL2` | section 3 | stage 2, written by `s2_setup` |
| `CPTR_EL2` | 0x33FF | bits 13, 9, 7..0 are RES1; `TFP` (10) = 0: FP/SIMD registers are the guest's alone, the hypervisor never uses them (`-mgeneral-regs-only`); `TZ` (8) = 1 and `TSM` (12) = 1: SVE and SME trap to us, since their larger state is more than this chapter handles; we report such an exit |
| `MDCR_EL2` | HPMN = `PMCR_EL0.N` | the guest sees all PMU counters; debug and PMU accesses are not trapped |
| `HSTR_EL2` | 0 | no AArch32 coprocessor traps |
| `CNTHCTL_EL2` | `EL1PCTEN` = 1, `EL1PCEN` = 0 | the guest may read the physical counter (a clock harms no one) but not program the EL1 *physical* timer: the guest's timer is the virtual one, and the physical timer's interrupt is not one we forward. An access traps (EC 0x18) and is reported |
| `CNTVOFF_EL2` | 0 | virtual count = physical count, as on a machine with no EL2 |
| `VPIDR_EL2`, `VMPIDR_EL2` | `MIDR_EL1`, `MPIDR_EL1` | what the guest reads as its CPU model and its CPU number: the real ones, as bare QEMU would show |
*/
#define CPTR_EL2_VALUE 0x33ffUL
#define CNTHCTL_EL1PCTEN (1UL << 0)

/*
### The state the guest starts in

The guest is started as QEMU starts a bare-metal ELF at EL1: at its entry
point, in EL1 using `SP_EL1` ("EL1h"), with all interrupts masked, `x0` = 0
(QEMU passes no device-tree pointer to a non-Linux ELF, and hvbook builds no
device tree).
`SPSR_EL2` describes that state for `ERET`:

| bits | field | value |
|---|---|---|
| 9..6 | D, A, I, F | 1111: all masked |
| 4 | M[4] | 0: AArch64 |
| 3..0 | M | 0b0101: EL1h |

which is 0x3C5. The guest's own EL1 registers would otherwise keep whatever
the hardware or QEMU left there, so they get reset-like values: `SCTLR_EL1`
= 0x30D0_0800 (only its RES1 bits 29, 28, 23, 22, 20, 11: MMU, caches and
alignment checks off), and zero for its vector base, translation registers,
memory attributes, thread and stack pointers, exception registers, the
FP/SIMD access control `CPACR_EL1` (FP traps to the guest itself, as at
reset), debug control, timer control, and both EL1 timers (disabled).
*/
#define SPSR_EL1H_DAIF 0x3c5UL
#define SCTLR_EL1_RESET 0x30d00800UL

static void vcpu_setup(u64 entry)
{
    u64 hcr = HCR_VM | HCR_SWIO | HCR_FMO | HCR_IMO | HCR_AMO | HCR_TSC | HCR_RW;
    u64 isar1 = sysreg_read(ID_AA64ISAR1_EL1);
    // APA (7..4), API (11..8), GPA (27..24), GPI (31..28): any of them means PAuth.
    if (isar1 & 0xff000ff0UL)
        hcr |= HCR_APK | HCR_API;
    sysreg_write(HCR_EL2, hcr);

    sysreg_write(CPTR_EL2, CPTR_EL2_VALUE);
    sysreg_write(HSTR_EL2, 0);
    u64 pmuver = (sysreg_read(ID_AA64DFR0_EL1) >> 8) & 0xf;
    u64 hpmn = (pmuver != 0 && pmuver != 0xf) ? (sysreg_read(PMCR_EL0) >> 11) & 0x1f : 0;
    sysreg_write(MDCR_EL2, hpmn);
    sysreg_write(CNTHCTL_EL2, CNTHCTL_EL1PCTEN);
    sysreg_write(CNTVOFF_EL2, 0);
    sysreg_write(VPIDR_EL2, sysreg_read(MIDR_EL1));
    sysreg_write(VMPIDR_EL2, sysreg_read(MPIDR_EL1));
    isb();

    // The guest's EL1 and EL0 registers, as after a reset.
    sysreg_write(SCTLR_EL1, SCTLR_EL1_RESET);
    sysreg_write(VBAR_EL1, 0);
    sysreg_write(TCR_EL1, 0);
    sysreg_write(TTBR0_EL1, 0);
    sysreg_write(TTBR1_EL1, 0);
    sysreg_write(MAIR_EL1, 0);
    sysreg_write(AMAIR_EL1, 0);
    sysreg_write(CONTEXTIDR_EL1, 0);
    sysreg_write(CPACR_EL1, 0);
    sysreg_write(TPIDR_EL1, 0);
    sysreg_write(TPIDR_EL0, 0);
    sysreg_write(TPIDRRO_EL0, 0);
    sysreg_write(SP_EL0, 0);
    sysreg_write(SP_EL1, 0);
    sysreg_write(ELR_EL1, 0);
    sysreg_write(SPSR_EL1, 0);
    sysreg_write(ESR_EL1, 0);
    sysreg_write(FAR_EL1, 0);
    sysreg_write(AFSR0_EL1, 0);
    sysreg_write(AFSR1_EL1, 0);
    sysreg_write(PAR_EL1, 0);
    sysreg_write(MDSCR_EL1, 0);
    sysreg_write(CNTKCTL_EL1, 0);
    sysreg_write(CNTV_CTL_EL0, 0);
    sysreg_write(CNTV_CVAL_EL0, 0);
    sysreg_write(CNTP_CTL_EL0, 0);
    sysreg_write(CNTP_CVAL_EL0, 0);
    isb();

    /* The loader wrote the guest's instructions as data. The instruction
       cache must not hold older contents for those addresses (Arm ARM, D7
       "The AArch64 System Level Memory Model", cache maintenance). With
       our data cache off, invalidating the instruction cache is enough. */
    __asm__ volatile("ic iallu" ::: "memory");
    dsb(ish);
    isb();

    // The whole stage 2 of this VMID, once, before the first entry.
    dsb(ishst);
    __asm__ volatile("tlbi vmalls12e1is" ::: "memory");
    dsb(ish);
    isb();

    memset(&vcpu, 0, sizeof(vcpu));
    vcpu.elr = entry;
    vcpu.spsr = SPSR_EL1H_DAIF;
    vcpu.x[0] = 0; // no device tree, as QEMU gives a bare-metal ELF
}

/*
## 6. The run loop and the VM exits

Everything so far was preparation. The run loop is the hypervisor: enter
the guest, wait for it to exit, handle the exit, enter again.

    +--> vcpu_enter: ERET into the guest --------------------+
    |                                                        | the guest runs
    |    vectors + 0x400..0x580: a VM exit <-----------------+
    |        |
    |        +-- IRQ                    -> inject_timer
    |        +-- sync, EC 0x16 / 0x17   -> handle_hypercall (HVC, SMC)
    |        +-- sync, EC 0x24 / 0x20   -> handle_stage2_fault
    |        +-- anything else          -> report, stop
    |        |
    +--------+ (unless the VM stopped)

Each exit is counted by reason, for the table printed at the end.
*/
enum exit_reason {
    EXIT_HVC,
    EXIT_SMC,
    EXIT_PL011,
    EXIT_GIC,
    EXIT_TIMER_INTERRUPT,
    EXIT_SPURIOUS_INTERRUPT,
    EXIT_PFLASH_FAULT,
    EXIT_REFUSED_FAULT,
    EXIT_UNEXPECTED,
    EXIT_REASONS
};

static const char *const exit_names[EXIT_REASONS] = {
    [EXIT_HVC] = "HVC (PSCI)",
    [EXIT_SMC] = "SMC (PSCI)",
    [EXIT_PL011] = "PL011 access (emulated)",
    [EXIT_GIC] = "GIC access (emulated)",
    [EXIT_TIMER_INTERRUPT] = "timer interrupt",
    [EXIT_SPURIOUS_INTERRUPT] = "spurious interrupt",
    [EXIT_PFLASH_FAULT] = "stage-2 fault: pflash",
    [EXIT_REFUSED_FAULT] = "stage-2 fault: refused",
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
the syndrome decoded, and the guest's registers, the way a kernel prints an
"oops". (`vm_dump` is its second half, for callers that print a more precise
first line themselves.)
*/
static u64 fault_ipa(void)
{
    return ((vcpu.hpfar & HPFAR_FIPA_MASK) << 8) | (vcpu.far & 0xfff);
}

static void vm_dump(void)
{
    u64 ec = ESR_EC(vcpu.esr);
    printf("  ESR 0x%lx (EC 0x%lx: %s)  guest pc 0x%lx  FAR 0x%lx  HPFAR 0x%lx\n",
           vcpu.esr, ec, ec_name(ec), vcpu.elr, vcpu.far, vcpu.hpfar);
    printf("  guest x0 0x%lx  x1 0x%lx  x2 0x%lx  x30 0x%lx  sp 0x%lx  spsr 0x%lx\n",
           vcpu.x[0], vcpu.x[1], vcpu.x[2], vcpu.x[30], sysreg_read(SP_EL1), vcpu.spsr);
    vm_state = VM_FAULT;
}

static void vm_fault(const char *what)
{
    printf("VM fault: %s\n", what);
    vm_dump();
}

/*
### The guest's timer: `inject_timer`

The IRQ exit. As drawn in section 4: acknowledge the physical interrupt,
drop its priority, and hand it to the guest through a free list register.
`ICH_ELRSR_EL2` has bit n set when list register n holds no interrupt.

A list register (IHI0069, register description ICH_LR<n>_EL2):

| bits | field | value | meaning |
|---|---|---|---|
| 63..62 | State | 0b01 | pending |
| 61 | HW | 1 | tied to a physical interrupt: deactivating one deactivates the other |
| 60 | Group | the guest's | 1: signalled as a vIRQ, acknowledged with `ICC_IAR1_EL1` |
| 55..48 | Priority | the guest's | compared with the guest's priority mask |
| 44..32 | pINTID | 27 | the physical interrupt to deactivate |
| 31..0 | vINTID | 27 | what the guest's `ICC_IAR1_EL1` returns |

The guest's priority and group for INTID 27 are what it wrote into its
(emulated) redistributor; see `gic_emulate` below.

Any other physical interrupt is unexpected: hvbook enables no other one. It
is deactivated (`ICC_DIR_EL1`) and reported, and the VM stops.
*/
#define LR_STATE_PENDING (1UL << 62)
#define LR_HW (1UL << 61)
#define LR_GROUP1 (1UL << 60)
#define LR_PRIORITY_SHIFT 48
#define LR_PINTID_SHIFT 32

static struct {
    u32 gicd_ctlr;      /* Enable bits the guest wrote */
    u32 waker;          /* ProcessorSleep/ChildrenAsleep */
    u32 igroupr0;       /* Group of each SGI/PPI */
    u32 enabled;        /* the guest's ISENABLER0 */
    u32 icfgr1;         /* PPI trigger modes */
    u8 priority[32];    /* IPRIORITYR for INTIDs 0..31 */
} vgic = {.waker = GICR_WAKER_PROCESSOR_SLEEP | GICR_WAKER_CHILDREN_ASLEEP};

static void inject_timer(void)
{
    u64 intid = sysreg_read(ICC_IAR1_EL1) & 0xffffff;
    if (intid >= INTID_SPURIOUS_FIRST && intid <= 1023) {
        // Gone before we looked (the guest re-armed its timer in time).
        exit_counts[EXIT_SPURIOUS_INTERRUPT]++;
        return;
    }
    sysreg_write(ICC_EOIR1_EL1, intid); // priority drop only: EOImode = 1
    if (intid != TIMER_PPI) {
        sysreg_write(ICC_DIR_EL1, intid);
        exit_counts[EXIT_UNEXPECTED]++;
        printf("VM fault: physical interrupt %lu, which hvbook never enabled, "
               "arrived while the guest ran\n", intid);
        vm_dump();
        return;
    }
    exit_counts[EXIT_TIMER_INTERRUPT]++;

    u64 empty = sysreg_read(ICH_ELRSR_EL2);
    int n = 0;
    while (n < num_lrs && !(empty & (1UL << n)))
        n++;
    if (n == num_lrs) {
        // Cannot happen: INTID 27 stays active until the guest ends it.
        sysreg_write(ICC_DIR_EL1, intid);
        vm_fault("no free GIC list register for the timer interrupt");
        return;
    }
    u64 lr = LR_STATE_PENDING | LR_HW | (u64)vgic.priority[TIMER_PPI] << LR_PRIORITY_SHIFT |
             (u64)TIMER_PPI << LR_PINTID_SHIFT | TIMER_PPI;
    if (vgic.igroupr0 & (1U << TIMER_PPI))
        lr |= LR_GROUP1;
    ich_lr(n, true, lr);
}

/*
### Hypercalls: PSCI over HVC and SMC

The guest powers off the way any Arm kernel does, with a PSCI call. On bare
QEMU its conduit is `HVC`; other firmware uses `SMC`. Both come to us: `HVC`
because it is the hypervisor call, `SMC` because `HCR_EL2.TSC` traps it. One
difference matters: the preferred return address of an exit for `HVC` is the
instruction *after* it, but for a trapped `SMC` it is the `SMC` itself, which
has not executed. So for `SMC` we move `ELR` past it (4 bytes), as firmware
would have returned.

hvbook implements the PSCI functions a one-CPU guest needs to identify PSCI
and to stop:

| function | id | what hvbook does |
|---|---|---|
| `PSCI_VERSION` | 0x8400_0000 | 1.1, as QEMU's own PSCI |
| `PSCI_FEATURES` | 0x8400_000A | 0 (supported) for the four functions here, else `NOT_SUPPORTED` |
| `SYSTEM_OFF` | 0x8400_0008 | `Guest: PSCI SYSTEM_OFF`; the VM stops normally |
| `SYSTEM_RESET` | 0x8400_0009 | hvbook does not reboot VMs: it says so and stops the VM as a failure |
| anything else | | `NOT_SUPPORTED` (-1) in `x0`, and the guest goes on |

SMCCC calls use `HVC #0` / `SMC #0`; a call with another immediate (the low
16 bits of the ISS) is not an SMCCC call, and gets `NOT_SUPPORTED` too.
The function id is `w0`, the low 32 bits of `x0` (DEN0028, "Function
Identifiers").
*/
static bool psci_supported(u32 fn)
{
    return fn == PSCI_VERSION || fn == PSCI_FEATURES || fn == PSCI_SYSTEM_OFF ||
           fn == PSCI_SYSTEM_RESET;
}

static void handle_hypercall(bool smc)
{
    u32 fn = (u32)vcpu.x[0];
    u64 ret = (u64)SMCCC_NOT_SUPPORTED;

    exit_counts[smc ? EXIT_SMC : EXIT_HVC]++;
    if (smc)
        vcpu.elr += 4;
    if ((vcpu.esr & 0xffff) != 0) {
        vcpu.x[0] = ret;
        return;
    }
    switch (fn) {
    case PSCI_VERSION:
        ret = PSCI_VERSION_1_1;
        break;
    case PSCI_FEATURES:
        ret = psci_supported((u32)vcpu.x[1]) ? PSCI_SUCCESS : (u64)SMCCC_NOT_SUPPORTED;
        break;
    case PSCI_SYSTEM_OFF:
        printf("Guest: PSCI SYSTEM_OFF\n");
        vm_state = VM_SHUTDOWN;
        return;
    case PSCI_SYSTEM_RESET:
        printf("Guest: PSCI SYSTEM_RESET: hvbook does not reboot VMs\n");
        vm_state = VM_FAULT;
        return;
    }
    vcpu.x[0] = ret;
}

/*
### Emulating a load or store

A guest access to an emulated device is a stage-2 translation fault: the
device is simply not mapped. The syndrome says everything needed to finish
the instruction in software (see ISS in section 1), as long as `ISV` = 1. An
access with `ISV` = 0 (a load pair, a writeback addressing mode) cannot be
emulated from the syndrome alone, and a device driver has no business using
one; it is a VM fault.

`mmio_emulate` decodes the access, asks the device model (`read` or
`write`), writes a load's result into the guest register with the right
width and sign, and moves `ELR` past the 4-byte instruction. Register 31
here means `XZR`: a store writes 0, a load goes nowhere.
*/
struct mmio_access {
    u64 offset;    /* from the start of the device window */
    int size;      /* 1, 2, 4 or 8 bytes */
    bool write;
    u64 value;     /* the value written, or to return for a read */
};

typedef void (*device_model)(struct mmio_access *a);

static bool mmio_emulate(u64 ipa, u64 base, device_model model)
{
    u64 iss = ESR_ISS(vcpu.esr);
    if (!(iss & ISS_ISV)) {
        printf("VM fault: the guest accessed device IPA 0x%lx with an instruction that "
               "cannot be emulated (ISV = 0: a load/store pair or writeback)\n", ipa);
        return false;
    }
    struct mmio_access a = {
        .offset = ipa - base,
        .size = 1 << ISS_SAS(iss),
        .write = (iss & ISS_WNR) != 0,
    };
    int reg = (int)ISS_SRT(iss);
    u64 mask = a.size == 8 ? ~0UL : (1UL << (8 * a.size)) - 1;

    if (a.write) {
        a.value = (reg == 31 ? 0 : vcpu.x[reg]) & mask;
        model(&a);
    } else {
        model(&a);
        u64 v = a.value & mask;
        if ((iss & ISS_SSE) && a.size < 8 && (v >> (8 * a.size - 1)) & 1)
            v |= ~mask; // sign-extend
        if (!(iss & ISS_SF))
            v &= 0xffffffffUL; // a W register: the upper half is zero
        if (reg != 31)
            vcpu.x[reg] = v;
    }
    vcpu.elr += 4;
    return true;
}

/*
### The guest's PL011

The guest drives "its" PL011 like any PL011. hvbook models the registers a
driver uses, as a UART whose transmitter is always ready and whose receiver
never has anything:

| offset | register | read | write |
|---|---|---|---|
| 0x000 | `UARTDR` | 0 (nothing received) | the byte goes to hvbook's console |
| 0x018 | `UARTFR` | `TXFE` (bit 7) and `RXFE` (bit 4): transmit FIFO empty, receive FIFO empty; `TXFF`, `BUSY` clear | ignored |
| 0x024, 0x028 | `UARTIBRD`, `UARTFBRD` | what was last written | kept |
| 0x02C, 0x030 | `UARTLCR_H`, `UARTCR` | what was last written (`CR` resets to 0x300: TX and RX enabled) | kept |
| 0x034, 0x038 | `UARTIFLS`, `UARTIMSC` | what was last written (`IFLS` resets to 0x12) | kept |
| 0x048 | `UARTDMACR` | what was last written | kept |
| 0xFE0 .. 0xFFC | peripheral and PrimeCell IDs | the PL011's (0x11, 0x10, 0x14, 0x00; 0x0D, 0xF0, 0x05, 0xB1) | ignored |
| any other | | 0 | ignored |

Keeping a *shadow* of the configuration registers matters for a driver that
reads back what it wrote (say, read-modify-write of `UARTCR`); none of it
reaches the real UART, whose settings are the hypervisor's. Interrupts are
never raised (`UARTRIS`, `UARTMIS` read 0), which is consistent: the
transmitter never has to be waited for.
*/
#define PL011_IBRD 0x024
#define PL011_FBRD 0x028
#define PL011_LCR_H 0x02c
#define PL011_CR 0x030
#define PL011_IFLS 0x034
#define PL011_IMSC 0x038
#define PL011_DMACR 0x048
#define PL011_FR_TXFE (1U << 7)
#define PL011_FR_RXFE (1U << 4)

static u32 vuart_regs[0x50 / 4] = {
    [PL011_CR / 4] = 0x300,
    [PL011_IFLS / 4] = 0x12,
};

static void pl011_emulate(struct mmio_access *a)
{
    static const u8 ids[8] = {0x11, 0x10, 0x14, 0x00, 0x0d, 0xf0, 0x05, 0xb1};
    u64 off = a->offset & ~3UL;

    if (a->write) {
        switch (off) {
        case PL011_DR:
            console_putchar((u8)a->value);
            break;
        case PL011_IBRD: case PL011_FBRD: case PL011_LCR_H: case PL011_CR:
        case PL011_IFLS: case PL011_IMSC: case PL011_DMACR:
            vuart_regs[off / 4] = (u32)a->value;
            break;
        }
        return;
    }
    switch (off) {
    case PL011_FR:
        a->value = PL011_FR_TXFE | PL011_FR_RXFE;
        break;
    case PL011_IBRD: case PL011_FBRD: case PL011_LCR_H: case PL011_CR:
    case PL011_IFLS: case PL011_IMSC: case PL011_DMACR:
        a->value = vuart_regs[off / 4];
        break;
    default:
        a->value = off >= 0xfe0 ? ids[(off - 0xfe0) / 4] : 0;
    }
}

/*
### The guest's GIC distributor and redistributor

The guest sets up its interrupt controller as on bare metal: it enables the
distributor, wakes its redistributor, and configures and enables PPI 27.
hvbook emulates exactly that much of a GICv3 with one CPU and no shared
interrupts, and keeps the guest's settings in `vgic` (declared with
`inject_timer` above):

| register | read | write |
|---|---|---|
| `GICD_CTLR` | the enables written, with `ARE` (bit 4) and `DS` (bit 6) always 1: affinity routing, a single security state | bits 0, 1 kept |
| `GICD_TYPER`, `GICD_IIDR`, `GICD_PIDR2` | the real GIC's, with `TYPER` saying no SPIs, no LPIs, no message-based SPIs | ignored |
| `GICR_WAKER` | `ChildrenAsleep` (bit 2) = `ProcessorSleep` (bit 1): waking is instant | `ProcessorSleep` kept |
| `GICR_TYPER`, `GICR_IIDR`, `GICR_PIDR2` | the real redistributor's, `TYPER` with `Last` set and no LPIs | ignored |
| `GICR_IGROUPR0` | as written | kept: the group of the injected interrupt |
| `GICR_ISENABLER0`, `GICR_ICENABLER0` | the enabled set | set / clear bits |
| `GICR_IPRIORITYR<n>` | as written (byte or word) | kept: the priority of the injected interrupt |
| `GICR_ICFGR0` | 0xAAAA_AAAA: SGIs are edge-triggered | ignored |
| `GICR_ICFGR1` | as written | kept |
| any other | 0 | ignored |

Everything else reads as zero and ignores writes, as the GIC specification
asks of reserved registers. None of it touches the physical GIC, with one
deliberate exception: the guest's enable of INTID 27 (and of Group 1 in its
`GICD_CTLR`) is mirrored onto the physical PPI 27. A guest that has not
enabled its timer interrupt then gets no timer exits, exactly as it would
get no interrupt on bare metal.
*/
#define GICD_TYPER_HIDE 0x3011fU  /* LPIS (17), MBIS (16), ESPI (8), ITLinesNumber (4..0) */
#define GICR_TYPER_LAST (1UL << 4)
#define GICR_TYPER_HIDE 0xbUL     /* PLPIS (0), VLPIS (1), DirectLPI (3) */

static void gic_sync_timer_enable(void)
{
    u32 group_enable = (vgic.igroupr0 & (1U << TIMER_PPI)) ? GICD_CTLR_ENABLE_GRP1
                                                           : GICD_CTLR_ENABLE_GRP0;
    bool on = (vgic.enabled & (1U << TIMER_PPI)) && (vgic.gicd_ctlr & group_enable);
    mmio_write32(GICR_BASE + (on ? GICR_ISENABLER0 : GICR_ICENABLER0), 1U << TIMER_PPI);
}

static void gicd_emulate(struct mmio_access *a)
{
    u64 off = a->offset & ~3UL;
    if (a->write) {
        if (off == GICD_CTLR) {
            vgic.gicd_ctlr = (u32)a->value & (GICD_CTLR_ENABLE_GRP0 | GICD_CTLR_ENABLE_GRP1);
            gic_sync_timer_enable();
        }
        return;
    }
    switch (off) {
    case GICD_CTLR:
        a->value = vgic.gicd_ctlr | GICD_CTLR_ARE | GICD_CTLR_DS;
        break;
    case GICD_TYPER:
        a->value = mmio_read32(GICD_BASE + GICD_TYPER) & ~GICD_TYPER_HIDE;
        break;
    case GICD_IIDR:
    case GICD_PIDR2:
        a->value = mmio_read32(GICD_BASE + off);
        break;
    default:
        a->value = 0;
    }
}

static void gicr_emulate(struct mmio_access *a)
{
    u64 off = a->offset & ~3UL;
    u32 v = (u32)a->value;

    if (off >= GICR_IPRIORITYR && off < GICR_IPRIORITYR + 32) {
        u64 first = a->offset - GICR_IPRIORITYR; // one byte per INTID
        if (!a->write)
            a->value = 0;
        for (int i = 0; i < a->size && first + i < 32; i++) {
            if (a->write)
                vgic.priority[first + i] = (u8)(a->value >> (8 * i));
            else
                a->value |= (u64)vgic.priority[first + i] << (8 * i);
        }
        return;
    }
    if (a->write) {
        switch (off) {
        case GICR_WAKER:
            vgic.waker = v & GICR_WAKER_PROCESSOR_SLEEP ? GICR_WAKER_PROCESSOR_SLEEP |
                                                          GICR_WAKER_CHILDREN_ASLEEP : 0;
            break;
        case GICR_IGROUPR0:
            vgic.igroupr0 = v;
            gic_sync_timer_enable();
            break;
        case GICR_ISENABLER0:
            vgic.enabled |= v;
            gic_sync_timer_enable();
            break;
        case GICR_ICENABLER0:
            vgic.enabled &= ~v;
            gic_sync_timer_enable();
            break;
        case GICR_ICFGR1:
            vgic.icfgr1 = v;
            break;
        }
        return;
    }
    switch (off) {
    case GICR_WAKER: a->value = vgic.waker; break;
    case GICR_IGROUPR0: a->value = vgic.igroupr0; break;
    case GICR_ISENABLER0:
    case GICR_ICENABLER0: a->value = vgic.enabled; break;
    case GICR_ICFGR0: a->value = 0xaaaaaaaa; break;
    case GICR_ICFGR1: a->value = vgic.icfgr1; break;
    case GICR_IIDR:
    case GICR_PIDR2: a->value = mmio_read32(GICR_BASE + off); break;
    case GICR_TYPER:
    case GICR_TYPER + 4: {
        u64 typer = *(volatile u64 *)(GICR_BASE + GICR_TYPER);
        typer = (typer & ~GICR_TYPER_HIDE) | GICR_TYPER_LAST;
        a->value = off == GICR_TYPER ? typer : typer >> 32; // 64-bit, or either half
        break;
    }
    default: a->value = 0;
    }
}

/*
### Stage-2 faults: pass through, emulate, or refuse

A stage-2 fault means the guest touched an IPA that stage 2 does not map.
`HPFAR_EL2` gives the page, `FAR_EL2` the offset inside it.

hvbook's rule of the house is *resource control* (see the preface): guest RAM is mapped
up front; the pflash window is passed through; the UART and the GIC are
emulated; *nothing* else is reachable.

- **pflash**: a first touch maps that 4 KiB page of the real device
  straight through (IPA = PA, the device's own address) as Device memory,
  and resumes the guest at the same instruction, which now succeeds. Every
  later access to that page runs at full speed with no exit.
- **PL011, GICD, GICR**: never mapped, so every access exits and is
  emulated by the models above.
- **anything else**, a fetch from a device, a fault during the guest's own
  stage-1 table walk (`S1PTW`: its page tables would have to be in RAM), or
  a fault that is not a translation fault: a VM fault, and the VM stops.
*/
static bool in_window(u64 ipa, u64 base, u64 size)
{
    return ipa >= base && ipa - base < size;
}

static void handle_stage2_fault(bool fetch)
{
    u64 ipa = fault_ipa();
    u64 iss = ESR_ISS(vcpu.esr);
    bool plain = FSC_TYPE(ISS_FSC(iss)) == FSC_TRANSLATION && !(iss & ISS_S1PTW) && !fetch;

    if (plain && in_window(ipa, PFLASH_IPA, PFLASH_SIZE)) {
        u64 page = ALIGN_DOWN(ipa, PAGE_SIZE);
        s2_map(page, page, PAGE_SIZE, S2_DEVICE);
        exit_counts[EXIT_PFLASH_FAULT]++;
        return; // retry the same instruction
    }
    if (plain && in_window(ipa, PL011_BASE, PL011_SIZE)) {
        exit_counts[EXIT_PL011]++;
        if (!mmio_emulate(ipa, PL011_BASE, pl011_emulate))
            vm_dump();
        return;
    }
    if (plain && (in_window(ipa, GICD_BASE, GICD_SIZE) || in_window(ipa, GICR_BASE, GICR_SIZE))) {
        exit_counts[EXIT_GIC]++;
        bool d = in_window(ipa, GICD_BASE, GICD_SIZE);
        if (!mmio_emulate(ipa, d ? GICD_BASE : GICR_BASE, d ? gicd_emulate : gicr_emulate))
            vm_dump();
        return;
    }
    exit_counts[EXIT_REFUSED_FAULT]++;
    bool device = in_window(ipa, PFLASH_IPA, PFLASH_SIZE) || in_window(ipa, PL011_BASE, PL011_SIZE) ||
                  in_window(ipa, GICD_BASE, GICD_SIZE) || in_window(ipa, GICR_BASE, GICR_SIZE);
    printf("VM fault: the guest %s IPA 0x%lx, %s\n",
           fetch ? "fetched from" : iss & ISS_S1PTW ? "walked its page table at" :
           iss & ISS_WNR ? "wrote" : "read",
           ipa, device ? "a device it may only load from and store to" :
                         "outside its RAM and its devices");
    vm_dump();
}

/*
### The loop

`vcpu_run` is the loop drawn above. The exit kind comes from which vector
entry the CPU used; for a synchronous exit the exception class in `ESR_EL2`
says the rest.
*/
static void vcpu_run(void)
{
    while (vm_state == VM_RUNNING) {
        u64 kind = vcpu_enter(&vcpu);

        if (kind == EXIT_KIND_IRQ) {
            inject_timer();
            continue;
        }
        if (kind != EXIT_KIND_SYNC) {
            exit_counts[EXIT_UNEXPECTED]++;
            vm_fault(kind == EXIT_KIND_FIQ ? "unexpected FIQ" :
                     kind == EXIT_KIND_SERROR ? "SError (a system error) while the guest ran" :
                     "exception from AArch32, which this VM does not allow");
            continue;
        }
        switch (ESR_EC(vcpu.esr)) {
        case EC_HVC64:
            handle_hypercall(false);
            break;
        case EC_SMC64:
            handle_hypercall(true);
            break;
        case EC_DABT_LOW:
            handle_stage2_fault(false);
            break;
        case EC_IABT_LOW:
            handle_stage2_fault(true);
            break;
        default:
            exit_counts[EXIT_UNEXPECTED]++;
            vm_fault("unexpected exit");
        }
    }
}

/*
A fault while the hypervisor itself runs is a bug in hvbook (or a device it
touched wrongly); the EL2 vector entries in `start/aarch64.S` send it here
with all registers saved in a `struct vcpu`-shaped frame (the `sp` of the
moment in the `hpfar` slot). A register dump is the most useful thing to
leave behind. If printing the dump faults too, there is nothing left to do
but switch off.
*/
static const char *const trap_kinds[] = {"synchronous exception", "IRQ", "FIQ", "SError"};

_Noreturn void hv_host_trap(struct vcpu *f, u64 kind)
{
    static bool reporting;
    if (reporting)
        power_off(false);
    reporting = true;

    u64 ec = ESR_EC(f->esr);
    printf("\nhvbook: %s in the hypervisor itself (EL2)\n", trap_kinds[kind & 3]);
    printf("  ESR 0x%lx (EC 0x%lx: %s)  ELR 0x%lx  FAR 0x%lx  SPSR 0x%lx  sp 0x%lx\n",
           f->esr, ec, ec_name(ec), f->elr, f->far, f->spsr, f->hpfar);
    for (int i = 0; i < 31; i++)
        printf("  x%-2d %016lx%s", i, f->x[i], i % 4 == 3 || i == 30 ? "\n" : "");
    printf("hvbook: stopping with a failure status.\n");
    power_off(false);
}

/*
## 7. `hv_main`

The boot flow, the same on every architecture, as it goes on AArch64:

    QEMU -> _start (start/aarch64.S) -> hv_main
      check that we are at EL2
      page allocator: everything between the end of hvbook and the end of RAM
      16 MiB of guest RAM, mapped by stage 2
      VirtIO block device -> FAT -> /sbin/gkernel -> ELF loader -> guest RAM
      the physical GIC, the vCPU, the run loop
      statistics, power off
*/
extern char _end[];

void hv_main(void)
{
    // QEMU wrote its device tree, with run.sh's -append, at the start of RAM.
    boot_args_parse(fdt_bootargs((const void *)HOST_RAM_BASE));
    printf("\nhvbook: AArch64 hypervisor (EL2)\n");
    printf("Starting virtualization...\n");
    u64 el = current_el();
    if (el != 2)
        panic("hvbook runs at EL%lu, not EL2, so it cannot run a virtual machine.\n"
              "  Start QEMU with -M virt,virtualization=on (and without secure=on).", el);

    page_init((uintptr_t)_end, HOST_RAM_END);
    printf("Pre-allocating %lu MB guest RAM at 0x%lx...\n", GUEST_RAM_SIZE / MiB, GUEST_RAM_IPA);
    guest_ram_setup();
    printf("VM created success, loading images...\n");

    u64 entry = load_guest_kernel("/sbin/gkernel", EM_AARCH64, GUEST_RAM_IPA, GUEST_RAM_SIZE,
                                  guest_ram, VIRTIO_MMIO_BASE, VIRTIO_MMIO_STRIDE,
                                  VIRTIO_MMIO_SLOTS);
    printf("bsp_entry: 0x%lx; ept: 0x%lx\n", entry, (u64)(uintptr_t)s2_root);

    gic_setup();
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
