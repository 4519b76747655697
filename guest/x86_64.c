/*
# The guest's x86-64 platform: `guest/x86_64.c`

A PC kernel, like an Arm one, drives its devices itself. This guest needs
three, plus the CPU's own interrupt table:

- the **16550 UART** at I/O ports 0x3F8..0x3FF, the PC's first serial port
  (COM1), for the console;
- the **local APIC**, the interrupt controller built into every x86 core,
  whose timer is the preemption tick, in the memory-mapped *xAPIC* page at
  0xFEE0_0000;
- QEMU's **isa-debug-exit** device at I/O port 0xF4, a power switch that also
  carries a status;
- the **IDT**, the table that tells the CPU where each interrupt and exception
  goes.

Under hvbook the guest runs in an AMD SVM virtual machine, and every one of
these devices is *emulated*: each `in` and `out` is an I/O-intercept exit, and
each access to the APIC page is a nested page fault, for which the hypervisor
fetches the guest's instruction from memory and decodes it (QEMU's SVM has no
*decode assists* that would tell it). So, as on Arm, this driver touches as
few registers as a correct driver can, and always in the simplest form:

+----------------+-------------------+--------------------+--------------------+
| device         | register          | access             | value              |
+================+===================+====================+====================+
| 16550          | IER, LCR, DLL,    | `outb`, once each  | set-up, see        |
|                | DLM, FCR, MCR     |                    | `serial_init`      |
|                | (0x3F9, 0x3FB,    |                    |                    |
|                | 0x3F8, 0x3F9,     |                    |                    |
|                | 0x3FA, 0x3FC)     |                    |                    |
+----------------+-------------------+--------------------+--------------------+
| 16550          | LSR (0x3FD)       | `inb`              | poll THRE, bit 5   |
+----------------+-------------------+--------------------+--------------------+
| 16550          | THR (0x3F8)       | `outb`             | one character      |
+----------------+-------------------+--------------------+--------------------+
| isa-debug-exit | 0xF4              | `outb`             | 0 success, 1       |
|                |                   |                    | failure            |
+----------------+-------------------+--------------------+--------------------+
| local APIC     | SVR (+0xF0)       | 32-bit `mov` store | 0x1FF: enabled,    |
|                |                   |                    | spurious vector    |
|                |                   |                    | 0xFF               |
+----------------+-------------------+--------------------+--------------------+
| local APIC     | TPR (+0x80)       | store              | 0: accept every    |
|                |                   |                    | priority           |
+----------------+-------------------+--------------------+--------------------+
| local APIC     | LVT timer         | store              | vector 0x20,       |
|                | (+0x320)          |                    | one-shot; masked   |
|                |                   |                    | while calibrating  |
|                |                   |                    | and after the end  |
+----------------+-------------------+--------------------+--------------------+
| local APIC     | divide            | store              | 0x3: divide by 16  |
|                | configuration     |                    |                    |
|                | (+0x3E0)          |                    |                    |
+----------------+-------------------+--------------------+--------------------+
| local APIC     | initial count     | store              | the next deadline; |
|                | (+0x380)          |                    | 0 stops the timer  |
+----------------+-------------------+--------------------+--------------------+
| local APIC     | current count     | 32-bit `mov` load  | while calibrating  |
|                | (+0x390)          |                    | only               |
+----------------+-------------------+--------------------+--------------------+
| local APIC     | EOI (+0xB0)       | store              | 0, once per timer  |
|                |                   |                    | interrupt          |
+----------------+-------------------+--------------------+--------------------+
| flash          | 0xFFC0_0000       | 32-bit load        | (the magic, in     |
|                |                   |                    | `kernel.c`)        |
+----------------+-------------------+--------------------+--------------------+

Port I/O is byte-wide `inb`/`outb` only, never the string forms
(`rep outsb`), and the APIC is only ever read or written by a plain `mov`
between a register and memory, never by an instruction that reads, modifies
and writes memory in one go (`or [mem], reg`). Both keep the hypervisor's
emulation small.

The instructions that a hypervisor sees besides these are `cpuid` (in the
entry code and in `calibrate`), one `wrmsr` of `EFER` (entering long mode),
`hlt` (only when switching off failed), and `rdtsc`, the clock, which hvbook
does not intercept. The guest sets up no 8259 PIC, no PIT, no CMOS clock: they
are not part of what hvbook gives it.
*/
#include "guest.h"

