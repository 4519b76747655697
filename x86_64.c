/*
# x86-64: a hypervisor with AMD SVM

This chapter is one file, `x86_64.c`, read from top to bottom, with its
companion `start/x86_64.S`. By its end a complete hypervisor has loaded a
guest kernel from a disk, run it in a virtual machine with its own memory,
serial port, local APIC timer and flash, and switched the machine off when
the guest asked to. The shape is the one you know from RISC-V and Arm: the
same run loop, the same handlers with the same names. What differs is how
x86 spells each idea, and x86 spells them with a *data structure* more than
with registers.

## Host mode and guest mode

x86 kept its four privilege *rings* when it gained virtualization; ring 0 is
still the kernel's. AMD's *Secure Virtual Machine* extension (SVM, also sold
as AMD-V; AMD64 Architecture Programmer's Manual, volume 2, chapter 15
"Secure Virtual Machine") adds a second dimension beside the rings instead,
much like RISC-V's V bit: the CPU is in **host mode** or in **guest mode**,
and each has all four rings.

    host mode                      guest mode (the virtual machine)
    +-----------------------+      +-----------------------+
    | ring 3  (unused)      |      | ring 3  guest programs|
    +-----------------------+      +-----------------------+
    | ring 0  hvbook        | ---> | ring 0  gkernel       |
    +-----------------------+ VMRUN+-----------------------+
                             <---  #VMEXIT

One instruction, `VMRUN`, switches from host to guest mode, and a
`#VMEXIT` switches back. Both are driven by one page of memory per virtual
CPU, the **VMCB** (virtual machine control block, APM vol. 2, appendix B):
its *control area* says which guest actions must come back to the
hypervisor (the *intercepts*) and, after an exit, why it came back; its
*state save area* holds the guest's registers while the guest is not
running. Section 4 draws it.

## Two stages of address translation

With *nested paging* (APM vol. 2, 15.25 "Nested Paging") every guest memory
access is translated twice. The guest's own page tables (its `CR3`) turn a
guest-virtual address into a *guest-physical* address (GPA); the
hypervisor's **nested page tables** (`N_CR3` in the VMCB) turn the GPA into
a host-physical address. The guest cannot see or change the second stage,
and that is the whole of memory isolation.

    guest-virtual --[guest CR3: the guest's tables]--> guest-physical
                                                           |
                                [N_CR3: hvbook's nested tables]
                                                           v
                                                     host-physical

Unlike our RISC-V and Arm guests, the x86 guest *does* turn on its own
paging: long mode cannot run without it. That will matter when we must read
an instruction the guest executed: its address is a guest-*virtual* one.

## What QEMU's SVM leaves out

hvbook runs on QEMU's software emulation of SVM (`-cpu max,+svm`). It has
nested paging and a virtual global interrupt flag, but two helpers a real
AMD CPU offers are missing (`CPUID` 0x8000_000A reads `EDX` = 0x1001_0001):

- **NRIP save** (bit 3): the CPU would tell us where the instruction after
  an intercepted one starts. Without it the hypervisor moves `RIP` past
  `VMMCALL`, `CPUID`, `RDMSR`, `WRMSR`, `HLT` and `INVD` by their known
  lengths.
- **Decode assists** (bit 7): the CPU would hand us the bytes of an
  instruction that faulted in the nested tables. Without them, to emulate a
  device access the hypervisor fetches the bytes itself, through the
  guest's own page tables, and decodes the instruction.

## What happens in this file, in order

1. Ports, MSRs, `CPUID`: the accessors, and the `common.h` contract (console,
   power-off, barrier).
2. Time: the TSC and the local APIC timer, the hypervisor's own clock (and
   `time_us`, the last item of the contract).
3. Nested page tables and 16 MiB of guest RAM.
4. The virtual CPU: the VMCB, its intercepts, the permission maps, and the
   state a Multiboot kernel starts in.
5. The run loop, and one handler per kind of VM exit: the guest's timer,
   hypercalls, port I/O, `CPUID` and MSRs, `HLT`, nested page faults (with
   the instruction decoder), and everything else.
6. `hv_main`, which ties it together.
*/
#include "common.h"
#include <stddef.h>

/*
## 1. Ports, MSRs and `CPUID`

x86 has a second address space beside memory: 65536 I/O *ports*, reached
only with `IN` and `OUT`. It has *model-specific registers* (MSRs), read
and written with `RDMSR` and `WRMSR` by number. And it describes itself
through `CPUID`, which takes a *leaf* number in `EAX` (and a sub-leaf in
`ECX`) and answers in four registers. None of the three can be written in
C, so here are the accessors.
*/
static inline void outb(u16 port, u8 v)
{
    __asm__ volatile("outb %0, %1" ::"a"(v), "Nd"(port));
}

static inline u8 inb(u16 port)
{
    u8 v;
    __asm__ volatile("inb %1, %0" : "=a"(v) : "Nd"(port));
    return v;
}

static inline void outl(u16 port, u32 v)
{
    __asm__ volatile("outl %0, %1" ::"a"(v), "Nd"(port));
}

static inline u64 rdmsr(u32 msr)
{
    u32 lo, hi;
    __asm__ volatile("rdmsr" : "=a"(lo), "=d"(hi) : "c"(msr));
    return (u64)hi << 32 | lo;
}

static inline void wrmsr(u32 msr, u64 v)
{
    __asm__ volatile("wrmsr" ::"c"(msr), "a"((u32)v), "d"((u32)(v >> 32)));
}

struct cpuid {
    u32 eax, ebx, ecx, edx;
};

static struct cpuid cpuid(u32 leaf, u32 subleaf)
{
    struct cpuid r;
    __asm__ volatile("cpuid"
                     : "=a"(r.eax), "=b"(r.ebx), "=c"(r.ecx), "=d"(r.edx)
                     : "a"(leaf), "c"(subleaf));
    return r;
}

static inline u64 rdtsc(void)
{
    u32 lo, hi;
    __asm__ volatile("rdtsc" : "=a"(lo), "=d"(hi));
    return (u64)hi << 32 | lo;
}

static inline u32 mmio_read32(uintptr_t addr)
{
    return *(volatile u32 *)addr;
}

static inline void mmio_write32(uintptr_t addr, u32 v)
{
    *(volatile u32 *)addr = v;
}

/*
### The console: a 16550 UART

The `microvm` machine has the PC's classic serial port, a National
Semiconductor 16550 compatible UART, at ports 0x3F8 to 0x3FF ("PC16550D
Universal Asynchronous Receiver/Transmitter with FIFOs", National
Semiconductor data sheet, 8.6 "Register Addresses"). The hypervisor owns it.
To send a byte, wait until the line status register says the transmit
holding register is empty, then write the byte:

+-------+----------------------------------+-----------------------------------+
| port  | register                         | bits we use                       |
+=======+==================================+===================================+
| 0x3F8 | `THR` transmit holding (with     | the byte to send                  |
|       | `LCR.DLAB` = 0)                  |                                   |
+-------+----------------------------------+-----------------------------------+
| 0x3FD | `LSR` line status                | 5 `THRE`: ready for the next      |
|       |                                  | byte; 6 `TEMT`: all sent          |
+-------+----------------------------------+-----------------------------------+

QEMU's model needs no baud rate or line settings to transmit. The guest has
a 16550 at the same ports, but not this one: its `IN` and `OUT`
instructions are intercepted and *emulated* (section 5).
*/
#define COM1 0x3F8
#define UART_THR 0
#define UART_LSR 5
#define UART_LSR_THRE 0x20
#define UART_LSR_TEMT 0x40

void console_putchar(int c)
{
    while (!(inb(COM1 + UART_LSR) & UART_LSR_THRE))
        ;
    outb(COM1 + UART_THR, (u8)c);
}

/*
### Switching off: `isa-debug-exit`

A PC has no standard "power off, with this status" port that QEMU honours
on `microvm`. `run.sh` therefore adds QEMU's `isa-debug-exit` device at port
0xF4: writing a value v there ends QEMU at once with the exit status
(v << 1) | 1. So 0 gives status 1 and means success; 1 gives status 3,
failure. `run.sh` maps the two back to 0 and 1. An odd status can only come
from this port; a hypervisor that crashed hard (a triple fault of its own)
makes QEMU exit with 0 under `-no-reboot`, which `run.sh` counts as a
failure, and anyway no `Verdict` line was printed.

The guest has a power-off port at 0xF4 too: its own, emulated. Its
`OUT` is intercepted like every other port (section 5) and never reaches
this one.

The barrier of the contract is `MFENCE`: every earlier load and store, to
memory or to a device, is globally visible before any later one (APM vol. 3,
"MFENCE"; vol. 2, 7.4 "Memory Barriers"). x86 keeps stores in order anyway,
so the fence mostly keeps the *compiler* from moving the VirtIO driver's
memory writes past its doorbell write, which the `"memory"` clobber does.
*/
#define DEBUG_EXIT_PORT 0xF4

_Noreturn void power_off(bool success)
{
    outl(DEBUG_EXIT_PORT, success ? 0 : 1);
    for (;;) // without the device (a QEMU started by hand), just stop here
        __asm__ volatile("cli; hlt");
}

void io_barrier(void)
{
    __asm__ volatile("mfence" ::: "memory");
}

/*
## 2. Time: the TSC and the local APIC timer

The hypervisor needs a timer of its own, one the guest cannot mask, for two
reasons: to pass the guest's timer interrupts on at the right moment, and
to stop a guest that outlives its time budget (`common.h`). On a PC that
timer is the **local APIC timer**, and the clock to read is the **TSC**.

The *local APIC* (Advanced Programmable Interrupt Controller) is each CPU's
own interrupt controller, a page of 32-bit registers at physical address
0xFEE0_0000 (APM vol. 2, 16.3 "Local APIC", and 16.4 "Local APIC Timer").
These are the registers this chapter uses, for the host and, emulated, for
the guest:

+--------------+------------------------+--------------------------------------+
| offset       | register               | bits                                 |
+==============+========================+======================================+
| 0x020        | ID                     | 31..24: this APIC's number           |
+--------------+------------------------+--------------------------------------+
| 0x030        | version                | 7..0 version, 23..16 highest LVT     |
|              |                        | entry                                |
+--------------+------------------------+--------------------------------------+
| 0x080        | TPR, task priority     | 7..4: interrupts of this class and   |
|              |                        | below wait                           |
+--------------+------------------------+--------------------------------------+
| 0x0B0        | EOI                    | write 0: the interrupt being handled |
|              |                        | is done                              |
+--------------+------------------------+--------------------------------------+
| 0x0F0        | SVR, spurious vector   | 8: APIC software-enabled; 7..0:      |
|              |                        | vector for spurious interrupts       |
+--------------+------------------------+--------------------------------------+
| 0x300, 0x310 | ICR, interrupt command | sends IPIs, INIT and startup to      |
|              |                        | other CPUs                           |
+--------------+------------------------+--------------------------------------+
| 0x320        | LVT timer              | 7..0 vector; 16 masked; 18..17 mode: |
|              |                        | 0 one-shot, 1 periodic               |
+--------------+------------------------+--------------------------------------+
| 0x350, 0x360 | LVT LINT0, LINT1       | 16 masked: the legacy PIC's and NMI  |
|              |                        | pins                                 |
+--------------+------------------------+--------------------------------------+
| 0x380        | initial count          | writing starts the countdown         |
+--------------+------------------------+--------------------------------------+
| 0x390        | current count          | counts down to 0                     |
+--------------+------------------------+--------------------------------------+
| 0x3E0        | divide configuration   | bits 3, 1, 0: 0b111 = by 1, else by  |
|              |                        | 2^(value + 1)                        |
+--------------+------------------------+--------------------------------------+

The timer counts down from the initial count at the APIC's clock divided by
the divide configuration, and interrupts with its vector at zero. QEMU's
APIC clock ticks once per nanosecond.

The **TSC** (time-stamp counter, read with `RDTSC`) counts up at a fixed,
unknown rate. We measure that rate once against the APIC timer (`time_init`)
and from then on use the TSC as the hypervisor's clock: it is cheap to read
and never stops. The guest may read it too (`RDTSC` is not intercepted), so
its clock is the same bare and virtualized.
*/
#define LAPIC_BASE 0xFEE00000UL
#define LAPIC_SIZE 0x1000UL
#define LAPIC_ID 0x020
#define LAPIC_VERSION 0x030
#define LAPIC_TPR 0x080
#define LAPIC_EOI 0x0B0
#define LAPIC_SVR 0x0F0
#define LAPIC_ICR_LOW 0x300
#define LAPIC_ICR_HIGH 0x310
#define LAPIC_LVT_TIMER 0x320
#define LAPIC_LVT_LINT0 0x350
#define LAPIC_LVT_LINT1 0x360
#define LAPIC_TIMER_INITIAL 0x380
#define LAPIC_TIMER_CURRENT 0x390
#define LAPIC_TIMER_DIVIDE 0x3E0

#define LAPIC_SVR_ENABLE (1U << 8)
#define LVT_MASKED (1U << 16)
#define LVT_TIMER_PERIODIC (1U << 17)
#define LVT_TIMER_MODE_MASK (3U << 17)
#define LAPIC_DIVIDE_BY_1 0xB

#define MSR_APIC_BASE 0x1B
#define APIC_BASE_BSP (1UL << 8)
#define APIC_BASE_ENABLE (1UL << 11)

/* The hypervisor's interrupt vectors: its timer, and the spurious vector
   (which must end in 0xF on older APICs; 0xFF does). 0..31 are the CPU's
   exceptions. */
#define HOST_TIMER_VECTOR 0x40
#define SPURIOUS_VECTOR 0xFF

static inline u32 lapic_read(u32 reg)
{
    return mmio_read32(LAPIC_BASE + reg);
}

static inline void lapic_write(u32 reg, u32 v)
{
    mmio_write32(LAPIC_BASE + reg, v);
}

