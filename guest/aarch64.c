/*
# The guest's Arm platform: `guest/aarch64.c`

An Arm kernel drives its devices itself; there is no SBI to ask. This guest
needs four: a PL011 UART for the console, the EL1 *virtual* timer, the GICv3
interrupt controller that delivers the timer's interrupt, and PSCI firmware to
switch the machine off.

Under hvbook the guest runs at EL1 with the hypervisor at EL2, and each device
is virtualized differently: the timer and the GIC's CPU interface are
virtualized *in hardware* (the virtual timer and the GIC's list registers), the
UART and the GIC's memory-mapped registers are *emulated* (every access traps
to EL2 as a stage-2 fault), and `hvc` goes to the hypervisor instead of
firmware. Emulation costs the hypervisor engineer one handler per register, so
this driver touches as few registers as a correct driver can. Here is the
complete list of memory-mapped registers the guest touches, with what it
writes; anything else is a bug, in the guest or in whoever answers:

+------------------+-------------+-------------------+-------------------------+
| register         | address     | access            | value                   |
+==================+=============+===================+=========================+
| UARTDR           | 0x0900_0000 | write, 32-bit     | one character           |
+------------------+-------------+-------------------+-------------------------+
| UARTFR           | 0x0900_0018 | read, 32-bit      | poll TXFF, bit 5        |
+------------------+-------------+-------------------+-------------------------+
| GICD_CTLR        | 0x0800_0000 | write, then read  | write 0x13 (ARE_NS,     |
|                  |             |                   | EnableGrp1A,            |
|                  |             |                   | EnableGrp1); poll RWP,  |
|                  |             |                   | bit 31, until 0         |
+------------------+-------------+-------------------+-------------------------+
| GICR_WAKER       | 0x080A_0014 | read, write, read | clear ProcessorSleep    |
|                  |             |                   | (bit 1); poll           |
|                  |             |                   | ChildrenAsleep (bit 2)  |
|                  |             |                   | until 0                 |
+------------------+-------------+-------------------+-------------------------+
| GICR_IGROUPR0    | 0x080B_0080 | write             | 1 << 27: INTID 27 is    |
|                  |             |                   | Group 1                 |
+------------------+-------------+-------------------+-------------------------+
| GICR_IPRIORITYR6 | 0x080B_0418 | write, 32-bit     | 0xA000_0000: INTID 27   |
|                  |             |                   | (byte 3) at priority    |
|                  |             |                   | 0xA0                    |
+------------------+-------------+-------------------+-------------------------+
| GICR_ISENABLER0  | 0x080B_0100 | write             | 1 << 27: enable INTID   |
|                  |             |                   | 27                      |
+------------------+-------------+-------------------+-------------------------+
| pflash1          | 0x0400_0000 | read, 32-bit      | (the magic, in          |
|                  |             |                   | `kernel.c`)             |
+------------------+-------------+-------------------+-------------------------+

Every access is a single, naturally aligned 32-bit `ldr`/`str` with a plain
base register, so that a trapping access arrives at EL2 with a valid
syndrome (`ESR_EL2.ISV` = 1, Arm ARM DDI 0487, "ISS encoding for an exception
from a Data Abort"), and the hypervisor can decode it without reading guest
memory.

The system registers it uses are `CurrentEL`, `DAIF`, `VBAR_EL1`, `ESR_EL1`,
`FAR_EL1`, the timer's `CNTFRQ_EL0`, `CNTVCT_EL0`, `CNTV_CVAL_EL0`,
`CNTV_CTL_EL0`, and the GIC CPU interface's `ICC_SRE_EL1`, `ICC_PMR_EL1`,
`ICC_CTLR_EL1`, `ICC_IGRPEN1_EL1`, `ICC_IAR1_EL1`, `ICC_EOIR1_EL1`.
*/
#include "guest.h"

const char plat_arch[] = "aarch64";
const char plat_name[] = "aarch64-qemu-virt";

/* flash1 on QEMU's Arm `virt` machine (hw/arm/virt.c, VIRT_FLASH). */
const uintptr_t plat_pflash_base = 0x04000000;

/*
## Device registers

`mmio_read32` and `mmio_write32` are the only way this file touches a device.
They are written in assembly so that the compiler cannot turn them into
anything but one plain `ldr`/`str` (for instance a post-indexed store inside
a loop, which would arrive at a hypervisor without a usable syndrome).
*/
static inline uint32_t mmio_read32(uintptr_t addr)
{
    uint32_t v;
    asm volatile("ldr %w0, [%1]" : "=r"(v) : "r"(addr) : "memory");
    return v;
}