const char plat_arch[] = "x86_64";
const char plat_name[] = "x86_64-qemu-microvm";

/* The top 4 MiB below 4 GiB: QEMU's firmware flash on a PC, and the window
   where hvbook emulates a flash bank for its guest. */
const uintptr_t plat_pflash_base = 0xFFC00000;

/*
## Ports

The x86 has a second address space besides memory: 64 Ki I/O ports, reached
only with `in` and `out`. The `"Nd"` constraint lets the compiler use the
short form with the port in the instruction when it is below 256, or `DX`
otherwise; the value travels in `AL`.
*/
static inline void outb(uint16_t port, uint8_t v)
{
    asm volatile("outb %0, %1" : : "a"(v), "Nd"(port) : "memory");
}

static inline uint8_t inb(uint16_t port)
{
    uint8_t v;
    asm volatile("inb %1, %0" : "=a"(v) : "Nd"(port) : "memory");
    return v;
}

/*
## The console: a 16550 UART

The 16550 (National Semiconductor PC16550D data sheet, its table of
registers) has eight registers at eight consecutive ports, and more names
than ports: what a port means depends on the direction of the access and on
the *divisor latch access bit* `DLAB`, bit 7 of the line control register.

| offset | read | write | with `DLAB` = 1 |
|---|---|---|---|
| 0 | RBR, received byte | THR, byte to send | DLL, divisor low byte |
| 1 | IER, interrupt enable | IER | DLM, divisor high byte |
| 2 | IIR, interrupt identification | FCR, FIFO control | |
| 3 | LCR, line control | LCR | |
| 4 | MCR, modem control | MCR | |
| 5 | LSR, line status | | |

`serial_init` does what PC firmware does, so that the guest does not depend
on what its loader left behind:

1. IER = 0: no interrupts. The guest polls, and under hvbook the UART has no
   interrupt line at all;
2. LCR = `DLAB`, then DLL = 1 and DLM = 0: the baud-rate divisor. The UART
   divides its 1.8432 MHz clock by 16 x divisor, so 1 gives 115200 baud (QEMU
   ignores the speed, a real UART does not);
3. LCR = 0x03: `DLAB` off again; 8 data bits, no parity, 1 stop bit;
4. FCR = 0x07: enable the FIFOs and clear both;
5. MCR = 0x03: `DTR` and `RTS` on, as a terminal expects.

Then each byte waits until the transmitter can take one (LSR bit 5, `THRE`,
"transmitter holding register empty") and goes to THR. Under hvbook, THRE
always reads 1 and each `outb` to THR is one I/O exit that prints a character.
*/
#define COM1            0x3F8
#define UART_THR        0       /* DLAB = 0, write */
#define UART_DLL        0       /* DLAB = 1 */
#define UART_IER        1       /* DLAB = 0 */
#define UART_DLM        1       /* DLAB = 1 */
#define UART_FCR        2
#define UART_LCR        3
#define UART_MCR        4
#define UART_LSR        5
#define LCR_DLAB        0x80
#define LCR_8N1         0x03
#define FCR_ENABLE      0x01
#define FCR_CLEAR_RX    0x02
#define FCR_CLEAR_TX    0x04
#define MCR_DTR         0x01
#define MCR_RTS         0x02
#define LSR_THRE        0x20
#define UART_DIVISOR    1       /* 115200 baud */

static void serial_init(void)
{
    outb(COM1 + UART_IER, 0);
    outb(COM1 + UART_LCR, LCR_DLAB);
    outb(COM1 + UART_DLL, UART_DIVISOR & 0xFF);
    outb(COM1 + UART_DLM, UART_DIVISOR >> 8);
    outb(COM1 + UART_LCR, LCR_8N1);
    outb(COM1 + UART_FCR, FCR_ENABLE | FCR_CLEAR_RX | FCR_CLEAR_TX);
    outb(COM1 + UART_MCR, MCR_DTR | MCR_RTS);
}