/*
`time_init` switches the local APIC on (`SVR`, with the spurious vector),
masks the two legacy pins, which nothing here uses, and measures the TSC:
it starts the APIC timer counting down from its largest count, 2^32 - 1
ticks (4.3 s on QEMU), at divide 1 and takes two readings of the pair
(current count, TSC), one at the start and one once 10 000 000 ticks
(10 ms) have gone. The rate is the TSC ticks between the readings over the
APIC ticks between them. Reading
the pair in the same order both times matters: a read of the count can be
slow (under emulation it can wait for a lock QEMU holds), and whatever one
read costs, the other costs too, so the delays cancel. Waiting for the count
to reach 0 instead, as a first version did, counted the delay of the last
read as timer time, and made the rate up to 10% too high on a busy host:
the guest, which calibrates its own clock against the timer hvbook emulates,
would have seen a TSC that ran at the wrong speed. Starting from the
largest count, not from 10 ms' worth, gives the second reading seconds to
happen in: on a busy host QEMU's CPU thread can be away for milliseconds,
and a count that reached 0 meanwhile would say nothing. (A count found at 0
all the same cannot be trusted, and the measurement is made again.) Then
the count is stopped, and the timer set up for the hypervisor: one-shot,
unmasked, our vector. It is armed only later, by `host_timer_arm`.

With the rate known, converting between APIC ticks and TSC ticks is a
multiplication and a division, done in 128 bits so that neither can
overflow.
*/
#define CALIBRATION_TICKS 10000000U

static u64 tsc_per_calibration; /* TSC ticks in CALIBRATION_TICKS APIC ticks */
static u64 tsc_per_second;

static u64 apic_to_tsc(u64 ticks)
{
    return (u64)((unsigned __int128)ticks * tsc_per_calibration /
                 CALIBRATION_TICKS);
}

static u64 tsc_to_apic(u64 tsc)
{
    return (u64)((unsigned __int128)tsc * CALIBRATION_TICKS /
                 tsc_per_calibration);
}

static void time_init(void)
{
    lapic_write(LAPIC_SVR, LAPIC_SVR_ENABLE | SPURIOUS_VECTOR);
    lapic_write(LAPIC_LVT_LINT0, LVT_MASKED);
    lapic_write(LAPIC_LVT_LINT1, LVT_MASKED);
    lapic_write(LAPIC_TPR, 0);

    lapic_write(LAPIC_LVT_TIMER, LVT_MASKED | HOST_TIMER_VECTOR);
    lapic_write(LAPIC_TIMER_DIVIDE, LAPIC_DIVIDE_BY_1);
    for (int attempt = 1;; attempt++) {
        lapic_write(LAPIC_TIMER_INITIAL, 0xFFFFFFFF);
        u32 count0 = lapic_read(LAPIC_TIMER_CURRENT);
        u64 tsc0 = rdtsc();
        u32 count1;
        do
            count1 = lapic_read(LAPIC_TIMER_CURRENT);
        while (count1 != 0 && count0 - count1 < CALIBRATION_TICKS);
        u64 tsc1 = rdtsc();
        if (count1 != 0 && count0 > count1 && tsc1 > tsc0) {
            // TSC ticks per CALIBRATION_TICKS APIC ticks, in 128 bits.
            tsc_per_calibration =
                (u64)((unsigned __int128)(tsc1 - tsc0) * CALIBRATION_TICKS /
                      (count0 - count1));
            break;
        }
        if (attempt == 5)
            panic("cannot measure the TSC against the APIC timer "
                  "(does the TSC count?)");
    }
    tsc_per_second = apic_to_tsc(1000000000UL);

    lapic_write(LAPIC_TIMER_INITIAL, 0); // stopped
    lapic_write(LAPIC_LVT_TIMER, HOST_TIMER_VECTOR); // one-shot, unmasked
}

/*
`time_us`, the fourth item of the `common.h` contract, is the TSC in
microseconds. Before `time_init` has measured the TSC there is no rate to
convert with, and it reads 0; nothing asks for the time that early.
*/
u64 time_us(void)
{
    if (!tsc_per_second)
        return 0;
    return (u64)((unsigned __int128)rdtsc() * 1000000 / tsc_per_second);
}

/*
`host_timer_arm` sets the real timer to interrupt at TSC time `deadline`:
as many APIC ticks as there are until then, rounded up (an interrupt a
fraction of a tick early would find the deadline not yet come, and cost a
second exit), at least one, and never more than the 32-bit counter holds
(4.29 s at divide 1; `timer_tick` re-arms before then anyway).
*/
static void host_timer_arm(u64 deadline)
{
    u64 now = rdtsc();
    u64 ticks = deadline > now ? tsc_to_apic(deadline - now) + 1 : 1;
    if (ticks > 0xFFFFFFFFUL)
        ticks = 0xFFFFFFFFUL;
    lapic_write(LAPIC_TIMER_INITIAL, (u32)ticks);
}

/*
## 3. Nested page tables and guest memory

### The machine the guest sees

| guest-physical | what | how |
|---|---|---|
| 0x0000_0000 .. 0x00FF_FFFF | 16 MiB of RAM | mapped at set-up to host frames |
| 0xFEE0_0000 .. 0xFEE0_0FFF | the local APIC | emulated |
| 0xFFC0_0000 .. 0xFFFF_FFFF | flash, 4 MiB | emulated, read-only |
| ports 0x3F8 .. 0x3FF | the 16550 serial port | emulated |
| port 0xF4 | the power-off port (`isa-debug-exit`) | the guest's shutdown |
| anything else | nothing | a VM fault: reported, the VM stops |

The VirtIO disk, the I/O APIC, the PIC and the PIT all stay out of the
guest's reach. The guest kernel is loaded where its ELF file says: 1 MiB
and up, as for any Multiboot kernel.

The hypervisor itself lives at 1 MiB of the *host's* RAM, so guest RAM
cannot be there: it is 16 MiB from the page allocator, somewhere above the
hypervisor. GPA and host address differ, and only the nested tables know how
they correspond.
*/
#define GUEST_RAM_GPA 0x0UL
#define GUEST_RAM_SIZE (16 * MiB)
#define FLASH_GPA 0xFFC00000UL
#define FLASH_SIZE (4 * MiB)
#define GUEST_LAPIC_GPA LAPIC_BASE

/* The host's own flash: the same 4 MiB window, which run.sh fills with the
   image that holds "pfld". */
#define HOST_FLASH_BASE 0xFFC00000UL

/* microvm's VirtIO-MMIO slots: 24 of them, 512 bytes apart. */
#define VIRTIO_MMIO_BASE 0xFEB00000UL
#define VIRTIO_MMIO_STRIDE 0x200UL
#define VIRTIO_MMIO_SLOTS 24

/*
### The nested page tables

Nested tables have exactly the format of the host's own long-mode tables
(APM vol. 2, 15.25.1 "Traditional (Legacy) Paging", 5.3 "Long-Mode Page
Translation"): four levels of 512 eight-byte entries, each level resolving
9 bits of the GPA:

    GPA bit   47 ..... 39 | 38 ..... 30 | 29 ..... 21 | 20 ..... 12 | 11 .. 0
              PML4        | PDPT        | PD          | PT          | offset
              (512 GiB)   | (1 GiB)     | (2 MiB)     | (4 KiB)     |

An entry, as hvbook fills it:

+--------+---------+-----------------+-----------------------------------------+
| bit    | name    | value           | meaning                                 |
+========+=========+=================+=========================================+
| 0      | P       | 1               | present                                 |
+--------+---------+-----------------+-----------------------------------------+
| 1      | R/W     | 1               | writable                                |
+--------+---------+-----------------+-----------------------------------------+
| 2      | U/S     | 1               | user: **required**, nested walks are    |
|        |         |                 | checked as user accesses (15.25.5       |
|        |         |                 | "Nested Walks")                         |
+--------+---------+-----------------+-----------------------------------------+
| 5      | A       | 1               | accessed, set up front                  |
+--------+---------+-----------------+-----------------------------------------+
| 6      | D       | 1               | dirty, set up front (in a leaf)         |
+--------+---------+-----------------+-----------------------------------------+
| 7      | PS      | 1 in a PD entry | a 2 MiB page                            |
+--------+---------+-----------------+-----------------------------------------+
| 51..12 | address |                 | the next table, or the host frame       |
+--------+---------+-----------------+-----------------------------------------+

Guest RAM is mapped with 2 MiB pages: eight PD entries map all 16 MiB, and
each TLB entry covers 512 times more than a 4 KiB one would. Nothing else
is ever mapped: the devices are emulated, so every access to them must
fault.
*/
#define NPT_P (1UL << 0)
#define NPT_RW (1UL << 1)
#define NPT_US (1UL << 2)
#define NPT_A (1UL << 5)
#define NPT_D (1UL << 6)
#define NPT_PS (1UL << 7)
#define NPT_ADDR_MASK 0x000FFFFFFFFFF000UL

#define NPT_TABLE (NPT_P | NPT_RW | NPT_US | NPT_A)
#define NPT_RAM_2M (NPT_P | NPT_RW | NPT_US | NPT_A | NPT_D | NPT_PS)

static u64 *npt_root; /* the PML4 */

/*
`npt_map` maps one 2 MiB page at `gpa` to the host frame at `hpa`, creating
the tables on the way. It panics rather than overwrite an existing mapping,
which would be a bug.

**TLB rules.** The CPU caches nested translations in its TLB, tagged with
the guest's *ASID* (address space identifier, 15.16 "TLB Control"). hvbook
gives its guest ASID 1 (0 is the host's, and `VMRUN` refuses it) and asks
for a full flush with `TLB_CONTROL` = 1 on the first `VMRUN` (15.16.1
"TLB Flush"). After that the nested tables never change (devices are
emulated, never mapped), so no other flush is ever needed; a hypervisor
that changed or removed a nested entry would have to flush that ASID again,
or move the guest to a fresh ASID.
*/
static void npt_map(u64 gpa, u64 hpa)
{
    u64 *table = npt_root;
    for (int level = 3; level > 1; level--) {
        u64 index = (gpa >> (12 + 9 * level)) & 0x1ff;
        if (!(table[index] & NPT_P))
            table[index] = (u64)(uintptr_t)page_alloc(1, PAGE_SIZE) | NPT_TABLE;
        else if (table[index] & NPT_PS)
            panic("NPT: GPA 0x%lx is already inside a larger mapping", gpa);
        table = (u64 *)(uintptr_t)(table[index] & NPT_ADDR_MASK);
    }
    u64 index = (gpa >> 21) & 0x1ff;
    if (table[index] & NPT_P)
        panic("NPT: GPA 0x%lx is mapped twice", gpa);
    table[index] = hpa | NPT_RAM_2M;
}

/*
`guest_ram_setup` allocates the guest's 16 MiB in one piece, 2 MiB aligned
so that 2 MiB pages can map it, and maps it. Its host address, `guest_ram`,
is kept: the loader writes the kernel through it, and the instruction
fetcher of section 5 reads the guest's page tables and code through it.
*/
static u8 *guest_ram;

static void guest_ram_setup(void)
{
    npt_root = page_alloc(1, PAGE_SIZE);
    guest_ram = page_alloc(GUEST_RAM_SIZE / PAGE_SIZE, 2 * MiB);
    for (u64 off = 0; off < GUEST_RAM_SIZE; off += 2 * MiB)
        npt_map(GUEST_RAM_GPA + off, (uintptr_t)guest_ram + off);
}

/* The host address of `len` bytes of guest RAM at `gpa`, or NULL if any of
   them is outside guest RAM. (A GPA below the start of RAM makes `off`
   wrap around to a huge number, which the same test rejects.) */
static void *guest_buffer(u64 gpa, u64 len)
{
    u64 off = gpa - GUEST_RAM_GPA;
    if (off > GUEST_RAM_SIZE || len > GUEST_RAM_SIZE - off)
        return NULL;
    return guest_ram + off;
}

/*
## 4. The virtual CPU

### Is there SVM at all?

Three questions, asked in the order of APM vol. 2, 15.4 "Enabling SVM":

1. `CPUID` 0x8000_0001, `ECX` bit 2 (`SVM`): does the CPU have SVM?
2. `CPUID` 0x8000_000A, `EDX` bit 0 (`NP`): does it have nested paging?
   (Without it a hypervisor must build *shadow* page tables, which is a
   chapter of its own.)
3. MSR `VM_CR` (0xC001_0114), bit 4 (`SVMDIS`): has firmware locked SVM
   off? Then setting `EFER.SVME` would fault.

QEMU emulates SVM only when asked (`-cpu max,+svm`), and never Intel's VMX,
so each "no" comes with the way to start QEMU right.
*/
#define CPUID_EXT_FEATURES 0x80000001
#define CPUID_EXT_ECX_SVM (1U << 2)
#define CPUID_SVM_FEATURES 0x8000000A
#define CPUID_SVM_EDX_NP (1U << 0)
#define CPUID_FEATURES 1
#define CPUID_ECX_VMX (1U << 5)
#define CPUID_ECX_X2APIC (1U << 21)
#define CPUID_ECX_TSC_DEADLINE (1U << 24)

#define MSR_VM_CR 0xC0010114
#define VM_CR_SVMDIS (1UL << 4)
#define MSR_VM_HSAVE_PA 0xC0010117
#define MSR_EFER 0xC0000080
#define EFER_LME (1UL << 8)
#define EFER_LMA (1UL << 10)
#define EFER_SVME (1UL << 12)

static const char *svm_missing(void)
{
    if (cpuid(0x80000000, 0).eax < CPUID_SVM_FEATURES ||
        !(cpuid(CPUID_EXT_FEATURES, 0).ecx & CPUID_EXT_ECX_SVM))
        return "this CPU has no SVM (AMD-V), so it cannot run a virtual "
               "machine";
    if (!(cpuid(CPUID_SVM_FEATURES, 0).edx & CPUID_SVM_EDX_NP))
        return "this CPU has SVM but no nested paging, which hvbook needs";
    if (rdmsr(MSR_VM_CR) & VM_CR_SVMDIS)
        return "SVM is disabled on this CPU (VM_CR.SVMDIS is set)";
    return NULL;
}

/*
### Switching SVM on

Two steps (15.4, and 15.30.4 "VM_HSAVE_PA MSR"): set `EFER.SVME` (bit 12),
which makes the SVM instructions legal, and tell the CPU where `VMRUN` may
save the host's state, a 4 KiB page whose physical address goes into MSR
`VM_HSAVE_PA` (0xC001_0117). The page is the CPU's; we never look into it.
*/
static void svm_enable(void)
{
    wrmsr(MSR_EFER, rdmsr(MSR_EFER) | EFER_SVME);
    wrmsr(MSR_VM_HSAVE_PA, (uintptr_t)page_alloc(1, PAGE_SIZE));
}

