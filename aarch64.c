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
"The AArch64 System Level Programmers' Model"): EL0 for programs, EL1 for
an operating-system kernel, EL2 for a hypervisor and EL3 for the secure
monitor (firmware).
Unlike RISC-V, which added a *mode bit* V beside its privilege levels, Arm
gave the hypervisor a level of its own, *below* the kernel:

    +-----------------------+
    | EL0  guest programs   |
    +-----------------------+
    | EL1  gkernel          |   a normal kernel, unaware of EL2
    +-----------------------+
    | EL2  hvbook           |   this file
    +-----------------------+
    | EL3  firmware         |   QEMU plays it: PSCI
    +-----------------------+

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
2. The machine below us: PSCI to power off, the PL011 console, a barrier,
   and the caches.
3. Stage 2: its tables and 16 MiB of guest RAM (128 MiB for Linux).
4. The interrupt controller: setting up the physical GICv3 at EL2.
5. The virtual CPU: its registers, what `HCR_EL2` and `MDCR_EL2` trap, the
   hypervisor's own timer, and the state the guest starts in.
6. The run loop, and one handler per kind of VM exit: interrupts (the
   timer, typed characters, the virtual GIC's list registers), hypercalls
   (PSCI), stage-2 faults (pass-through and device emulation: the PL011
   and the GIC), trapped system registers (SGIs, ID registers, the PMU),
   and everything else.
7. Booting Linux: its `Image`, its initramfs, and the device tree hvbook
   writes for it.
8. `hv_main`, which ties it together.
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
#define sysreg_write(r, v)                                                     \
    __asm__ volatile("msr " #r ", %0" ::"r"((u64)(v)) : "memory")
#define isb() __asm__ volatile("isb" ::: "memory")
#define dsb(opt) __asm__ volatile("dsb " #opt ::: "memory")

/*
### The exception syndrome, `ESR_EL2`

Every synchronous exit comes with a 64-bit syndrome (Arm ARM, register
description ESR_EL2):

    31..26  EC   exception class: what kind of exit
        25  IL   instruction length: 1 = a 32-bit instruction, 0 = a 16-bit
                 one (only a T32 program at EL0 has those)
     24..0  ISS  instruction-specific syndrome: details, per class

These are the classes this chapter meets; the run loop handles the first
four and the 0x18 row, and reports all others.

+------------+--------------------------------+--------------------------------+
| EC         | exit                           | from                           |
+============+================================+================================+
| 0x16       | `HVC` executed at EL1          | the guest calling the          |
|            |                                | hypervisor (PSCI)              |
+------------+--------------------------------+--------------------------------+
| 0x17       | `SMC` executed at EL1, trapped | the guest calling firmware     |
|            | by `HCR_EL2.TSC`               |                                |
+------------+--------------------------------+--------------------------------+
| 0x24       | data abort from a lower level  | a stage-2 fault on a load or   |
|            |                                | store                          |
+------------+--------------------------------+--------------------------------+
| 0x20       | instruction abort from a lower | a stage-2 fault on a fetch     |
|            | level                          |                                |
+------------+--------------------------------+--------------------------------+
| 0x01       | `WFI`/`WFE` trapped            | (we do not trap them: see      |
|            |                                | `HCR_EL2`)                     |
+------------+--------------------------------+--------------------------------+
| 0x18       | `MSR`/`MRS`/system instruction | a register we keep from the    |
|            | trapped                        | guest (`handle_sysreg`)        |
+------------+--------------------------------+--------------------------------+
| 0x21, 0x25 | instruction or data abort at   | a bug in the hypervisor        |
|            | EL2 itself                     |                                |
+------------+--------------------------------+--------------------------------+
*/
#define ESR_EC(esr) (((esr) >> 26) & 0x3f)
#define ESR_IL (1UL << 25)
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
     8  CM    1: a cache maintenance (`DC`) or address translation (`AT`)
              instruction, not a load or store; `WnR` then reads 1
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
#define ISS_CM (1UL << 8)
#define ISS_S1PTW (1UL << 7)
#define ISS_WNR (1UL << 6)
#define ISS_FSC(iss) ((iss) & 0x3f)
#define FSC_TYPE(fsc) ((fsc) & 0x3c)
#define FSC_TRANSLATION 0x04
#define FSC_ACCESS_FLAG 0x08
#define FSC_PERMISSION 0x0c

#define HPFAR_FIPA_MASK 0x0000fffffffffff0UL

/*
For a trapped `MSR`/`MRS` (EC 0x18) the ISS names the register by the five
numbers that encode it in the instruction, the same numbers the Arm ARM
lists for every system register ("ISS encoding for an exception from MSR,
MRS, or System instruction execution in AArch64 state"):

    21..20  Op0
    19..17  Op2
    16..14  Op1
    13..10  CRn
      9..5  Rt         the general register read or written (31: XZR)
      4..1  CRm
         0  Direction  1: a read (`MRS`), 0: a write (`MSR`)

`SYSREG` packs the five numbers into one key, so that a `switch` can name
registers as the manual writes them: `SYSREG(3, 0, 1, 0, 1)` is `ACTLR_EL1`
(Op0 3, Op1 0, CRn 1, CRm 0, Op2 1).
*/
#define SYSREG(op0, op1, crn, crm, op2) \
    (((op0) << 14) | ((op1) << 11) | ((crn) << 7) | ((crm) << 3) | (op2))
#define ISS_SYS_OP0(iss) (((iss) >> 20) & 3)
#define ISS_SYS_OP2(iss) (((iss) >> 17) & 7)
#define ISS_SYS_OP1(iss) (((iss) >> 14) & 7)
#define ISS_SYS_CRN(iss) (((iss) >> 10) & 0xf)
#define ISS_SYS_RT(iss) (((iss) >> 5) & 0x1f)
#define ISS_SYS_CRM(iss) (((iss) >> 1) & 0xf)
#define ISS_SYS_READ 1UL

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

These are the function ids of the PSCI calls in this chapter, and the
answers they can give (DEN0022, chapter 5 "PSCI Functions"; DEN0028,
"Function Identifiers" and "Return codes"). The `0x84` prefix means "fast
call, 32-bit convention (SMC32), standard secure service"; `0xC4` is the
same with the 64-bit convention (SMC64). A function that takes an address
or an MPIDR has both forms: the SMC32 one sees only the low 32 bits of its
arguments.
*/
#define PSCI_VERSION 0x84000000U
#define PSCI_CPU_SUSPEND_32 0x84000001U
#define PSCI_CPU_SUSPEND_64 0xC4000001U
#define PSCI_CPU_OFF 0x84000002U
#define PSCI_CPU_ON_32 0x84000003U
#define PSCI_CPU_ON_64 0xC4000003U
#define PSCI_AFFINITY_INFO_32 0x84000004U
#define PSCI_AFFINITY_INFO_64 0xC4000004U
#define PSCI_MIGRATE_INFO_TYPE 0x84000006U
#define PSCI_SYSTEM_OFF 0x84000008U
#define PSCI_SYSTEM_RESET 0x84000009U
#define PSCI_FEATURES 0x8400000AU
#define PSCI_SMC64 0x40000000U /* bit 30 of a function id: the SMC64 form */

#define PSCI_SUCCESS 0L
#define SMCCC_NOT_SUPPORTED (-1L)
#define PSCI_INVALID_PARAMETERS (-2L)
#define PSCI_ALREADY_ON (-4L)
#define PSCI_VERSION_1_1 0x00010001UL
#define PSCI_AFFINITY_ON 0L
/* MIGRATE_INFO_TYPE: no Trusted OS to migrate */
#define PSCI_TOS_NOT_PRESENT 2L

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
which is what `run.sh` reads: only after a real guest shutdown does
`print_success` print `Hypervisor ok!` and the verdict line with this run's
secret token (`common.h`), and `run.sh` believes nothing else. A guest can
print `Hypervisor ok!` too, but not a token it has never seen. (QEMU's
semihosting could report an exit status, but it would also give a guest at
EL1 a door to the host's files, so it stays off.)
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
Barrier). The VirtIO driver calls it between writing a request into memory
and ringing the device's doorbell.
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
### Caches: simple for us, not for the guest

The hypervisor runs with its MMU off (`SCTLR_EL2.M` = 0) and its data cache
off (`C` = 0), so every load and store it makes goes straight to memory. That
makes two things simple that are subtle on real hardware: the page tables it
writes are in memory when the stage-2 walker reads them (as long as the
walker, too, reads without caching: see `VTCR_EL2` below), and VirtIO DMA
needs no cache maintenance.

The guest is another matter. Stage 2 maps its RAM as Normal Write-Back
memory, so a guest that turns its own MMU and caches on reads through the
cache the very bytes the hypervisor wrote *around* it: the same physical
memory, seen with two different cacheability attributes. The Arm ARM calls
this *mismatched memory attributes* (DDI0487, B2.8 "Mismatched memory
attributes", in the chapter on the memory model) and promises coherence only
if software cleans and invalidates the location to the Point of Coherency
after using it one way and before using it the other. Otherwise a stale line
left in a cache (from before the hypervisor wrote, or fetched speculatively)
could hide the kernel we loaded. So once the guest's RAM holds its kernel,
`hv_main` has `dcache_clean_inval_poc` clean and invalidate every line of
it, by virtual address (ours are physical), to the Point of Coherency (`DC
CIVAC`), and then wait for all of that to finish (`DSB SY`), as KVM does for
every page it gives a guest.

`CTR_EL0.DminLine` (bits 19..16) is the log2 of the smallest data cache line,
in 4-byte words: the step of the loop.
*/
#define CTR_DMINLINE(ctr) (((ctr) >> 16) & 0xf)

static void dcache_clean_inval_poc(uintptr_t start, size_t size)
{
    u64 line = 4UL << CTR_DMINLINE(sysreg_read(CTR_EL0));
    for (uintptr_t a = ALIGN_DOWN(start, line); a < start + size; a += line)
        __asm__ volatile("dc civac, %0" ::"r"(a) : "memory");
    dsb(sy);
}

/*
## 3. Stage 2 and guest memory

### The machine the guest sees

+-------------------------+-------------------------+--------------------------+
| IPA                     | what                    | how                      |
+=========================+=========================+==========================+
| 0x0400_0000 ..          | pflash1, 64 MiB         | passed through           |
| 0x07FF_FFFF             |                         | **read-only** on first   |
|                         |                         | touch                    |
+-------------------------+-------------------------+--------------------------+
| 0x0800_0000 ..          | GICv3 distributor       | emulated                 |
| 0x0800_FFFF             |                         |                          |
+-------------------------+-------------------------+--------------------------+
| 0x080A_0000 ..          | GICv3 redistributor of  | emulated                 |
| 0x080B_FFFF             | CPU 0                   |                          |
+-------------------------+-------------------------+--------------------------+
| 0x0900_0000 ..          | PL011 UART              | emulated                 |
| 0x0900_0FFF             |                         |                          |
+-------------------------+-------------------------+--------------------------+
| 0x4000_0000 ..          | 16 MiB of RAM (Linux:   | mapped at set-up to host |
| 0x40FF_FFFF             | 128 MiB, to             | frames                   |
|                         | 0x47FF_FFFF)            |                          |
+-------------------------+-------------------------+--------------------------+
| anything else           | nothing                 | a VM fault: reported,    |
|                         |                         | the VM stops             |
+-------------------------+-------------------------+--------------------------+

These are the addresses of QEMU's `virt` board, so the guest, written for that
board, finds everything where it expects. The kernel is loaded where its ELF
file says (0x4008_0000 for `gkernel`).

The hypervisor itself runs from 0x4020_0000 of the *physical* RAM, with
QEMU's device tree below it at 0x4000_0000, so guest RAM cannot be at the
same physical addresses: it is 16 MiB (or 128) taken from the page
allocator, somewhere above the hypervisor. IPA and PA differ, and only
the stage-2 tables know how they correspond.
*/
#define GUEST_RAM_IPA 0x40000000UL
#define GUEST_RAM_SIZE (16 * MiB)
#define GUEST_RAM_SIZE_LINUX (128 * MiB)
#define PFLASH_IPA 0x04000000UL
#define PFLASH_SIZE (64 * MiB)
#define GICD_BASE 0x08000000UL
#define GICD_SIZE 0x10000UL
#define GICR_BASE 0x080A0000UL
#define GICR_SIZE 0x20000UL /* one redistributor: RD_base + SGI_base frames */

/* QEMU's virt machine places RAM at 0x4000_0000, and its device tree at the
   start of it (see start/aarch64.ld). How much RAM there is, the tree says:
   `hv_main` asks `fdt_memory`. */
#define QEMU_FDT 0x40000000UL

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
which the hypervisor chooses, and on the level the walk starts at, which is
not entirely free. The IPA space may not be larger than the CPU's physical
address space: `ID_AA64MMFR0_EL1.PARange` (bits 3..0) says how many bits
those have. And with a 4 KiB granule a walk may start at level 0 only on a
CPU with at least 44 physical address bits; on a 40- or 42-bit CPU such as
the Cortex-A53 that start level is invalid (the Arm ARM's pseudocode
`AArch64.S2InvalidSL`), and every guest access faults at level 0.

Level 1 is valid on every CPU, and stage 2 has a trick to make it reach far
enough: the first level may be up to 16 *concatenated* tables, contiguous
pages that the walker treats as one long table (Arm ARM, D8 "Concatenated
translation tables"). Two pages of level-1 entries cover 2 x 512 GiB: a
40-bit IPA space, which is what KVM gives a VM by default too. So hvbook
takes

+----------+----------+----------+--------------+--------------+---------------+
| PARange  | PA bits  | IPA bits | `T0SZ` = 64  | first level  | root          |
|          |          |          | - IPA bits   | (`SL0`)      |               |
+==========+==========+==========+==============+==============+===============+
| 0        | 32       | 32       | 32           | 1 (0b01)     | 1 page, 4     |
|          |          |          |              |              | entries used  |
+----------+----------+----------+--------------+--------------+---------------+
| 1        | 36       | 36       | 28           | 1 (0b01)     | 1 page, 64    |
|          |          |          |              |              | entries used  |
+----------+----------+----------+--------------+--------------+---------------+
| 2 and up | 40 .. 52 | 40       | 24           | 1 (0b01)     | 2             |
|          |          |          |              |              | concatenated  |
|          |          |          |              |              | pages, 8 KiB  |
|          |          |          |              |              | aligned       |
+----------+----------+----------+--------------+--------------+---------------+

and every walk goes level 1, 2 (and 3 for a page). The guest's machine ends
below 4 GiB, so even the smallest space is enough for it.

`VTCR_EL2` (Arm ARM, register description VTCR_EL2) describes all of this to
the hardware:

+--------+-------+------------------------------+------------------------------+
| bits   | field | value                        | meaning                      |
+========+=======+==============================+==============================+
| 31     | RES1  | 1                            |                              |
+--------+-------+------------------------------+------------------------------+
| 19     | VS    | 0                            | 8-bit VMIDs                  |
+--------+-------+------------------------------+------------------------------+
| 18..16 | PS    | PARange, at most 0b101 (48   | physical address size of     |
|        |       | bits)                        | stage-2 output               |
+--------+-------+------------------------------+------------------------------+
| 15..14 | TG0   | 0b00                         | 4 KiB granule                |
+--------+-------+------------------------------+------------------------------+
| 13..12 | SH0   | 0b11                         | table walks are Inner        |
|        |       |                              | Shareable (see below)        |
+--------+-------+------------------------------+------------------------------+
| 11..10 | ORGN0 | 0b00                         | walks read the tables        |
|        |       |                              | Non-cacheable (outer)        |
+--------+-------+------------------------------+------------------------------+
| 9..8   | IRGN0 | 0b00                         | and Non-cacheable (inner)    |
+--------+-------+------------------------------+------------------------------+
| 7..6   | SL0   | 0b01                         | the walk starts at level 1   |
+--------+-------+------------------------------+------------------------------+
| 5..0   | T0SZ  | 64 - IPA bits                | size of the IPA space        |
+--------+-------+------------------------------+------------------------------+

Why non-cacheable walks? The hypervisor writes the tables with its data cache
off (see "Caches" above). A walker allowed to cache them could keep a stale
copy of a table we later change. With both `IRGN0` and `ORGN0`
Non-cacheable, `SH0` makes no difference: a shareability field matters only
for Normal Cacheable memory, and Normal Non-cacheable memory is always
treated as Outer Shareable (Arm ARM, D8 "Memory region attributes").
*/
#define VTCR_RES1 (1UL << 31)
#define VTCR_PS_SHIFT 16
#define VTCR_TG0_4K (0UL << 14)
#define VTCR_SH0_INNER (3UL << 12)
#define VTCR_ORGN0_NC (0UL << 10)
#define VTCR_IRGN0_NC (0UL << 8)
#define VTCR_SL0_LEVEL1 (1UL << 6)
#define IPA_BITS_MAX 40

/*
### Stage-2 descriptors

Every entry is 64 bits. Bits 1..0 say what it is: `0b11` at levels 0..2 is
a *table* descriptor pointing to the next level, at level 3 a *page*;
`0b01` at levels 1 and 2 is a *block*, mapping 1 GiB or 2 MiB in one entry;
bit 0 = 0 is invalid, and any access through it is a *translation fault*.
The attributes of a stage-2 block or page (Arm ARM, D8 "Stage 2 memory
region attributes" and "Stage 2 access permissions"):

+--------+----------------+--------------+------------------+------------------+
| bits   | field          | RAM          | device           | meaning          |
+========+================+==============+==================+==================+
| 54     | XN             | 0            | 1                | execute never:   |
|        |                |              |                  | no instruction   |
|        |                |              |                  | fetch from a     |
|        |                |              |                  | device           |
+--------+----------------+--------------+------------------+------------------+
| 47..12 | output address | frame        | frame            | the physical     |
|        |                |              |                  | page (or block)  |
+--------+----------------+--------------+------------------+------------------+
| 10     | AF             | 1            | 1                | access flag; 0   |
|        |                |              |                  | would fault on   |
|        |                |              |                  | first use        |
+--------+----------------+--------------+------------------+------------------+
| 9..8   | SH             | 0b11         | 0b00             | shareability:    |
|        |                |              |                  | Inner Shareable  |
|        |                |              |                  | for RAM          |
+--------+----------------+--------------+------------------+------------------+
| 7..6   | S2AP           | 0b11         | 0b11, flash 0b01 | 0b00 none, 0b01  |
|        |                |              |                  | read, 0b10       |
|        |                |              |                  | write, 0b11      |
|        |                |              |                  | read/write       |
+--------+----------------+--------------+------------------+------------------+
| 5..2   | MemAttr        | 0b1111       | 0b0001           | Normal           |
|        |                |              |                  | Write-Back /     |
|        |                |              |                  | Device-nGnRE     |
+--------+----------------+--------------+------------------+------------------+
| 1..0   | type           | 0b01 or 0b11 | 0b11             | block, or page   |
+--------+----------------+--------------+------------------+------------------+

**MemAttr** is how the hypervisor limits what the guest may assume about
memory. Stage 1 and stage 2 attributes are *combined*, and the stronger
(less cacheable, more ordered) wins. RAM gets the weakest, Normal
Write-Back, so that whatever the guest's own stage 1 says is what happens.
A device gets Device-nGnRE (no gathering, no reordering; early write
acknowledgement allowed): whatever a confused guest's stage 1 says, its
accesses to the device stay device accesses.

**S2AP** is the guest's right to read and write. The flash is the one
window the guest may only read: its contents are the machine's firmware
and data, not the guest's to change, and a write that reached it would
put QEMU's flash into its command mode (block erase, program) for every
later reader. So the flash is mapped read-only, and a store to it is a
*permission fault* that comes to us (section 6).

A table descriptor has only its type bits and the next table's address.
*/
#define S2_VALID (1UL << 0)
#define S2_TABLE (3UL << 0)
#define S2_PAGE (3UL << 0)
#define S2_BLOCK (1UL << 0)
#define S2_MEMATTR_NORMAL_WB (0xfUL << 2)
#define S2_MEMATTR_DEVICE_nGnRE (0x1UL << 2)
#define S2AP_RO (1UL << 6)
#define S2AP_RW (3UL << 6)
#define S2_SH_INNER (3UL << 8)
#define S2_AF (1UL << 10)
#define S2_XN (1UL << 54)
#define S2_ADDR_MASK 0x0000fffffffff000UL

#define S2_RAM (S2_MEMATTR_NORMAL_WB | S2AP_RW | S2_SH_INNER | S2_AF)
#define S2_FLASH (S2_MEMATTR_DEVICE_nGnRE | S2AP_RO | S2_AF | S2_XN)

// the level-1 table: one page, or two concatenated
static u64 *s2_root;
static u64 s2_root_entries; /* how many entries of it the IPA space uses */

/* The guest's VMID: tags its TLB entries, so that they can never be used for
   another VM. */
#define GUEST_VMID 1UL

/*
### Setting up the translation regime

`s2_setup` reads the CPU's physical address size, picks the IPA size as in
the table above, allocates the (empty) root table, two pages aligned to
their size when the space is 40 bits, and writes the two registers.
Nothing is translated yet: stage 2 applies only once `HCR_EL2.VM` is set
(section 5), and only to EL1 and EL0. But from now on the VMID is the
guest's, so the TLB maintenance in `s2_map` below is aimed at the right VM
from the first mapping. `VTTBR_EL2` (Arm ARM, register description
VTTBR_EL2) holds the root:

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
    int ipa_bits =
        pa_bits[parange] < IPA_BITS_MAX ? pa_bits[parange] : IPA_BITS_MAX;

    s2_root_entries = 1UL << (ipa_bits - 30); // level-1 entries map 1 GiB each
    size_t pages = s2_root_entries > 512 ? s2_root_entries / 512 : 1;
    s2_root = page_alloc(pages, pages * PAGE_SIZE);
    u64 vtcr = VTCR_RES1 | (parange << VTCR_PS_SHIFT) | VTCR_TG0_4K |
               VTCR_SH0_INNER | VTCR_ORGN0_NC | VTCR_IRGN0_NC |
               VTCR_SL0_LEVEL1 | (u64)(64 - ipa_bits);
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
the physical memory at `pa`. It walks down from the level-1 root, whose
index may have a bit more than the 9 of the other levels (the concatenated
tables), creating any missing level-2 or level-3 table on the way, until it
reaches the level whose entries map `size` bytes: level 2 for 2 MiB, level
3 for 4 KiB. An existing
block or page in the way would mean two mappings overlap, a bug, so it
panics instead of quietly overwriting.

Guest RAM uses 2 MiB blocks: eight entries map all 16 MiB (64 map Linux's
128). Devices use 4 KiB
pages, mapped one at a time as the guest touches them.
*/
static void s2_map(u64 ipa, u64 pa, u64 size, u64 attrs)
{
    int leaf_level = size == 2 * MiB ? 2 : 3;
    u64 *table = s2_root;

    for (int level = 1; level < leaf_level; level++) {
        u64 index = (ipa >> (39 - 9 * level)) &
                    (level == 1 ? s2_root_entries - 1 : 0x1ff);
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
    table[index] =
        (pa & S2_ADDR_MASK) | attrs | (leaf_level == 3 ? S2_PAGE : S2_BLOCK);
    s2_flush_ipa(ipa);
}

/*
`guest_ram_setup` allocates the guest's RAM (16 MiB for `gkernel`, 128 MiB
for Linux) in one piece, 2 MiB aligned so that 2 MiB blocks can map it, and
maps it. Its address in the hypervisor's memory, `guest_ram`, is kept: the
loader writes the kernel through it.
*/
static u8 *guest_ram;
static u64 guest_ram_size;

static void guest_ram_setup(u64 size)
{
    s2_setup();
    guest_ram_size = size;
    guest_ram = page_alloc(size / PAGE_SIZE, 2 * MiB);
    for (u64 off = 0; off < size; off += 2 * MiB)
        s2_map(GUEST_RAM_IPA + off, (uintptr_t)guest_ram + off, 2 * MiB,
               S2_RAM);
}

/*
## 4. The interrupt controller

### Who owns the GIC

QEMU's `virt` board with `gic-version=3` has an Arm GICv3 (Arm IHI0069,
"GIC Architecture Specification, GICv3 and GICv4"). It has three parts:

+----------------------+---------------------------+---------------------------+
| part                 | where                     | what it does              |
+======================+===========================+===========================+
| distributor (GICD)   | MMIO, 0x0800_0000         | global settings; shared   |
|                      |                           | interrupts (SPIs)         |
+----------------------+---------------------------+---------------------------+
| redistributor (GICR) | MMIO, 0x080A_0000, one    | that CPU's private        |
|                      | per CPU                   | interrupts (SGIs, PPIs)   |
+----------------------+---------------------------+---------------------------+
| CPU interface        | system registers          | acknowledge and end       |
|                      | `ICC_*_EL1`               | interrupts, priority mask |
+----------------------+---------------------------+---------------------------+

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
    hvbook (handle_irq, inject_timer, then vgic_flush before the entry):
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
   **PPI 26**, the interrupt of the EL2 physical timer (the hypervisor's own
   timer, section 5), gets the same group and priority and is enabled for
   good: no guest setting can touch it. So is **PPI 25**, the *maintenance
   interrupt* of the virtual CPU interface, which tells the hypervisor that
   list registers need its attention (`vgic_flush`, section 6). A write to
   `GICR_ICENABLER0` takes effect some time later; the redistributor says it
   is done by clearing `GICR_CTLR.RWP` (bit 3, "register write pending"),
   which `gicr_wait_rwp` polls after every enable or disable.
   **SPI 33**, the real PL011's interrupt (SPI 1 of QEMU's `virt`), is the
   hypervisor's too: it is how typed characters reach it (`uart_receive`).
   In the distributor: Group 1 (`GICD_IGROUPR1`), the same priority,
   level-sensitive (`GICD_ICFGR2`, 0), routed to this CPU (`GICD_IROUTER33`
   = our affinity fields, `Interrupt_Routing_Mode` 0) and enabled
   (`GICD_ISENABLER1`); the real PL011 is told to raise it when a character
   arrives (`UARTIMSC` bits `RXIM` 4 and `RTIM` 6).
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
#define GICD_TYPER2 0x000c
#define GICD_IGROUPR 0x0080    /* one bit per INTID, 32 per word */
#define GICD_ISENABLER 0x0100
#define GICD_ICENABLER 0x0180
#define GICD_ISPENDR 0x0200
#define GICD_ICPENDR 0x0280
#define GICD_ISACTIVER 0x0300
#define GICD_ICACTIVER 0x0380
#define GICD_IPRIORITYR 0x0400 /* one byte per INTID */
#define GICD_ICFGR 0x0c00      /* two bits per INTID, 16 per word */
#define GICD_IROUTER 0x6000    /* 64 bits per SPI: where it is routed */
#define GICD_PIDR2 0xffe8
#define GICD_CTLR_ENABLE_GRP0 (1U << 0)
#define GICD_CTLR_ENABLE_GRP1 (1U << 1)
#define GICD_CTLR_ARE (1U << 4)
#define GICD_CTLR_DS (1U << 6)
#define GICD_CTLR_RWP (1U << 31)

#define GICR_SGI 0x10000 /* the second 64 KiB frame of a redistributor */
#define GICR_CTLR 0x0000
#define GICR_CTLR_RWP (1U << 3)
#define GICR_IIDR 0x0004
#define GICR_TYPER 0x0008
#define GICR_WAKER 0x0014
#define GICR_PIDR2 0xffe8
#define GICR_WAKER_PROCESSOR_SLEEP (1U << 1)
#define GICR_WAKER_CHILDREN_ASLEEP (1U << 2)
#define GICR_IGROUPR0 (GICR_SGI + 0x0080)
#define GICR_ISENABLER0 (GICR_SGI + 0x0100)
#define GICR_ICENABLER0 (GICR_SGI + 0x0180)
#define GICR_ISPENDR0 (GICR_SGI + 0x0200)
#define GICR_ICPENDR0 (GICR_SGI + 0x0280)
#define GICR_ISACTIVER0 (GICR_SGI + 0x0300)
#define GICR_ICACTIVER0 (GICR_SGI + 0x0380)
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

/* The EL1 virtual timer's interrupt on QEMU virt (and on most boards), and
   the EL2 physical timer's (the Server Base System Architecture's numbers). */
#define TIMER_PPI 27
#define HV_TIMER_PPI 26
#define HV_TIMER_PRIORITY 0x80
/* The virtual CPU interface's maintenance interrupt (the SBSA's number, and
   QEMU's), and the PL011's interrupt on QEMU virt: SPI 1, INTID 33. */
#define MAINTENANCE_PPI 25
#define UART_SPI 33
/* An MPIDR's affinity fields, Aff3 (39..32) and Aff2..Aff0 (23..0): the
   value GICD_IROUTER<n> routes to, and the one PSCI names a CPU by. */
#define MPIDR_AFFINITY_MASK 0xff00ffffffUL

/* The PL011's control and interrupt registers, for the real UART here and
   the guest's emulated one in section 6 (DDI0183, 3.3, the descriptions of
   UARTCR, UARTIMSC and UARTICR). */
#define PL011_CR 0x030
#define PL011_IMSC 0x038
#define PL011_ICR 0x044
#define PL011_INT_RX (1U << 4)  /* receive */
#define PL011_INT_TX (1U << 5)  /* transmit */
#define PL011_INT_RT (1U << 6)  /* receive timeout */
#define PL011_CR_ON 0x301U      /* UARTEN (0), TXE (8), RXE (9) */

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

static void gicr_wait_rwp(void)
{
    while (mmio_read32(GICR_BASE + GICR_CTLR) & GICR_CTLR_RWP)
        ;
}

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
    // 3. Every SGI and PPI off; PPIs 27, 26 and 25 Group 1, middle
    // priority; 26 and 25 on.
    mmio_write32(GICR_BASE + GICR_ICENABLER0, 0xffffffff);
    gicr_wait_rwp();
    mmio_write32(GICR_BASE + GICR_IGROUPR0,
                 mmio_read32(GICR_BASE + GICR_IGROUPR0) | 1U << TIMER_PPI |
                     1U << HV_TIMER_PPI | 1U << MAINTENANCE_PPI);
    mmio_write8(GICR_BASE + GICR_IPRIORITYR + TIMER_PPI, HV_TIMER_PRIORITY);
    mmio_write8(GICR_BASE + GICR_IPRIORITYR + HV_TIMER_PPI, HV_TIMER_PRIORITY);
    mmio_write8(GICR_BASE + GICR_IPRIORITYR + MAINTENANCE_PPI,
                HV_TIMER_PRIORITY);
    mmio_write32(GICR_BASE + GICR_ISENABLER0,
                 1U << HV_TIMER_PPI | 1U << MAINTENANCE_PPI);
    gicr_wait_rwp();
    // The real PL011's receive interrupt, SPI 33, to this CPU.
    u32 bit = 1U << (UART_SPI % 32);
    u64 aff = sysreg_read(MPIDR_EL1) & MPIDR_AFFINITY_MASK;
    mmio_write32(GICD_BASE + GICD_IGROUPR + 4,
                 mmio_read32(GICD_BASE + GICD_IGROUPR + 4) | bit);
    mmio_write8(GICD_BASE + GICD_IPRIORITYR + UART_SPI, HV_TIMER_PRIORITY);
    mmio_write32(GICD_BASE + GICD_ICFGR + 8,
                 mmio_read32(GICD_BASE + GICD_ICFGR + 8) &
                     ~(3U << 2 * (UART_SPI % 16)));
    *(volatile u64 *)(GICD_BASE + GICD_IROUTER + 8 * UART_SPI) = aff;
    mmio_write32(GICD_BASE + GICD_ISENABLER + 4, bit);
    while (mmio_read32(GICD_BASE + GICD_CTLR) & GICD_CTLR_RWP)
        ;
    mmio_write32(PL011_BASE + PL011_ICR, 0x7ff);
    mmio_write32(PL011_BASE + PL011_CR, PL011_CR_ON);
    mmio_write32(PL011_BASE + PL011_IMSC, PL011_INT_RX | PL011_INT_RT);

    // 4. and 5. The physical CPU interface, as EL2 sees it.
    sysreg_write(ICC_SRE_EL2,
                 ICC_SRE_SRE | ICC_SRE_DFB | ICC_SRE_DIB | ICC_SRE_ENABLE);
    isb();
    if (!(sysreg_read(ICC_SRE_EL2) & ICC_SRE_SRE))
        panic("GICv3: the system-register CPU interface cannot be "
              "enabled at EL2");
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
_Static_assert(offsetof(struct vcpu, elr) == 248,
               "start/aarch64.S expects elr at 248");
_Static_assert(offsetof(struct vcpu, hpfar) == 280,
               "start/aarch64.S expects hpfar at 280");
_Static_assert(offsetof(struct vcpu, host) == 288,
               "start/aarch64.S expects host at 288");

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

+--------+----------+--------------+-------------------------------------------+
| bit    | name     | value        | why                                       |
+========+==========+==============+===========================================+
| 0      | VM       | 1            | stage-2 translation on for EL1 and EL0:   |
|        |          |              | isolation                                 |
+--------+----------+--------------+-------------------------------------------+
| 1      | SWIO     | 1            | a guest "invalidate data cache by         |
|        |          |              | set/way" cleans as well: it must never    |
|        |          |              | discard dirty lines that are not only the |
|        |          |              | guest's                                   |
+--------+----------+--------------+-------------------------------------------+
| 3      | FMO      | 1            | physical FIQs come to EL2; the guest gets |
|        |          |              | *virtual* FIQs and its `ICC_*` accesses   |
|        |          |              | go to `ICV_*`                             |
+--------+----------+--------------+-------------------------------------------+
| 4      | IMO      | 1            | the same for IRQs: the timer's physical   |
|        |          |              | IRQ is ours, the guest sees the virtual   |
|        |          |              | one we inject                             |
+--------+----------+--------------+-------------------------------------------+
| 5      | AMO      | 1            | physical SErrors come to EL2: a system    |
|        |          |              | error caused while the guest ran is       |
|        |          |              | reported, not left to the guest           |
+--------+----------+--------------+-------------------------------------------+
| 13, 14 | TWI, TWE | 0            | `WFI`/`WFE` are *not* trapped: a guest    |
|        |          |              | waiting for its timer really sleeps, and  |
|        |          |              | the physical IRQ, routed to EL2, wakes    |
|        |          |              | the CPU. That holds even for a guest that |
|        |          |              | masked its interrupts first: a physical   |
|        |          |              | IRQ that targets EL2 is never masked by   |
|        |          |              | the guest's `PSTATE.I` (Arm ARM, D1       |
|        |          |              | "Physical interrupt masking"), and so it  |
|        |          |              | is a WFI wake-up event. The hypervisor's  |
|        |          |              | own timer (below) gets the CPU back from  |
|        |          |              | any `WFI`; trapping them would only add   |
|        |          |              | exits                                     |
+--------+----------+--------------+-------------------------------------------+
| 18     | TID3     | 1            | the *ID registers* of group 3             |
|        |          |              | (`ID_AA64PFR0_EL1` and its neighbours,    |
|        |          |              | Op0 3, Op1 0, CRn 0, CRm 1..7) trap: they |
|        |          |              | must not promise what hvbook keeps from   |
|        |          |              | the guest. `id_reg_read` answers with the |
|        |          |              | real values, minus SVE and SME            |
|        |          |              | (`CPTR_EL2` below traps both)             |
+--------+----------+--------------+-------------------------------------------+
| 19     | TSC      | 1            | `SMC` traps to EL2: QEMU's PSCI firmware  |
|        |          |              | answers `SMC` and must never see the      |
|        |          |              | guest's; we answer for it                 |
+--------+----------+--------------+-------------------------------------------+
| 20     | TIDCP    | 1            | the *implementation defined* registers    |
|        |          |              | (`Op0` = 3, `CRn` = 11 or 15: cache, bus  |
|        |          |              | and power controls of this particular     |
|        |          |              | core) belong to the physical machine. An  |
|        |          |              | access traps, and hvbook answers as a CPU |
|        |          |              | without such a register would: an         |
|        |          |              | undefined-instruction exception,          |
|        |          |              | delivered to the guest                    |
+--------+----------+--------------+-------------------------------------------+
| 21     | TACR     | 1            | `ACTLR_EL1`, the implementation defined   |
|        |          |              | *auxiliary control* register, also sets   |
|        |          |              | behaviour of the physical core. Reads     |
|        |          |              | return the value the hypervisor found;    |
|        |          |              | writes are ignored                        |
+--------+----------+--------------+-------------------------------------------+
| 22     | TSW      | 0            | set/way cache maintenance stays the       |
|        |          |              | guest's. With `SWIO` an "invalidate by    |
|        |          |              | set/way" also cleans, so no dirty line is |
|        |          |              | lost, and the hypervisor keeps nothing in |
|        |          |              | the data cache to lose. (KVM traps these  |
|        |          |              | because a guest moved between CPUs cannot |
|        |          |              | clean "its" caches by set/way; one vCPU   |
|        |          |              | that never moves can)                     |
+--------+----------+--------------+-------------------------------------------+
| 27     | TGE      | 0            | the guest's own exceptions (system calls, |
|        |          |              | its page faults) stay at EL1              |
+--------+----------+--------------+-------------------------------------------+
| 29     | HCD      | 0            | `HVC` is enabled: it is the guest's way   |
|        |          |              | to call us                                |
+--------+----------+--------------+-------------------------------------------+
| 31     | RW       | 1            | EL1 is AArch64                            |
+--------+----------+--------------+-------------------------------------------+
| 34     | E2H      | 0            | a classic EL2 hypervisor, not a host      |
|        |          |              | kernel (no VHE)                           |
+--------+----------+--------------+-------------------------------------------+
| 36     | TERR     | 1 if present | the RAS *error records* (`ERRIDR_EL1`,    |
|        |          |              | `ERRSELR_EL1`, `ERX*_EL1`) report and     |
|        |          |              | inject errors of the physical machine.    |
|        |          |              | Trapped: `ERRIDR_EL1` reads 0, "no error  |
|        |          |              | records", and the others then read as     |
|        |          |              | zero and ignore writes, as the Arm ARM    |
|        |          |              | makes them for that case. Set only when   |
|        |          |              | the CPU has FEAT_RAS                      |
|        |          |              | (`ID_AA64PFR0_EL1.RAS`, bits 31..28);     |
|        |          |              | RES0 otherwise                            |
+--------+----------+--------------+-------------------------------------------+
| 40, 41 | APK, API | 1 if present | pointer-authentication keys and           |
|        |          |              | instructions are the guest's: do not trap |
|        |          |              | them (set only when the CPU has           |
|        |          |              | FEAT_PAuth; RES0 otherwise)               |
+--------+----------+--------------+-------------------------------------------+
*/
#define HCR_VM (1UL << 0)
#define HCR_SWIO (1UL << 1)
#define HCR_FMO (1UL << 3)
#define HCR_IMO (1UL << 4)
#define HCR_AMO (1UL << 5)
#define HCR_TSC (1UL << 19)
#define HCR_TID3 (1UL << 18)
#define HCR_TIDCP (1UL << 20)
#define HCR_TACR (1UL << 21)
#define HCR_RW (1UL << 31)
#define HCR_TERR (1UL << 36)
#define HCR_APK (1UL << 40)
#define HCR_API (1UL << 41)

/*
### The other EL2 registers that shape the VM

Each of these comes out of reset UNKNOWN, so each is written:

+-------------------------+-------------------------+--------------------------+
| register                | value                   | why                      |
+=========================+=========================+==========================+
| `VTCR_EL2`, `VTTBR_EL2` | section 3               | stage 2, written by      |
|                         |                         | `s2_setup`               |
+-------------------------+-------------------------+--------------------------+
| `CPTR_EL2`              | 0x33FF                  | bits 13, 9, 7..0 are     |
|                         |                         | RES1; `TFP` (10) = 0:    |
|                         |                         | FP/SIMD registers are    |
|                         |                         | the guest's alone, the   |
|                         |                         | hypervisor never uses    |
|                         |                         | them                     |
|                         |                         | (`-mgeneral-regs-only`); |
|                         |                         | `TZ` (8) = 1 and `TSM`   |
|                         |                         | (12) = 1: SVE and SME    |
|                         |                         | trap to us, since their  |
|                         |                         | larger state is more     |
|                         |                         | than this chapter        |
|                         |                         | handles; we report such  |
|                         |                         | an exit                  |
+-------------------------+-------------------------+--------------------------+
| `MDCR_EL2`              | below                   | what of debug and the    |
|                         |                         | PMU is the guest's       |
+-------------------------+-------------------------+--------------------------+
| `HSTR_EL2`              | 0                       | no AArch32 coprocessor   |
|                         |                         | traps                    |
+-------------------------+-------------------------+--------------------------+
| `CNTHCTL_EL2`           | `EL1PCTEN` = 1,         | the guest may read the   |
|                         | `EL1PCEN` = 0           | physical counter (a      |
|                         |                         | clock harms no one) but  |
|                         |                         | not program the EL1      |
|                         |                         | *physical* timer: the    |
|                         |                         | guest's timer is the     |
|                         |                         | virtual one, and the     |
|                         |                         | physical timer's         |
|                         |                         | interrupt is not one we  |
|                         |                         | forward. An access traps |
|                         |                         | (EC 0x18) and is         |
|                         |                         | reported                 |
+-------------------------+-------------------------+--------------------------+
| `CNTVOFF_EL2`           | 0                       | virtual count = physical |
|                         |                         | count, as on a machine   |
|                         |                         | with no EL2              |
+-------------------------+-------------------------+--------------------------+
| `VPIDR_EL2`,            | `MIDR_EL1`, `MPIDR_EL1` | what the guest reads as  |
| `VMPIDR_EL2`            |                         | its CPU model and its    |
|                         |                         | CPU number: the real     |
|                         |                         | ones, as bare QEMU would |
|                         |                         | show                     |
+-------------------------+-------------------------+--------------------------+
*/
/*
That list covers the base architecture's registers, not every extension's.
Later extensions add EL2 registers that also come out of reset UNKNOWN and
also decide what traps: `FEAT_FGT`'s fine-grained
trap registers (`HFGRTR_EL2`, `HFGWTR_EL2`, `HFGITR_EL2`, `HDFGRTR_EL2`,
`HDFGWTR_EL2`) and `FEAT_HCX`'s `HCRX_EL2`. hvbook does not write them.
QEMU resets them to 0, so no test here can see the difference; on real
hardware that has them, a hypervisor must set each, and 0 is not simply
"trap nothing": some of their bits are *negative* (`nPIR_EL1`, `nTPIDR2_EL0`
and others trap when 0), and `HCRX_EL2.TCR2En` = 0 traps `TCR2_EL1`, which
a guest whose ID registers promise `FEAT_TCR2` will use. KVM sets them from
the features the guest's ID registers show; hvbook would have to do the
same (or hide those features in `id_reg_read`).
*/
#define CPTR_EL2_VALUE 0x33ffUL
#define CNTHCTL_EL1PCTEN (1UL << 0)

/*
### `MDCR_EL2`: debug and the performance monitors

The performance monitors (PMU, Arm ARM, chapter "The Performance Monitors
Extension") count cycles and events, and each counter has a *filter* saying
at which levels it counts: `PMCCFILTR_EL0` for the cycle counter,
`PMEVTYPER<n>_EL0` for the others, where bit 27, `NSH`, means "count at EL2
too". A guest that sets it, reads the cycle counter, executes `HVC` and
reads it again has measured the hypervisor's own work, to the cycle: a side
channel, and exactly what an isolated guest must not see. (It can still see
the wall-clock time an exit took, with the generic timer's counter; that
no hypervisor can hide.)

The architecture grew two brakes: `HPMD` (PMUv3p1) prohibits event counting
at EL2, and `HCCD` (PMUv3p5) stops the cycle counter there, which `HPMD`
alone does only when the guest's own `PMCR_EL0.DP` says so. An older PMU,
like the Cortex-A53's, has neither. So hvbook sets whatever brakes the CPU
has (`ID_AA64DFR0_EL1.PMUVer`, bits 11..8: 1 is PMUv3, 4 is v3p1, 6 is v3p5),
*and* traps every PMU access with `TPM`: `pmu_emulate` (section 6) performs
the access for the guest, with `NSH` cleared in whatever it writes to a
filter. The guest keeps its counters; it just never counts at EL2.

+------+-------+--------------+------------------------------------------------+
| bits | field | value        | why                                            |
+======+=======+==============+================================================+
| 4..0 | HPMN  | `PMCR_EL0.N` | every event counter is the guest's (none kept  |
|      |       |              | for EL2)                                       |
+------+-------+--------------+------------------------------------------------+
| 6    | TPM   | 1            | PMU registers trap to EL2, so that no filter   |
|      |       |              | ever says "count at EL2"                       |
+------+-------+--------------+------------------------------------------------+
| 7    | HPME  | 0            | (no counters are kept for EL2, so nothing to   |
|      |       |              | enable)                                        |
+------+-------+--------------+------------------------------------------------+
| 8    | TDE   | 0            | debug exceptions go to the guest, whose        |
|      |       |              | debugger it is                                 |
+------+-------+--------------+------------------------------------------------+
| 9    | TDA   | 0            | breakpoints, watchpoints and `MDSCR_EL1` are   |
|      |       |              | the guest's own: their exceptions target EL1,  |
|      |       |              | and an exception is never taken to a lower     |
|      |       |              | level, so they cannot fire while the           |
|      |       |              | hypervisor runs (Arm ARM, D2 "Debug            |
|      |       |              | exceptions")                                   |
+------+-------+--------------+------------------------------------------------+
| 10   | TDOSA | 0            | the OS lock and power-down registers are the   |
|      |       |              | guest's too (Linux clears the OS lock at boot) |
+------+-------+--------------+------------------------------------------------+
| 11   | TDRA  | 1            | `MDRAR_EL1` holds the *physical* address of    |
|      |       |              | the debug ROM table, a fact about the host.    |
|      |       |              | Trapped; it reads as 0, "no ROM table"         |
|      |       |              | (`Valid` = 0b00)                               |
+------+-------+--------------+------------------------------------------------+
| 17   | HPMD  | 1 if PMUv3p1 | no event counting at EL2 (RES0 before PMUv3p1) |
+------+-------+--------------+------------------------------------------------+
| 23   | HCCD  | 1 if PMUv3p5 | no cycle counting at EL2 (RES0 before PMUv3p5) |
+------+-------+--------------+------------------------------------------------+
*/
#define MDCR_HPMN_MASK 0x1fUL
#define MDCR_TPM (1UL << 6)
#define MDCR_TDRA (1UL << 11)
#define MDCR_HPMD (1UL << 17)
#define MDCR_HCCD (1UL << 23)
#define PMUVER(dfr0) (((dfr0) >> 8) & 0xf)
#define PMUVER_V3 1
#define PMUVER_V3P1 4
#define PMUVER_V3P5 6
#define PMUVER_IMPDEF 0xf
#define PMCR_N(pmcr) (((pmcr) >> 11) & 0x1f)
#define ID_PFR0_RAS(pfr0) (((pfr0) >> 28) & 0xf)

/*
### The hypervisor's own timer

A guest that spins with its interrupts masked, or executes `WFI` with no
timer armed, would otherwise keep the CPU for good: nothing it does ever
comes to EL2. So hvbook keeps a timer the guest cannot touch: the **EL2
physical timer** (`CNTHP_*_EL2`, Arm ARM, "The Generic Timer"), whose
registers exist only at EL2 and whose interrupt, PPI 26, only the
hypervisor enables at the GIC. It compares the physical count
(`CNTPCT_EL0`) with `CNTHP_CVAL_EL2`; `CNTHP_CTL_EL2.ENABLE` (bit 0) arms
it, `IMASK` (bit 1) would mask it.

`hv_timer_start` arms it once, just before the guest's first instruction,
for the guest's whole time budget (`boot_args.budget_s`, from `run.sh`;
0 means no limit). When it fires, the IRQ exit finds INTID 26 instead of the
guest's 27, and the run ends with `report_budget_spent`: the budget, the
guest's PC, the exit table and a failure status.
*/
#define CNTHP_CTL_ENABLE (1UL << 0)

static void hv_timer_start(void)
{
    if (boot_args.budget_s == 0) {
        sysreg_write(CNTHP_CTL_EL2, 0);
        return;
    }
    u64 ticks = (u64)boot_args.budget_s * sysreg_read(CNTFRQ_EL0);
    sysreg_write(CNTHP_CVAL_EL2, sysreg_read(CNTPCT_EL0) + ticks);
    sysreg_write(CNTHP_CTL_EL2, CNTHP_CTL_ENABLE);
    isb();
}

/*
### The state the guest starts in

The guest is started as QEMU starts a bare-metal ELF at EL1: at its entry
point, in EL1 using `SP_EL1` ("EL1h"), with all interrupts masked, `x0` = 0
(QEMU passes no device-tree pointer to a non-Linux ELF). Linux is started
the same way, as its `booting.rst` asks, with the address of the device
tree hvbook wrote for it in `x0` and `x1` .. `x3` zero (section 7).
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

// ACTLR_EL1 as hvbook found it: what the guest reads
static u64 actlr_at_start;

static void vcpu_setup(u64 entry, u64 x0)
{
    u64 hcr = HCR_VM | HCR_SWIO | HCR_FMO | HCR_IMO | HCR_AMO | HCR_TID3 |
              HCR_TSC | HCR_TIDCP | HCR_TACR | HCR_RW;
    u64 isar1 = sysreg_read(ID_AA64ISAR1_EL1);
    // APA (7..4), API (11..8), GPA (27..24), GPI (31..28): any means PAuth.
    if (isar1 & 0xff000ff0UL)
        hcr |= HCR_APK | HCR_API;
    if (ID_PFR0_RAS(sysreg_read(ID_AA64PFR0_EL1)) != 0)
        hcr |= HCR_TERR;
    sysreg_write(HCR_EL2, hcr);

    sysreg_write(CPTR_EL2, CPTR_EL2_VALUE);
    sysreg_write(HSTR_EL2, 0);
    u64 mdcr = MDCR_TDRA;
    u64 pmuver = PMUVER(sysreg_read(ID_AA64DFR0_EL1));
    // the PMU fields are RES0 without one
    if (pmuver >= PMUVER_V3 && pmuver != PMUVER_IMPDEF) {
        mdcr |= MDCR_TPM | (PMCR_N(sysreg_read(PMCR_EL0)) & MDCR_HPMN_MASK);
        if (pmuver >= PMUVER_V3P1)
            mdcr |= MDCR_HPMD;
        if (pmuver >= PMUVER_V3P5)
            mdcr |= MDCR_HCCD;
    }
    sysreg_write(MDCR_EL2, mdcr);
    sysreg_write(CNTHCTL_EL2, CNTHCTL_EL1PCTEN);
    sysreg_write(CNTVOFF_EL2, 0);
    sysreg_write(VPIDR_EL2, sysreg_read(MIDR_EL1));
    sysreg_write(VMPIDR_EL2, sysreg_read(MPIDR_EL1));
    actlr_at_start = sysreg_read(ACTLR_EL1); // what the guest will read (TACR)
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
       "The AArch64 System Level Memory Model", cache maintenance). The data
       side is already clean to the Point of Coherency (hv_main), so
       invalidating the instruction cache is what is left. */
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
    // gkernel: 0, as QEMU gives a bare-metal ELF; Linux: its tree
    vcpu.x[0] = x0;
}

/*
## 6. The run loop and the VM exits

Everything so far was preparation. The run loop is the hypervisor: enter
the guest, wait for it to exit, handle the exit, enter again.

    +--> vcpu_enter: ERET into the guest --------------------+
    |                                                        | the guest runs
    |    vectors + 0x400..0x580: a VM exit <-----------------+
    |        |
    |        +-- IRQ                    -> handle_irq: timer, console, GIC
    |        +-- sync, EC 0x16 / 0x17   -> handle_hypercall (HVC, SMC)
    |        +-- sync, EC 0x24 / 0x20   -> handle_stage2_fault
    |        +-- sync, EC 0x18          -> handle_sysreg
    |        +-- anything else          -> report, stop
    |        |
    |    vgic_flush, if the exit changed what the guest should see
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
    EXIT_UART_INTERRUPT,
    EXIT_MAINTENANCE,
    EXIT_HV_TIMER,
    EXIT_SPURIOUS_INTERRUPT,
    EXIT_SGI,
    EXIT_SYSREG,
    EXIT_PFLASH_FAULT,
    EXIT_CACHE_OP,
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
    [EXIT_UART_INTERRUPT] = "console input (PL011)",
    [EXIT_MAINTENANCE] = "GIC maintenance interrupt",
    [EXIT_SGI] = "SGI sent (ICC_SGI*R_EL1)",
    [EXIT_HV_TIMER] = "hypervisor timer (budget)",
    [EXIT_SPURIOUS_INTERRUPT] = "spurious interrupt",
    [EXIT_SYSREG] = "system register trapped",
    [EXIT_PFLASH_FAULT] = "stage-2 fault: pflash",
    [EXIT_CACHE_OP] = "stage-2 fault: cache op",
    [EXIT_REFUSED_FAULT] = "stage-2 fault: refused",
    [EXIT_UNEXPECTED] = "unexpected",
};
static u64 exit_counts[EXIT_REASONS];

/* How the VM ended, or that it still runs (`common.h`, "how a run ends").
   On Arm the guest ends itself as a failure by asking for a restart, or by
   switching its only CPU off. */
static enum vm_state vm_state;
static u64 exit_kind; /* EXIT_KIND_SYNC, _IRQ...: of the exit being handled */

/*
### A VM fault

A guest that does something hvbook does not allow is stopped, never ignored
and never allowed to go on with garbage. `vm_fault` prints everything a
student needs to find the guest's mistake: what happened, the guest's PC,
the syndrome decoded, and the guest's registers, the way a kernel prints an
"oops". (`vm_dump` is its second half, for callers that print a more precise
first line themselves.)

The world switch saves `ESR_EL2`, `FAR_EL2` and `HPFAR_EL2` at every exit,
but the CPU writes them only for the exits that have something to say, and
otherwise they hold what an *earlier* exit left there. A report that printed
them anyway would point the student at an address this fault never
touched. So `vm_dump` prints only what is valid for this exit (Arm ARM,
register descriptions of each): `ESR` for a synchronous exit, not for an
interrupt; `FAR` for an instruction or data abort (unless `ISS.FnV`, bit 10,
says "FAR not valid") and for a PC alignment fault; `HPFAR` for an abort
that stage 2 caused (a translation, access flag or permission fault, or a
fault on the guest's own table walk).
*/
#define ISS_FNV (1UL << 10)

static u64 fault_ipa(void)
{
    return ((vcpu.hpfar & HPFAR_FIPA_MASK) << 8) | (vcpu.far & 0xfff);
}

static bool far_valid(void)
{
    u64 ec = ESR_EC(vcpu.esr);
    if (ec == EC_PC_ALIGN)
        return true;
    return (ec == EC_DABT_LOW || ec == EC_IABT_LOW) && !(vcpu.esr & ISS_FNV);
}

static bool hpfar_valid(void)
{
    u64 ec = ESR_EC(vcpu.esr), iss = ESR_ISS(vcpu.esr);
    u64 type = FSC_TYPE(ISS_FSC(iss));
    return (ec == EC_DABT_LOW || ec == EC_IABT_LOW) &&
           (type == FSC_TRANSLATION || type == FSC_ACCESS_FLAG ||
            type == FSC_PERMISSION || (iss & ISS_S1PTW));
}

static void vm_dump(void)
{
    u64 ec = ESR_EC(vcpu.esr);
    if (exit_kind != EXIT_KIND_SYNC) {
        printf("  an interrupt exit (no syndrome)  guest pc 0x%lx\n", vcpu.elr);
    } else {
        printf("  ESR 0x%lx (EC 0x%lx: %s)  guest pc 0x%lx", vcpu.esr, ec,
               ec_name(ec), vcpu.elr);
        if (far_valid())
            printf("  FAR 0x%lx", vcpu.far);
        if (hpfar_valid())
            printf("  HPFAR 0x%lx", vcpu.hpfar);
        printf("\n");
    }
    printf("  guest x0 0x%lx  x1 0x%lx  x2 0x%lx  x30 0x%lx  "
           "sp 0x%lx  spsr 0x%lx\n",
           vcpu.x[0], vcpu.x[1], vcpu.x[2], vcpu.x[30], sysreg_read(SP_EL1),
           vcpu.spsr);
    vm_state = VM_FAULT;
}

static void vm_fault(const char *what)
{
    printf("VM fault: %s\n", what);
    vm_dump();
}

/*
### Virtual interrupts: list registers and `vgic_flush`

The guest sees interrupts only through the list registers (section 4). Each
holds one virtual interrupt (IHI0069, register description ICH_LR<n>_EL2):

+--------+----------+----------------------------+-----------------------------+
| bits   | field    | value                      | meaning                     |
+========+==========+============================+=============================+
| 63..62 | State    | 0b01                       | pending (0b10 active, 0b11  |
|        |          |                            | both, 0b00 empty)           |
+--------+----------+----------------------------+-----------------------------+
| 61     | HW       | 1 for the timer            | tied to a physical          |
|        |          |                            | interrupt: deactivating one |
|        |          |                            | deactivates the other       |
+--------+----------+----------------------------+-----------------------------+
| 60     | Group    | the guest's                | 1: signalled as a vIRQ,     |
|        |          |                            | acknowledged with           |
|        |          |                            | `ICC_IAR1_EL1`              |
+--------+----------+----------------------------+-----------------------------+
| 55..48 | Priority | the guest's                | compared with the guest's   |
|        |          |                            | priority mask               |
+--------+----------+----------------------------+-----------------------------+
| 44..32 | pINTID   | 27                         | (with HW) the physical      |
|        |          |                            | interrupt to deactivate     |
+--------+----------+----------------------------+-----------------------------+
| 41     | EOI      | 1 for a level interrupt    | (without HW, where 44..32   |
|        |          | without HW                 | is no pINTID) a maintenance |
|        |          |                            | interrupt when the guest    |
|        |          |                            | deactivates it              |
+--------+----------+----------------------------+-----------------------------+
| 31..0  | vINTID   |                            | what the guest's            |
|        |          |                            | `ICC_IAR1_EL1` returns      |
+--------+----------+----------------------------+-----------------------------+

Interrupts reach the guest from three kinds of source, and `vgic` (the
guest's distributor and redistributor settings, which `gicd_emulate` and
`gicr_emulate` below fill in) remembers each:

- **The timer**, INTID 27, backed by the physical PPI 27 (`inject_timer`).
  Its list register has `HW` set: the guest's EOI deactivates the physical
  interrupt too, and no exit is needed to end it.
- **Lines that a device model holds high**, level-sensitive: the guest's
  PL011 raises INTID 33 while it has something to say (a character
  received, the transmitter ready) and the guest allows it. `vgic.level`
  has one bit per line. A level interrupt is *pending while its line is
  high*, active or not (IHI0069, "Interrupt handling state machine"), so
  `vgic_flush` keeps each such list register's pending bit equal to the
  line, and sets its `EOI` bit: when the guest deactivates it, a
  maintenance interrupt brings us back to look at the line again. A write
  to `ISPENDR` adds a *latch*: it keeps a level interrupt pending, line or
  no line, until the guest acknowledges it (its list register turns active,
  or comes back through the maintenance interrupt) or clears it with
  `ICPENDR`. For these lines the latch is their bit in `vgic.pending`, so
  the pending bit is the line *or* the latch.
- **Edges**: an SGI the guest sends itself through `ICC_SGI1R_EL1` or its
  siblings (`send_sgi`), or an interrupt it makes pending by writing
  `ISPENDR`. They wait in `vgic.pending` until a list register takes them.

An interrupt is *forwarded* only while the guest has it enabled and has
its group enabled in `GICD_CTLR`, as a real distributor does (IHI0069,
"Enabling and disabling the forwarding of interrupts").

`vgic_flush` runs after any exit that changed one of these: it first
brings the list registers in use up to date (a level line that dropped, an
interrupt the guest disabled: pending no more; an edge sent again while
active: active *and* pending), then puts every forwardable interrupt still
waiting into a free list register (`ICH_ELRSR_EL2` has bit n set when list
register n holds nothing).

**When they run out.** QEMU's GICv3 has four list registers, and there
could be more waiting interrupts than that: then the rest stay in `vgic`,
and `vgic_flush` sets `ICH_HCR_EL2.UIE` (underflow interrupt enable, bit 1),
which raises the maintenance interrupt, PPI 25, as soon as at most one list
register is still in use. That exit finds free ones, and the flush goes
on. (A real hypervisor would put the most urgent interrupts first; hvbook
takes them in INTID order.)
*/
#define LR_STATE_MASK (3UL << 62)
#define LR_STATE_PENDING (1UL << 62)
#define LR_STATE_ACTIVE (2UL << 62)
#define LR_HW (1UL << 61)
#define LR_GROUP1 (1UL << 60)
#define LR_EOI (1UL << 41)
#define LR_PRIORITY_SHIFT 48
#define LR_PINTID_SHIFT 32
#define LR_VINTID(lr) ((lr) & 0xffffffffUL)
#define ICH_HCR_UIE (1UL << 1)

/* The INTIDs hvbook's virtual GIC has: 16 SGIs, 16 PPIs, 32 SPIs. */
#define VGIC_IRQS 64
#define VGIC_LEVEL_IRQS (1UL << UART_SPI) /* level-sensitive, device-driven */

static struct {
    u32 gicd_ctlr;      /* Enable bits the guest wrote */
    u32 waker;          /* ProcessorSleep/ChildrenAsleep */
    u64 group;          /* bit n: INTID n is Group 1 (IGROUPR0, IGROUPR1) */
    u64 enabled;        /* bit n: INTID n is enabled (ISENABLER0, 1) */
    u64 pending;        /* edges waiting for a list register */
    u64 level;          /* lines a device model holds high */
    u32 icfgr[4];       /* trigger modes, two bits per INTID */
    u8 priority[VGIC_IRQS];
    u64 irouter[VGIC_IRQS]; /* for SPIs: where the guest routed them */
    bool timer_waiting; /* physical 27 acknowledged, no list register yet */
    bool dirty;         /* something changed: vgic_flush before entering */
} vgic = {
    .waker = GICR_WAKER_PROCESSOR_SLEEP | GICR_WAKER_CHILDREN_ASLEEP,
    .icfgr = {0xaaaaaaaa}, // SGIs are edge-triggered, always
};

static bool vgic_forwarded(int intid)
{
    u32 group_enable = (vgic.group >> intid) & 1 ? GICD_CTLR_ENABLE_GRP1
                                                 : GICD_CTLR_ENABLE_GRP0;
    return ((vgic.enabled >> intid) & 1) && (vgic.gicd_ctlr & group_enable);
}

static u64 lr_make(int intid, bool hw)
{
    u64 lr = LR_STATE_PENDING | (u64)vgic.priority[intid] << LR_PRIORITY_SHIFT |
             (u64)intid;
    if ((vgic.group >> intid) & 1)
        lr |= LR_GROUP1;
    if (hw)
        lr |= LR_HW | (u64)intid << LR_PINTID_SHIFT;
    else if (VGIC_LEVEL_IRQS & (1UL << intid))
        lr |= LR_EOI;
    return lr;
}

static void vgic_flush(void)
{
    u64 want = vgic.pending | vgic.level;
    if (vgic.timer_waiting && !vgic_forwarded(TIMER_PPI)) {
        // Disabled while it waited: the physical one ends here.
        vgic.timer_waiting = false;
        sysreg_write(ICC_DIR_EL1, TIMER_PPI);
    }
    if (vgic.timer_waiting)
        want |= 1UL << TIMER_PPI;

    // 1. The list registers in use (most often none: the guest has ended
    // the last interrupt, and ICH_ELRSR_EL2 says they are all empty).
    u64 empty = sysreg_read(ICH_ELRSR_EL2);
    u64 used = ~empty & ((1UL << num_lrs) - 1);
    for (; used; used &= used - 1) {
        int n = __builtin_ctzl(used);
        u64 lr = ich_lr(n, false, 0), state = lr & LR_STATE_MASK;
        u64 id = LR_VINTID(lr);
        if (!state || (lr & LR_HW) || id >= VGIC_IRQS)
            continue; // empty, or the timer (see withdraw_timer)
        u64 bit = 1UL << id, next = state;
        bool on = vgic_forwarded((int)id);
        bool level = (VGIC_LEVEL_IRQS & bit) != 0;
        if (level && (state & LR_STATE_ACTIVE))
            vgic.pending &= ~bit; // acknowledged: a pending latch is spent
        if (level)
            next = (state & LR_STATE_ACTIVE) |
                   (((vgic.level | vgic.pending) & bit) && on
                        ? LR_STATE_PENDING : 0);
        else if (on && (want & bit))
            next |= LR_STATE_PENDING; // sent again while the guest handles it
        else if (!on && (state & LR_STATE_PENDING)) {
            next &= ~LR_STATE_PENDING; // not forwarded: back to waiting
            vgic.pending |= bit;
        }
        if (on) {
            want &= ~bit;
            if (!level)
                vgic.pending &= ~bit;
        }
        if (next != state)
            ich_lr(n, true, next ? (lr & ~LR_STATE_MASK) | next : 0);
        if (!next)
            empty |= 1UL << n;
    }

    // 2. Whatever still waits, into free list registers, by INTID.
    bool overflow = false;
    for (; want; want &= want - 1) {
        int id = __builtin_ctzl(want);
        u64 bit = 1UL << id;
        if (!vgic_forwarded(id))
            continue;
        int n = 0;
        while (n < num_lrs && !(empty & (1UL << n)))
            n++;
        if (n == num_lrs) {
            overflow = true;
            break;
        }
        bool hw = id == TIMER_PPI && vgic.timer_waiting;
        ich_lr(n, true, lr_make(id, hw));
        empty &= ~(1UL << n);
        if (!(VGIC_LEVEL_IRQS & bit))
            vgic.pending &= ~bit; // (a level one's latch lasts until acked)
        if (hw)
            vgic.timer_waiting = false;
    }
    static bool uie;
    if (overflow != uie) {
        uie = overflow;
        sysreg_write(ICH_HCR_EL2, ICH_HCR_EN | (uie ? ICH_HCR_UIE : 0));
        isb();
    }
    vgic.dirty = false;
}

/*
### The physical interrupts: `handle_irq`

An IRQ exit. Acknowledge the physical interrupt (`ICC_IAR1_EL1` gives its
INTID and makes it active), drop its running priority (`ICC_EOIR1_EL1`:
with `EOImode` = 1 that is all it does), and then, by INTID:

+-----------+--------------------------------+---------------------------------+
| INTID     | what                           | done                            |
+===========+================================+=================================+
| 27        | the guest's virtual timer      | `inject_timer`: it stays        |
|           |                                | physically active until the     |
|           |                                | guest ends the virtual one      |
+-----------+--------------------------------+---------------------------------+
| 26        | the hypervisor's timer: the    | the run ends with               |
|           | budget is spent                | `report_budget_spent` and a     |
|           |                                | failure status                  |
+-----------+--------------------------------+---------------------------------+
| 25        | the maintenance interrupt      | `handle_maintenance`            |
+-----------+--------------------------------+---------------------------------+
| 33        | the real PL011 received        | `uart_receive`                  |
|           | something                      |                                 |
+-----------+--------------------------------+---------------------------------+
| any other | hvbook enabled no other        | reported; the VM stops          |
+-----------+--------------------------------+---------------------------------+

All but 27 are deactivated here (`ICC_DIR_EL1`) once handled.

**The timer, end to end**, as drawn in section 4: `inject_timer` marks it
waiting, and `vgic_flush` gives it a list register with `HW` = 1, pINTID
27, vINTID 27; the guest's `ICC_EOIR1_EL1` then ends both. While it waits
for a list register (all four busy), the physical PPI 27 stays active, so
it cannot fire again meanwhile.

**The maintenance interrupt** (IHI0069, ICH_MISR_EL2 and ICH_EISR_EL2):
`ICH_EISR_EL2` bit n says that list register n held a level interrupt with
`EOI` set which the guest has just deactivated; its State is 0 now, but the
register is not free until written: clear it, and with it the pending
latch of that interrupt, which the guest's acknowledgement has used up.
`UIE` asked for the rest. Either way `vgic_flush` then looks at the lines
and the waiting interrupts again.
*/
static void inject_timer(void)
{
    exit_counts[EXIT_TIMER_INTERRUPT]++;
    vgic.timer_waiting = true;
    vgic.dirty = true;
}

static void handle_maintenance(void)
{
    exit_counts[EXIT_MAINTENANCE]++;
    u64 eisr = sysreg_read(ICH_EISR_EL2);
    for (int n = 0; n < num_lrs; n++) {
        if (!(eisr & (1UL << n)))
            continue;
        u64 id = LR_VINTID(ich_lr(n, false, 0));
        if (id < VGIC_IRQS)
            vgic.pending &= ~(1UL << id); // acknowledged: its latch is spent
        ich_lr(n, true, 0);
    }
    vgic.dirty = true;
}

static void uart_receive(void); /* the PL011 model, below */

static void handle_irq(void)
{
    u64 intid = sysreg_read(ICC_IAR1_EL1) & 0xffffff;
    if (intid >= INTID_SPURIOUS_FIRST && intid <= 1023) {
        // Gone before we looked (the guest re-armed its timer in time).
        exit_counts[EXIT_SPURIOUS_INTERRUPT]++;
        return;
    }
    sysreg_write(ICC_EOIR1_EL1, intid); // priority drop only: EOImode = 1
    switch (intid) {
    case TIMER_PPI:
        inject_timer();
        return; // deactivated by the guest, through HW = 1
    case HV_TIMER_PPI:
        sysreg_write(CNTHP_CTL_EL2, 0); // the line drops; nothing left to say
        exit_counts[EXIT_HV_TIMER]++;
        report_budget_spent(vcpu.elr);
        vm_state = VM_OUT_OF_TIME;
        break;
    case MAINTENANCE_PPI:
        handle_maintenance();
        break;
    case UART_SPI:
        exit_counts[EXIT_UART_INTERRUPT]++;
        uart_receive();
        break;
    default:
        exit_counts[EXIT_UNEXPECTED]++;
        printf("VM fault: physical interrupt %lu, which hvbook never enabled, "
               "arrived while the guest ran\n", intid);
        vm_dump();
    }
    sysreg_write(ICC_DIR_EL1, intid);
    isb();
}

/*
The other way round: when the guest *disables* its timer interrupt (at the
redistributor, or all of Group 1 at the distributor), an interrupt already
waiting in a list register must go too, or the guest would take an
interrupt it has just disabled, which a real GIC never delivers (IHI0069,
"Enabling and disabling the forwarding of interrupts": a disabled interrupt
is not forwarded to the CPU interface). `withdraw_timer` empties a list
register that holds INTID 27 still *pending*, and deactivates the physical
INTID 27 that it stood for (its priority was already dropped), so that the
timer can fire again once the guest enables it. An *active* one, which the
guest has acknowledged and is handling, stays: disabling an interrupt never
takes it away from a handler that is running. (One still waiting for a list
register is let go by `vgic_flush` in the same way.)
*/
static void withdraw_timer(void)
{
    for (int n = 0; n < num_lrs; n++) {
        u64 lr = ich_lr(n, false, 0);
        if (LR_VINTID(lr) == TIMER_PPI && (lr & LR_HW) &&
            (lr & LR_STATE_MASK) == LR_STATE_PENDING) {
            ich_lr(n, true, 0);
            sysreg_write(ICC_DIR_EL1, TIMER_PPI);
            isb();
        }
    }
    vgic.dirty = true;
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

hvbook implements PSCI 1.1 (Arm DEN0022) for a machine with one CPU: every
function a kernel needs to find out what it runs on and to stop it, each
answering what the specification requires for that machine:

+---------------------+---------------------------+----------------------------+
| function            | id (SMC32 / SMC64)        | what hvbook answers        |
+=====================+===========================+============================+
| `PSCI_VERSION`      | 0x8400_0000               | 1.1, as QEMU's own PSCI    |
+---------------------+---------------------------+----------------------------+
| `CPU_SUSPEND`       | 0x8400_0001 / 0xC400_0001 | a *standby* state at power |
|                     |                           | level 0 (the core waits    |
|                     |                           | for an interrupt, like     |
|                     |                           | `WFI`), then `SUCCESS`;    |
|                     |                           | `INVALID_PARAMETERS` for a |
|                     |                           | power-down state or a      |
|                     |                           | higher level, which hvbook |
|                     |                           | does not offer             |
+---------------------+---------------------------+----------------------------+
| `CPU_OFF`           | 0x8400_0002               | the only CPU goes off, and |
|                     |                           | nothing is left to switch  |
|                     |                           | it on again: the run ends, |
|                     |                           | as a failure (the guest    |
|                     |                           | never said it was done)    |
+---------------------+---------------------------+----------------------------+
| `CPU_ON`            | 0x8400_0003 / 0xC400_0003 | `ALREADY_ON` (-4) for the  |
|                     |                           | guest's own MPIDR,         |
|                     |                           | `INVALID_PARAMETERS` (-2)  |
|                     |                           | for any other: there is no |
|                     |                           | other CPU                  |
+---------------------+---------------------------+----------------------------+
| `AFFINITY_INFO`     | 0x8400_0004 / 0xC400_0004 | `ON` (0) for the guest's   |
|                     |                           | own MPIDR at affinity      |
|                     |                           | level 0;                   |
|                     |                           | `INVALID_PARAMETERS` for   |
|                     |                           | another CPU or level       |
+---------------------+---------------------------+----------------------------+
| `MIGRATE_INFO_TYPE` | 0x8400_0006               | 2: no Trusted OS that      |
|                     |                           | would need migrating       |
+---------------------+---------------------------+----------------------------+
| `SYSTEM_OFF`        | 0x8400_0008               | `Guest: PSCI SYSTEM_OFF`;  |
|                     |                           | the VM stops normally      |
+---------------------+---------------------------+----------------------------+
| `SYSTEM_RESET`      | 0x8400_0009               | the guest asked for a      |
|                     |                           | restart; hvbook does not   |
|                     |                           | restart guests, so the run |
|                     |                           | ends as a failure          |
+---------------------+---------------------------+----------------------------+
| `PSCI_FEATURES`     | 0x8400_000A               | 0 (supported) for each id  |
|                     |                           | in this table,             |
|                     |                           | `NOT_SUPPORTED` for any    |
|                     |                           | other                      |
+---------------------+---------------------------+----------------------------+
| anything else       |                           | `NOT_SUPPORTED` (-1) in    |
|                     |                           | `x0`, and the guest goes   |
|                     |                           | on                         |
+---------------------+---------------------------+----------------------------+

Why is `SYSTEM_RESET` a failure? Because that is how a kernel says something
went wrong: hvbook's guest calls it when its own self-check fails, and
Linux, booted with `panic=-1`, calls it when it panics. `SYSTEM_OFF` carries
no status, so a guest that wants to report a failure has no other way to
say so, and a run that ends in a restart request cannot be a pass.

`CPU_SUSPEND` takes a `power_state` in the *original* format (DEN0022,
"CPU_SUSPEND": bits 15..0 StateID, bit 16 StateType, 0 standby and 1
power-down, bits 25..24 PowerLevel), which is what `PSCI_FEATURES` says of
it: feature flags 0, "original format, no OS-initiated mode". A standby
state of the core keeps all of its state, so hvbook can give it honestly:
unless an interrupt already waits for the guest, it waits itself, with
`WFI` at EL2, until a physical interrupt (they all come to EL2) wakes the
CPU; then the call returns `SUCCESS` and the interrupt is taken as soon as
the guest runs. DEN0022 allows a standby to end early, on any wake-up event.
A power-down state would lose the core's state and resume at an entry point,
which hvbook does not offer; the guest learns that from the answer.

An MPIDR names a CPU by its *affinity* fields (`Aff3` in bits 39..32,
`Aff2..Aff0` in bits 23..0; DEN0022, "AFFINITY_INFO" and the MPIDR format);
the other bits do not take part in the comparison. The SMC32 forms see only
the low 32 bits of their arguments, so their `Aff3` is 0.

SMCCC calls use `HVC #0` / `SMC #0`; a call with another immediate (the low
16 bits of the ISS) is not an SMCCC call, and gets `NOT_SUPPORTED` too.
The function id is `w0`, the low 32 bits of `x0` (DEN0028, "Function
Identifiers").
*/
static bool psci_supported(u32 fn)
{
    switch (fn) {
    case PSCI_VERSION:
    case PSCI_CPU_OFF:
    case PSCI_CPU_ON_32:
    case PSCI_CPU_ON_64:
    case PSCI_CPU_SUSPEND_32: case PSCI_CPU_SUSPEND_64:
    case PSCI_AFFINITY_INFO_32:
    case PSCI_AFFINITY_INFO_64:
    case PSCI_MIGRATE_INFO_TYPE:
    case PSCI_SYSTEM_OFF: case PSCI_SYSTEM_RESET: case PSCI_FEATURES:
        return true;
    }
    return false;
}

static bool psci_is_this_cpu(u32 fn, u64 mpidr)
{
    if (!(fn & PSCI_SMC64))
        mpidr &= 0xffffffffUL;
    return (mpidr & MPIDR_AFFINITY_MASK) ==
           (sysreg_read(VMPIDR_EL2) & MPIDR_AFFINITY_MASK);
}

#define PSCI_STATE_POWERDOWN (1U << 16)
#define PSCI_STATE_LEVEL(s) (((s) >> 24) & 3)

static i64 psci_cpu_suspend(u32 power_state)
{
    if ((power_state & PSCI_STATE_POWERDOWN) ||
        PSCI_STATE_LEVEL(power_state) != 0)
        return PSCI_INVALID_PARAMETERS;
    if (vgic.dirty)
        vgic_flush();
    bool waiting = vgic.timer_waiting; // (then every list register is busy)
    for (int n = 0; n < num_lrs && !waiting; n++)
        waiting = (ich_lr(n, false, 0) & LR_STATE_PENDING) != 0;
    if (!waiting) {
        dsb(sy);
        __asm__ volatile("wfi" ::: "memory");
    }
    return PSCI_SUCCESS;
}

static void handle_hypercall(bool smc)
{
    u32 fn = (u32)vcpu.x[0];
    i64 ret = SMCCC_NOT_SUPPORTED;

    exit_counts[smc ? EXIT_SMC : EXIT_HVC]++;
    if (smc)
        vcpu.elr += 4;
    if ((vcpu.esr & 0xffff) != 0) {
        vcpu.x[0] = (u64)ret;
        return;
    }
    switch (fn) {
    case PSCI_VERSION:
        ret = PSCI_VERSION_1_1;
        break;
    case PSCI_FEATURES:
        ret =
            psci_supported((u32)vcpu.x[1]) ? PSCI_SUCCESS : SMCCC_NOT_SUPPORTED;
        break;
    case PSCI_CPU_SUSPEND_32:
    case PSCI_CPU_SUSPEND_64:
        ret = psci_cpu_suspend((u32)vcpu.x[1]);
        break;
    case PSCI_CPU_ON_32:
    case PSCI_CPU_ON_64:
        ret = psci_is_this_cpu(fn, vcpu.x[1]) ? PSCI_ALREADY_ON
                                              : PSCI_INVALID_PARAMETERS;
        break;
    case PSCI_AFFINITY_INFO_32:
    case PSCI_AFFINITY_INFO_64:
        ret = psci_is_this_cpu(fn, vcpu.x[1]) && (u32)vcpu.x[2] == 0
                  ? PSCI_AFFINITY_ON
                  : PSCI_INVALID_PARAMETERS;
        break;
    case PSCI_MIGRATE_INFO_TYPE:
        ret = PSCI_TOS_NOT_PRESENT;
        break;
    case PSCI_CPU_OFF:
        printf("Guest: PSCI CPU_OFF on its only CPU: nothing can switch "
               "it on again; the run ends as a failure\n");
        vm_state = VM_GUEST_FAILED;
        return;
    case PSCI_SYSTEM_OFF:
        printf("Guest: PSCI SYSTEM_OFF\n");
        vm_state = VM_SHUTDOWN;
        return;
    case PSCI_SYSTEM_RESET:
        printf("Guest: PSCI SYSTEM_RESET: the guest asked for a restart; "
               "hvbook does not restart guests: the run ends as a failure\n");
        vm_state = VM_GUEST_FAILED;
        return;
    }
    vcpu.x[0] = (u64)ret;
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
width and sign, and moves `ELR` past the instruction. Register 31 here
means `XZR`: a store writes 0, a load goes nowhere.

*Past the instruction* means 4 bytes for an A64 instruction but 2 for a
16-bit T32 one, which a 32-bit program at the guest's EL0 may use: `ESR_EL2.IL`
says which (section 1). Skipping 4 after a 16-bit instruction would skip the
one after it as well.

A device register has a width, and a device is free to refuse accesses of
other widths; a model that just took the low bits of any access would turn
a byte store to the second byte of a register into a store of the whole
register (the byte moved to bits 7..0, the rest zeroed), and a 64-bit store
over two 32-bit registers into a store to one. So the access must be
*naturally aligned* (its address a multiple of its size), and each model
says which widths each of its registers accepts; anything else is refused
with a VM fault that names the IPA and the width, the answer of the rule of
the house to an access hvbook does not model.
*/
struct mmio_access {
    u64 offset;    /* from the start of the device window */
    int size;      /* 1, 2, 4 or 8 bytes */
    bool write;
    u64 value;     /* the value written, or to return for a read */
};

/* A model returns false for an access its register does not accept. */
typedef bool (*device_model)(struct mmio_access *a);

static bool mmio_emulate(u64 ipa, u64 base, device_model model)
{
    u64 iss = ESR_ISS(vcpu.esr);
    if (!(iss & ISS_ISV)) {
        printf("VM fault: the guest accessed device IPA 0x%lx with an "
               "instruction that cannot be emulated (ISV = 0: a load/store "
               "pair or writeback)\n", ipa);
        return false;
    }
    struct mmio_access a = {
        .offset = ipa - base,
        .size = 1 << ISS_SAS(iss),
        .write = (iss & ISS_WNR) != 0,
    };
    int reg = (int)ISS_SRT(iss);
    u64 mask = a.size == 8 ? ~0UL : (1UL << (8 * a.size)) - 1;

    if (a.write)
        a.value = (reg == 31 ? 0 : vcpu.x[reg]) & mask;
    if ((a.offset & (u64)(a.size - 1)) != 0 || !model(&a)) {
        printf("VM fault: the guest %s IPA 0x%lx with a %d-byte access, "
               "which that register does not accept\n",
               a.write ? "wrote" : "read", ipa, a.size);
        return false;
    }
    if (!a.write) {
        u64 v = a.value & mask;
        if ((iss & ISS_SSE) && a.size < 8 && (v >> (8 * a.size - 1)) & 1)
            v |= ~mask; // sign-extend
        if (!(iss & ISS_SF))
            v &= 0xffffffffUL; // a W register: the upper half is zero
        if (reg != 31)
            vcpu.x[reg] = v;
    }
    vcpu.elr += (vcpu.esr & ESR_IL) ? 4 : 2;
    return true;
}

/*
### The guest's PL011

The guest drives "its" PL011 like any PL011. hvbook models the registers a
driver uses, as a UART whose transmitter is always ready (every byte goes
straight to hvbook's console) and whose receiver holds what is typed on the
host's terminal (`uart_receive`, below), in a FIFO of 32 characters:

+----------------+-------------------+--------------------+--------------------+
| offset         | register          | read               | write              |
+================+===================+====================+====================+
| 0x000          | `UARTDR`          | the oldest         | the byte goes to   |
|                |                   | character received | hvbook's console   |
|                |                   | (0 if none)        |                    |
+----------------+-------------------+--------------------+--------------------+
| 0x018          | `UARTFR`          | `TXFE` (bit 7):    | ignored            |
|                |                   | transmit FIFO      |                    |
|                |                   | empty, always;     |                    |
|                |                   | `RXFE` (bit 4)     |                    |
|                |                   | when nothing was   |                    |
|                |                   | received, `RXFF`   |                    |
|                |                   | (bit 6) when the   |                    |
|                |                   | FIFO is full;      |                    |
|                |                   | `TXFF`, `BUSY`     |                    |
|                |                   | clear              |                    |
+----------------+-------------------+--------------------+--------------------+
| 0x024, 0x028   | `UARTIBRD`,       | what was last      | kept               |
|                | `UARTFBRD`        | written            |                    |
+----------------+-------------------+--------------------+--------------------+
| 0x02C, 0x030   | `UARTLCR_H`,      | what was last      | kept               |
|                | `UARTCR`          | written (`CR`      |                    |
|                |                   | resets to 0x300:   |                    |
|                |                   | TX and RX enabled) |                    |
+----------------+-------------------+--------------------+--------------------+
| 0x034, 0x038   | `UARTIFLS`,       | what was last      | kept               |
|                | `UARTIMSC`        | written (`IFLS`    |                    |
|                |                   | resets to 0x12)    |                    |
+----------------+-------------------+--------------------+--------------------+
| 0x03C          | `UARTRIS`         | raw interrupts:    |                    |
|                |                   | `RX` (bit 4) while |                    |
|                |                   | a character waits, |                    |
|                |                   | `TX` (bit 5)       |                    |
|                |                   | always             |                    |
+----------------+-------------------+--------------------+--------------------+
| 0x040          | `UARTMIS`         | `UARTRIS` &        |                    |
|                |                   | `UARTIMSC`         |                    |
+----------------+-------------------+--------------------+--------------------+
| 0x044          | `UARTICR`         |                    | nothing to clear:  |
|                |                   |                    | both conditions    |
|                |                   |                    | last as long as    |
|                |                   |                    | their cause        |
+----------------+-------------------+--------------------+--------------------+
| 0x048          | `UARTDMACR`       | what was last      | kept               |
|                |                   | written            |                    |
+----------------+-------------------+--------------------+--------------------+
| 0xFE0 .. 0xFFC | peripheral and    | the PL011's (0x11, | ignored            |
|                | PrimeCell IDs     | 0x10, 0x14, 0x00;  |                    |
|                |                   | 0x0D, 0xF0, 0x05,  |                    |
|                |                   | 0xB1)              |                    |
+----------------+-------------------+--------------------+--------------------+
| any other      |                   | 0                  | ignored            |
+----------------+-------------------+--------------------+--------------------+

Keeping a *shadow* of the configuration registers matters for a driver that
reads back what it wrote (say, read-modify-write of `UARTCR`); none of it
reaches the real UART, whose settings are the hypervisor's.

**Its interrupt.** The PL011 has one combined interrupt line, the OR of
its masked interrupts (DDI0183, "Interrupts": `UARTINTR`), which QEMU's
`virt` wires to SPI 1, INTID 33, and the guest's device tree says so.
`vuart_update` recomputes the line after every change (a character in, a
character read, `UARTIMSC` written) and hands it to the virtual GIC as a
level (`vgic.level`). The two conditions are modelled by their cause, not
by the edges of a real FIFO: the *receive* interrupt is raised while a
character waits, whatever trigger level `UARTIFLS` asks for (so the
receive *timeout* interrupt is never needed), and the *transmit* interrupt
while the transmit FIFO is empty, which is always. A driver enables the
transmit interrupt only while it has bytes waiting to go out; Linux's
never does, since `TXFF` never stops it.

**Widths.** The PL011's registers are at most 16 bits wide, one per 32-bit
word, and drivers reach them with 8-, 16- or 32-bit accesses at the
register's own address (Linux uses 16-bit ones, its early console 8-bit
ones). The model accepts exactly those. A narrower write changes only the
low bits it covers, as a bus with byte lanes would, and a read returns the
register's low bits. An access that starts inside a register (a `strb` to
`UARTCR` + 1) or spans two (a 64-bit one) is refused.
*/
#define PL011_IBRD 0x024
#define PL011_FBRD 0x028
#define PL011_LCR_H 0x02c
#define PL011_IFLS 0x034
#define PL011_RIS 0x03c
#define PL011_MIS 0x040
#define PL011_DMACR 0x048
#define PL011_FR_TXFE (1U << 7)
#define PL011_FR_RXFF (1U << 6)
#define PL011_FR_RXFE (1U << 4)
#define VUART_FIFO 32

static u32 vuart_regs[0x50 / 4] = {
    [PL011_CR / 4] = 0x300,
    [PL011_IFLS / 4] = 0x12,
};

static struct {
    u8 fifo[VUART_FIFO]; /* received, oldest at `head` */
    u32 head, count;
    // the FIFO filled up: the real UART is not listened to
    bool held;
} vuart;

static u32 vuart_ris(void)
{
    return PL011_INT_TX | (vuart.count ? PL011_INT_RX : 0);
}

static void vuart_update(void)
{
    u64 bit = 1UL << UART_SPI;
    bool high = (vuart_ris() & vuart_regs[PL011_IMSC / 4]) != 0;
    if (high != ((vgic.level & bit) != 0)) {
        vgic.level = high ? vgic.level | bit : vgic.level & ~bit;
        vgic.dirty = true;
    }
}

/*
`uart_receive` is the other half, at the real UART: its receive interrupt
(SPI 33, set up in section 4) came to EL2. Move every character it holds
into the guest's FIFO. If that fills up, stop listening (the real UART's
`UARTIMSC` to 0, so that its line drops) until the guest has read some: a
character typed meanwhile waits in QEMU, which only hands the UART another
when it has room, and none is lost.
*/
static void uart_receive(void)
{
    while (vuart.count < VUART_FIFO &&
           !(mmio_read32(PL011_BASE + PL011_FR) & PL011_FR_RXFE)) {
        u8 c = (u8)mmio_read32(PL011_BASE + PL011_DR);
        vuart.fifo[(vuart.head + vuart.count) % VUART_FIFO] = c;
        vuart.count++;
    }
    vuart.held = vuart.count == VUART_FIFO;
    mmio_write32(PL011_BASE + PL011_IMSC,
                 vuart.held ? 0 : PL011_INT_RX | PL011_INT_RT);
    vuart_update();
}

static bool pl011_emulate(struct mmio_access *a)
{
    static const u8 ids[8] = {0x11, 0x10, 0x14, 0x00, 0x0d, 0xf0, 0x05, 0xb1};
    u64 off = a->offset;
    if ((off & 3) != 0 || a->size > 4)
        return false;

    if (a->write) {
        u32 mask = a->size == 4 ? 0xffffffffU : (1U << (8 * a->size)) - 1;
        switch (off) {
        case PL011_DR:
            console_putchar((u8)a->value);
            break;
        case PL011_IBRD: case PL011_FBRD: case PL011_LCR_H: case PL011_CR:
        case PL011_IFLS: case PL011_IMSC: case PL011_DMACR:
            vuart_regs[off / 4] = (vuart_regs[off / 4] & ~mask) | (u32)a->value;
            vuart_update();
            break;
        }
        return true;
    }
    switch (off) {
    case PL011_DR:
        a->value = 0;
        if (vuart.count) {
            a->value = vuart.fifo[vuart.head];
            vuart.head = (vuart.head + 1) % VUART_FIFO;
            vuart.count--;
            if (vuart.held)
                uart_receive(); // room again: listen to the real UART
            vuart_update();
        }
        break;
    case PL011_FR:
        a->value = PL011_FR_TXFE | (vuart.count ? 0 : PL011_FR_RXFE) |
                   (vuart.count == VUART_FIFO ? PL011_FR_RXFF : 0);
        break;
    case PL011_RIS:
        a->value = vuart_ris();
        break;
    case PL011_MIS:
        a->value = vuart_ris() & vuart_regs[PL011_IMSC / 4];
        break;
    case PL011_IBRD: case PL011_FBRD: case PL011_LCR_H: case PL011_CR:
    case PL011_IFLS: case PL011_IMSC: case PL011_DMACR:
        a->value = vuart_regs[off / 4];
        break;
    default:
        a->value = off >= 0xfe0 ? ids[(off - 0xfe0) / 4] : 0;
    }
    return true; // mmio_emulate keeps the low bits a narrower read asked for
}

/*
### The guest's GIC distributor and redistributor

The guest sets up its interrupt controller as on bare metal. hvbook
emulates a GICv3 with one CPU, 64 interrupts (16 SGIs, 16 PPIs, and 32
SPIs, 32..63) and no LPIs, and keeps the guest's settings in `vgic`
(declared with `vgic_flush` above). The registers come in banks with one
bit per INTID, 32 to a word (word 0: INTIDs 0..31, word 1: 32..63): for the
SGIs and PPIs they are in the redistributor's SGI frame, for the SPIs in
the distributor, whose word 0 is reserved once affinity routing is on
(IHI0069, 12.9 "The GIC Distributor register descriptions").

+-------------------------+-------------------------+--------------------------+
| register                | read                    | write                    |
+=========================+=========================+==========================+
| `GICD_CTLR`             | the enables written,    | bits 0, 1 kept           |
|                         | with `ARE` (bit 4) and  |                          |
|                         | `DS` (bit 6) always 1:  |                          |
|                         | affinity routing, a     |                          |
|                         | single security state;  |                          |
|                         | `RWP` 0                 |                          |
+-------------------------+-------------------------+--------------------------+
| `GICD_TYPER`            | the real GIC's, with    | ignored                  |
|                         | `ITLinesNumber` = 1 (64 |                          |
|                         | INTIDs) and no LPIs, no |                          |
|                         | message-based or        |                          |
|                         | extended SPIs           |                          |
+-------------------------+-------------------------+--------------------------+
| `GICD_TYPER2`           | 0: no virtual SGIs, no  | ignored                  |
|                         | extended PPIs           |                          |
+-------------------------+-------------------------+--------------------------+
| `GICD_IIDR`,            | the real GIC's          | ignored                  |
| `GICD_PIDR2`            |                         |                          |
+-------------------------+-------------------------+--------------------------+
| `IGROUPR`               | the groups              | kept: the group of an    |
|                         |                         | injected interrupt       |
+-------------------------+-------------------------+--------------------------+
| `ISENABLER`,            | the enabled set         | set / clear bits         |
| `ICENABLER`             |                         |                          |
+-------------------------+-------------------------+--------------------------+
| `ISPENDR`, `ICPENDR`    | pending: waiting, a     | set makes an edge wait,  |
|                         | line high, or in a list | or latches a level one;  |
|                         | register as pending     | clear withdraws          |
+-------------------------+-------------------------+--------------------------+
| `ISACTIVER`,            | active: in a list       | `ICACTIVER` ends it;     |
| `ICACTIVER`             | register as active      | `ISACTIVER` is ignored   |
+-------------------------+-------------------------+--------------------------+
| `IPRIORITYR`            | as written (byte or     | kept: the priority of an |
|                         | word)                   | injected interrupt       |
+-------------------------+-------------------------+--------------------------+
| `GICR_ICFGR0`           | 0xAAAA_AAAA: SGIs are   | ignored                  |
|                         | edge-triggered          |                          |
+-------------------------+-------------------------+--------------------------+
| `GICR_ICFGR1`,          | as written              | kept                     |
| `GICD_ICFGR2`, `3`      |                         |                          |
+-------------------------+-------------------------+--------------------------+
| `GICD_IROUTER<n>`       | as written (affinity    | kept: there is only one  |
|                         | and mode bits)          | CPU to route to          |
+-------------------------+-------------------------+--------------------------+
| `GICR_WAKER`            | `ChildrenAsleep` (bit   | `ProcessorSleep` kept    |
|                         | 2) = `ProcessorSleep`   |                          |
|                         | (bit 1): waking is      |                          |
|                         | instant                 |                          |
+-------------------------+-------------------------+--------------------------+
| `GICR_TYPER`,           | the real                | ignored                  |
| `GICR_IIDR`,            | redistributor's,        |                          |
| `GICR_PIDR2`            | `TYPER` with `Last` set |                          |
|                         | and no LPIs             |                          |
+-------------------------+-------------------------+--------------------------+
| `GICR_CTLR`             | 0: no LPIs, no register | ignored                  |
|                         | write pending           |                          |
+-------------------------+-------------------------+--------------------------+
| any other               | 0                       | ignored                  |
+-------------------------+-------------------------+--------------------------+

Everything else reads as zero and ignores writes, as the GIC specification
asks of reserved registers. None of it touches the physical GIC, with one
deliberate exception: the guest's enable of INTID 27 (and of Group 1 in its
`GICD_CTLR`) is mirrored onto the physical PPI 27. A guest that has not
enabled its timer interrupt then gets no timer exits, exactly as it would
get no interrupt on bare metal. Each mirrored write is followed by the wait
for `GICR_CTLR.RWP` (section 4), and a disable also withdraws a timer
interrupt already waiting in a list register (`withdraw_timer`, above).
Every other change just marks `vgic` dirty, for `vgic_flush`.

**Widths.** The GIC specification (IHI0069, 12.1 "Register access") lets
software access most registers only as 32-bit words; `IPRIORITYR` also by
byte, and the 64-bit registers (`GICR_TYPER`, `GICD_IROUTER<n>`) as 64 bits
or as either 32-bit half. The models accept exactly that and refuse the
rest: a 64-bit store to `GICD_CTLR` would reach into `GICD_TYPER`, and must
not pass for a 32-bit one.
*/
#define GICD_TYPER_HIDE 0x7f91fU  /* DVIS (18), LPIS (17), MBIS (16), num_LPIs
                                     (15..11), ESPI (8), ITLinesNumber (4..0) */
#define GICD_TYPER_64_INTIDS 1U   /* ITLinesNumber: 32 * (N + 1) INTIDs */
/* Aff3, Interrupt_Routing_Mode, Aff2..0 */
#define GICD_IROUTER_MASK 0xff80ffffffUL
#define GICR_TYPER_LAST (1UL << 4)
#define GICR_TYPER_HIDE 0xbUL     /* PLPIS (0), VLPIS (1), DirectLPI (3) */

static void gic_sync_timer_enable(void)
{
    bool on = vgic_forwarded(TIMER_PPI);
    mmio_write32(GICR_BASE + (on ? GICR_ISENABLER0 : GICR_ICENABLER0),
                 1U << TIMER_PPI);
    gicr_wait_rwp();
    if (!on)
        withdraw_timer();
}

/* The INTIDs whose list register has any of the `state` bits. */
static u64 lr_intids(u64 state)
{
    u64 set = 0;
    for (int n = 0; n < num_lrs; n++) {
        u64 lr = ich_lr(n, false, 0);
        if ((lr & state) && LR_VINTID(lr) < VGIC_IRQS)
            set |= 1UL << LR_VINTID(lr);
    }
    return set;
}

/* Take the `state` bits away from the list registers of the INTIDs in
   `set`; a timer list register that loses its state ends the physical
   PPI 27 too, as the guest's own deactivation would have. */
static void lr_clear(u64 set, u64 state)
{
    for (int n = 0; n < num_lrs; n++) {
        u64 lr = ich_lr(n, false, 0);
        if (!(lr & state) || LR_VINTID(lr) >= VGIC_IRQS ||
            !(set & (1UL << LR_VINTID(lr))))
            continue;
        lr &= ~state;
        if (!(lr & LR_STATE_MASK)) {
            if (lr & LR_HW)
                sysreg_write(ICC_DIR_EL1, LR_VINTID(lr));
            lr = 0;
        }
        ich_lr(n, true, lr);
    }
}

/* The bit banks: `bank` is the register's offset from IGROUPR (0x080) in
   units of 0x80, so 0 IGROUPR, 1 ISENABLER, 2 ICENABLER, 3 ISPENDR,
   4 ICPENDR, 5 ISACTIVER, 6 ICACTIVER; `word` 0 or 1. */
enum { BANK_GROUP, BANK_SET_ENABLE, BANK_CLEAR_ENABLE, BANK_SET_PENDING,
       BANK_CLEAR_PENDING, BANK_SET_ACTIVE, BANK_CLEAR_ACTIVE };

static void vgic_bank(int bank, int word, struct mmio_access *a)
{
    int shift = 32 * word;
    u64 v = (u64)(u32)a->value << shift;
    if (!a->write) {
        u64 r = 0;
        switch (bank) {
        case BANK_GROUP: r = vgic.group; break;
        case BANK_SET_ENABLE: case BANK_CLEAR_ENABLE: r = vgic.enabled; break;
        case BANK_SET_PENDING: case BANK_CLEAR_PENDING:
            r = vgic.pending | vgic.level | lr_intids(LR_STATE_PENDING) |
                (vgic.timer_waiting ? 1UL << TIMER_PPI : 0);
            break;
        default: r = lr_intids(LR_STATE_ACTIVE);
        }
        a->value = (u32)(r >> shift);
        return;
    }
    switch (bank) {
    case BANK_GROUP:
        vgic.group = (vgic.group & ~(0xffffffffUL << shift)) | v;
        break;
    case BANK_SET_ENABLE: vgic.enabled |= v; break;
    case BANK_CLEAR_ENABLE: vgic.enabled &= ~v; break;
    case BANK_SET_PENDING: vgic.pending |= v; break;
    case BANK_CLEAR_PENDING:
        vgic.pending &= ~v;
        lr_clear(v & ~VGIC_LEVEL_IRQS, LR_STATE_PENDING);
        break;
    case BANK_CLEAR_ACTIVE: lr_clear(v, LR_STATE_ACTIVE); break;
    }
    if (word == 0 && bank <= BANK_CLEAR_ENABLE)
        gic_sync_timer_enable(); // INTID 27's group or enable may have moved
    vgic.dirty = true;
}

/* IPRIORITYR: one byte per INTID, by byte or by word. */
static void vgic_priority(u64 first, struct mmio_access *a)
{
    if (!a->write)
        a->value = 0;
    for (int i = 0; i < a->size; i++) {
        if (a->write)
            vgic.priority[first + i] = (u8)(a->value >> (8 * i));
        else
            a->value |= (u64)vgic.priority[first + i] << (8 * i);
    }
}

static bool gicd_emulate(struct mmio_access *a)
{
    u64 off = a->offset;
    if (off >= GICD_IROUTER + 8 * 32 && off < GICD_IROUTER + 8 * VGIC_IRQS) {
        if (a->size == 1 || a->size == 2)
            return false;
        u64 *r = &vgic.irouter[(off - GICD_IROUTER) / 8];
        int shift = a->size == 4 && (off & 4) ? 32 : 0; // the high half
        u64 mask = (a->size == 8 ? ~0UL : 0xffffffffUL) << shift;
        if (a->write)
            *r =
                (*r & ~mask) | ((a->value << shift) & mask & GICD_IROUTER_MASK);
        else
            a->value = (*r & mask) >> shift;
        return true;
    }
    if (off >= GICD_IPRIORITYR + 32 && off < GICD_IPRIORITYR + VGIC_IRQS) {
        if (a->size != 1 && a->size != 4)
            return false;
        vgic_priority(off - GICD_IPRIORITYR, a);
        return true;
    }
    if (a->size != 4)
        return false;
    if (off >= GICD_IGROUPR && off < GICD_ICACTIVER + 0x80) {
        if ((off & 0x7f) == 4) // word 1, the SPIs; the rest is reserved
            vgic_bank((int)(off - GICD_IGROUPR) / 0x80, 1, a);
        else if (!a->write)
            a->value = 0;
        return true;
    }
    if (off == GICD_ICFGR + 8 || off == GICD_ICFGR + 12) {
        if (a->write)
            vgic.icfgr[(off - GICD_ICFGR) / 4] = (u32)a->value;
        else
            a->value = vgic.icfgr[(off - GICD_ICFGR) / 4];
        return true;
    }
    if (a->write) {
        if (off == GICD_CTLR) {
            vgic.gicd_ctlr =
                (u32)a->value & (GICD_CTLR_ENABLE_GRP0 | GICD_CTLR_ENABLE_GRP1);
            gic_sync_timer_enable();
            vgic.dirty = true;
        }
        return true;
    }
    switch (off) {
    case GICD_CTLR:
        a->value = vgic.gicd_ctlr | GICD_CTLR_ARE | GICD_CTLR_DS;
        break;
    case GICD_TYPER:
        a->value = (mmio_read32(GICD_BASE + GICD_TYPER) & ~GICD_TYPER_HIDE) |
                   GICD_TYPER_64_INTIDS;
        break;
    case GICD_IIDR:
    case GICD_PIDR2:
        a->value = mmio_read32(GICD_BASE + off);
        break;
    default:
        a->value = 0; // GICD_TYPER2 and every reserved register
    }
    return true;
}

static bool gicr_emulate(struct mmio_access *a)
{
    u64 off = a->offset;
    u32 v = (u32)a->value;

    if (off >= GICR_IPRIORITYR && off < GICR_IPRIORITYR + 32) {
        if (a->size != 1 && a->size != 4)
            return false;
        vgic_priority(off - GICR_IPRIORITYR, a);
        return true;
    }
    if (off == GICR_TYPER && a->size == 8 && !a->write) {
        u64 typer = *(volatile u64 *)(GICR_BASE + GICR_TYPER);
        a->value = (typer & ~GICR_TYPER_HIDE) | GICR_TYPER_LAST;
        return true;
    }
    if (a->size != 4)
        return false;
    if (off >= GICR_IGROUPR0 && off <= GICR_ICACTIVER0 && (off & 0x7f) == 0) {
        vgic_bank((int)(off - GICR_IGROUPR0) / 0x80, 0, a);
        return true;
    }
    if (a->write) {
        switch (off) {
        case GICR_WAKER:
            vgic.waker =
                v & GICR_WAKER_PROCESSOR_SLEEP
                    ? GICR_WAKER_PROCESSOR_SLEEP | GICR_WAKER_CHILDREN_ASLEEP
                    : 0;
            break;
        case GICR_ICFGR1:
            vgic.icfgr[1] = v;
            break;
        }
        return true;
    }
    switch (off) {
    case GICR_WAKER: a->value = vgic.waker; break;
    case GICR_ICFGR0: a->value = vgic.icfgr[0]; break;
    case GICR_ICFGR1: a->value = vgic.icfgr[1]; break;
    case GICR_IIDR:
    case GICR_PIDR2: a->value = mmio_read32(GICR_BASE + off); break;
    case GICR_TYPER:
    case GICR_TYPER + 4: {
        u64 typer = *(volatile u64 *)(GICR_BASE + GICR_TYPER);
        typer = (typer & ~GICR_TYPER_HIDE) | GICR_TYPER_LAST;
        a->value = off == GICR_TYPER ? typer : typer >> 32; // either half
        break;
    }
    default: a->value = 0;
    }
    return true;
}

/*
### Stage-2 faults: pass through, emulate, or refuse

A stage-2 fault means the guest touched an IPA that stage 2 does not map.
`HPFAR_EL2` gives the page, `FAR_EL2` the offset inside it.

hvbook's rule of the house is *resource control* (see the preface): guest
RAM is mapped up front; the pflash window is passed through; the UART and
the GIC are emulated; *nothing* else is reachable.

- **pflash**: a first *read* maps that 4 KiB page of the real device
  straight through (IPA = PA, the device's own address) as read-only Device
  memory, and resumes the guest at the same instruction, which now succeeds.
  Every later read of that page runs at full speed with no exit. A *write*,
  whether it finds the page unmapped (a translation fault) or mapped
  read-only (a permission fault), is a VM fault naming the IPA: a guest has
  no business reprogramming the machine's flash, and a CFI command would
  have changed what every later reader of the flash sees.
- **PL011, GICD, GICR**: never mapped, so every access exits and is
  emulated by the models above.
- **cache maintenance** (`ISS.CM`): a `DC CIVAC` or `DC IVAC` that names a
  device window is not a load or store, and its syndrome says so: `ISV` =
  0 and `WnR` = 1, whatever the instruction. Replayed as an access it would
  be refused, or worse, taken for a write to the flash. On bare metal it
  completes without a fault, so hvbook does what KVM does: it completes
  the instruction as a no-op, since no cache holds the emulated devices'
  registers and the guest never wrote to the flash.
  (QEMU treats `DC` by address as a no-op that never faults, so this path
  shows only on real hardware; no test can reach it.)
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
    bool plain = FSC_TYPE(ISS_FSC(iss)) == FSC_TRANSLATION &&
                 !(iss & ISS_S1PTW) && !fetch;
    bool flash = in_window(ipa, PFLASH_IPA, PFLASH_SIZE);
    bool uart = in_window(ipa, PL011_BASE, PL011_SIZE);
    bool gicd = in_window(ipa, GICD_BASE, GICD_SIZE);
    bool gicr = in_window(ipa, GICR_BASE, GICR_SIZE);
    bool device = flash || uart || gicd || gicr;

    if ((iss & ISS_CM) && !(iss & ISS_S1PTW) && !fetch && device) {
        exit_counts[EXIT_CACHE_OP]++;
        vcpu.elr += (vcpu.esr & ESR_IL) ? 4 : 2;
        return; // nothing cached to clean or invalidate
    }
    plain = plain && !(iss & ISS_CM);

    if (plain && !(iss & ISS_WNR) && flash) {
        u64 page = ALIGN_DOWN(ipa, PAGE_SIZE);
        s2_map(page, page, PAGE_SIZE, S2_FLASH);
        exit_counts[EXIT_PFLASH_FAULT]++;
        return; // retry the same instruction
    }
    if (plain && uart) {
        exit_counts[EXIT_PL011]++;
        if (!mmio_emulate(ipa, PL011_BASE, pl011_emulate))
            vm_dump();
        return;
    }
    if (plain && (gicd || gicr)) {
        exit_counts[EXIT_GIC]++;
        if (!mmio_emulate(ipa, gicd ? GICD_BASE : GICR_BASE,
                          gicd ? gicd_emulate : gicr_emulate))
            vm_dump();
        return;
    }
    exit_counts[EXIT_REFUSED_FAULT]++;
    bool write = !fetch && !(iss & ISS_S1PTW) && (iss & ISS_WNR);
    printf("VM fault: the guest %s IPA 0x%lx, %s\n",
           fetch             ? "fetched from"
           : iss & ISS_S1PTW ? "walked its page table at"
           : write           ? "wrote"
                             : "read",
           ipa,
           flash && write ? "its flash, which it may only read"
           : device       ? "a device it may only load from and store to"
                          : "outside its RAM and its devices");
    vm_dump();
}

/*
### An exception for the guest: `inject_undef`

Some traps are not the guest's mistake but the machine's answer: on a CPU
without a given system register, the instruction that names it is
*undefined*, and the guest kernel takes an exception at its own vector
table. When hvbook hides a register, it owes the guest the same exception,
so that the guest cannot tell (the rule of the house, and Popek and
Goldberg's equivalence). `inject_undef` does by hand what the CPU does on
taking a synchronous exception to EL1 (Arm ARM, D1 "Exception entry"):

- `ESR_EL1` = EC 0x00, "unknown reason", the class of an undefined
  instruction, with `IL` as the trapped instruction had it;
- `ELR_EL1` = the address of the instruction, `SPSR_EL1` = the guest's
  `PSTATE` at that moment (our saved `SPSR_EL2`);
- the new `PSTATE`: EL1h with D, A, I and F masked (0x3C5), and `PAN` set if
  the CPU has it (`ID_AA64MMFR1_EL1.PAN`, bits 23..20) and the guest asked
  for it (`SCTLR_EL1.SPAN`, bit 23, = 0), `SSBS` (bit 12) from
  `SCTLR_EL1.DSSBS` (bit 44) if the CPU has it (`ID_AA64PFR1_EL1.SSBS`,
  bits 7..4);
- the new PC: `VBAR_EL1` plus the offset of the synchronous vector for where
  the guest was: 0x000 from EL1 on `SP_EL0`, 0x200 from EL1 on `SP_EL1`,
  0x400 from EL0 in AArch64, 0x600 from EL0 in AArch32.
*/
#define SPSR_M_AARCH32 (1UL << 4)
#define SPSR_M_MASK 0xfUL
#define SPSR_M_EL0T 0x0UL
#define SPSR_M_EL1T 0x4UL
#define SPSR_PAN (1UL << 22)
#define SPSR_SSBS (1UL << 12)
#define SCTLR_SPAN (1UL << 23)
#define SCTLR_DSSBS (1UL << 44)

static void inject_undef(void)
{
    u64 from = vcpu.spsr, offset;
    if (from & SPSR_M_AARCH32)
        offset = 0x600;
    else if ((from & SPSR_M_MASK) == SPSR_M_EL0T)
        offset = 0x400;
    else if ((from & SPSR_M_MASK) == SPSR_M_EL1T)
        offset = 0x000;
    else
        offset = 0x200;

    u64 sctlr = sysreg_read(SCTLR_EL1), pstate = SPSR_EL1H_DAIF;
    if (((sysreg_read(ID_AA64MMFR1_EL1) >> 20) & 0xf) && !(sctlr & SCTLR_SPAN))
        pstate |= SPSR_PAN;
    if (((sysreg_read(ID_AA64PFR1_EL1) >> 4) & 0xf) && (sctlr & SCTLR_DSSBS))
        pstate |= SPSR_SSBS;

    sysreg_write(ESR_EL1, ((u64)EC_UNKNOWN << 26) | (vcpu.esr & ESR_IL));
    sysreg_write(ELR_EL1, vcpu.elr);
    sysreg_write(SPSR_EL1, from);
    vcpu.elr = sysreg_read(VBAR_EL1) + offset;
    vcpu.spsr = pstate;
}

/*
### The performance monitors, on the guest's behalf: `pmu_emulate`

With `MDCR_EL2.TPM` every PMU register access comes here (section 5 says
why). hvbook performs it itself, at EL2, on the real registers, so the
guest has a working PMU; the one thing it changes is the `NSH` bit (27) of
the filters. Whatever the guest writes to `PMCCFILTR_EL0`, `PMEVTYPER<n>_EL0`
or `PMXEVTYPER_EL0` reaches the hardware with `NSH` clear, "do not count at
EL2"; `pmu_nsh` remembers what the guest wrote, so that a read gives it
back and the guest cannot tell.

The registers, by their encodings (Arm ARM, the Performance Monitors
chapter and the system register index):

+----------------------+-------------------------------------------------------+
| Op1, CRn, CRm, Op2   | register                                              |
+======================+=======================================================+
| 3, 9, 12, 0..7       | `PMCR`, `PMCNTENSET`, `PMCNTENCLR`, `PMOVSCLR`,       |
|                      | `PMSWINC` (write-only), `PMSELR`, `PMCEID0`,          |
|                      | `PMCEID1` (read-only)                                 |
+----------------------+-------------------------------------------------------+
| 3, 9, 13, 0..2       | `PMCCNTR`, `PMXEVTYPER`, `PMXEVCNTR`                  |
+----------------------+-------------------------------------------------------+
| 3, 9, 14, 0 and 3    | `PMUSERENR`, `PMOVSSET`                               |
+----------------------+-------------------------------------------------------+
| 0, 9, 14, 1, 2 and 6 | `PMINTENSET_EL1`, `PMINTENCLR_EL1`, `PMMIR_EL1`       |
|                      | (read-only)                                           |
+----------------------+-------------------------------------------------------+
| 3, 14, 8..11, n      | `PMEVCNTR<n>_EL0`: n = CRm[1:0] and Op2               |
+----------------------+-------------------------------------------------------+
| 3, 14, 12..15, n     | `PMEVTYPER<n>_EL0`; n = 31 is `PMCCFILTR_EL0`         |
+----------------------+-------------------------------------------------------+

The thirty-one numbered counters have one encoding each; rather than a case
for each, hvbook reaches counter n the indirect way the architecture also
offers: select it in `PMSELR_EL0`, then use `PMXEVCNTR_EL0` or
`PMXEVTYPER_EL0`, and put the guest's selection back. A counter the CPU
does not have (n >= `PMCR_EL0.N`) is an undefined instruction, as on bare
hardware. `pmu_emulate` returns false for an access that must be undefined.
*/
#define PMEVTYPER_NSH (1UL << 27)
#define PMU_CYCLE_COUNTER 31

static u32 pmu_nsh; /* bit n: the guest asked counter n to count at EL2 */

static u64 pmu_filter(int n, bool read, u64 v)
{
    if (read)
        return v | ((pmu_nsh >> n) & 1 ? PMEVTYPER_NSH : 0);
    pmu_nsh = (pmu_nsh & ~(1U << n)) | ((v & PMEVTYPER_NSH) ? 1U << n : 0);
    return v & ~PMEVTYPER_NSH;
}

#define PMU_RW(op1, crm, op2, reg)                                    \
    case SYSREG(3, op1, 9, crm, op2):                                 \
        if (read)                                                     \
            *v = sysreg_read(reg);                                    \
        else                                                          \
            sysreg_write(reg, *v);                                    \
        return true;
#define PMU_RO(op1, crm, op2, reg)                                    \
    case SYSREG(3, op1, 9, crm, op2):                                 \
        if (read)                                                     \
            *v = sysreg_read(reg);                                    \
        return read;

static bool pmu_emulate(u64 key, bool read, u64 *v)
{
    switch (key) {
        PMU_RW(3, 12, 0, s3_3_c9_c12_0)   // PMCR_EL0
        PMU_RW(3, 12, 1, s3_3_c9_c12_1)   // PMCNTENSET_EL0
        PMU_RW(3, 12, 2, s3_3_c9_c12_2)   // PMCNTENCLR_EL0
        PMU_RW(3, 12, 3, s3_3_c9_c12_3)   // PMOVSCLR_EL0
        PMU_RW(3, 12, 5, s3_3_c9_c12_5)   // PMSELR_EL0
        PMU_RO(3, 12, 6, s3_3_c9_c12_6)   // PMCEID0_EL0
        PMU_RO(3, 12, 7, s3_3_c9_c12_7)   // PMCEID1_EL0
        PMU_RW(3, 13, 0, s3_3_c9_c13_0)   // PMCCNTR_EL0
        PMU_RW(3, 13, 2, s3_3_c9_c13_2)   // PMXEVCNTR_EL0
        PMU_RW(3, 14, 0, s3_3_c9_c14_0)   // PMUSERENR_EL0
        PMU_RW(3, 14, 3, s3_3_c9_c14_3)   // PMOVSSET_EL0
        PMU_RW(0, 14, 1, s3_0_c9_c14_1)   // PMINTENSET_EL1
        PMU_RW(0, 14, 2, s3_0_c9_c14_2)   // PMINTENCLR_EL1
        PMU_RO(0, 14, 6, s3_0_c9_c14_6)   // PMMIR_EL1
    case SYSREG(3, 3, 9, 12, 4):          // PMSWINC_EL0, write-only
        if (!read)
            sysreg_write(s3_3_c9_c12_4, *v);
        return !read;
    // PMXEVTYPER_EL0: the selected counter's filter
    case SYSREG(3, 3, 9, 13, 1): {
        int n = (int)(sysreg_read(PMSELR_EL0) & 0x1f);
        if (read)
            *v = pmu_filter(n, true, sysreg_read(PMXEVTYPER_EL0));
        else
            sysreg_write(PMXEVTYPER_EL0, pmu_filter(n, false, *v));
        return true;
    }
    case SYSREG(3, 3, 14, 15, 7):         // PMCCFILTR_EL0
        if (read)
            *v =
                pmu_filter(PMU_CYCLE_COUNTER, true, sysreg_read(PMCCFILTR_EL0));
        else
            sysreg_write(PMCCFILTR_EL0,
                         pmu_filter(PMU_CYCLE_COUNTER, false, *v));
        return true;
    }
    // PMEVCNTR<n>_EL0 and PMEVTYPER<n>_EL0, through PMSELR_EL0.
    if ((key & ~(u64)SYSREG(0, 0, 0, 7, 7)) != SYSREG(3, 3, 14, 8, 0))
        return false;
    u64 crm = (key >> 3) & 0xf;
    int n = (int)(((crm & 3) << 3) | (key & 7));
    if ((u64)n >= PMCR_N(sysreg_read(PMCR_EL0)))
        return false;
    u64 sel = sysreg_read(PMSELR_EL0);
    sysreg_write(PMSELR_EL0, n);
    isb();
    if (crm < 12 && read)
        *v = sysreg_read(PMXEVCNTR_EL0);
    else if (crm < 12)
        sysreg_write(PMXEVCNTR_EL0, *v);
    else if (read)
        *v = pmu_filter(n, true, sysreg_read(PMXEVTYPER_EL0));
    else
        sysreg_write(PMXEVTYPER_EL0, pmu_filter(n, false, *v));
    sysreg_write(PMSELR_EL0, sel);
    isb();
    return true;
}

/*
### What the guest's CPU says it has: `id_reg_read`

With `HCR_EL2.TID3` a guest's read of an ID register comes here. SVE and
SME stay trapped (`CPTR_EL2.TZ`, `TSM`: their registers are more state
than this chapter keeps), so the guest's CPU must not claim them: a kernel
that believed the ID registers would use them and stop at the first trap,
as Linux's `booting.rst` warns. The fields that say so (Arm ARM, register
descriptions of each) read as "not implemented":

| register | field | bits |
|---|---|---|
| `ID_AA64PFR0_EL1` (3, 0, 0, 4, 0) | `SVE` | 35..32 |
| `ID_AA64PFR1_EL1` (3, 0, 0, 4, 1) | `SME` | 27..24 |
| `ID_AA64ZFR0_EL1` (3, 0, 0, 4, 4) | all: SVE's features | |
| `ID_AA64SMFR0_EL1` (3, 0, 0, 4, 5) | all: SME's features | |

Every other ID register reads as the hardware's. The register's number is
in the instruction, so reading "the one the guest asked for" is a `switch`
over the 56 encodings, written with the generic names the assembler
accepts for any system register (`s3_0_c0_c4_0` is `ID_AA64PFR0_EL1`).
With `-cpu max,sve=off,sme=off` (`run.sh --linux`) the hidden fields are 0
already, and the guest sees exactly the CPU QEMU made.
*/
#define ID_CASE(crm, op2)                                     \
    case SYSREG(3, 0, 0, crm, op2):                           \
        v = sysreg_read(s3_0_c0_c##crm##_##op2);              \
        break;
#define ID_ROW(crm)                                                            \
    ID_CASE(crm, 0)                                                            \
    ID_CASE(crm, 1) ID_CASE(crm, 2) ID_CASE(crm, 3) ID_CASE(crm, 4)            \
        ID_CASE(crm, 5) ID_CASE(crm, 6) ID_CASE(crm, 7)
#define ID_PFR0_SVE (0xfUL << 32)
#define ID_PFR1_SME (0xfUL << 24)

static u64 id_reg_read(u64 key)
{
    u64 v = 0;
    switch (key) {
        ID_ROW(1) ID_ROW(2) ID_ROW(3) ID_ROW(4) ID_ROW(5) ID_ROW(6) ID_ROW(7)
    }
    if (key == SYSREG(3, 0, 0, 4, 0))
        v &= ~ID_PFR0_SVE;
    else if (key == SYSREG(3, 0, 0, 4, 1))
        v &= ~ID_PFR1_SME;
    else if (key == SYSREG(3, 0, 0, 4, 4) || key == SYSREG(3, 0, 0, 4, 5))
        v = 0;
    return v;
}

/*
### Trapped system registers: `handle_sysreg`

Every register `HCR_EL2` and `MDCR_EL2` trap (section 5) arrives here as
EC 0x18, and gets the answer section 5 promised:

+-------------------------------+--------------+-------------------------------+
| register                      | trapped by   | answer                        |
+===============================+==============+===============================+
| `ACTLR_EL1` (3, 0, 1, 0, 1)   | `TACR`       | reads: the value found at     |
|                               |              | start; writes ignored         |
+-------------------------------+--------------+-------------------------------+
| the ID registers (3, 0, 0,    | `TID3`       | `id_reg_read`; they are       |
| 1..7, *)                      |              | read-only, a write is         |
|                               |              | undefined                     |
+-------------------------------+--------------+-------------------------------+
| implementation defined (Op0   | `TIDCP`      | undefined instruction,        |
| 3, CRn 11 or 15)              |              | injected                      |
+-------------------------------+--------------+-------------------------------+
| `ERRIDR_EL1`, `ERRSELR_EL1`,  | `TERR`       | read as 0, writes ignored: no |
| `ERX*_EL1` (3, 0, 5, 3..5, *) |              | error records                 |
+-------------------------------+--------------+-------------------------------+
| `MDRAR_EL1` (2, 0, 1, 0, 0)   | `TDRA`       | reads 0: no debug ROM table;  |
|                               |              | writes ignored                |
+-------------------------------+--------------+-------------------------------+
| the PMU registers             | `TPM`        | `pmu_emulate`, or an          |
|                               |              | undefined instruction         |
+-------------------------------+--------------+-------------------------------+
| `ICC_SGI1R_EL1`,              | `IMO`, `FMO` | `send_sgi`; a read is         |
| `ICC_ASGI1R_EL1`,             |              | undefined: they are           |
| `ICC_SGI0R_EL1` (3, 0, 12,    |              | write-only                    |
| 11, 5..7)                     |              |                               |
+-------------------------------+--------------+-------------------------------+
| anything else                 |              | a VM fault (the EL1 physical  |
|                               |              | timer, say, which             |
|                               |              | `CNTHCTL_EL2` keeps from the  |
|                               |              | guest)                        |
+-------------------------------+--------------+-------------------------------+

Both this and an emulated device finish the instruction for the guest: a
read's result goes into `Rt` (unless it is 31, `XZR`), and the PC moves on
by 4, the size of an A64 `MRS`/`MSR`.
*/
/*
**SGIs.** A GICv3 has no memory-mapped register to send a software-generated
interrupt: a CPU writes `ICC_SGI1R_EL1` (or `ICC_ASGI1R_EL1`,
`ICC_SGI0R_EL1` for the other groups), and with `HCR_EL2.IMO` and `FMO` set
the write traps to EL2 (IHI0069, ICC_SGI1R_EL1, "Traps and enables"): the
hypervisor must deliver it. The value says which INTID and to whom:

| bits | field | meaning |
|---|---|---|
| 55..48 | Aff3 | the target cluster's affinity ... |
| 47..44 | RS | ... and which group of 16 Aff0 values `TargetList` covers |
| 40 | IRM | 1: every CPU *but the sender* (on this machine: nobody) |
| 39..32 | Aff2 | |
| 27..24 | INTID | SGI 0..15 |
| 23..16 | Aff1 | |
| 15..0 | TargetList | bit n: the CPU with Aff0 = RS * 16 + n |

Which register was written matters too: it names the *group* the SGI may
have. With a single security state (`GICD_CTLR.DS` = 1), `ICC_SGI1R_EL1`
raises the SGI whatever its group, but `ICC_SGI0R_EL1` only one configured
as Group 0, and `ICC_ASGI1R_EL1`, whose "other security state" does not
exist, behaves like `ICC_SGI0R_EL1` (IHI0069, "Forwarding an SGI to a
target PE", the table of SGI register and group combinations; KVM does the
same). Any other combination raises nothing.

Linux sends itself SGIs even with a single CPU: the *IRQ work* it defers
out of a context that cannot take locks, for one. `send_sgi` makes the SGI
wait in `vgic.pending` if the guest's own affinity is among the targets
and the register may raise it, and `vgic_flush` delivers it.
*/
#define SGIR_IRM (1UL << 40)

// any_group: written through ICC_SGI1R_EL1, not SGI0R or ASGI1R
static void send_sgi(u64 v, bool any_group)
{
    u64 mpidr = sysreg_read(VMPIDR_EL2), aff0 = mpidr & 0xff;
    u64 intid = (v >> 24) & 0xf;
    exit_counts[EXIT_SGI]++;
    if ((v & SGIR_IRM) || (!any_group && ((vgic.group >> intid) & 1)))
        return;
    bool here = ((v >> 16) & 0xff) == ((mpidr >> 8) & 0xff) &&   // Aff1
                ((v >> 32) & 0xff) == ((mpidr >> 16) & 0xff) &&  // Aff2
                ((v >> 48) & 0xff) == ((mpidr >> 32) & 0xff) &&  // Aff3
                ((v >> 44) & 0xf) == aff0 / 16 && ((v >> (aff0 % 16)) & 1);
    if (here) {
        vgic.pending |= 1UL << intid;
        vgic.dirty = true;
    }
}

static void handle_sysreg(void)
{
    u64 iss = ESR_ISS(vcpu.esr);
    u64 op0 = ISS_SYS_OP0(iss), op1 = ISS_SYS_OP1(iss), crn = ISS_SYS_CRN(iss);
    u64 crm = ISS_SYS_CRM(iss), op2 = ISS_SYS_OP2(iss);
    u64 key = SYSREG(op0, op1, crn, crm, op2);
    bool read = iss & ISS_SYS_READ;
    int rt = (int)ISS_SYS_RT(iss);
    u64 v = rt == 31 ? 0 : vcpu.x[rt];

    // ICC_SGI1R_EL1 (op2 5), ICC_ASGI1R_EL1 (6), ICC_SGI0R_EL1 (7)
    if (key >= SYSREG(3, 0, 12, 11, 5) && key <= SYSREG(3, 0, 12, 11, 7)) {
        if (read)
            inject_undef();
        else {
            send_sgi(v, key == SYSREG(3, 0, 12, 11, 5));
            vcpu.elr += 4;
        }
        return;
    }
    exit_counts[EXIT_SYSREG]++;
    if (key == SYSREG(3, 0, 1, 0, 1)) {
        v = actlr_at_start;
    } else if (op0 == 3 && op1 == 0 && crn == 0 && crm >= 1) {
        if (!read) {
            inject_undef();
            return;
        }
        v = id_reg_read(key);
    } else if (op0 == 3 && (crn == 11 || crn == 15)) {
        inject_undef();
        return;
    } else if (op0 == 3 && op1 == 0 && crn == 5 && crm >= 3 && crm <= 5) {
        v = 0;
    } else if (key == SYSREG(2, 0, 1, 0, 0)) {
        v = 0;
    } else if (op0 == 3 && (crn == 9 || (crn == 14 && op1 == 3 && crm >= 8))) {
        if (!pmu_emulate(key, read, &v)) {
            inject_undef();
            return;
        }
    } else {
        exit_counts[EXIT_SYSREG]--;
        exit_counts[EXIT_UNEXPECTED]++;
        printf("VM fault: the guest %s system register "
               "S%lu_%lu_C%lu_C%lu_%lu, which hvbook keeps from it\n",
               read ? "read" : "wrote", op0, op1, crn, crm, op2);
        vm_dump();
        return;
    }
    if (read && rt != 31)
        vcpu.x[rt] = v;
    vcpu.elr += 4;
}

/*
### The loop

`vcpu_run` is the loop drawn above. The exit kind comes from which vector
entry the CPU used; for a synchronous exit the exception class in `ESR_EL2`
says the rest (`handle_sync`). Before it enters the guest again, an exit
that changed what interrupts the guest should see (a timer tick, a
character typed, a register of the emulated GIC or UART) has `vgic_flush`
bring the list registers up to date.
*/
static void handle_sync(void)
{
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
    case EC_SYSREG:
        handle_sysreg();
        break;
    default:
        exit_counts[EXIT_UNEXPECTED]++;
        vm_fault("unexpected exit");
    }
}

static void vcpu_run(void)
{
    while (vm_state == VM_RUNNING) {
        u64 kind = vcpu_enter(&vcpu);
        exit_kind = kind;

        if (kind == EXIT_KIND_IRQ) {
            handle_irq();
        } else if (kind == EXIT_KIND_SYNC) {
            handle_sync();
        } else {
            exit_counts[EXIT_UNEXPECTED]++;
            vm_fault(
                kind == EXIT_KIND_FIQ ? "unexpected FIQ"
                : kind == EXIT_KIND_SERROR
                    ? "SError (a system error) while the guest ran"
                    : "exception from AArch32, which this VM does not allow");
        }
        if (vgic.dirty && vm_state == VM_RUNNING)
            vgic_flush(); // the list registers before the guest runs again
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
static const char *const trap_kinds[] = {"synchronous exception", "IRQ", "FIQ",
                                         "SError"};

_Noreturn void hv_host_trap(struct vcpu *f, u64 kind)
{
    static bool reporting;
    if (reporting)
        power_off(false);
    reporting = true;

    u64 ec = ESR_EC(f->esr);
    printf("\nhvbook: %s in the hypervisor itself (EL2)\n",
           trap_kinds[kind & 3]);
    printf("  ESR 0x%lx (EC 0x%lx: %s)  ELR 0x%lx  FAR 0x%lx  "
           "SPSR 0x%lx  sp 0x%lx\n",
           f->esr, ec, ec_name(ec), f->elr, f->far, f->spsr, f->hpfar);
    for (int i = 0; i < 31; i++)
        printf("  x%-2d %016lx%s", i, f->x[i],
               i % 4 == 3 || i == 30 ? "\n" : "");
    printf("hvbook: stopping with a failure status.\n");
    power_off(false);
}

/*
## 7. Booting Linux

`gkernel` is an ELF file that expects nothing of its machine. A Linux
kernel expects what its `Documentation/arm64/booting.rst` lists, and with
`hvbook.guest=linux` on its command line (`run.sh aarch64 --linux` puts it
there) hvbook gives exactly that, from three files on the disk:

+-------------------+----------------------------+-----------------------------+
| file              | what                       | where it goes (IPA)         |
+===================+============================+=============================+
| `/boot/Image`     | the kernel, a raw arm64    | 0x4000_0000 + its           |
|                   | `Image` (Debian's          | `text_offset`               |
|                   | `vmlinuz`)                 |                             |
+-------------------+----------------------------+-----------------------------+
| `/boot/initrd.gz` | the initramfs, Linux's     | page-aligned, just below    |
|                   | first root file system     | the device tree             |
+-------------------+----------------------------+-----------------------------+
| `/boot/cmdline`   | the kernel's command line  | into the device tree        |
|                   | (optional)                 |                             |
+-------------------+----------------------------+-----------------------------+
|                   | the device tree hvbook     | 0x47E0_0000, the last 2 MiB |
|                   | writes                     | of RAM                      |
+-------------------+----------------------------+-----------------------------+

and 128 MiB of RAM instead of 16. What `booting.rst` asks, point by point:

- **RAM and a device tree** describing it; the tree "must be placed on an
  8-byte boundary and must not exceed 2 megabytes", in a 2 MiB region that
  holds nothing else the kernel must map specially: the last 2 MiB of RAM.
- **The kernel image** at a 2 MiB-aligned base plus `text_offset`. Its
  header's flags may ask for the base to be as close to the start of RAM
  as possible, so the base *is* the start of RAM.
- **The initramfs** anywhere in RAM within the same 1 GiB-aligned window
  as the kernel (all 128 MiB are), named by `linux,initrd-start` and
  `linux,initrd-end` in the tree's `/chosen`.
- **The CPU**: at EL1 with the MMU and data cache off, D, A, I and F
  masked, `x0` = the tree's address, `x1` .. `x3` zero (`vcpu_setup`);
  `CNTFRQ_EL0` programmed (QEMU does) and `CNTVOFF_EL2` consistent
  (section 5); the GICv3 system-register interface usable at EL1
  (`ICC_SRE_EL2.Enable`, section 4); the caches cleaned for the loaded
  image (`dcache_clean_inval_poc`, as for `gkernel`).
- **The CPU's optional features**: booting.rst requires `CPTR_EL2.TZ` = 0
  (and `ZCR_EL2` set) where SVE is present, `CPTR_EL2.TSM` = 0 and more
  for SME. hvbook keeps both trapped (section 5), so for the guest they
  must be absent, and its ID registers say so (`id_reg_read`, through
  `HCR_EL2.TID3`): Linux then never touches them. `run.sh --linux` also
  starts the machine with `-cpu max,sve=off,sme=off`, the same CPU as the
  bare run it is compared with (`--bare`); with plain `-cpu max` the same
  kernel boots just as well, seeing no SVE. Pointer authentication is the
  guest's (`HCR_EL2.API`, `APK`); QEMU's cheap `pauth-impdef=on`
  algorithm is only a speed setting. The PMU stays as section 5 made it,
  and the tree has no PMU node, so Linux leaves it alone; debug registers
  are the guest's.

### The `Image` header

The first 64 bytes of an arm64 `Image` (booting.rst, "Call the kernel
image"), all little-endian:

+--------+------------------+--------------------------------------------------+
| offset | field            | what hvbook requires                             |
+========+==================+==================================================+
| 0, 4   | `code0`, `code1` | (the first instructions: a branch over the       |
|        |                  | header)                                          |
+--------+------------------+--------------------------------------------------+
| 8      | `text_offset`    | a multiple of 4 KiB, below 2 MiB                 |
+--------+------------------+--------------------------------------------------+
| 16     | `image_size`     | not 0 (0 means a kernel older than 3.17, whose   |
|        |                  | other fields cannot be trusted); the image with  |
|        |                  | its BSS fits below the initramfs                 |
+--------+------------------+--------------------------------------------------+
| 24     | `flags`          | bit 0 = 0: little-endian; bits 2..1: page size,  |
|        |                  | 0 unspecified, 1 4 KiB, 2 16 KiB, 3 64 KiB, one  |
|        |                  | this CPU supports (`ID_AA64MMFR0_EL1.TGran4`,    |
|        |                  | `TGran16`, `TGran64`); bit 3: placement anywhere |
|        |                  | (1) or near the start of RAM (0), both fine      |
+--------+------------------+--------------------------------------------------+
| 56     | `magic`          | 0x644D_5241, "ARM\x64"                           |
+--------+------------------+--------------------------------------------------+

Debian 12's kernel says `text_offset` 0, `image_size` 0x201_0000 (32 MiB:
more than the 31.4 MiB file, for the BSS) and flags 0xA: little-endian,
4 KiB pages, anywhere.
*/
#define LINUX_KERNEL_IPA GUEST_RAM_IPA
#define LINUX_DTB_IPA (GUEST_RAM_IPA + GUEST_RAM_SIZE_LINUX - 2 * MiB)
#define LINUX_DTB_MAX (64 * 1024)
#define LINUX_CMDLINE_MAX 1024
#define ARM64_IMAGE_MAGIC 0x644d5241U
#define IMAGE_FLAG_BE (1UL << 0)
#define IMAGE_FLAG_PAGE_SIZE(f) (((f) >> 1) & 3)
#define IMAGE_FLAG_ANYWHERE (1UL << 3)

static u64 le64_at(const u8 *p)
{
    u64 v = 0;
    for (int i = 7; i >= 0; i--)
        v = v << 8 | p[i];
    return v;
}

/* Does this CPU's stage 1 support the page size the kernel was built for? */
static bool cpu_has_granule(u64 page_size_code)
{
    u64 mmfr0 = sysreg_read(ID_AA64MMFR0_EL1);
    u64 tgran16 = (mmfr0 >> 20) & 0xf, tgran64 = (mmfr0 >> 24) & 0xf;
    u64 tgran4 = (mmfr0 >> 28) & 0xf;
    switch (page_size_code) {
    case 0: case 1: return tgran4 == 0 || tgran4 == 1; // 0b1111: none
    case 2: return tgran16 != 0;                       // 0b0000: none
    default: return tgran64 == 0;                      // 0b1111: none
    }
}

/* NULL, or what is wrong with the header at `img` for a file of `size`
   bytes; `*text_offset` and `*image_size` are filled in. */
static const char *image_check(const u8 *img, u64 size, u64 *text_offset,
                               u64 *image_size)
{
    if (size < 64)
        return "shorter than an arm64 Image header (64 bytes)";
    if (le64_at(img + 56) % (1UL << 32) != ARM64_IMAGE_MAGIC)
        return "no \"ARM\\x64\" magic at offset 0x38: not an arm64 Image";
    u64 flags = le64_at(img + 24);
    *text_offset = le64_at(img + 8);
    *image_size = le64_at(img + 16);
    if (*image_size == 0)
        return "image_size is 0: a kernel older than Linux 3.17, not supported";
    if (flags & IMAGE_FLAG_BE)
        return "a big-endian kernel (flags bit 0): this machine runs "
               "little-endian";
    if (!cpu_has_granule(IMAGE_FLAG_PAGE_SIZE(flags)))
        return "built for a page size this CPU does not support (flags bits "
               "2..1)";
    if (*text_offset % PAGE_SIZE || *text_offset >= 2 * MiB)
        return "text_offset is not a multiple of 4 KiB below 2 MiB";
    return NULL;
}

/*
### The device tree hvbook writes

`guest_dt_write` describes the machine of section 3 and nothing more, with
the shared writer of `common.h`, from the same constants the device models
use. The chapter's end shows it as `.dts` text. The interrupt specifiers of
the GICv3 binding are three cells: type (0 SPI, 1 PPI), number (SPI n is
INTID 32 + n, PPI n is INTID 16 + n) and flags (4: level-sensitive, active
high). The timer binding lists its interrupts in a fixed order: secure
physical, non-secure physical, virtual, (hypervisor); the guest can only use
the third, INTID 27, but the order needs the first two. hvbook's own timer,
INTID 26, is not the guest's and is not listed.

The PL011 is an AMBA *primecell*: Linux finds its driver by the ID
registers at 0xFE0, through the AMBA bus, which wants a clock called
`apb_pclk`; a fixed 24 MHz clock serves as both that and the UART's
reference clock. Without its `interrupts` property the PL011 driver would
have no interrupt to ask for, and the console that user space opens
(`/dev/ttyAMA0`) could neither read nor, once its transmit buffer filled,
write: `/init`'s output would be lost.
*/
#define DT_PHANDLE_GIC 1
#define DT_PHANDLE_CLOCK 2
#define DT_IRQ_SPI 0
#define DT_IRQ_PPI 1
#define DT_IRQ_LEVEL_HIGH 4

/* "name@hexaddress", the node-name convention of the Devicetree spec. */
static const char *dt_name(char *buf, const char *name, u64 addr)
{
    char *p = buf;
    while (*name)
        *p++ = *name++;
    *p++ = '@';
    int shift = 60;
    while (shift > 0 && !((addr >> shift) & 0xf))
        shift -= 4;
    for (; shift >= 0; shift -= 4)
        *p++ = "0123456789abcdef"[(addr >> shift) & 0xf];
    *p = 0;
    return buf;
}

/* A 64-bit address or size as two cells, high first. */
#define CELLS64(v) (u32)((u64)(v) >> 32), (u32)(v)

static u32 guest_dt_write(void *buf, const char *cmdline, u64 initrd,
                          u64 initrd_size)
{
    static struct fdt_writer w;
    char name[32], uart_path[32];
    u32 aff = (u32)(sysreg_read(VMPIDR_EL2) & 0xffffff); // Aff2..Aff0
    fdtw_begin(&w, buf, LINUX_DTB_MAX);
    w.boot_cpuid = aff; // the header names the boot CPU by its node's reg
    fdtw_begin_node(&w, "");
    fdtw_prop_u32(&w, "#address-cells", 2);
    fdtw_prop_u32(&w, "#size-cells", 2);
    fdtw_prop_str(&w, "compatible", "linux,dummy-virt");
    fdtw_prop_str(&w, "model", "hvbook AArch64 virtual machine");
    fdtw_prop_u32(&w, "interrupt-parent", DT_PHANDLE_GIC);

    uart_path[0] = '/';
    dt_name(uart_path + 1, "pl011", PL011_BASE);
    u32 start[] = {CELLS64(initrd)}, end[] = {CELLS64(initrd + initrd_size)};
    fdtw_begin_node(&w, "chosen");
    fdtw_prop_str(&w, "bootargs", cmdline);
    fdtw_prop_str(&w, "stdout-path", uart_path);
    fdtw_prop_cells(&w, "linux,initrd-start", start, 2);
    fdtw_prop_cells(&w, "linux,initrd-end", end, 2);
    fdtw_end_node(&w);

    u32 mem[] = {CELLS64(GUEST_RAM_IPA), CELLS64(guest_ram_size)};
    fdtw_begin_node(&w, dt_name(name, "memory", GUEST_RAM_IPA));
    fdtw_prop_str(&w, "device_type", "memory");
    fdtw_prop_cells(&w, "reg", mem, 4);
    fdtw_end_node(&w);

    fdtw_begin_node(&w, "cpus");
    fdtw_prop_u32(&w, "#address-cells", 1);
    fdtw_prop_u32(&w, "#size-cells", 0);
    fdtw_begin_node(&w, dt_name(name, "cpu", aff));
    fdtw_prop_str(&w, "device_type", "cpu");
    fdtw_prop_str(&w, "compatible", "arm,arm-v8");
    fdtw_prop_u32(&w, "reg", aff);
    fdtw_prop_str(&w, "enable-method", "psci");
    fdtw_end_node(&w);
    fdtw_end_node(&w);

    static const char psci_compat[] = "arm,psci-1.0\0arm,psci-0.2";
    fdtw_begin_node(&w, "psci");
    fdtw_prop(&w, "compatible", psci_compat, sizeof(psci_compat));
    fdtw_prop_str(&w, "method", "hvc");
    fdtw_end_node(&w);

    u32 timer_irqs[] = {DT_IRQ_PPI, 13, DT_IRQ_LEVEL_HIGH, DT_IRQ_PPI, 14,
                        DT_IRQ_LEVEL_HIGH, DT_IRQ_PPI, TIMER_PPI - 16,
                        DT_IRQ_LEVEL_HIGH};
    fdtw_begin_node(&w, "timer");
    fdtw_prop_str(&w, "compatible", "arm,armv8-timer");
    fdtw_prop_cells(&w, "interrupts", timer_irqs, 9);
    fdtw_end_node(&w);

    u32 gic_reg[] = {CELLS64(GICD_BASE), CELLS64(GICD_SIZE), CELLS64(GICR_BASE),
                     CELLS64(GICR_SIZE)};
    fdtw_begin_node(&w, dt_name(name, "intc", GICD_BASE));
    fdtw_prop_str(&w, "compatible", "arm,gic-v3");
    fdtw_prop_u32(&w, "#interrupt-cells", 3);
    fdtw_prop_u32(&w, "#address-cells", 0); // no children (no ITS)
    fdtw_prop(&w, "interrupt-controller", NULL, 0);
    fdtw_prop_cells(&w, "reg", gic_reg, 8);
    fdtw_prop_u32(&w, "phandle", DT_PHANDLE_GIC);
    fdtw_end_node(&w);

    fdtw_begin_node(&w, "apb-pclk");
    fdtw_prop_str(&w, "compatible", "fixed-clock");
    fdtw_prop_u32(&w, "#clock-cells", 0);
    fdtw_prop_u32(&w, "clock-frequency", 24000000);
    fdtw_prop_str(&w, "clock-output-names", "clk24mhz");
    fdtw_prop_u32(&w, "phandle", DT_PHANDLE_CLOCK);
    fdtw_end_node(&w);

    static const char uart_compat[] = "arm,pl011\0arm,primecell";
    static const char clock_names[] = "uartclk\0apb_pclk";
    u32 uart_reg[] = {CELLS64(PL011_BASE), CELLS64(PL011_SIZE)};
    u32 uart_irq[] = {DT_IRQ_SPI, UART_SPI - 32, DT_IRQ_LEVEL_HIGH};
    u32 clocks[] = {DT_PHANDLE_CLOCK, DT_PHANDLE_CLOCK};
    fdtw_begin_node(&w, uart_path + 1);
    fdtw_prop(&w, "compatible", uart_compat, sizeof(uart_compat));
    fdtw_prop_cells(&w, "reg", uart_reg, 4);
    fdtw_prop_cells(&w, "interrupts", uart_irq, 3);
    fdtw_prop_cells(&w, "clocks", clocks, 2);
    fdtw_prop(&w, "clock-names", clock_names, sizeof(clock_names));
    fdtw_end_node(&w);

    fdtw_end_node(&w);
    return fdtw_finish(&w);
}

/*
### Loading it: `load_linux`

The steps, each of which stops with a message naming the file if it fails:
find the disk and mount it, as `load_guest_kernel` does for `gkernel`; read
`/boot/Image` straight into guest RAM at the start of RAM and check its
header there (a kernel whose `text_offset` is not 0, from before Linux 5.8,
is read a second time, to its right place); read the initramfs to just
below the device tree, checking that it stays clear of the kernel's
`image_size`; read the command line (`console=ttyAMA0` if there is no
`/boot/cmdline`; newlines become spaces); write the tree. It returns the
kernel's entry point, its first byte, and the tree's address for `x0`. The
time the reads took is printed: reading 33 MB through the VirtIO driver
has to be fast, so the FAT reader asks for whole runs of clusters at once.
*/
static struct fat_fs linux_fs;

static u32 linux_read(const char *path, u64 ipa, u64 room)
{
    const char *err;
    u32 size;
    if ((err = fat_stat(&linux_fs, path, &size)))
        panic("cannot load %s: %s", path, err);
    if (size > room)
        panic("cannot load %s: it is %u bytes, but only %lu fit at 0x%lx", path,
              size, room, ipa);
    if ((err = fat_read_file(&linux_fs, path, guest_ram + (ipa - GUEST_RAM_IPA),
                             room, &size)))
        panic("cannot load %s: %s", path, err);
    return size;
}

static u64 load_linux(u64 *dtb)
{
    const char *err, *image = "/boot/Image", *initrd = "/boot/initrd.gz";
    static char cmdline[LINUX_CMDLINE_MAX];
    u64 text_offset, image_size;
    u32 size;

    printf("app: %s\n", image);
    if ((err = virtio_blk_probe(VIRTIO_MMIO_BASE, VIRTIO_MMIO_STRIDE,
                                VIRTIO_MMIO_SLOTS)) ||
        (err = fat_mount(&linux_fs, virtio_blk_read, NULL)))
        panic("cannot load %s: %s", image, err);

    u64 t0 = time_us();
    u32 isize =
        linux_read(image, LINUX_KERNEL_IPA, LINUX_DTB_IPA - LINUX_KERNEL_IPA);
    u8 *kernel = guest_ram + (LINUX_KERNEL_IPA - GUEST_RAM_IPA);
    if ((err = image_check(kernel, isize, &text_offset, &image_size)))
        panic("cannot load %s: %s", image, err);
    u64 flags = le64_at(kernel + 24);
    if (text_offset != 0)
        isize = linux_read(image, LINUX_KERNEL_IPA + text_offset,
                           LINUX_DTB_IPA - LINUX_KERNEL_IPA - text_offset);
    u64 kernel_end = LINUX_KERNEL_IPA + text_offset +
                     (image_size > isize ? image_size : isize);
    printf("Loaded %u bytes from %s\n", isize, image);
    printf("Linux Image: text_offset 0x%lx, image_size 0x%lx, flags 0x%lx\n",
           text_offset, image_size, flags);

    if ((err = fat_stat(&linux_fs, initrd, &size)))
        panic("cannot load %s: %s", initrd, err);
    u64 rd = ALIGN_DOWN(LINUX_DTB_IPA - size, PAGE_SIZE);
    if (size > LINUX_DTB_IPA - kernel_end || rd < kernel_end)
        panic(
            "cannot load %s: %u bytes do not fit between the kernel (to 0x%lx) "
            "and the device tree (0x%lx)",
            initrd, size, kernel_end, LINUX_DTB_IPA);
    size = linux_read(initrd, rd, LINUX_DTB_IPA - rd);
    printf("Loaded %u bytes from %s at 0x%lx\n", size, initrd, rd);
    u64 t1 = time_us();
    printf("Read %lu KiB from the disk in %lu ms\n", ((u64)isize + size) / 1024,
           (t1 - t0) / 1000);

    u32 clen = 0;
    const char *dflt = "console=ttyAMA0";
    if (fat_stat(&linux_fs, "/boot/cmdline", &clen) == NULL &&
        clen < LINUX_CMDLINE_MAX) {
        if ((err = fat_read_file(&linux_fs, "/boot/cmdline", cmdline,
                                 LINUX_CMDLINE_MAX - 1, &clen)))
            panic("cannot load /boot/cmdline: %s", err);
    } else {
        clen = (u32)strlen(dflt);
        memcpy(cmdline, dflt, clen);
    }
    while (clen && (cmdline[clen - 1] == '\n' || cmdline[clen - 1] == ' ' ||
                    cmdline[clen - 1] == '\r'))
        clen--;
    cmdline[clen] = 0;
    for (u32 i = 0; i < clen; i++)
        if (cmdline[i] == '\n' || cmdline[i] == '\r' || cmdline[i] == '\t')
            cmdline[i] = ' ';
    printf("Kernel command line: %s\n", cmdline);

    u32 dtb_size = guest_dt_write(guest_ram + (LINUX_DTB_IPA - GUEST_RAM_IPA),
                                  cmdline, rd, size);
    if (dtb_size == 0)
        panic("the device tree for Linux does not fit in %u bytes",
              LINUX_DTB_MAX);
    printf("Device tree: %u bytes at 0x%lx\n", dtb_size, LINUX_DTB_IPA);
    *dtb = LINUX_DTB_IPA;
    return LINUX_KERNEL_IPA + text_offset;
}

/*
## 8. `hv_main`

The boot flow, the same on every architecture, as it goes on AArch64:

    QEMU -> _start (start/aarch64.S) -> hv_main
      check that we are at EL2
      page allocator: everything between the end of hvbook and the end of
        RAM, as QEMU's device tree gives it (/memory)
      16 MiB of guest RAM (Linux: 128), mapped by stage 2
      VirtIO block device -> FAT -> /sbin/gkernel -> ELF loader -> guest RAM
        (Linux: /boot/Image, /boot/initrd.gz, a device tree; section 7)
      guest RAM cleaned and invalidated to the Point of Coherency
      the physical GIC, the vCPU, the hypervisor's timer, the run loop
      statistics, power off
*/
extern char _end[];

void hv_main(void)
{
    // QEMU wrote its device tree, with run.sh's -append, at the start of RAM.
    const void *fdt = (const void *)QEMU_FDT;
    boot_args_parse(fdt_bootargs(fdt));
    printf("\nhvbook: AArch64 hypervisor (EL2)\n");
    printf("Starting virtualization...\n");
    u64 el = current_el();
    if (el != 2)
        panic("hvbook runs at EL%lu, not EL2, so it cannot run a virtual "
              "machine.\n"
              "  Start QEMU with -M virt,virtualization=on (and without "
              "secure=on).",
              el);

    u64 ram_base, ram_size;
    if (!fdt_memory(fdt, &ram_base, &ram_size))
        panic("QEMU's device tree has no /memory node: how much RAM is there?");
    page_init((uintptr_t)_end, ram_base + ram_size);
    u64 size = boot_args.linux_guest ? GUEST_RAM_SIZE_LINUX : GUEST_RAM_SIZE;
    printf("Pre-allocating %lu MB guest RAM at 0x%lx...\n", size / MiB,
           GUEST_RAM_IPA);
    guest_ram_setup(size);
    printf("VM created success, loading images...\n");

    u64 entry, x0 = 0;
    if (boot_args.linux_guest)
        entry = load_linux(&x0);
    else
        entry = load_guest_kernel("/sbin/gkernel", EM_AARCH64, GUEST_RAM_IPA,
                                  size, guest_ram, VIRTIO_MMIO_BASE,
                                  VIRTIO_MMIO_STRIDE, VIRTIO_MMIO_SLOTS);
    printf("bsp_entry: 0x%lx; ept: 0x%lx\n", entry, (u64)(uintptr_t)s2_root);
    // Written without caches, to be read through them: see "Caches" above.
    dcache_clean_inval_poc((uintptr_t)guest_ram, guest_ram_size);

    gic_setup();
    vcpu_setup(entry, x0);
    printf("Entering VM run loop...\n");
    hv_timer_start();
    vcpu_run();

    vm_finish(vm_state, exit_names, exit_counts, EXIT_REASONS);
}