void plat_console_write(const char *s, size_t n)
{
    while (n--) {
        while (!(inb(COM1 + UART_LSR) & LSR_THRE))
            ;
        outb(COM1 + UART_THR, (uint8_t)*s++);
    }
}

/* Like the RISC-V guest, nothing to add after `smp = 1`. */
void plat_print_info(void)
{
}

/*
## The interrupt descriptor table

The IDT has one 16-byte *gate descriptor* per vector (AMD64 APM vol. 2,
4.8.4 "Gate Descriptors", the long-mode interrupt gate):

+--------+---------------------------------------------------------------------+
| bytes  | field                                                               |
+========+=====================================================================+
| 0..1   | handler address, bits 15..0                                         |
+--------+---------------------------------------------------------------------+
| 2..3   | code segment selector: `KERNEL_CS`, the 64-bit segment of           |
|        | `x86_64.S`'s GDT                                                    |
+--------+---------------------------------------------------------------------+
| 4      | bits 2..0: interrupt-stack-table index, 0 = stay on the current     |
|        | stack                                                               |
+--------+---------------------------------------------------------------------+
| 5      | bit 7 `P` present, bits 6..5 `DPL` 0, bits 3..0 type 0xE: 64-bit    |
|        | *interrupt* gate                                                    |
+--------+---------------------------------------------------------------------+
| 6..7   | handler address, bits 31..16                                        |
+--------+---------------------------------------------------------------------+
| 8..11  | handler address, bits 63..32                                        |
+--------+---------------------------------------------------------------------+
| 12..15 | reserved, 0                                                         |
+--------+---------------------------------------------------------------------+

An interrupt gate, unlike a trap gate, clears `RFLAGS.IF` on the way in: the
handlers run with interrupts masked, which is what `kernel_timer_tick`
requires. `lidt` takes a 10-byte operand: the limit (size - 1) and the base.

The stubs in `x86_64.S` are installed for vectors 0..32 (`trap_stubs`) and the
spurious vector 0xFF; every other vector stays not present.
*/
#define KERNEL_CS        0x08
#define GATE_INTERRUPT   0x8E   /* P = 1, DPL = 0, type 0xE */
#define IDT_VECTORS      256
#define STUB_VECTORS     33     /* 0..31 exceptions, 32 the timer */
#define TIMER_VECTOR     0x20
#define SPURIOUS_VECTOR  0xFF

struct idt_gate {
    uint16_t offset_low;
    uint16_t selector;
    uint8_t ist;
    uint8_t type;
    uint16_t offset_mid;
    uint32_t offset_high;
    uint32_t reserved;
} __attribute__((packed));

struct idt_pointer {
    uint16_t limit;
    uint64_t base;
} __attribute__((packed));

static struct idt_gate idt[IDT_VECTORS] __attribute__((aligned(16)));

extern const uint64_t trap_stubs[STUB_VECTORS];
extern char spurious_stub[];

static void idt_set(unsigned vector, uint64_t handler)
{
    idt[vector] = (struct idt_gate){
        .offset_low = (uint16_t)handler,
        .selector = KERNEL_CS,
        .ist = 0,
        .type = GATE_INTERRUPT,
        .offset_mid = (uint16_t)(handler >> 16),
        .offset_high = (uint32_t)(handler >> 32),
    };
}

static void idt_init(void)
{
    for (unsigned v = 0; v < STUB_VECTORS; v++)
        idt_set(v, trap_stubs[v]);
    idt_set(SPURIOUS_VECTOR, (uintptr_t)spurious_stub);

    struct idt_pointer p = { .limit = sizeof(idt) - 1, .base = (uintptr_t)idt };
    asm volatile("lidt %0" : : "m"(p) : "memory");
}