/*
### The VMCB

The VMCB is one 4 KiB page: the control area from offset 0, the state save
area from 0x400 (APM vol. 2, appendix B, tables B-1 and B-2). Only the
fields hvbook uses, and a few neighbours it leaves at zero, have names in
`struct vmcb`; the rest are reserved and stay zero.

+----------------+------------------------------+------------------------------+
| offset         | field                        | what hvbook puts there, or   |
|                |                              | reads                        |
+================+==============================+==============================+
| 0x00C, 0x010   | intercept vectors 3 and 4    | which instructions and       |
|                |                              | events exit (table below)    |
+----------------+------------------------------+------------------------------+
| 0x040          | `IOPM_BASE_PA`               | the I/O permission map       |
+----------------+------------------------------+------------------------------+
| 0x048          | `MSRPM_BASE_PA`              | the MSR permission map       |
+----------------+------------------------------+------------------------------+
| 0x058          | `GUEST_ASID`                 | 1                            |
+----------------+------------------------------+------------------------------+
| 0x05C          | `TLB_CONTROL`                | 1 on the first run (flush    |
|                |                              | all), then 0                 |
+----------------+------------------------------+------------------------------+
| 0x060          | `V_TPR`, `V_IRQ`,            | the virtual interrupt we     |
|                | `V_INTR_PRIO`,               | inject                       |
|                | `V_INTR_MASKING`,            |                              |
|                | `V_INTR_VECTOR`              |                              |
+----------------+------------------------------+------------------------------+
| 0x068          | `INT_STATE`                  | bit 0: the guest is in an    |
|                |                              | interrupt shadow; cleared    |
|                |                              | when hvbook skips an         |
|                |                              | instruction                  |
+----------------+------------------------------+------------------------------+
| 0x070          | `EXITCODE`                   | why the guest exited         |
+----------------+------------------------------+------------------------------+
| 0x078, 0x080   | `EXITINFO1`, `EXITINFO2`     | details, per exit code       |
+----------------+------------------------------+------------------------------+
| 0x088          | `EXITINTINFO`                | an event the exit            |
|                |                              | interrupted                  |
+----------------+------------------------------+------------------------------+
| 0x090          | `NP_ENABLE`                  | bit 0: nested paging on      |
+----------------+------------------------------+------------------------------+
| 0x0A8          | `EVENTINJ`                   | an exception to inject on    |
|                |                              | the next `VMRUN`             |
+----------------+------------------------------+------------------------------+
| 0x0B0          | `N_CR3`                      | the nested tables' PML4      |
+----------------+------------------------------+------------------------------+
| 0x0C0          | `VMCB_CLEAN`                 | 0: nothing cached, the CPU   |
|                |                              | reloads every field (15.15   |
|                |                              | "VMCB State Caching")        |
+----------------+------------------------------+------------------------------+
| 0x400 .. 0x49F | `ES`, `CS`, `SS`, `DS`,      | selector, attributes, limit, |
|                | `FS`, `GS`, `GDTR`, `LDTR`,  | base                         |
|                | `IDTR`, `TR`                 |                              |
+----------------+------------------------------+------------------------------+
| 0x4CB          | `CPL`                        | the guest's ring             |
+----------------+------------------------------+------------------------------+
| 0x4D0          | `EFER`                       | the guest's (with `SVME`,    |
|                |                              | which `VMRUN` insists on)    |
+----------------+------------------------------+------------------------------+
| 0x548 .. 0x578 | `CR4`, `CR3`, `CR0`, `DR7`,  | the guest's                  |
|                | `DR6`, `RFLAGS`, `RIP`       |                              |
+----------------+------------------------------+------------------------------+
| 0x5D8, 0x5F8   | `RSP`, `RAX`                 | the guest's                  |
+----------------+------------------------------+------------------------------+
| 0x600 .. 0x640 | `STAR` .. `CR2`              | the guest's, moved by        |
|                |                              | `VMLOAD`/`VMSAVE` (and `CR2` |
|                |                              | by `VMRUN`)                  |
+----------------+------------------------------+------------------------------+
| 0x668          | `G_PAT`                      | the guest's page attribute   |
|                |                              | table                        |
+----------------+------------------------------+------------------------------+

A segment in the save area keeps the *hidden* part of a segment register,
the descriptor the CPU loaded, with the attribute bits packed into 12 bits:
bits 7..0 are the descriptor's type, `S`, `DPL` and `P`, bits 11..8 its
`AVL`, `L`, `D/B` and `G` (B-2, "Segment attributes").
*/
struct vmcb_segment {
    u16 selector;
    u16 attrib;
    u32 limit;
    u64 base;
};

struct vmcb {
    u32 intercept_cr;           /* 0x000 */
    u32 intercept_dr;           /* 0x004 */
    u32 intercept_exceptions;   /* 0x008 */
    u32 intercept_misc1;        /* 0x00C */
    u32 intercept_misc2;        /* 0x010 */
    u8 reserved1[0x040 - 0x014];
    u64 iopm_base_pa;           /* 0x040 */
    u64 msrpm_base_pa;          /* 0x048 */
    u64 tsc_offset;             /* 0x050 */
    u32 guest_asid;             /* 0x058 */
    u8 tlb_control;             /* 0x05C */
    u8 reserved2[3];
    u64 int_ctl;                /* 0x060 */
    u64 int_state;              /* 0x068 */
    u64 exitcode;               /* 0x070 */
    u64 exitinfo1;              /* 0x078 */
    u64 exitinfo2;              /* 0x080 */
    u64 exitintinfo;            /* 0x088 */
    u64 np_enable;              /* 0x090 */
    u8 reserved3[0x0A8 - 0x098];
    u64 eventinj;               /* 0x0A8 */
    u64 n_cr3;                  /* 0x0B0 */
    u64 virt_ext;               /* 0x0B8 */
    u32 clean;                  /* 0x0C0 */
    u32 reserved4;
    u64 next_rip;               /* 0x0C8 */
    u8 reserved5[0x400 - 0x0D0];

    /* 0x400 */
    struct vmcb_segment es, cs, ss, ds, fs, gs, gdtr, ldtr, idtr, tr;
    u8 reserved6[0x4CB - 0x4A0];
    u8 cpl;                     /* 0x4CB */
    u32 reserved7;
    u64 efer;                   /* 0x4D0 */
    u8 reserved8[0x548 - 0x4D8];
    u64 cr4, cr3, cr0, dr7, dr6, rflags, rip; /* 0x548 */
    u8 reserved9[0x5D8 - 0x580];
    u64 rsp;                    /* 0x5D8 */
    u8 reserved10[0x5F8 - 0x5E0];
    u64 rax;                    /* 0x5F8 */
    u64 star, lstar, cstar, sfmask, kernel_gs_base;   /* 0x600 */
    u64 sysenter_cs, sysenter_esp, sysenter_eip, cr2; /* 0x628 */
    u8 reserved11[0x668 - 0x648];
    u64 g_pat;                  /* 0x668 */
    u8 reserved12[0x1000 - 0x670];
};
_Static_assert(offsetof(struct vmcb, iopm_base_pa) == 0x040, "VMCB layout");
_Static_assert(offsetof(struct vmcb, int_ctl) == 0x060, "VMCB layout");
_Static_assert(offsetof(struct vmcb, eventinj) == 0x0A8, "VMCB layout");
_Static_assert(offsetof(struct vmcb, es) == 0x400, "VMCB layout");
_Static_assert(offsetof(struct vmcb, tr) == 0x490, "VMCB layout");
_Static_assert(offsetof(struct vmcb, cpl) == 0x4CB, "VMCB layout");
_Static_assert(offsetof(struct vmcb, efer) == 0x4D0, "VMCB layout");
_Static_assert(offsetof(struct vmcb, rip) == 0x578, "VMCB layout");
_Static_assert(offsetof(struct vmcb, rsp) == 0x5D8, "VMCB layout");
_Static_assert(offsetof(struct vmcb, rax) == 0x5F8, "VMCB layout");
_Static_assert(offsetof(struct vmcb, cr2) == 0x640, "VMCB layout");
_Static_assert(offsetof(struct vmcb, g_pat) == 0x668, "VMCB layout");
_Static_assert(sizeof(struct vmcb) == 4096, "VMCB layout");

/*
### The intercepts

Everything not intercepted runs in the guest at full speed. hvbook
intercepts exactly this, each bit from APM vol. 2, B-1 (and the
section that explains it):

+-------------+-------------------------------+--------------------------------+
| vector, bit | intercept                     | why                            |
+=============+===============================+================================+
| 3, 0        | `INTR`                        | physical interrupts are the    |
|             |                               | hypervisor's: its timer ends   |
|             |                               | the guest's turn (15.13        |
|             |                               | "Interrupt Intercepts")        |
+-------------+-------------------------------+--------------------------------+
| 3, 18       | `CPUID`                       | the guest is told the truth    |
|             |                               | about its CPU, minus SVM: no   |
|             |                               | nested virtualization (15.9)   |
+-------------+-------------------------------+--------------------------------+
| 3, 22       | `INVD`                        | it would throw away the        |
|             |                               | caches' unwritten lines, the   |
|             |                               | hypervisor's too; skipped, as  |
|             |                               | KVM does (APM vol. 3, "INVD")  |
+-------------+-------------------------------+--------------------------------+
| 3, 24       | `HLT`                         | a halted guest waits for *its* |
|             |                               | timer, through the hypervisor  |
|             |                               | (15.9)                         |
+-------------+-------------------------------+--------------------------------+
| 3, 26       | `INVLPGA`                     | an SVM instruction: the guest  |
|             |                               | has no SVM, so it gets `#UD`   |
+-------------+-------------------------------+--------------------------------+
| 3, 27       | `IOIO_PROT`                   | port I/O, through an I/O       |
|             |                               | permission map that passes     |
|             |                               | **nothing** (15.10)            |
+-------------+-------------------------------+--------------------------------+
| 3, 28       | `MSR_PROT`                    | MSRs, through an MSR           |
|             |                               | permission map: `EFER`, the    |
|             |                               | APIC base and anything else    |
|             |                               | that would reach the host's    |
|             |                               | state (15.11)                  |
+-------------+-------------------------------+--------------------------------+
| 3, 31       | `SHUTDOWN`                    | a triple fault would reset the |
|             |                               | whole machine; it stops the VM |
|             |                               | instead (15.14.3 "Shutdown     |
|             |                               | Intercept")                    |
+-------------+-------------------------------+--------------------------------+
| 4, 0        | `VMRUN`                       | required: `VMRUN` fails        |
|             |                               | without it (15.5.1)            |
+-------------+-------------------------------+--------------------------------+
| 4, 1        | `VMMCALL`                     | the guest's hypercall (15.18   |
|             |                               | "VMMCALL Instruction")         |
+-------------+-------------------------------+--------------------------------+
| 4, 2..6     | `VMLOAD`, `VMSAVE`, `STGI`,   | SVM instructions: `#UD` for    |
|             | `CLGI`, `SKINIT`              | the guest, as on a CPU without |
|             |                               | SVM                            |
+-------------+-------------------------------+--------------------------------+

One crack remains, and it is worth knowing: because the guest's `EFER.SVME`
must be set, the CPU checks an SVM instruction's operand before it looks at
the intercept, so a `VMLOAD` or `VMSAVE` with an unaligned address in `RAX`
raises `#GP` where a CPU without SVM would raise `#UD`. A guest that goes
looking can tell.

No exception is intercepted: the guest's page faults, breakpoints and
divide errors are its own, delivered through its own IDT as on bare metal.
Nested page faults (`NPF`, 15.25.6) need no intercept bit: with nested
paging on, they always exit.

**`V_INTR_MASKING`** (bit 24 at 0x060) is set, which splits the interrupt
flag in two (15.21.1): the guest's `RFLAGS.IF` and `CR8` now only mask the
*virtual* interrupts we inject, while physical interrupts are governed by
the host's `IF`, which `vcpu_enter` sets just before `VMRUN`. A guest that
runs with interrupts off therefore still cannot keep the CPU from its
hypervisor.
*/
#define INTERCEPT_INTR (1U << 0)
#define INTERCEPT_CPUID (1U << 18)
#define INTERCEPT_INVD (1U << 22)
#define INTERCEPT_HLT (1U << 24)
#define INTERCEPT_INVLPGA (1U << 26)
#define INTERCEPT_IOIO_PROT (1U << 27)
#define INTERCEPT_MSR_PROT (1U << 28)
#define INTERCEPT_SHUTDOWN (1U << 31)

#define INTERCEPT_VMRUN (1U << 0)
#define INTERCEPT_VMMCALL (1U << 1)
#define INTERCEPT_VMLOAD (1U << 2)
#define INTERCEPT_VMSAVE (1U << 3)
#define INTERCEPT_STGI (1U << 4)
#define INTERCEPT_CLGI (1U << 5)
#define INTERCEPT_SKINIT (1U << 6)

#define V_TPR_MASK 0xFUL
#define V_IRQ (1UL << 8)
#define V_INTR_PRIO_SHIFT 16
#define V_INTR_PRIO_MASK (0xFUL << V_INTR_PRIO_SHIFT)
#define V_INTR_MASKING (1UL << 24)
#define V_INTR_VECTOR_SHIFT 32
#define V_INTR_VECTOR_MASK (0xFFUL << V_INTR_VECTOR_SHIFT)

#define INT_STATE_SHADOW (1UL << 0)
#define RFLAGS_IF (1UL << 9)
#define RFLAGS_RESERVED1 (1UL << 1)

/*
### The permission maps

**The I/O permission map** (15.10.1 "I/O Permissions Map") has one bit per
port, 65536 bits, plus a few more for accesses that run past port 0xFFFF:
12 KiB in all, three contiguous pages. A 1 intercepts. hvbook sets every
bit, so *every* `IN` and `OUT` exits and is judged by `handle_io`.

**The MSR permission map** (15.11 "MSR Intercepts") has two bits per MSR,
read then write, for three ranges of 8192 MSRs each, 2 KiB apiece; MSRs
outside the three ranges are always intercepted:

| bytes | MSRs |
|---|---|
| 0x0000 .. 0x07FF | 0x0000_0000 .. 0x0000_1FFF |
| 0x0800 .. 0x0FFF | 0xC000_0000 .. 0xC000_1FFF |
| 0x1000 .. 0x17FF | 0xC001_0000 .. 0xC001_1FFF |

8 KiB, two pages. hvbook starts with every bit set and clears the bits of
the MSRs whose guest value lives in the VMCB and is swapped by
`VMLOAD`/`VMSAVE` (the `SYSCALL` and `SYSENTER` MSRs, `FS`, `GS` and
`KernelGSBase` bases), plus *reading* the TSC. Everything else is decided
by `handle_msr`.
*/
#define IOPM_PAGES 3
#define MSRPM_PAGES 2