static inline void mmio_write32(uintptr_t addr, uint32_t v)
{
    asm volatile("str %w0, [%1]" : : "r"(v), "r"(addr) : "memory");
}

#define sysreg_read(name) ({ uint64_t _v; \
    asm volatile("mrs %0, " #name : "=r"(_v)); _v; })
#define sysreg_write(name, v) \
    asm volatile("msr " #name ", %0" : : "r"((uint64_t)(v)) : "memory")
#define isb() asm volatile("isb" : : : "memory")

/*
## Vectors and the console

`plat_init` points `VBAR_EL1` at the vector table in `aarch64.S`; the `isb`
makes sure the next exception already uses it.

The console is the PL011 UART at 0x0900_0000 (Arm PrimeCell UART (PL011)
Technical Reference Manual, DDI 0183, 3.3 "Register descriptions"). Writing a
byte to the data register `UARTDR` sends it, provided the transmit FIFO has
room: the flag register `UARTFR` has `TXFF` (bit 5) set while it is full. The
guest does not program the baud rate or line control: the firmware that
started it owns those, and QEMU's UART ignores them anyway.
*/
#define PL011_BASE      0x09000000UL
#define UARTDR          0x000
#define UARTFR          0x018
#define UARTFR_TXFF     (1u << 5)

extern char vectors[];

void plat_init(void)
{
    sysreg_write(vbar_el1, (uintptr_t)vectors);
    isb();
}

void plat_console_write(const char *s, size_t n)
{
    while (n--) {
        while (mmio_read32(PL011_BASE + UARTFR) & UARTFR_TXFF)
            ;
        mmio_write32(PL011_BASE + UARTDR, (unsigned char)*s++);
    }
}

/*
`CurrentEL` holds the exception level in bits 3:2. It is the one line of
output that a careless hypervisor would give away: a guest started at EL2 by
mistake would say so here.
*/
#define CURRENTEL_EL_SHIFT 2
#define CURRENTEL_EL_MASK  3

void plat_print_info(void)
{
    uint64_t el =
        (sysreg_read(CurrentEL) >> CURRENTEL_EL_SHIFT) & CURRENTEL_EL_MASK;
    kprintf("current el = EL%lu\n", el);
}

/*
## Masking interrupts

`PSTATE.I` masks IRQs at EL1. `DAIF` shows it as bit 7; `msr daifset, #2` and
`msr daifclr, #2` set and clear it alone (the immediate's bit 1 is `I`). The
flags this platform hands the kernel are the old `I` bit.
*/
#define DAIF_I (1UL << 7)

void plat_irq_enable(void)
{
    asm volatile("msr daifclr, #2" : : : "memory");
}

unsigned long plat_irq_save(void)
{
    unsigned long daif;
    asm volatile("mrs %0, daif\n\tmsr daifset, #2" : "=r"(daif) : : "memory");
    return daif & DAIF_I;
}

void plat_irq_restore(unsigned long flags)
{
    if (!(flags & DAIF_I))
        asm volatile("msr daifclr, #2" : : : "memory");
}

/*
## The GICv3, as little of it as will do

A GICv3 (Arm GIC Architecture Specification, IHI0069) has three parts, and
the timer's interrupt passes through two of them:

- the **Distributor** (`GICD_*`, at 0x0800_0000 on QEMU `virt`) routes shared
  peripheral interrupts; we only need its global switch, `GICD_CTLR`;
- one **Redistributor** per CPU (`GICR_*`, CPU 0's at 0x080A_0000) owns that
  CPU's private interrupts, the PPIs and SGIs. It has two 64 KiB frames: the
  control frame `RD_base`, and `SGI_base` at +0x1_0000, where the per-interrupt
  registers live;
- the **CPU interface**, reached through system registers (`ICC_*_EL1`), where
  the CPU acknowledges an interrupt and signals its end.

The EL1 virtual timer is PPI 11, that is INTID 27 (IHI0069, 2.2 "INTIDs":
PPIs are INTIDs 16-31; QEMU's `virt` wires the virtual timer to PPI 11, as the
Server Base System Architecture recommends).

**Distributor.** `GICD_CTLR` (IHI0069, chapter 12, GICD_CTLR) turns on
affinity routing (ARE, bit 4) and the Group 1 enables (bits 1 and 0). Which
name each bit has depends on the GIC's security configuration, which this
guest does not know: with two security states, a Non-secure write sees ARE_NS
(4), EnableGrp1A (1) and EnableGrp1 (0); with one (`GICD_CTLR.DS` = 1, as on
QEMU `virt` without `secure=on`), the same bits are ARE (4), EnableGrp1 (1) and
EnableGrp0 (0). Writing 0x13 is right in both views, which is why Linux's
GICv3 driver writes the same value. Changing ARE is tracked by the Register
Write Pending bit, `RWP` (bit 31), which we wait on.
*/
#define GICD_BASE               0x08000000UL
#define GICD_CTLR               0x0000
#define GICD_CTLR_ENABLE_G1     (1u << 0)
#define GICD_CTLR_ENABLE_G1A    (1u << 1)
#define GICD_CTLR_ARE_NS        (1u << 4)
#define GICD_CTLR_RWP           (1u << 31)

/*
**Redistributor.** A redistributor powers up asleep. `GICR_WAKER` (IHI0069,
chapter 12, GICR_WAKER): clear `ProcessorSleep` (bit 1) to say this CPU is
awake, then wait for `ChildrenAsleep` (bit 2) to read 0, after which the
redistributor forwards interrupts to the CPU interface.

Then three registers in the `SGI_base` frame configure INTID 27, one bit or
byte each:

- `GICR_IGROUPR0` (+0x0080): bit n set puts INTID n in Group 1, the group
  that a Non-secure kernel's `ICC_IAR1_EL1` acknowledges and that arrives as an
  IRQ (Group 0 would arrive as an FIQ). We write the whole register: no other
  SGI or PPI is ever enabled, so their groups do not matter.
- `GICR_IPRIORITYR<n>` (+0x0400 + 4n): one byte of priority per INTID, lower is
  more urgent. INTID 27 is byte 3 of register 6. 0xA0 is the middle of the
  range Linux uses too. Again we write the whole register; INTIDs 24-26 are
  never enabled.
- `GICR_ISENABLER0` (+0x0100): write-1-to-set, so writing bit 27 enables
  INTID 27 and leaves every other interrupt as it was.

The timer is a level-sensitive interrupt, and the PPIs come out of reset
level-sensitive (on QEMU, and on any GIC whose PPI configuration is fixed), so
no `GICR_ICFGR1` write is needed.
*/
#define GICR_BASE               0x080A0000UL
#define GICR_SGI_BASE           (GICR_BASE + 0x10000)
#define GICR_WAKER              0x0014
#define GICR_WAKER_PROCESSOR_SLEEP (1u << 1)
#define GICR_WAKER_CHILDREN_ASLEEP (1u << 2)
#define GICR_IGROUPR0           0x0080
#define GICR_ISENABLER0         0x0100
#define GICR_IPRIORITYR(n)      (0x0400 + 4 * (n))

#define INTID_VTIMER            27
#define VTIMER_PRIORITY         0xA0
#define INTID_SPURIOUS_FIRST    1020    /* 1020-1023: no interrupt to take */
#define ICC_IAR_INTID_MASK      0xFFFFFF

/*
**CPU interface.** `ICC_SRE_EL1.SRE` (bit 0) selects the system-register
interface (the alternative is GICv2's memory-mapped one, which hvbook does not
offer). `ICC_PMR_EL1` is the priority mask: only interrupts with a priority
value *below* it are signalled, so 0xF0 lets our 0xA0 through. In
`ICC_CTLR_EL1` we clear `EOImode` (bit 1), so that one write to
`ICC_EOIR1_EL1` both drops the running priority and deactivates the
interrupt. Finally `ICC_IGRPEN1_EL1.Enable` (bit 0) lets Group 1 interrupts
through the CPU interface. (IHI0069, chapter 12, the ICC_* registers.)
*/
#define ICC_SRE_SRE             (1UL << 0)
#define ICC_PMR_ALLOW_ALL       0xF0
#define ICC_CTLR_EOIMODE        (1UL << 1)
#define ICC_IGRPEN1_ENABLE      (1UL << 0)

static void gic_init(void)
{
    // CPU interface first: the ICC_* registers below need SRE.
    sysreg_write(icc_sre_el1, sysreg_read(icc_sre_el1) | ICC_SRE_SRE);
    isb();
    sysreg_write(icc_pmr_el1, ICC_PMR_ALLOW_ALL);
    sysreg_write(icc_ctlr_el1, sysreg_read(icc_ctlr_el1) & ~ICC_CTLR_EOIMODE);

    // Distributor: affinity routing and Group 1 on.
    mmio_write32(GICD_BASE + GICD_CTLR,
                 GICD_CTLR_ARE_NS | GICD_CTLR_ENABLE_G1A | GICD_CTLR_ENABLE_G1);
    while (mmio_read32(GICD_BASE + GICD_CTLR) & GICD_CTLR_RWP)
        ;

    // Redistributor: wake it, then configure INTID 27.
    uint32_t waker = mmio_read32(GICR_BASE + GICR_WAKER);
    mmio_write32(GICR_BASE + GICR_WAKER, waker & ~GICR_WAKER_PROCESSOR_SLEEP);
    while (mmio_read32(GICR_BASE + GICR_WAKER) & GICR_WAKER_CHILDREN_ASLEEP)
        ;
    mmio_write32(GICR_SGI_BASE + GICR_IGROUPR0, 1u << INTID_VTIMER);
    mmio_write32(GICR_SGI_BASE + GICR_IPRIORITYR(INTID_VTIMER / 4),
                 (uint32_t)VTIMER_PRIORITY << (8 * (INTID_VTIMER % 4)));
    mmio_write32(GICR_SGI_BASE + GICR_ISENABLER0, 1u << INTID_VTIMER);

    sysreg_write(icc_igrpen1_el1, ICC_IGRPEN1_ENABLE);
    isb();
}

/*
## The virtual timer

The Generic Timer gives EL1 a *virtual* counter, `CNTVCT_EL0`, which is the
system counter minus an offset that only EL2 can set (Arm ARM DDI 0487,
"The Generic Timer in AArch64 state"). It ticks at `CNTFRQ_EL0`
hertz (62.5 MHz on QEMU 7.2; firmware or QEMU sets it, the kernel only reads
it). The virtual timer compares against it: when `CNTVCT_EL0` >=
`CNTV_CVAL_EL0` and `CNTV_CTL_EL0` has `ENABLE` (bit 0) set and `IMASK` (bit 1)
clear, the timer raises its interrupt line, and keeps it raised until the
condition goes away.

It is the virtual timer, not the physical one, because a hypervisor can let
its guest own it outright: the guest programs it without any trap, and hvbook
only has to forward the interrupt.

Since the line is *level*-sensitive, acknowledging the interrupt at the GIC
is not enough: the handler must first move the deadline into the future, or
the interrupt would be taken again the moment it returned. `timer_arm` does
exactly that, and the `isb` makes sure the new deadline is in effect before
the GIC is told the interrupt is over.
*/
#define CNTV_CTL_ENABLE (1UL << 0)
#define CNTV_CTL_IMASK  (1UL << 1)

static uint64_t tick_period;            /* in counter ticks */

static uint64_t read_counter(void)
{
    isb(); // do not let the read be speculated ahead of earlier instructions
    return sysreg_read(cntvct_el0);
}

uint64_t plat_time_us(void)
{
    uint64_t freq = sysreg_read(cntfrq_el0);
    uint64_t count = read_counter();
    return count / freq * 1000000 + count % freq * 1000000 / freq;
}

static void timer_arm(void)
{
    sysreg_write(cntv_cval_el0, read_counter() + tick_period);
    sysreg_write(cntv_ctl_el0, CNTV_CTL_ENABLE);
    isb();
}

void plat_timer_start(uint64_t period_us)
{
    tick_period = sysreg_read(cntfrq_el0) * period_us / 1000000;
    gic_init();
    timer_arm();
}

void plat_timer_stop(void)
{
    sysreg_write(cntv_ctl_el0, CNTV_CTL_IMASK);
    isb();
}

/*
## Power-off

PSCI (Arm Power State Coordination Interface, DEN0022, "SYSTEM_OFF")
is the firmware interface for switching an Arm machine off. Its functions are
called with the SMC Calling Convention (DEN0028): the function id in `w0`,
then `smc` or `hvc`. QEMU's `virt` without EL2 and EL3 answers PSCI calls on
`hvc` itself; under hvbook, `hvc` traps to the hypervisor, which answers
instead.

`SYSTEM_OFF` (0x8400_0008) has no way to report success or failure. So a
guest that has failed, after saying what went wrong on the console, asks for
`SYSTEM_RESET` (0x8400_0009) instead, just as Linux does when it panics with
`panic=-1`: whoever runs the machine can tell the two apart. hvbook, which
never restarts a guest, ends the run as a failure; QEMU run with
`-no-reboot` exits instead of resetting.
*/
#define PSCI_SYSTEM_OFF   0x84000008UL
#define PSCI_SYSTEM_RESET 0x84000009UL

void plat_shutdown(bool ok)
{
    asm volatile("msr daifset, #2" : : : "memory");
    register uint64_t x0 asm("x0") = ok ? PSCI_SYSTEM_OFF : PSCI_SYSTEM_RESET;
    asm volatile("hvc #0" : "+r"(x0) : : "x1", "x2", "x3", "memory");
    for (;;)
        asm volatile("wfi");
}

/*
## A new thread's first frame

`ctx_switch` pops 96 bytes: `x19`..`x28`, then `x29` (the frame pointer) and
`x30` (the link register) at offsets 80 and 88 (see `aarch64.S`). For a new
thread we zero them all except `x30` = `start`. A zero frame pointer ends the
chain of frame records, as the AAPCS64 asks of the outermost frame.
*/
#define SWITCH_FRAME_WORDS 12
#define SWITCH_FRAME_X30   11

void *plat_thread_stack(void *top, void (*start)(void))
{
    uint64_t *frame = (uint64_t *)top - SWITCH_FRAME_WORDS;
    for (int i = 0; i < SWITCH_FRAME_WORDS; i++)
        frame[i] = 0;
    frame[SWITCH_FRAME_X30] = (uintptr_t)start;
    return frame;
}

/*
## The exception handler

Every vector lands here with its kind (see the table in `aarch64.S`) and the
trap frame. The only expected one is kind 5, an IRQ taken at EL1h. For it:

1. read `ICC_IAR1_EL1`: this *acknowledges* the highest-priority pending Group 1
   interrupt and returns its INTID (bits 23:0). An INTID of 1020-1023 means
   there was nothing left to take (it was withdrawn in the meantime), and we
   simply return;
2. for the timer, move its deadline (so the level drops), then write the same
   value to `ICC_EOIR1_EL1`: the *end of interrupt*, which with `EOImode` = 0
   also deactivates it. This must happen *before* the kernel's tick, because
   the tick may switch to another thread, and the GIC would not deliver the
   next timer interrupt to anyone while this one is still active;
3. let the kernel have its tick.

Anything else is reported with the exception syndrome (`ESR_EL1`: the
exception class in bits 31:26), the address of the instruction (`ELR_EL1`)
and the faulting address (`FAR_EL1`, meaningful for aborts), and the machine
is switched off.
*/
#define VEC_EL1H_IRQ  5
#define ESR_EC_SHIFT  26
#define ESR_EC_MASK   0x3F

struct trap_frame {
    uint64_t x[31];
    uint64_t elr;
    uint64_t spsr;
    uint64_t pad;
};

void arm_trap(unsigned long kind, struct trap_frame *tf);

static const char *const vector_names[16] = {
    "EL1t sync", "EL1t IRQ", "EL1t FIQ", "EL1t SError",
    "EL1h sync", "EL1h IRQ", "EL1h FIQ", "EL1h SError",
    "EL0/64 sync", "EL0/64 IRQ", "EL0/64 FIQ", "EL0/64 SError",
    "EL0/32 sync", "EL0/32 IRQ", "EL0/32 FIQ", "EL0/32 SError",
};

void arm_trap(unsigned long kind, struct trap_frame *tf)
{
    if (kind == VEC_EL1H_IRQ) {
        uint64_t iar = sysreg_read(icc_iar1_el1);
        uint64_t intid = iar & ICC_IAR_INTID_MASK;
        if (intid >= INTID_SPURIOUS_FIRST && intid <= INTID_SPURIOUS_FIRST + 3)
            return;
        if (intid == INTID_VTIMER) {
            timer_arm();
            sysreg_write(icc_eoir1_el1, iar);
            isb();
            kernel_timer_tick();
            return;
        }
        sysreg_write(icc_eoir1_el1, iar);
        kprintf("unexpected interrupt: INTID %lu, elr=0x%lx\n", intid, tf->elr);
        plat_shutdown(false);
    }

    uint64_t esr = sysreg_read(esr_el1), far = sysreg_read(far_el1);
    kprintf("unexpected exception: %s, esr=0x%lx (EC 0x%lx) "
            "elr=0x%lx far=0x%lx\n",
            vector_names[kind & 15], esr, (esr >> ESR_EC_SHIFT) & ESR_EC_MASK,
            tf->elr, far);
    plat_shutdown(false);
}