/*
## What the loader told us

The entry code stored the loader's `EAX` and `EBX` here. `EAX` must be the
Multiboot loader magic 0x2BAD_B002 (Multiboot 3.2), or we were not started by
a Multiboot loader at all, and nothing about the machine can be assumed.

`EBX` points to the *Multiboot information* structure (3.3 "Boot
information format"). Its first three words are all this kernel reads:

| offset | field | meaning |
|---|---|---|
| 0 | `flags` | bit 0: `mem_lower` and `mem_upper` are valid |
| 4 | `mem_lower` | KiB of memory from 0 (at most 640) |
| 8 | `mem_upper` | KiB of memory from 1 MiB up to the first hole |

Our header asked for the memory fields (its flag bit 1), so a loader that
leaves them out broke the contract. The kernel checks that it fits in the
memory it was given: under hvbook, 16 MiB of RAM gives `mem_upper` = 15 MiB.
*/
#define MULTIBOOT_LOADER_MAGIC 0x2BADB002u
#define MBI_FLAG_MEMORY        (1u << 0)

struct multiboot_info {
    uint32_t flags;
    uint32_t mem_lower;
    uint32_t mem_upper;
};

uint32_t multiboot_magic, multiboot_info;   /* written by x86_64.S */
extern char _end[];

static void multiboot_check(void)
{
    if (multiboot_magic != MULTIBOOT_LOADER_MAGIC) {
        kprintf("not started by a Multiboot loader: eax=0x%x\n",
                multiboot_magic);
        plat_shutdown(false);
    }
    const struct multiboot_info *mbi =
        (const struct multiboot_info *)(uintptr_t)multiboot_info;
    if (!(mbi->flags & MBI_FLAG_MEMORY)) {
        kprintf("the Multiboot loader gave no memory size (flags 0x%x)\n",
                mbi->flags);
        plat_shutdown(false);
    }
    uint64_t ram_end = 0x100000 + (uint64_t)mbi->mem_upper * 1024;
    if (ram_end < (uintptr_t)_end) {
        kprintf("RAM ends at 0x%lx, but the kernel ends at 0x%lx\n",
                ram_end, (uintptr_t)_end);
        plat_shutdown(false);
    }
}

/*
## The local APIC

Every x86 core has a *local APIC* (Intel SDM vol. 3A, chapter "Advanced
Programmable Interrupt Controller (APIC)"; AMD64 APM vol. 2, chapter
"Advanced Programmable Interrupt Controller (APIC)"). In xAPIC mode its
registers are a 4 KiB page of memory at 0xFEE0_0000, each register 32 bits
at a 16-byte-aligned offset. (The newer x2APIC mode uses MSRs instead; QEMU's
software emulation does not offer it.)

`apic_read` and `apic_write` are the only way this file touches the page.
They are assembly so that the compiler can only ever emit one plain
`mov` between a register and the register's address: exactly what hvbook's
instruction decoder expects to find at the guest's `RIP` after a nested page
fault on this page.
*/
#define APIC_BASE           0xFEE00000UL
#define APIC_TPR            0x080
#define APIC_EOI            0x0B0
#define APIC_SVR            0x0F0
#define APIC_LVT_TIMER      0x320
#define APIC_TIMER_INITIAL  0x380
#define APIC_TIMER_CURRENT  0x390
#define APIC_TIMER_DIVIDE   0x3E0

static inline uint32_t apic_read(unsigned reg)
{
    uint32_t v;
    asm volatile("movl (%1), %0" : "=r"(v) : "r"(APIC_BASE + reg) : "memory");
    return v;
}

static inline void apic_write(unsigned reg, uint32_t v)
{
    asm volatile("movl %0, (%1)" : : "r"(v), "r"(APIC_BASE + reg) : "memory");
}