#define MSR_TSC 0x10
#define MSR_SYSENTER_CS 0x174
#define MSR_SYSENTER_ESP 0x175
#define MSR_SYSENTER_EIP 0x176
#define MSR_PAT 0x277
#define MSR_STAR 0xC0000081
#define MSR_LSTAR 0xC0000082
#define MSR_CSTAR 0xC0000083
#define MSR_SFMASK 0xC0000084
#define MSR_FS_BASE 0xC0000100
#define MSR_GS_BASE 0xC0000101
#define MSR_KERNEL_GS_BASE 0xC0000102

static u8 *msrpm;

static void msr_pass(u32 msr, bool read, bool write)
{
    u32 index;
    if (msr < 0x2000)
        index = msr;
    else if (msr - 0xC0000000U < 0x2000)
        index = 0x2000 + (msr - 0xC0000000U);
    else
        index = 0x4000 + (msr - 0xC0010000U);
    u32 bit = index * 2;
    if (read)
        msrpm[bit / 8] &= (u8)~(1U << (bit % 8));
    if (write)
        msrpm[bit / 8] &= (u8)~(2U << (bit % 8));
}

/*
### The registers the VMCB does not hold

`struct vcpu` keeps the guest's general registers while the hypervisor
runs, in the CPU's own numbering (0 `RAX`, 1 `RCX`, 2 `RDX`, 3 `RBX`, 4
`RSP`, 5 `RBP`, 6 `RSI`, 7 `RDI`, 8..15 `R8`..`R15`), the numbering the
instruction decoder of section 5 finds in the guest's instructions. `RAX`
and `RSP` are in the VMCB instead; `guest_reg` hides the difference.
`start/x86_64.S` depends on the layout.
*/
struct vcpu {
    u64 gpr[16];        /* RAX and RSP unused: they are in the VMCB */
    u64 vmcb_pa;        /* the guest's VMCB */
    u64 host_save_pa;   /* where vcpu_enter VMSAVEs the host's FS, GS, ... */
};
_Static_assert(offsetof(struct vcpu, vmcb_pa) == 128,
               "start/x86_64.S expects vmcb_pa at 128");

/* start/x86_64.S: returns at the next #VMEXIT */
void vcpu_enter(struct vcpu *v);

static struct vcpu vcpu;
static struct vmcb *vmcb;

#define REG_RAX 0
#define REG_RCX 1
#define REG_RDX 2
#define REG_RBX 3
#define REG_RSP 4

static u64 *guest_reg(int n)
{
    if (n == REG_RAX)
        return &vmcb->rax;
    if (n == REG_RSP)
        return &vmcb->rsp;
    return &vcpu.gpr[n];
}

/*
### The state the guest starts in

The guest is started exactly as a Multiboot loader starts a kernel
(Multiboot 0.6.96, 3.2 "Machine state"), so the very same ELF file runs
bare on QEMU:

+-------------------------+-------------------------+--------------------------+
| register                | value                   | why                      |
+=========================+=========================+==========================+
| `CS`                    | selector 0x10, base 0,  | flat 32-bit code:        |
|                         | limit 4 GiB, attributes | present, ring 0,         |
|                         | 0xC9B                   | execute/read, `D` = 1,   |
|                         |                         | `G` = 1                  |
+-------------------------+-------------------------+--------------------------+
| `DS`, `ES`, `FS`, `GS`, | selector 0x18, base 0,  | flat 32-bit data,        |
| `SS`                    | limit 4 GiB, attributes | read/write               |
|                         | 0xC93                   |                          |
+-------------------------+-------------------------+--------------------------+
| `GDTR`, `IDTR`          | base 0, limit 0         | undefined for a          |
|                         |                         | Multiboot kernel: it     |
|                         |                         | loads its own            |
+-------------------------+-------------------------+--------------------------+
| `TR`                    | attributes 0x8B         | a busy 32-bit TSS, as    |
|                         |                         | the CPU needs some `TR`; |
|                         |                         | the guest loads its own  |
|                         |                         | if it wants one          |
+-------------------------+-------------------------+--------------------------+
| `CR0`                   | 0x11: `PE` and `ET`     | protected mode, no       |
|                         |                         | paging                   |
+-------------------------+-------------------------+--------------------------+
| `CR3`, `CR4`            | 0                       |                          |
+-------------------------+-------------------------+--------------------------+
| `EFER`                  | `SVME` only             | `VMRUN` refuses a guest  |
|                         |                         | `EFER` without it        |
|                         |                         | (15.5.1); the guest      |
|                         |                         | never sees the bit       |
|                         |                         | (`handle_msr`)           |
+-------------------------+-------------------------+--------------------------+
| `RFLAGS`                | 0x2                     | `IF` = 0, bit 1 is       |
|                         |                         | always 1                 |
+-------------------------+-------------------------+--------------------------+
| `EAX`                   | 0x2BAD_B002             | "a Multiboot loader      |
|                         |                         | started you"             |
+-------------------------+-------------------------+--------------------------+
| `EBX`                   | 0x9000                  | the Multiboot            |
|                         |                         | information hvbook       |
|                         |                         | builds there             |
+-------------------------+-------------------------+--------------------------+
| `RIP`                   | the ELF entry point     |                          |
+-------------------------+-------------------------+--------------------------+
| `DR6`, `DR7`, `G_PAT`   | 0xFFFF_0FF0, 0x400,     | their reset values       |
|                         | 0x0007_0406_0007_0406   |                          |
+-------------------------+-------------------------+--------------------------+

The Multiboot information (Multiboot 0.6.96, 3.3 "Boot information
format") that the guest finds at `EBX` has only its memory fields filled,
and `flags` bit 0 says so: `mem_lower` = 640 (KiB of conventional memory)
and `mem_upper` = the KiB of RAM above 1 MiB, 15360 for 16 MiB.

Selectors 0x10 and 0x18 are what QEMU's own Multiboot loader uses; the
hidden parts (base, limit, attributes) are what actually count until the
guest loads its own GDT.
*/
#define MULTIBOOT_BOOTLOADER_MAGIC 0x2BADB002U
#define MULTIBOOT_INFO_MEMORY (1U << 0)
#define MULTIBOOT_INFO_CMDLINE (1U << 2)
#define GUEST_MBI_GPA 0x9000UL

struct multiboot_info {
    u32 flags;
    u32 mem_lower, mem_upper;
    u32 boot_device;
    u32 cmdline;
    u32 rest[23];
};

#define SEG_CODE32 0xC9B
#define SEG_DATA32 0xC93
#define SEG_TSS32_BUSY 0x8B
#define CR0_PE (1UL << 0)
#define CR0_ET (1UL << 4)
#define CR0_PG (1UL << 31)
#define CR4_LA57 (1UL << 12)
#define DR6_RESET 0xFFFF0FF0UL
#define DR7_RESET 0x400UL
#define PAT_RESET 0x0007040600070406UL
#define GUEST_ASID 1
#define TLB_CONTROL_FLUSH_ALL 1

static void vcpu_setup(u64 entry)
{
    vmcb = page_alloc(1, PAGE_SIZE);
    vcpu.vmcb_pa = (uintptr_t)vmcb;
    vcpu.host_save_pa = (uintptr_t)page_alloc(1, PAGE_SIZE);

    u8 *iopm = page_alloc(IOPM_PAGES, PAGE_SIZE);
    memset(iopm, 0xFF, IOPM_PAGES * PAGE_SIZE);
    msrpm = page_alloc(MSRPM_PAGES, PAGE_SIZE);
    memset(msrpm, 0xFF, MSRPM_PAGES * PAGE_SIZE);
    static const u32 passed[] = {
        MSR_SYSENTER_CS, MSR_SYSENTER_ESP, MSR_SYSENTER_EIP,
        MSR_STAR, MSR_LSTAR, MSR_CSTAR, MSR_SFMASK,
        MSR_FS_BASE, MSR_GS_BASE, MSR_KERNEL_GS_BASE};
    for (size_t i = 0; i < ARRAY_SIZE(passed); i++)
        msr_pass(passed[i], true, true);
    msr_pass(MSR_TSC, true, false);

    vmcb->intercept_misc1 = INTERCEPT_INTR | INTERCEPT_CPUID |
                            INTERCEPT_INVD | INTERCEPT_HLT |
                            INTERCEPT_INVLPGA | INTERCEPT_IOIO_PROT |
                            INTERCEPT_MSR_PROT | INTERCEPT_SHUTDOWN;
    vmcb->intercept_misc2 = INTERCEPT_VMRUN | INTERCEPT_VMMCALL |
                            INTERCEPT_VMLOAD | INTERCEPT_VMSAVE |
                            INTERCEPT_STGI | INTERCEPT_CLGI | INTERCEPT_SKINIT;
    vmcb->iopm_base_pa = (uintptr_t)iopm;
    vmcb->msrpm_base_pa = (uintptr_t)msrpm;
    vmcb->guest_asid = GUEST_ASID;
    vmcb->tlb_control = TLB_CONTROL_FLUSH_ALL;
    vmcb->int_ctl = V_INTR_MASKING;
    vmcb->np_enable = 1;
    vmcb->n_cr3 = (uintptr_t)npt_root;

    const struct vmcb_segment code = {0x10, SEG_CODE32, 0xFFFFFFFF, 0};
    const struct vmcb_segment data = {0x18, SEG_DATA32, 0xFFFFFFFF, 0};
    vmcb->cs = code;
    vmcb->ds = vmcb->es = vmcb->fs = vmcb->gs = vmcb->ss = data;
    vmcb->tr = (struct vmcb_segment){0, SEG_TSS32_BUSY, 0x67, 0};
    vmcb->cpl = 0;
    vmcb->efer = EFER_SVME;
    vmcb->cr0 = CR0_PE | CR0_ET;
    vmcb->dr6 = DR6_RESET;
    vmcb->dr7 = DR7_RESET;
    vmcb->g_pat = PAT_RESET;
    vmcb->rflags = RFLAGS_RESERVED1;
    vmcb->rip = entry;
    vmcb->rax = MULTIBOOT_BOOTLOADER_MAGIC;
    vcpu.gpr[REG_RBX] = GUEST_MBI_GPA;

    struct multiboot_info *mbi = guest_buffer(GUEST_MBI_GPA, sizeof(*mbi));
    memset(mbi, 0, sizeof(*mbi));
    mbi->flags = MULTIBOOT_INFO_MEMORY;
    mbi->mem_lower = 640;
    mbi->mem_upper = (u32)((GUEST_RAM_SIZE - 1 * MiB) / 1024);
}

/*
## 5. The run loop and the VM exits

Everything so far was preparation. The run loop is the hypervisor: enter
the guest, wait for it to exit, handle the exit, enter again.

    +--> vcpu_enter: VMRUN -----------------------------------+
    |                                                         | the guest runs
    |    #VMEXIT: EXITCODE in the VMCB <----------------------+
    |        |
    |        +-- INTR (0x60)               -> timer_tick -> inject_timer
    |        +-- VMMCALL (0x81)            -> handle_hypercall
    |        +-- IOIO (0x7B)               -> handle_io: serial port, power-off
    |        +-- CPUID, MSR (0x72, 0x7C)   -> handle_cpuid, handle_msr
    |        +-- HLT (0x78)                -> wait for the guest's timer
    |        +-- INVD (0x76)               -> skipped
    |        +-- NPF (0x400)               -> handle_stage2_fault
    |        +-- VMRUN .. SKINIT, INVLPGA  -> #UD for the guest
    |        +-- SHUTDOWN, -1, the rest    -> report, stop
    |        |
    +--------+ (unless the VM stopped)

The exit codes (APM vol. 2, appendix C "SVM Intercept Exit Codes"):
*/
#define VMEXIT_INTR 0x60
#define VMEXIT_CPUID 0x72
#define VMEXIT_INVD 0x76
#define VMEXIT_HLT 0x78
#define VMEXIT_INVLPGA 0x7A
#define VMEXIT_IOIO 0x7B
#define VMEXIT_MSR 0x7C
#define VMEXIT_SHUTDOWN 0x7F
#define VMEXIT_VMRUN 0x80
#define VMEXIT_VMMCALL 0x81
#define VMEXIT_VMLOAD 0x82
#define VMEXIT_VMSAVE 0x83
#define VMEXIT_STGI 0x84
#define VMEXIT_CLGI 0x85
#define VMEXIT_SKINIT 0x86
#define VMEXIT_NPF 0x400
#define VMEXIT_INVALID 0xFFFFFFFFU /* -1, compared in 32 bits: see below */

enum exit_reason {
    EXIT_VMMCALL,
    EXIT_SERIAL,
    EXIT_POWER_OFF,
    EXIT_CPUID,
    EXIT_MSR,
    EXIT_HLT,
    EXIT_INVD,
    EXIT_TIMER_INTERRUPT,
    EXIT_HOST_INTERRUPT,
    EXIT_LAPIC,
    EXIT_FLASH,
    EXIT_SVM_INSTRUCTION,
    EXIT_REFUSED_IO,
    EXIT_REFUSED_FAULT,
    EXIT_UNEXPECTED,
    EXIT_REASONS
};

static const char *const exit_names[EXIT_REASONS] = {
    [EXIT_VMMCALL] = "VMMCALL",
    [EXIT_SERIAL] = "I/O: serial port (emulated)",
    [EXIT_POWER_OFF] = "I/O: power-off port",
    [EXIT_CPUID] = "CPUID",
    [EXIT_MSR] = "MSR",
    [EXIT_HLT] = "HLT",
    [EXIT_INVD] = "INVD (skipped)",
    [EXIT_TIMER_INTERRUPT] = "timer interrupt",
    [EXIT_HOST_INTERRUPT] = "interrupt: hvbook's own",
    [EXIT_LAPIC] = "NPF: local APIC (emulated)",
    [EXIT_FLASH] = "NPF: flash (emulated)",
    [EXIT_SVM_INSTRUCTION] = "SVM instruction (#UD)",
    [EXIT_REFUSED_IO] = "I/O: refused",
    [EXIT_REFUSED_FAULT] = "NPF: refused",
    [EXIT_UNEXPECTED] = "unexpected",
};
static u64 exit_counts[EXIT_REASONS];

/* How the VM ended, or that it still runs (`common.h`, "how a run ends"). */
static enum vm_state vm_state;