/*
Three registers make the APIC deliver interrupts at all:

- **SVR**, the spurious-interrupt vector register: bit 8 is the APIC's
  *software enable* (after reset the APIC is present but disabled, and every
  local interrupt source is masked), bits 7..0 the vector it uses for a
  spurious interrupt, 0xFF here;
- **TPR**, the task priority: interrupts whose priority class (vector / 16)
  is not above it wait. 0 lets everything through;
- **EOI**: writing 0 tells the APIC the handler is done with the highest
  interrupt in service. Until then it delivers nothing of the same or a lower
  priority, so a timer handler that forgot would never be interrupted again.

The timer itself (SDM, "APIC Timer") is a 32-bit counter that counts down
from the **initial count** at the APIC's clock divided by the **divide
configuration**; the **current count** reads where it is. When it reaches 0
it raises the interrupt described by the **LVT timer** register:

| bits | field | value here |
|---|---|---|
| 7..0 | vector | 0x20 |
| 16 | mask | 1 while calibrating and after the end, 0 while ticking |
| 18..17 | mode | 00 one-shot (01 would be periodic) |

In one-shot mode the counter stops at 0, and the next interrupt needs a new
initial count: the handler re-arms it, exactly like the deadline timers of the
RISC-V and Arm guests. Writing 0 stops the timer. The divide configuration
encodes the divisor in bits 3, 1 and 0: 0b0011 is 16.
*/
#define SVR_APIC_ENABLE     (1u << 8)
#define LVT_MASKED          (1u << 16)
#define LVT_TIMER_ONESHOT   (0u << 17)
#define APIC_DIVIDE_BY_16   0x3
#define APIC_DIVISOR        16

static void apic_init(void)
{
    apic_write(APIC_SVR, SVR_APIC_ENABLE | SPURIOUS_VECTOR);
    apic_write(APIC_TPR, 0);
    apic_write(APIC_LVT_TIMER, LVT_MASKED | LVT_TIMER_ONESHOT | TIMER_VECTOR);
    apic_write(APIC_TIMER_DIVIDE, APIC_DIVIDE_BY_16);
}

/*
## Time: which clock can the guest trust?

The kernel needs two things from time: a clock to read (`plat_time_us`, for
the workers' busy work) and a tick every 10 ms (the APIC timer). Both must be
true on bare QEMU and under hvbook, and the two must agree, or a worker's
"1 ms" of work would not be a tenth of a tick.

A PC kernel usually measures its clocks against one whose rate is fixed by
the platform: the 8254 PIT (1.193182 MHz), the HPET, the ACPI PM timer or the
CMOS clock. This guest may use none of them: hvbook gives its guest no such
device (of all the I/O ports, only the UART's and the power-off port). What it
has:

- the **time-stamp counter**, read by `rdtsc`: cheap, and not intercepted by
  hvbook, so it is the real counter (plus an offset) with no exit. But its rate
  is the host CPU's, which no one tells us: CPUID leaf 0x15 would, and QEMU's
  software CPU stops at leaf 0xD;
- the **APIC timer**: its units are the APIC's input clock, fixed by the
  platform. QEMU's local APIC counts at 1 GHz, one count per nanosecond
  before the divider, and hvbook promises its guest the same units: it
  measures its TSC against its own, real APIC timer and computes the guest's
  current count from the TSC. But every read of the current count is an exit
  under hvbook, far too slow for a clock that a worker polls in a tight loop.

So the APIC timer is the *reference* and the TSC is the *clock*: at boot,
`calibrate` counts how many TSC ticks pass while the APIC timer counts down
10 ms worth, and from then on `plat_time_us` reads the TSC alone. Where CPUID
leaf 0x15 exists and names the core crystal clock in `ECX`, that is the APIC
timer's input clock (SDM, "APIC Timer"), and we use it instead of QEMU's
1 GHz; that is how a newer Intel CPU says it.

The calibration reads the current count and then the TSC, in the same order
at both ends, so the time one read takes under hvbook (an exit and a decode)
is in both measurements and cancels out. If the APIC timer does not count
down at all, the loop would never end; so it gives up after 2^36 TSC ticks
(at least 6 seconds at any TSC rate up to 10 GHz) and says so.
*/
#define QEMU_APIC_HZ        1000000000ULL
#define CALIBRATE_US        10000
#define CALIBRATE_GIVE_UP   (1ULL << 36)

static uint64_t apic_timer_hz;          /* counts a second, after the divider */
static uint64_t tsc_hz;
static uint32_t tick_count;             /* the initial count for one tick */

static inline uint64_t rdtsc(void)
{
    uint32_t lo, hi;
    asm volatile("rdtsc" : "=a"(lo), "=d"(hi));
    return (uint64_t)hi << 32 | lo;
}

static void cpuid(uint32_t leaf, uint32_t r[4])
{
    asm volatile("cpuid" : "=a"(r[0]), "=b"(r[1]), "=c"(r[2]), "=d"(r[3])
                 : "a"(leaf), "c"(0));
}

static uint64_t apic_input_hz(void)
{
    uint32_t r[4];
    cpuid(0, r);
    if (r[0] >= 0x15) {
        cpuid(0x15, r);
        if (r[2])
            return r[2];                // ECX: the core crystal clock in Hz
    }
    return QEMU_APIC_HZ;
}

static void calibrate(void)
{
    apic_timer_hz = apic_input_hz() / APIC_DIVISOR;
    uint64_t want = apic_timer_hz * CALIBRATE_US / 1000000;

    apic_write(APIC_TIMER_INITIAL, 0xFFFFFFFF);
    uint32_t c0 = apic_read(APIC_TIMER_CURRENT);
    uint64_t t0 = rdtsc();
    uint32_t c1;
    uint64_t t1;
    do {
        c1 = apic_read(APIC_TIMER_CURRENT);
        t1 = rdtsc();
        if (t1 - t0 > CALIBRATE_GIVE_UP) {
            kprintf("the APIC timer does not count (current count 0x%x)\n", c1);
            plat_shutdown(false);
        }
    } while (c0 - c1 < want);
    apic_write(APIC_TIMER_INITIAL, 0);

    tsc_hz = (t1 - t0) * apic_timer_hz / (c0 - c1);
}

/*
`plat_time_us` converts TSC ticks to microseconds in two parts, whole seconds
and the rest, so that the multiplication cannot overflow however long the
host has been up (the TSC counts from the host's reset).
*/
uint64_t plat_time_us(void)
{
    uint64_t t = rdtsc();
    return t / tsc_hz * 1000000 + t % tsc_hz * 1000000 / tsc_hz;
}

/*
The tick: unmask the LVT timer with our vector in one-shot mode, and arm it.
`timer_arm` is also what the interrupt handler calls to re-arm it.
*/
static void timer_arm(void)
{
    apic_write(APIC_TIMER_INITIAL, tick_count);
}

void plat_timer_start(uint64_t period_us)
{
    tick_count = (uint32_t)(apic_timer_hz * period_us / 1000000);
    apic_write(APIC_LVT_TIMER, LVT_TIMER_ONESHOT | TIMER_VECTOR);
    timer_arm();
}

void plat_timer_stop(void)
{
    apic_write(APIC_LVT_TIMER, LVT_MASKED | LVT_TIMER_ONESHOT | TIMER_VECTOR);
    apic_write(APIC_TIMER_INITIAL, 0);
}

/*
## `plat_init`

The console first, so that every later check can say what went wrong; then
the IDT, so that an exception is reported instead of resetting the machine
(with no IDT, a fault becomes a double fault, then a triple fault: a reset);
then the loader's hand-off, the APIC and the clock.
*/
void plat_init(void)
{
    serial_init();
    idt_init();
    multiboot_check();
    apic_init();
    calibrate();
}

/*
## Masking interrupts

`RFLAGS.IF` (bit 9) masks maskable interrupts: `cli` clears it, `sti` sets
it. `pushfq; popq` reads the old `RFLAGS` before the `cli`; an interrupt
between the two instructions is harmless, since it returns with `RFLAGS` as
it found it. The `"memory"` clobbers make these compiler barriers, as on the
other architectures.
*/
#define RFLAGS_IF (1UL << 9)

void plat_irq_enable(void)
{
    asm volatile("sti" : : : "memory");
}

unsigned long plat_irq_save(void)
{
    unsigned long rflags;
    asm volatile("pushfq\n\tpopq %0\n\tcli" : "=r"(rflags) : : "memory");
    return rflags & RFLAGS_IF;
}

void plat_irq_restore(unsigned long flags)
{
    if (flags & RFLAGS_IF)
        asm volatile("sti" : : : "memory");
}