/*
### A VM fault

A guest that does something hvbook does not allow is stopped, never ignored
and never allowed to go on with garbage. `vm_fault` prints what happened,
then `vm_dump` the exit code with its two pieces of information, the
guest's `RIP`, its registers and the control registers that say what mode
it was in, the way a kernel prints an "oops".
*/
static void vm_dump(void)
{
    printf("  exit 0x%lx  guest pc 0x%lx  EXITINFO1 0x%lx  EXITINFO2 0x%lx"
           "  EXITINTINFO 0x%lx\n",
           vmcb->exitcode, vmcb->rip, vmcb->exitinfo1, vmcb->exitinfo2,
           vmcb->exitintinfo);
    printf("  guest rax 0x%lx  rbx 0x%lx  rcx 0x%lx  rdx 0x%lx  rsp 0x%lx"
           "  rflags 0x%lx\n",
           vmcb->rax, vcpu.gpr[REG_RBX], vcpu.gpr[REG_RCX], vcpu.gpr[REG_RDX],
           vmcb->rsp, vmcb->rflags);
    printf("  guest cr0 0x%lx  cr3 0x%lx  cr4 0x%lx  efer 0x%lx  cs 0x%x"
           " (attributes 0x%x)\n",
           vmcb->cr0, vmcb->cr3, vmcb->cr4, vmcb->efer & ~EFER_SVME,
           vmcb->cs.selector, vmcb->cs.attrib);
    vm_state = VM_FAULT;
}

static void vm_fault(const char *fmt, ...)
    __attribute__((format(printf, 1, 2)));

static void vm_fault(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    printf("VM fault: ");
    vprintf(fmt, ap);
    va_end(ap);
    printf("\n");
    vm_dump();
}

/*
### Injecting an exception

Where bare hardware would raise an exception in the guest (an MSR it does
not have, an SVM instruction on a CPU without SVM), hvbook raises the same
exception, so the guest cannot tell. `EVENTINJ` (15.20 "Event Injection")
delivers it through the guest's own IDT on the next `VMRUN`:

| bits | field | value |
|---|---|---|
| 7..0 | vector | 6 `#UD`, 13 `#GP` |
| 10..8 | type | 3: exception |
| 11 | EV | 1: push the error code below |
| 31 | V | 1: valid |
| 63..32 | error code | 0 |
*/
#define EVENT_VALID (1UL << 31)
#define EVENT_ERROR_VALID (1UL << 11)
#define EVENT_TYPE_EXCEPTION (3UL << 8)
#define VECTOR_UD 6
#define VECTOR_GP 13

static void inject_exception(u8 vector, bool error_code)
{
    vmcb->eventinj = EVENT_VALID | EVENT_TYPE_EXCEPTION | vector |
                     (error_code ? EVENT_ERROR_VALID : 0);
}

/*
### The hypervisor's own interrupts

Interrupts reach the hypervisor only when it lets them: `vcpu_enter` leaves
`IF` clear, so an interrupt that ended the guest's turn (the `INTR` exit)
is still pending when the run loop sees the exit. `take_host_interrupts`
opens a window of one instruction for it (`STI` takes effect after the
next instruction, APM vol. 3, "STI") and closes it again; the interrupt is
delivered through the IDT of `start/x86_64.S` to `hv_trap` below.
*/
static volatile bool host_timer_fired;

static void take_host_interrupts(void)
{
    __asm__ volatile("sti; nop; nop; cli" ::: "memory");
}

/*
### The guest's timer: an emulated local APIC

The guest sees a local APIC at 0xFEE0_0000, as on any PC, and uses its
timer as its preemption tick. The real local APIC is the hypervisor's (it
needs the timer for itself), so the guest's is *emulated*: its page is not
in the nested tables, each access faults, and `handle_stage2_fault` hands
it to `lapic_emulate` below. The model keeps what the guest wrote, and
keeps the guest's timer in TSC time:

    guest writes initial count N, divide D, LVT timer (vector, mode)
      -> deadline = now + N * D APIC ticks, converted to TSC ticks
      -> host_timer_arm(the earliest of: the guest's deadline, the budget)
    ... the real APIC timer fires while the guest runs: INTR exit ...
    timer_tick: the guest's deadline has passed
      -> inject_timer: V_IRQ with the guest's vector
      -> periodic: the next deadline one period later; one-shot: none
    the guest takes the interrupt through its IDT, writes EOI

Because the hypervisor's timer counts in the same APIC ticks at the same
rate, the guest's deadlines come out where they would bare, and a read of
the current count gives what bare hardware would give.

`inject_timer` uses the VMCB's *virtual interrupt* (15.21.4 "Injecting
Virtual Interrupts"): `V_IRQ` = 1 with `V_INTR_VECTOR` and `V_INTR_PRIO`
(the vector's upper four bits, as the APIC would rank it). The CPU delivers
it through the guest's IDT as soon as the guest can take it, with its
`IF` set and its `V_TPR` lower than the priority, and clears `V_IRQ` when
it does. So an expiry that comes while the last one is still waiting is
not delivered twice: one interrupt per expiry, at most one pending, as
with a real APIC's request register. The CPU clears only `V_IRQ`, never
the vector and priority fields, so `inject_timer` clears them before it
writes the new ones: a guest that moves its timer to another vector would
otherwise get the two vectors ORed together.
*/
static struct {
    u32 tpr;
    u32 svr;
    u32 lvt_timer;
    u32 divide;          /* the register as written */
    u32 initial;         /* initial count */
    u64 start;           /* TSC when the count was loaded */
    u64 period;          /* N * D APIC ticks, in TSC ticks */
    u64 deadline;        /* TSC of the next expiry; 0: not counting */
} vlapic = {.svr = SPURIOUS_VECTOR, .lvt_timer = LVT_MASKED};

static u64 budget_deadline; /* TSC; 0: no budget */

static u32 divide_value(u32 reg)
{
    u32 v = (reg & 3) | ((reg >> 1) & 4);
    return v == 7 ? 1 : 2U << v;
}

static void inject_timer(void)
{
    u64 vector = vlapic.lvt_timer & 0xFF;
    if ((vlapic.lvt_timer & LVT_MASKED) || !(vlapic.svr & LAPIC_SVR_ENABLE))
        return; // masked: on bare metal, too, nothing would arrive
    u64 old = vmcb->int_ctl & ~(V_INTR_VECTOR_MASK | V_INTR_PRIO_MASK);
    vmcb->int_ctl = old | V_IRQ | vector << V_INTR_VECTOR_SHIFT |
                    (vector >> 4) << V_INTR_PRIO_SHIFT;
}

/* Arm the real timer for whichever comes first: the guest's deadline, the
   budget, or a second from now (so that a far deadline is still checked). */
static void host_timer_rearm(void)
{
    u64 next = rdtsc() + tsc_per_second;
    if (vlapic.deadline && vlapic.deadline < next)
        next = vlapic.deadline;
    if (budget_deadline && budget_deadline < next)
        next = budget_deadline;
    host_timer_arm(next);
}

/* Returns whether the guest's deadline had come (else the tick was the
   hypervisor's alone: the budget, or the once-a-second check). A deadline
   less than TIMER_SLACK_TICKS away counts as come: the TSC's rate is only
   measured, so the real timer may fire a hair early, and a second exit a
   few microseconds later would cost more than it is worth. */
#define TIMER_SLACK_TICKS 50000 /* APIC ticks: 50 us on QEMU */

static bool timer_tick(void)
{
    u64 now = rdtsc(), soon = now + apic_to_tsc(TIMER_SLACK_TICKS);
    bool guest_tick = vlapic.deadline && soon >= vlapic.deadline;
    if (budget_deadline && now >= budget_deadline) {
        report_budget_spent(vmcb->rip);
        vm_state = VM_OUT_OF_TIME;
        return guest_tick;
    }
    if (guest_tick) {
        inject_timer();
        if (vlapic.lvt_timer & LVT_TIMER_PERIODIC) {
            while (vlapic.deadline <= soon) // missed periods are not made up
                vlapic.deadline += vlapic.period;
        } else {
            vlapic.deadline = 0;
        }
    }
    host_timer_rearm();
    return guest_tick;
}

static void lapic_timer_start(u32 initial)
{
    vlapic.initial = initial;
    vlapic.start = rdtsc();
    vlapic.period = apic_to_tsc((u64)initial * divide_value(vlapic.divide));
    vlapic.deadline =
        initial && vlapic.period ? vlapic.start + vlapic.period : 0;
    host_timer_rearm();
}

static u32 lapic_timer_current(void)
{
    if (!vlapic.deadline)
        return 0;
    u64 now = rdtsc(), left;
    if (vlapic.lvt_timer & LVT_TIMER_PERIODIC)
        left = vlapic.period - (now - vlapic.start) % vlapic.period;
    else
        left = now < vlapic.deadline ? vlapic.deadline - now : 0;
    u64 count = tsc_to_apic(left) / divide_value(vlapic.divide);
    return count > vlapic.initial ? vlapic.initial : (u32)count;
}

/*
### Hypercalls: `VMMCALL`

`VMMCALL` (0F 01 D9) is the guest's explicit call to the hypervisor. On a
CPU without a hypervisor it raises `#UD`, so a guest that must also run bare
uses it only for what only a hypervisor offers. hvbook's calls, with the
function in `RAX` and the argument in `RBX` (the convention KVM's
hypercalls use too):

+---------------+------------------------------+-------------------------------+
| `EAX`         | call                         | what hvbook does              |
+===============+==============================+===============================+
| 0x8400_0008   | shutdown (the seed's number, | `Guest: VMMCALL shutdown`;    |
|               | PSCI's `SYSTEM_OFF`)         | the VM stops normally         |
+---------------+------------------------------+-------------------------------+
| 0x1           | putchar                      | prints the byte in `BL`, for  |
|               |                              | output before the guest's     |
|               |                              | serial driver is up; answers  |
|               |                              | 0                             |
+---------------+------------------------------+-------------------------------+
| anything else |                              | -1 ("not supported") in       |
|               |                              | `RAX`, and the guest goes on  |
+---------------+------------------------------+-------------------------------+

Only `EAX`, the low half of `RAX`, selects the call, so a guest still in
32-bit mode calls the same numbers. There is no NRIP save in QEMU (see the
beginning), so we move `RIP` past the 3-byte instruction ourselves.
*/
#define HC_SHUTDOWN 0x84000008U
#define HC_PUTCHAR 0x1U
#define HC_NOT_SUPPORTED ((u64)-1)
#define VMMCALL_LENGTH 3

static void handle_hypercall(void)
{
    exit_counts[EXIT_VMMCALL]++;
    vmcb->rip += VMMCALL_LENGTH;
    switch ((u32)vmcb->rax) {
    case HC_SHUTDOWN:
        printf("Guest: VMMCALL shutdown\n");
        vm_state = VM_SHUTDOWN;
        return;
    case HC_PUTCHAR:
        console_putchar((u8)vcpu.gpr[REG_RBX]);
        vmcb->rax = 0;
        return;
    }
    vmcb->rax = HC_NOT_SUPPORTED;
}

/*
### Port I/O: the serial port and the power-off port

Every `IN` and `OUT` exits (the I/O permission map intercepts them all).
`EXITINFO1` describes the access (15.10.2 "IN and OUT Behavior", figure
15-2), and since the CPU must decode an I/O instruction anyway to know its
port, `EXITINFO2` holds the address of the next instruction, even without
NRIP save:

| bits | field | meaning |
|---|---|---|
| 0 | TYPE | 1: `IN`, 0: `OUT` |
| 2 | STR | a string instruction (`INS`, `OUTS`) |
| 3 | REP | with a `REP` prefix |
| 4, 5, 6 | SZ8, SZ16, SZ32 | the size of the access |
| 31..16 | PORT | the port number |

hvbook emulates the guest's 16550 at 0x3F8..0x3FF, one byte at a time, as a
UART whose transmitter is always ready and whose receiver never has
anything:

+---------+---------------------------------+----------------------------------+
| offset  | read                            | write                            |
+=========+=================================+==================================+
| 0       | `RBR`: 0, nothing received      | `THR`: the byte goes to hvbook's |
|         | (`DLL` with `LCR.DLAB`)         | console (`DLL` with `DLAB`:      |
|         |                                 | kept)                            |
+---------+---------------------------------+----------------------------------+
| 1       | `IER` as written (`DLM` with    | kept                             |
|         | `DLAB`)                         |                                  |
+---------+---------------------------------+----------------------------------+
| 2       | `IIR`: 0x01, no interrupt       | `FCR`: kept                      |
|         | pending (0xC1 with the FIFOs    |                                  |
|         | on)                             |                                  |
+---------+---------------------------------+----------------------------------+
| 3, 4, 7 | `LCR`, `MCR`, `SCR` as written  | kept                             |
+---------+---------------------------------+----------------------------------+
| 5       | `LSR`: 0x60, `THRE` and `TEMT`  | ignored                          |
+---------+---------------------------------+----------------------------------+
| 6       | `MSR`: 0                        | ignored                          |
+---------+---------------------------------+----------------------------------+

and honours the power-off port, 0xF4: an `OUT` of 0 is the guest's normal
shutdown, anything else a shutdown reporting failure, exactly what
`isa-debug-exit` would make of it bare. Any other port, a string or `REP`
instruction, or a serial access wider than a byte is a VM fault naming the
port.
*/
#define IOIO_TYPE_IN (1UL << 0)
#define IOIO_STR (1UL << 2)
#define IOIO_REP (1UL << 3)
#define IOIO_SZ8 (1UL << 4)
#define IOIO_SZ16 (1UL << 5)
#define IOIO_SZ32 (1UL << 6)
#define IOIO_PORT(info) ((u16)((info) >> 16))

#define UART_DLAB 0x80
#define UART_IIR_NONE 0x01
#define UART_IIR_FIFO 0xC0

static struct {
    u8 ier, fcr, lcr, mcr, scr, dll, dlm;
} vuart;

static u8 serial_read(u16 off)
{
    bool dlab = vuart.lcr & UART_DLAB;
    switch (off) {
    case 0: return dlab ? vuart.dll : 0;
    case 1: return dlab ? vuart.dlm : vuart.ier;
    case 2: return UART_IIR_NONE | (vuart.fcr & 1 ? UART_IIR_FIFO : 0);
    case 3: return vuart.lcr;
    case 4: return vuart.mcr;
    case 5: return UART_LSR_THRE | UART_LSR_TEMT;
    case 7: return vuart.scr;
    }
    return 0;
}