/*
## Power-off

QEMU's `isa-debug-exit` device, which `run.sh` puts at port 0xF4, ends QEMU
when written to, with exit status (v << 1) | 1 for the value v written: 1 for
v = 0, 3 for v = 1. It can never produce exit status 0, which is why `run.sh`
maps the statuses back. Under hvbook the same `outb` is an I/O exit, which the
hypervisor takes as the guest's shutdown. If nothing at that port switches
the machine off, the CPU halts with interrupts masked for good.
*/
#define POWER_OFF_PORT      0xF4
#define POWER_OFF_SUCCESS   0
#define POWER_OFF_FAILURE   1

void plat_shutdown(bool ok)
{
    asm volatile("cli" : : : "memory");
    outb(POWER_OFF_PORT, ok ? POWER_OFF_SUCCESS : POWER_OFF_FAILURE);
    for (;;)
        asm volatile("hlt");
}

/*
## A new thread's first frame

`ctx_switch` pops six registers and returns (see `x86_64.S`). For a new
thread we zero the six and put `start` where the return address goes. One
more zero word above it stands where `start`'s own return address would be:
it keeps the stack aligned as the ABI wants at a function's entry (`RSP` + 8
a multiple of 16), and a debugger walking the stack finds a zero and stops.
*/
#define SWITCH_FRAME_WORDS 8
#define SWITCH_FRAME_RET   6

void *plat_thread_stack(void *top, void (*start)(void))
{
    uint64_t *frame = (uint64_t *)top - SWITCH_FRAME_WORDS;
    for (int i = 0; i < SWITCH_FRAME_WORDS; i++)
        frame[i] = 0;
    frame[SWITCH_FRAME_RET] = (uintptr_t)start;
    return frame;
}

/*
## The trap handler

Every stub lands here with the trap frame. The only expected vector is the
timer's. For it: re-arm the one-shot timer, signal the end of the interrupt
to the APIC, and only then let the kernel have its tick, which may switch to
another thread. As on Arm, the order matters: the APIC delivers nothing of
the timer's priority while the interrupt is in service, and the thread we
switch to may run for a long time before this handler returns.

Anything else is an exception: a bug in the guest, or a hypervisor that gave
it something a real machine would not. Report the vector with its name, the
error code, where it happened (`RIP`, and for a page fault the address in
`CR2`), and power off with a failure.
*/
#define VECTOR_PAGE_FAULT 14

struct trap_frame {
    uint64_t r15, r14, r13, r12, r11, r10, r9, r8;
    uint64_t rbp, rdi, rsi, rdx, rcx, rbx, rax;
    uint64_t vector, error;
    uint64_t rip, cs, rflags, rsp, ss;     /* pushed by the CPU */
};

void x86_trap(struct trap_frame *tf);

static const char *const exception_names[32] = {
    "#DE divide error", "#DB debug", "NMI", "#BP breakpoint",
    "#OF overflow", "#BR bound range", "#UD invalid opcode",
    "#NM device not available", "#DF double fault",
    "coprocessor segment overrun", "#TS invalid TSS",
    "#NP segment not present", "#SS stack fault",
    "#GP general protection", "#PF page fault", "reserved",
    "#MF x87 floating point", "#AC alignment check", "#MC machine check",
    "#XF SIMD floating point", "#VE virtualization", "#CP control protection",
    "reserved", "reserved", "reserved", "reserved", "reserved", "reserved",
    "#HV hypervisor injection", "#VC VMM communication", "#SX security",
    "reserved",
};

void x86_trap(struct trap_frame *tf)
{
    if (tf->vector == TIMER_VECTOR) {
        timer_arm();
        apic_write(APIC_EOI, 0);
        kernel_timer_tick();
        return;
    }

    uint64_t cr2 = 0;
    if (tf->vector == VECTOR_PAGE_FAULT)
        asm volatile("mov %%cr2, %0" : "=r"(cr2));
    const char *name =
        tf->vector < 32 ? exception_names[tf->vector] : "interrupt";

    kprintf("unexpected exception: vector %lu (%s), error 0x%lx, "
            "rip=0x%lx cr2=0x%lx\n", tf->vector, name, tf->error, tf->rip, cr2);
    plat_shutdown(false);
}