static void serial_write(u16 off, u8 v)
{
    bool dlab = vuart.lcr & UART_DLAB;
    switch (off) {
    case 0:
        if (dlab)
            vuart.dll = v;
        else
            console_putchar(v);
        break;
    case 1:
        if (dlab)
            vuart.dlm = v;
        else
            vuart.ier = v;
        break;
    case 2: vuart.fcr = v; break;
    case 3: vuart.lcr = v; break;
    case 4: vuart.mcr = v; break;
    case 7: vuart.scr = v; break;
    }
}

static void guest_power_off(u32 value)
{
    if (value == 0) {
        printf("Guest: power-off port\n");
        vm_state = VM_SHUTDOWN;
    } else {
        printf("Guest: power-off port, value %u: the guest reports a "
               "failure\n", value);
        vm_state = VM_GUEST_FAILED;
    }
}

static void handle_io(void)
{
    u64 info = vmcb->exitinfo1;
    u16 port = IOIO_PORT(info);
    bool in = info & IOIO_TYPE_IN;
    int size = info & IOIO_SZ8 ? 1 : info & IOIO_SZ16 ? 2 : 4;

    if (!(info & (IOIO_STR | IOIO_REP))) {
        if (port >= COM1 && port < COM1 + 8 && size == 1) {
            exit_counts[EXIT_SERIAL]++;
            if (in)
                vmcb->rax = (vmcb->rax & ~0xFFUL) | serial_read(port - COM1);
            else
                serial_write(port - COM1, (u8)vmcb->rax);
            vmcb->rip = vmcb->exitinfo2;
            return;
        }
        if (port == DEBUG_EXIT_PORT && !in) {
            exit_counts[EXIT_POWER_OFF]++;
            u32 mask = size == 1 ? 0xFF : size == 2 ? 0xFFFF : 0xFFFFFFFF;
            guest_power_off((u32)vmcb->rax & mask);
            vmcb->rip = vmcb->exitinfo2;
            return;
        }
    }
    exit_counts[EXIT_REFUSED_IO]++;
    vm_fault("the guest %s port 0x%x (%d byte%s%s), which it does not own",
             in ? "read from" : "wrote to", port, size, size == 1 ? "" : "s",
             info & IOIO_STR ? ", string instruction" : "");
}

/*
### `CPUID` and MSRs

**`CPUID`** (2 bytes, 0F A2) is answered with the real CPU's answer, minus
what the guest must not believe it has (15.9, and the leaves in APM vol. 3,
appendix E "Obtaining Processor Information Via the CPUID Instruction"):

+-------------+---------------+--------------+---------------------------------+
| leaf        | register, bit | what         | why the guest does not get it   |
+=============+===============+==============+=================================+
| 0x8000_0001 | `ECX` 2       | SVM          | no nested virtualization:       |
|             |               |              | hvbook would have to emulate    |
|             |               |              | `VMRUN`                         |
+-------------+---------------+--------------+---------------------------------+
| 0x8000_000A | all           | SVM features | belongs to SVM                  |
+-------------+---------------+--------------+---------------------------------+
| 1           | `ECX` 5       | VMX          | (Intel's; QEMU never has it,    |
|             |               |              | but a guest must never see it   |
|             |               |              | here)                           |
+-------------+---------------+--------------+---------------------------------+
| 1           | `ECX` 21      | x2APIC       | the emulated APIC is the        |
|             |               |              | memory-mapped xAPIC only        |
+-------------+---------------+--------------+---------------------------------+
| 1           | `ECX` 24      | TSC deadline | the emulated APIC timer has no  |
|             |               |              | TSC-deadline mode               |
+-------------+---------------+--------------+---------------------------------+

Two bits are no features but mirrors of `CR4`, filled in by the CPU from
the `CR4` of whoever runs `CPUID`, here hvbook: leaf 1 `ECX` bit 27
`OSXSAVE` shows `CR4.OSXSAVE` (bit 18), leaf 7 `ECX` bit 4 `OSPKE` shows
`CR4.PKE` (bit 22). `handle_cpuid` sets both from the *guest's* `CR4`, so
a guest that turns `XSAVE` on sees it on, as bare.

**MSRs** (`RDMSR` 0F 32, `WRMSR` 0F 30; the number in `ECX`, the value in
`EDX:EAX`; `EXITINFO1` = 1 for a write, 15.11) that the permission map
sends here:

+----------------------+---------------------------+---------------------------+
| MSR                  | read                      | write                     |
+======================+===========================+===========================+
| `EFER` (0xC000_0080) | the guest's, without      | kept, with `SVME` added   |
|                      | `SVME`                    | back; `#GP` for a bit     |
|                      |                           | this CPU lacks (`SVME`    |
|                      |                           | too) or for `LME` changed |
|                      |                           | while paging is on        |
+----------------------+---------------------------+---------------------------+
| `APIC_BASE` (0x1B)   | 0xFEE0_0900: enabled,     | the same value is         |
|                      | bootstrap CPU, at         | accepted; moving or       |
|                      | 0xFEE0_0000               | switching off the APIC is |
|                      |                           | a VM fault                |
+----------------------+---------------------------+---------------------------+
| `PAT` (0x277)        | `G_PAT` of the VMCB       | into `G_PAT`, which       |
|                      |                           | nested paging uses as the |
|                      |                           | guest's (15.25.8); `#GP`  |
|                      |                           | if an entry is no memory  |
|                      |                           | type                      |
+----------------------+---------------------------+---------------------------+
| `TSC` (0x10)         | not intercepted           | refused (`#GP`): it would |
|                      |                           | move the host's clock     |
+----------------------+---------------------------+---------------------------+
| any other            | `#GP`                     | `#GP`                     |
+----------------------+---------------------------+---------------------------+

`#GP` is what a real CPU raises for an MSR it does not have, so the guest's
own handler sees exactly what it would see on bare metal.

The two values that go into the VMCB are checked as the CPU would check
them, and for a second reason: `VMRUN` checks them too, and refuses to run
at all with a reserved `EFER` bit set (15.5.1), so a guest that got one
through would stop its own VM with `VMEXIT_INVALID`, as if hvbook had a
bug. `EFER` (APM vol. 2, 3.1.7 "Extended Feature Enable Register") takes
`SCE`, `LME`, `NXE`, `FFXSR` and `TCE` only where `CPUID` 0x8000_0001
says the CPU has them, and `LMA` as it is (the CPU, not the guest, sets
it); `LMSLE` is never offered. Each byte of `PAT` (7.8.1 "PAT Register")
must be a memory type: 0, 1, 4, 5, 6 or 7.
*/
#define CPUID_LENGTH 2
#define MSR_LENGTH 2
#define EFER_SCE (1UL << 0)
#define EFER_NXE (1UL << 11)
#define EFER_FFXSR (1UL << 14)
#define EFER_TCE (1UL << 15)
#define CPUID_EXT_EDX_SYSCALL (1U << 11)
#define CPUID_EXT_EDX_NX (1U << 20)
#define CPUID_EXT_EDX_FFXSR (1U << 25)
#define CPUID_EXT_EDX_LM (1U << 29)
#define CPUID_EXT_ECX_TCE (1U << 17)
#define CPUID_ECX_OSXSAVE (1U << 27)
#define CPUID_STRUCTURED 7
#define CPUID_7_ECX_OSPKE (1U << 4)
#define CR4_OSXSAVE (1UL << 18)
#define CR4_PKE (1UL << 22)
#define GUEST_APIC_BASE (LAPIC_BASE | APIC_BASE_BSP | APIC_BASE_ENABLE)

static void handle_cpuid(void)
{
    exit_counts[EXIT_CPUID]++;
    u32 leaf = (u32)vmcb->rax, subleaf = (u32)vcpu.gpr[REG_RCX];
    struct cpuid r = cpuid(leaf, subleaf);
    if (leaf == CPUID_FEATURES) {
        r.ecx &= ~(CPUID_ECX_VMX | CPUID_ECX_X2APIC | CPUID_ECX_TSC_DEADLINE |
                   CPUID_ECX_OSXSAVE);
        if (vmcb->cr4 & CR4_OSXSAVE)
            r.ecx |= CPUID_ECX_OSXSAVE;
    } else if (leaf == CPUID_STRUCTURED && subleaf == 0) {
        r.ecx &= ~CPUID_7_ECX_OSPKE;
        if (vmcb->cr4 & CR4_PKE)
            r.ecx |= CPUID_7_ECX_OSPKE;
    } else if (leaf == CPUID_EXT_FEATURES) {
        r.ecx &= ~CPUID_EXT_ECX_SVM;
    } else if (leaf == CPUID_SVM_FEATURES) {
        r = (struct cpuid){0, 0, 0, 0};
    }
    vmcb->rax = r.eax;
    vcpu.gpr[REG_RBX] = r.ebx;
    vcpu.gpr[REG_RCX] = r.ecx;
    vcpu.gpr[REG_RDX] = r.edx;
    vmcb->rip += CPUID_LENGTH;
}

/* The EFER bits a guest may set: those this CPU has. */
static u64 efer_guest_bits(void)
{
    struct cpuid r = cpuid(CPUID_EXT_FEATURES, 0);
    return EFER_LMA | (r.edx & CPUID_EXT_EDX_SYSCALL ? EFER_SCE : 0) |
           (r.edx & CPUID_EXT_EDX_LM ? EFER_LME : 0) |
           (r.edx & CPUID_EXT_EDX_NX ? EFER_NXE : 0) |
           (r.edx & CPUID_EXT_EDX_FFXSR ? EFER_FFXSR : 0) |
           (r.ecx & CPUID_EXT_ECX_TCE ? EFER_TCE : 0);
}

/* Every byte a memory type: 0 UC, 1 WC, 4 WT, 5 WP, 6 WB, 7 UC-. */
static bool pat_valid(u64 pat)
{
    for (int i = 0; i < 8; i++) {
        u8 type = (u8)(pat >> (8 * i));
        if (type > 7 || type == 2 || type == 3)
            return false;
    }
    return true;
}

static void handle_msr(void)
{
    exit_counts[EXIT_MSR]++;
    u32 msr = (u32)vcpu.gpr[REG_RCX];
    bool write = vmcb->exitinfo1 == 1;
    u64 value = (vcpu.gpr[REG_RDX] << 32) | (u32)vmcb->rax;

    if (!write) {
        switch (msr) {
        case MSR_EFER: value = vmcb->efer & ~EFER_SVME; break;
        case MSR_APIC_BASE: value = GUEST_APIC_BASE; break;
        case MSR_PAT: value = vmcb->g_pat; break;
        default:
            inject_exception(VECTOR_GP, true);
            return;
        }
        vmcb->rax = (u32)value;
        vcpu.gpr[REG_RDX] = value >> 32;
        vmcb->rip += MSR_LENGTH;
        return;
    }
    switch (msr) {
    case MSR_EFER:
        if ((value & ~efer_guest_bits()) ||
            ((vmcb->cr0 & CR0_PG) && ((value ^ vmcb->efer) & EFER_LME))) {
            inject_exception(VECTOR_GP, true);
            return;
        }
        vmcb->efer = (value & ~EFER_LMA) | (vmcb->efer & EFER_LMA) | EFER_SVME;
        break;
    case MSR_APIC_BASE:
        if (value != GUEST_APIC_BASE) {
            vm_fault("the guest wrote 0x%lx to its APIC_BASE MSR: hvbook "
                     "does not let it move, disable or switch the mode of its "
                     "local APIC", value);
            return;
        }
        break;
    case MSR_PAT:
        if (!pat_valid(value)) {
            inject_exception(VECTOR_GP, true);
            return;
        }
        vmcb->g_pat = value;
        break;
    default:
        inject_exception(VECTOR_GP, true);
        return;
    }
    vmcb->rip += MSR_LENGTH;
}

/*
### `HLT`

A guest halts when it has nothing to do until its next interrupt. Letting it
halt the real CPU would be harmless here (the hypervisor's interrupts still
end its turn), but it would be an exit we could not count or bound, so
`HLT` is intercepted: we move `RIP` past the 1-byte instruction and do the
waiting ourselves, halting the real CPU (`STI; HLT` wakes on the next
interrupt, with no window to miss it in between: `STI` takes effect one
instruction late) and handling each tick of the hypervisor's timer, until
an interrupt we injected is pending and the guest can take it. A guest that
halts with its interrupts off, or with no timer armed, would sleep forever
on bare metal; here it sleeps until its time budget is spent. The ticks
that end a wait are no exits of their own: the table counts the `HLT`.

`INVD` (0F 08), intercepted for the reason in section 4's table, is
skipped the same way: `RIP` moves past its two bytes, and nothing else
happens.
*/
#define HLT_LENGTH 1
#define INVD_LENGTH 2 /* 0F 08 */

static void handle_hlt(void)
{
    exit_counts[EXIT_HLT]++;
    vmcb->rip += HLT_LENGTH;
    while (vm_state == VM_RUNNING &&
           !((vmcb->int_ctl & V_IRQ) && (vmcb->rflags & RFLAGS_IF))) {
        host_timer_fired = false;
        __asm__ volatile("sti; hlt; cli" ::: "memory");
        if (host_timer_fired)
            timer_tick();
    }
}

/*
### Nested page faults: emulate, or refuse

A nested page fault (`NPF`, exit 0x400; 15.25.6 "Nested Page Fault Exit")
means the guest touched a GPA the nested tables do not map. `EXITINFO2`
holds the GPA and `EXITINFO1` a page-fault error code:

| bit | meaning |
|---|---|
| 0 | P: the entry was present (a protection fault), not missing |
| 1 | RW: the access was a write |
| 4 | ID: an instruction fetch |
| 32 | the fault came from the final translation of the guest's access |
| 33 | the fault came from a walk of the guest's *own* page tables |

hvbook's rule of the house is *resource control* (see the preface): guest
RAM is mapped up front; the local APIC and the flash are emulated, one
access at a time; *nothing* else is reachable. A fetch from a device, or a
guest whose own page tables lie outside its RAM, is a VM fault too.

So is an access the *CPU* made while it delivered an interrupt or an
exception: reading the gate from the guest's IDT, pushing onto its stack.
Then `EXITINTINFO` holds the event (15.7.2 "Intercepts During IDT
Interrupt Delivery"), and the instruction at the guest's `RIP` is merely
the next one to run: it made no access at all, and emulating it would hand
it device bytes it never asked for. An IDT in the flash is no device
driver's doing, so hvbook refuses it.

To emulate an access, the hypervisor needs to know what the instruction
did: read or write, how many bytes, which register. With neither decode
assists nor NRIP save, it must find out as a CPU would: fetch the
instruction's bytes and decode them.

**Fetching.** The guest's `RIP` is a guest-virtual address. With paging off
(`CR0.PG` = 0) it is also the GPA; in long mode (`EFER.LMA`) the guest's
own four-level tables, at the GPA in its `CR3`, translate it (APM vol. 2,
5.3 "Long-Mode Page Translation"). `guest_translate` walks them, reading
each entry from guest RAM: they are guest-physical addresses, so the walk
is itself translated by the nested tables, which here is `guest_buffer`.
A 1 GiB or 2 MiB page ends the walk early (`PS`, bit 7). Legacy 32-bit
paging is not supported: our guests go straight from no paging to long
mode.
*/
#define NPF_WRITE (1UL << 1)
#define NPF_FETCH (1UL << 4)
#define NPF_IN_WALK (1UL << 33)

#define PTE_P (1UL << 0)
#define PTE_PS (1UL << 7)
#define PTE_ADDR_MASK 0x000FFFFFFFFFF000UL

static bool guest_translate(u64 va, u64 *gpa)
{
    if (!(vmcb->cr0 & CR0_PG)) {
        *gpa = va & 0xFFFFFFFFUL;
        return true;
    }
    if (!(vmcb->efer & EFER_LMA) || (vmcb->cr4 & CR4_LA57))
        return false;
    u64 table = vmcb->cr3 & PTE_ADDR_MASK;
    for (int level = 3; level >= 0; level--) {
        u64 index = (va >> (12 + 9 * level)) & 0x1ff;
        u64 *entry = guest_buffer(table + index * 8, 8);
        if (!entry || !(*entry & PTE_P))
            return false;
        if (level == 0 || (level <= 2 && (*entry & PTE_PS))) {
            u64 page = 1UL << (12 + 9 * level);
            *gpa = (*entry & PTE_ADDR_MASK & ~(page - 1)) | (va & (page - 1));
            return true;
        }
        table = *entry & PTE_ADDR_MASK;
    }
    return false;
}

/* Fetch up to 15 bytes (the longest x86 instruction) at the guest's RIP;
   returns how many could be read from guest RAM. */
static int fetch_instruction(u8 *bytes)
{
    int n = 0;
    for (; n < 15; n++) {
        u64 gpa;
        u8 *p;
        if (!guest_translate(vmcb->rip + (u64)n, &gpa) ||
            !(p = guest_buffer(gpa, 1)))
            break;
        bytes[n] = *p;
    }
    return n;
}

/*
**Decoding.** An x86 instruction is a sequence of optional pieces (APM
vol. 3, 1.1 "Instruction Encoding Overview"):

    legacy prefixes | REX | opcode | ModRM | SIB | displacement | immediate
    0..4 bytes       0..1   1..2     0..1    0..1  0, 1, 4 bytes  0, 1, 2, 4

A compiler writes a volatile load or store as a `MOV`, so that is all the
decoder understands:

+--------------+-------------------------------+-------------------------------+
| opcode       | instruction                   | access                        |
+==============+===============================+===============================+
| 88, 89       | `MOV r/m, reg`                | store a register, 8 or        |
|              |                               | 16/32/64 bits                 |
+--------------+-------------------------------+-------------------------------+
| 8A, 8B       | `MOV reg, r/m`                | load into a register          |
+--------------+-------------------------------+-------------------------------+
| C6 /0, C7 /0 | `MOV r/m, imm`                | store an immediate            |
+--------------+-------------------------------+-------------------------------+
| A0..A3       | `MOV` with a direct address   | load into or store            |
|              | (`moffs`)                     | `AL`/`EAX`/`RAX`              |
+--------------+-------------------------------+-------------------------------+
| 0F B6, 0F B7 | `MOVZX reg, r/m8 / r/m16`     | load, zero-extended           |
+--------------+-------------------------------+-------------------------------+

and these prefixes: 66 (16-bit operand), the segment overrides, and in
64-bit mode REX (40..4F: `W` makes the operand 64-bit, `R` extends the
register number, `X` and `B` the address registers). The address itself is
never computed: the CPU has already told us the GPA. The decoder only needs
the ModRM byte to find the register, and the lengths of the SIB byte and the
displacement to find where the instruction ends:

    ModRM: mod (7..6) | reg (5..3) | r/m (2..0)
      mod 3            a register, not memory: cannot have faulted
      r/m 4            a SIB byte follows (with base 5 and mod 0: a disp32 too)
      mod 0, r/m 5     a disp32 (RIP-relative in 64-bit mode)
      mod 1 / mod 2    a disp8 / a disp32

Anything else (an `ADD` to memory, a string instruction, a `LOCK`, 16-bit
addressing) is refused with the bytes it saw: a device driver has no reason
to use them on a device register.
*/
struct mmio_access {
    u64 offset;     /* from the start of the device window */
    int size;       /* 1, 2, 4 or 8 bytes */
    bool write;
    u64 value;      /* the value written, or to return for a read */
};

struct decoded {
    int length;     /* bytes of the whole instruction */
    int size;       /* bytes accessed in memory */
    bool write;
    int reg;        /* register number; -1: an immediate */
    bool high_byte; /* AH, CH, DH, BH */
    int dest_size;  /* a load's register width (MOVZX: wider than size) */
    u64 imm;
};

static const char *decode(const u8 *b, int n, bool long_mode, struct decoded *d)
{
    int i = 0, opsize = 4;
    bool addr16or32 = false;
    u8 rex = 0;

    for (; i < n; i++) { // legacy prefixes
        if (b[i] == 0x66)
            opsize = 2;
        else if (b[i] == 0x67)
            addr16or32 = true;
        else if (b[i] != 0x2E && b[i] != 0x36 && b[i] != 0x3E && b[i] != 0x26 &&
                 b[i] != 0x64 && b[i] != 0x65)
            break;
    }
    if (addr16or32 && !long_mode)
        return "16-bit addressing";
    if (long_mode && i < n && (b[i] & 0xF0) == 0x40)
        rex = b[i++];
    if (rex & 8)
        opsize = 8;
    if (i >= n)
        return "the instruction runs past the bytes that could be fetched";

    u8 op = b[i++];
    bool modrm = true, twobyte = false;
    d->reg = 0;
    d->imm = 0;
    d->high_byte = false;
    switch (op) {
    case 0x88: d->size = 1; d->write = true; break;
    case 0x89: d->size = opsize; d->write = true; break;
    case 0x8A: d->size = 1; d->write = false; break;
    case 0x8B: d->size = opsize; d->write = false; break;
    case 0xC6: d->size = 1; d->write = true; d->reg = -1; break;
    case 0xC7: d->size = opsize; d->write = true; d->reg = -1; break;
    case 0xA0: case 0xA1: case 0xA2: case 0xA3:
        modrm = false;
        d->size = op & 1 ? opsize : 1;
        d->write = op & 2;
        i += long_mode ? (addr16or32 ? 4 : 8) : 4; // the moffs address
        break;
    case 0x0F:
        if (i < n && (b[i] == 0xB6 || b[i] == 0xB7)) {
            d->size = b[i] == 0xB6 ? 1 : 2;
            d->write = false;
            twobyte = true;
            i++;
            break;
        }
        return "not a MOV";
    default:
        return "not a MOV";
    }
    d->dest_size = twobyte ? opsize : d->size;

    if (modrm) {
        if (i >= n)
            return "the instruction runs past the bytes that could be fetched";
        u8 m = b[i++];
        int mod = m >> 6, reg = (m >> 3) & 7, rm = m & 7;
        if (mod == 3)
            return "a register operand, not memory";
        if (d->reg == -1 && reg != 0)
            return "not a MOV (opcode C6/C7 with reg != 0)";
        if (d->reg != -1) {
            d->reg = reg | (rex & 4 ? 8 : 0);
            if (d->size == 1 && d->dest_size == 1 && !rex && reg >= 4) {
                d->reg = reg - 4; // AH, CH, DH, BH
                d->high_byte = true;
            }
        }
        if (rm == 4) {
            if (i >= n)
                return "the instruction runs past the bytes that could be "
                       "fetched";
            if ((b[i++] & 7) == 5 && mod == 0)
                i += 4;
        } else if (rm == 5 && mod == 0) {
            i += 4;
        }
        i += mod == 1 ? 1 : mod == 2 ? 4 : 0;
    }
    if (d->reg == -1) {
        int isize = d->size == 8 ? 4 : d->size;
        if (i + isize > n)
            return "the instruction runs past the bytes that could be fetched";
        for (int k = 0; k < isize; k++)
            d->imm |= (u64)b[i + k] << (8 * k);
        if (d->size == 8 && (d->imm & 0x80000000UL))
            d->imm |= 0xFFFFFFFF00000000UL; // sign-extended imm32
        i += isize;
    }
    if (i > n)
        return "the instruction runs past the bytes that could be fetched";
    d->length = i;
    return NULL;
}

/*
`mmio_emulate` puts it together: fetch, decode, check that the decoded
direction agrees with the fault's, ask the device model, write a load's
result into the guest register (a 32-bit result clears the upper half of
the 64-bit register, as the CPU would; 8- and 16-bit ones leave the rest
alone), and move `RIP` past the instruction. A model returns false when it
refuses the access, after printing why.
*/
typedef bool (*device_model)(struct mmio_access *a, u64 gpa);

static bool mmio_emulate(u64 gpa, u64 base, device_model model)
{
    u8 bytes[15];
    int n = fetch_instruction(bytes);
    bool long_mode = (vmcb->efer & EFER_LMA) &&
                     (vmcb->cs.attrib & (1U << 9)); // CS.L
    struct decoded d;
    const char *why = n ? decode(bytes, n, long_mode, &d)
                        : "no instruction bytes at the guest's pc";
    if (!why && d.write != ((vmcb->exitinfo1 & NPF_WRITE) != 0))
        why = "the decoded direction disagrees with the fault";
    if (why) {
        printf("VM fault: the guest accessed device GPA 0x%lx with an "
               "instruction hvbook cannot emulate (%s); bytes at guest pc:",
               gpa, why);
        for (int k = 0; k < n; k++)
            printf(" %02x", bytes[k]);
        printf("\n");
        vm_dump();
        return false;
    }

    struct mmio_access a = {
        .offset = gpa - base, .size = d.size, .write = d.write};
    u64 mask = d.size == 8 ? ~0UL : (1UL << (8 * d.size)) - 1;
    if (d.write)
        a.value = (d.reg < 0 ? d.imm
                             : *guest_reg(d.reg) >> (d.high_byte ? 8 : 0)) &
                  mask;
    if (!model(&a, gpa)) {
        vm_dump();
        return false;
    }
    if (!d.write) {
        u64 *r = guest_reg(d.reg);
        u64 v = a.value & mask;
        if (d.high_byte)
            *r = (*r & ~0xFF00UL) | v << 8;
        else if (d.dest_size == 1)
            *r = (*r & ~0xFFUL) | v;
        else if (d.dest_size == 2)
            *r = (*r & ~0xFFFFUL) | v;
        else
            *r = v; // 32-bit results zero-extend; 64-bit ones fill the register
    }
    vmcb->rip += (u64)d.length;
    return true;
}

/*
### The guest's local APIC

`lapic_emulate` answers the registers of the table in section 2, 32 bits at
a time as the xAPIC requires (APM vol. 2, 16.3.1 "Local APIC Register
Access"):

+----------------------+---------------------------+---------------------------+
| register             | read                      | write                     |
+======================+===========================+===========================+
| ID                   | 0: the guest's CPU is     | ignored                   |
|                      | APIC 0, as bare           |                           |
+----------------------+---------------------------+---------------------------+
| version              | the real APIC's           | ignored                   |
+----------------------+---------------------------+---------------------------+
| TPR                  | as written, or `V_TPR`    | kept, and its class (bits |
|                      | << 4 if a `MOV CR8` has   | 7..4) becomes `V_TPR`     |
|                      | changed it since          |                           |
+----------------------+---------------------------+---------------------------+
| EOI                  | 0                         | accepted: the interrupt   |
|                      |                           | is done                   |
+----------------------+---------------------------+---------------------------+
| SVR                  | as written (0xFF after    | kept: bit 8 enables the   |
|                      | reset)                    | APIC                      |
+----------------------+---------------------------+---------------------------+
| LVT timer            | as written (masked after  | kept: vector, mask, mode  |
|                      | reset)                    |                           |
+----------------------+---------------------------+---------------------------+
| initial count        | as written                | starts (or with 0 stops)  |
|                      |                           | the timer                 |
+----------------------+---------------------------+---------------------------+
| current count        | counts down, computed     | ignored                   |
|                      | from the TSC              |                           |
+----------------------+---------------------------+---------------------------+
| divide configuration | as written                | kept; used from the next  |
|                      |                           | start                     |
+----------------------+---------------------------+---------------------------+
| ICR                  | 0                         | **refused**: a VM fault.  |
|                      |                           | An IPI, an INIT or a      |
|                      |                           | startup would reach CPUs  |
|                      |                           | the guest does not own    |
+----------------------+---------------------------+---------------------------+
| any other            | 0                         | ignored                   |
+----------------------+---------------------------+---------------------------+
*/
static bool lapic_emulate(struct mmio_access *a, u64 gpa)
{
    u32 reg = (u32)a->offset;
    if (a->size != 4 || (reg & 0xF)) {
        printf("VM fault: the guest made a %d-byte access to its local APIC "
               "at GPA 0x%lx; APIC registers are 32 bits, 16-byte aligned\n",
               a->size, gpa);
        return false;
    }
    if (a->write) {
        u32 v = (u32)a->value;
        switch (reg) {
        case LAPIC_TPR:
            vlapic.tpr = v & 0xFF;
            vmcb->int_ctl =
                (vmcb->int_ctl & ~V_TPR_MASK) | (v >> 4 & V_TPR_MASK);
            break;
        case LAPIC_SVR: vlapic.svr = v; break;
        case LAPIC_LVT_TIMER:
            vlapic.lvt_timer = v & (0xFF | LVT_MASKED | LVT_TIMER_MODE_MASK);
            break;
        case LAPIC_TIMER_INITIAL: lapic_timer_start(v); break;
        case LAPIC_TIMER_DIVIDE: vlapic.divide = v & 0xB; break;
        case LAPIC_ICR_LOW:
        case LAPIC_ICR_HIGH:
            printf("VM fault: the guest wrote 0x%x to its local APIC's "
                   "interrupt command register (GPA 0x%lx): hvbook does not "
                   "let a guest send IPIs, INIT or startup messages\n", v, gpa);
            return false;
        }
        return true;
    }
    switch (reg) {
    case LAPIC_ID: a->value = 0; break;
    case LAPIC_VERSION: a->value = lapic_read(LAPIC_VERSION); break;
    case LAPIC_TPR: {
        // CR8 is the TPR's class: a 64-bit guest's MOV CR8 writes V_TPR
        // (15.21.2), and the APIC register must show it, as bare.
        u32 class = (u32)(vmcb->int_ctl & V_TPR_MASK);
        a->value = class == vlapic.tpr >> 4 ? vlapic.tpr : class << 4;
        break;
    }
    case LAPIC_SVR: a->value = vlapic.svr; break;
    case LAPIC_LVT_TIMER: a->value = vlapic.lvt_timer; break;
    case LAPIC_TIMER_INITIAL: a->value = vlapic.initial; break;
    case LAPIC_TIMER_CURRENT: a->value = lapic_timer_current(); break;
    case LAPIC_TIMER_DIVIDE: a->value = vlapic.divide; break;
    default: a->value = 0;
    }
    return true;
}

/*
### The guest's flash

Reads return the bytes of the host's own flash window at the same address:
`run.sh` gives QEMU one 4 MiB image there, with `pfld` at its start, so the
guest reads the same bytes bare and under hvbook. Writes are refused: the
flash is read-only for the guest, as on the other architectures.
*/
static bool flash_emulate(struct mmio_access *a, u64 gpa)
{
    if (a->write) {
        printf("VM fault: the guest wrote to GPA 0x%lx, in its flash, which "
               "is read-only\n", gpa);
        return false;
    }
    if (a->offset + (u64)a->size > FLASH_SIZE) {
        printf("VM fault: the guest read past the end of its flash at "
               "GPA 0x%lx\n", gpa);
        return false;
    }
    uintptr_t p = HOST_FLASH_BASE + a->offset;
    switch (a->size) {
    case 1: a->value = *(volatile u8 *)p; break;
    case 2: a->value = *(volatile u16 *)p; break;
    case 4: a->value = *(volatile u32 *)p; break;
    default: a->value = *(volatile u64 *)p;
    }
    return true;
}

static bool in_window(u64 gpa, u64 base, u64 size)
{
    return gpa >= base && gpa - base < size;
}

static void handle_stage2_fault(void)
{
    u64 gpa = vmcb->exitinfo2, err = vmcb->exitinfo1;
    bool delivering = vmcb->exitintinfo & EVENT_VALID;
    bool plain = !(err & (NPF_FETCH | NPF_IN_WALK)) && !delivering;

    if (plain && in_window(gpa, GUEST_LAPIC_GPA, LAPIC_SIZE)) {
        exit_counts[EXIT_LAPIC]++;
        mmio_emulate(gpa, GUEST_LAPIC_GPA, lapic_emulate);
        return;
    }
    if (plain && in_window(gpa, FLASH_GPA, FLASH_SIZE)) {
        exit_counts[EXIT_FLASH]++;
        mmio_emulate(gpa, FLASH_GPA, flash_emulate);
        return;
    }
    exit_counts[EXIT_REFUSED_FAULT]++;
    if (delivering) {
        vm_fault("the guest's CPU touched GPA 0x%lx while it delivered "
                 "event 0x%lx (vector %lu): its IDT, stack or TSS is not in "
                 "its RAM", gpa, vmcb->exitintinfo, vmcb->exitintinfo & 0xFF);
        return;
    }
    bool device = in_window(gpa, GUEST_LAPIC_GPA, LAPIC_SIZE) ||
                  in_window(gpa, FLASH_GPA, FLASH_SIZE);
    vm_fault("the guest %s GPA 0x%lx, %s",
             err & NPF_FETCH     ? "fetched from"
             : err & NPF_IN_WALK ? "walked its page tables at"
             : err & NPF_WRITE   ? "wrote"
                                 : "read",
             gpa, device ? "a device it may only load from and store to" :
                           "outside its RAM and its devices");
}

/*
### The loop

`vcpu_run` is the loop drawn above. Four things happen around every exit:

- **An interrupted event.** If the exit came while the CPU was delivering an
  event to the guest, `EXITINTINFO` holds it, and it must be injected again
  or it is lost (15.7.2 "Intercepts During IDT Interrupt Delivery"). It
  goes back into `EVENTINJ`. With hvbook's intercepts only a nested page
  fault can stop a delivery, and `handle_stage2_fault` refuses those, so
  this is the general rule, kept for whoever adds an intercept. (A
  hypervisor that does must take care with `INT3`, `INTO` and `INT n`:
  injected again without NRIP save, their return address would be the
  instruction itself. KVM executes them again instead.)
- **The TLB flush** asked for on the first `VMRUN` is done; `TLB_CONTROL`
  goes back to 0.
- **The interrupt shadow.** `STI` and `MOV SS` hold interrupts back for
  the one instruction after them, and bit 0 of the VMCB's `INT_STATE`
  (0x068) says the guest is inside such a shadow (15.21.5 "Interrupt
  Shadows"). When a handler moves `RIP` past an intercepted instruction,
  that instruction has run and the shadow ends with it, so it is cleared:
  left set, it would hold the guest's next interrupt back one instruction
  longer than bare metal does (after `STI; HLT`, say). QEMU 7.2 reports the
  shadow but does not hold a virtual interrupt back for it, so only a real
  CPU shows the difference.
- **The budget** is checked on every exit, not only on the timer's.

An exit code of -1 (`VMEXIT_INVALID`) means `VMRUN` itself refused the
VMCB's state (15.5.1 lists the checks): a bug in hvbook, reported like any
other unexpected exit. The code is compared in its low 32 bits, where
every exit code lives: QEMU 7.2 writes -1 as 0xFFFF_FFFF, without the
upper half, and KVM too reads only the low 32 bits.
*/
static void vcpu_run(void)
{
    while (vm_state == VM_RUNNING) {
        vcpu_enter(&vcpu);
        vmcb->tlb_control = 0;
        u64 rip = vmcb->rip;
        if (vmcb->exitintinfo & EVENT_VALID)
            vmcb->eventinj = vmcb->exitintinfo;

        switch ((u32)vmcb->exitcode) {
        case VMEXIT_INTR:
            host_timer_fired = false;
            take_host_interrupts();
            if (host_timer_fired && timer_tick())
                exit_counts[EXIT_TIMER_INTERRUPT]++;
            else
                exit_counts[EXIT_HOST_INTERRUPT]++;
            break;
        case VMEXIT_VMMCALL:
            handle_hypercall();
            break;
        case VMEXIT_IOIO:
            handle_io();
            break;
        case VMEXIT_CPUID:
            handle_cpuid();
            break;
        case VMEXIT_MSR:
            handle_msr();
            break;
        case VMEXIT_HLT:
            handle_hlt();
            break;
        case VMEXIT_INVD:
            exit_counts[EXIT_INVD]++;
            vmcb->rip += INVD_LENGTH;
            break;
        case VMEXIT_NPF:
            handle_stage2_fault();
            break;
        case VMEXIT_VMRUN: case VMEXIT_VMLOAD: case VMEXIT_VMSAVE:
        case VMEXIT_STGI: case VMEXIT_CLGI: case VMEXIT_SKINIT:
        case VMEXIT_INVLPGA:
            exit_counts[EXIT_SVM_INSTRUCTION]++;
            inject_exception(VECTOR_UD, false);
            break;
        case VMEXIT_SHUTDOWN:
            // the VMCB's guest state is undefined now (15.14.3)
            exit_counts[EXIT_UNEXPECTED]++;
            vm_fault("the guest shut down its CPU (SHUTDOWN: a triple fault, "
                     "an exception it could not deliver)");
            break;
        case VMEXIT_INVALID:
            exit_counts[EXIT_UNEXPECTED]++;
            vm_fault("VMRUN refused the guest's state (VMEXIT_INVALID)");
            break;
        default:
            exit_counts[EXIT_UNEXPECTED]++;
            vm_fault("unexpected exit");
        }
        if (vmcb->rip != rip) // an instruction was skipped: its shadow ends
            vmcb->int_state &= ~INT_STATE_SHADOW;
        if (vm_state == VM_RUNNING && budget_deadline &&
            rdtsc() >= budget_deadline)
            timer_tick();
    }
}

/*
### Interrupts and faults of the hypervisor itself

Every IDT stub of `start/x86_64.S` lands in `hv_trap`, with all registers
saved in a `struct trap_frame`. The timer interrupt is expected: it is
acknowledged at the local APIC (EOI) and noted for the run loop. A
spurious interrupt needs no EOI (APM vol. 2, 16.4.7 "Spurious Interrupts").
Anything else, an exception in hvbook's own code or an interrupt nobody
asked for, is a bug: it is reported with a register dump, and the machine
stops.
*/
struct trap_frame {
    u64 r15, r14, r13, r12, r11, r10, r9, r8, rbp, rdi, rsi, rdx, rcx, rbx, rax;
    u64 vector, error, rip, cs, rflags, rsp, ss;
};

static const char *const exception_names[32] = {
    "#DE divide error", "#DB debug", "NMI", "#BP breakpoint", "#OF overflow",
    "#BR bound range", "#UD invalid opcode", "#NM device not available",
    "#DF double fault", "coprocessor segment overrun", "#TS invalid TSS",
    "#NP segment not present", "#SS stack fault", "#GP general protection",
    "#PF page fault", "reserved", "#MF x87 floating point",
    "#AC alignment check", "#MC machine check", "#XF SIMD floating point",
    "reserved", "#CP control protection",
};

void hv_trap(struct trap_frame *f)
{
    static bool reporting;
    if (f->vector == HOST_TIMER_VECTOR) {
        lapic_write(LAPIC_EOI, 0);
        host_timer_fired = true;
        return;
    }
    if (f->vector == SPURIOUS_VECTOR)
        return;
    if (reporting)
        power_off(false);
    reporting = true;
    u64 cr2;
    __asm__ volatile("mov %%cr2, %0" : "=r"(cr2));
    const char *name = f->vector < 32 ? exception_names[f->vector] : NULL;
    printf("\nhvbook: %s %lu (%s) in the hypervisor itself\n",
           f->vector < 32 ? "exception" : "unexpected interrupt", f->vector,
           name                ? name
           : f->vector < 32    ? "reserved"
                               : "no device of hvbook's sends it");
    printf("  error 0x%lx  rip 0x%lx  cs 0x%lx  rflags 0x%lx  rsp 0x%lx"
           "  cr2 0x%lx\n", f->error, f->rip, f->cs, f->rflags, f->rsp, cr2);
    printf("  rax %016lx  rbx %016lx  rcx %016lx  rdx %016lx\n",
           f->rax, f->rbx, f->rcx, f->rdx);
    printf("  rsi %016lx  rdi %016lx  rbp %016lx  r8  %016lx\n",
           f->rsi, f->rdi, f->rbp, f->r8);
    printf("  r9  %016lx  r10 %016lx  r11 %016lx  r12 %016lx\n",
           f->r9, f->r10, f->r11, f->r12);
    printf("  r13 %016lx  r14 %016lx  r15 %016lx\n", f->r13, f->r14, f->r15);
    printf("hvbook: stopping with a failure status.\n");
    power_off(false);
}

/*
## 6. `hv_main`

The boot flow, the same on every architecture, as it goes on x86-64:

    QEMU's Multiboot loader -> _start (start/x86_64.S): long mode, IDT
      -> hv_main
      the command line and the memory size from the Multiboot information
      check for SVM and nested paging
      page allocator: everything between the end of hvbook and the end of RAM
      the local APIC and the TSC; EFER.SVME, VM_HSAVE_PA
      16 MiB of guest RAM, mapped by the nested tables
      VirtIO block device -> FAT -> /sbin/gkernel -> ELF loader -> guest RAM
      the VMCB, the run loop
      statistics, power off

The Multiboot information is read first, before the page allocator can hand
out (and zero) the memory QEMU put it in: `flags` bit 0 says `mem_upper`
(KiB of RAM above 1 MiB) is valid, bit 2 that `cmdline` points to the
command line.
*/
extern char _end[];

void hv_main(u32 magic, u32 mbi_addr)
{
    const struct multiboot_info *mbi = (const void *)(uintptr_t)mbi_addr;
    bool multiboot = magic == MULTIBOOT_BOOTLOADER_MAGIC;
    if (multiboot && (mbi->flags & MULTIBOOT_INFO_CMDLINE))
        boot_args_parse((const char *)(uintptr_t)mbi->cmdline);
    printf("\nhvbook: x86-64 hypervisor (AMD SVM)\n");
    printf("Starting virtualization...\n");
    if (!multiboot || !(mbi->flags & MULTIBOOT_INFO_MEMORY))
        panic("hvbook was not started by a Multiboot loader that gave the "
              "memory size (EAX 0x%x). Start it with qemu-system-x86_64 "
              "-kernel hvbook.elf32.", magic);
    u64 ram_end = 1 * MiB + (u64)mbi->mem_upper * 1024;
    const char *missing = svm_missing();
    if (missing)
        panic("%s.\n  Run QEMU with -cpu max,+svm (QEMU emulates AMD's SVM, "
              "not Intel's VMX).", missing);

    page_init((uintptr_t)_end, ram_end);
    time_init();
    svm_enable();
    printf("Pre-allocating %lu MB guest RAM at 0x%lx...\n",
           GUEST_RAM_SIZE / MiB, GUEST_RAM_GPA);
    guest_ram_setup();
    printf("VM created success, loading images...\n");

    u64 entry = load_guest_kernel("/sbin/gkernel", EM_X86_64, GUEST_RAM_GPA,
                                  GUEST_RAM_SIZE, guest_ram, VIRTIO_MMIO_BASE,
                                  VIRTIO_MMIO_STRIDE, VIRTIO_MMIO_SLOTS);

    printf("bsp_entry: 0x%lx; ept: 0x%lx\n", entry, (u64)(uintptr_t)npt_root);

    vcpu_setup(entry);
    printf("Entering VM run loop...\n");
    if (boot_args.budget_s)
        budget_deadline = rdtsc() + boot_args.budget_s * tsc_per_second;
    host_timer_rearm();
    vcpu_run();

    vm_finish(vm_state, exit_names, exit_counts, EXIT_REASONS);
}
