/*
# The guest's RISC-V platform: `guest/riscv64.c`

On RISC-V an S-mode kernel does not drive the console, the timer or the power
switch itself: it asks the firmware below it through the *Supervisor Binary
Interface* (SBI), with an `ecall`. On bare QEMU, OpenSBI answers in M-mode.
Under hvbook the guest runs in VS-mode, its `ecall` traps to the hypervisor in
HS-mode, and hvbook answers in OpenSBI's place. The guest cannot tell which:
that is exactly the equivalence this file relies on.

Everything this guest asks of the SBI, in order of first use:

+-----------------------------+------------+-----+-----------------------------+
| call                        | EID        | FID | when                        |
+=============================+============+=====+=============================+
| BASE                        | 0x10       | 3   | once, in `plat_init`        |
| `probe_extension(DBCN)`     |            |     |                             |
+-----------------------------+------------+-----+-----------------------------+
| DBCN                        | 0x4442434E | 0   | each line, if DBCN exists   |
| `console_write(n, addr, 0)` |            |     |                             |
+-----------------------------+------------+-----+-----------------------------+
| legacy `console_putchar(c)` | 0x01       | -   | each byte, if DBCN does not |
|                             |            |     | exist                       |
+-----------------------------+------------+-----+-----------------------------+
| TIME `set_timer(deadline)`  | 0x54494D45 | 0   | timer start, every tick,    |
|                             |            |     | stop                        |
+-----------------------------+------------+-----+-----------------------------+
| SRST                        | 0x53525354 | 0   | power-off                   |
| `system_reset(0, reason)`   |            |     |                             |
+-----------------------------+------------+-----+-----------------------------+
| legacy `shutdown()`         | 0x08       | -   | power-off, only if SRST     |
|                             |            |     | returned                    |
+-----------------------------+------------+-----+-----------------------------+

Besides the SBI, the guest touches only its RAM, the flash bank at 0x2200_0000,
the `time` CSR and its own S-mode CSRs (`stvec`, `sie`, `sstatus`, `sepc`,
`scause`, `stval`). In particular it does not use the `stimecmp` CSR of the
Sstc extension, which would let it program the timer without the SBI: hvbook
hides Sstc, and the SBI timer works on every RISC-V machine.
*/
#include "guest.h"

const char plat_arch[] = "riscv64";
const char plat_name[] = "riscv64-qemu-virt";

/* pflash1 on QEMU's riscv64 `virt` machine (hw/riscv/virt.c, VIRT_FLASH). */
const uintptr_t plat_pflash_base = 0x22000000;

/*
## Calling the SBI

The SBI calling convention (RISC-V SBI spec v2.0, chapter 3, "Binary
Encoding"): the extension id (EID) goes in `a7`, the function id (FID) in `a6`,
arguments in `a0`..`a5`; `ecall`; the error code comes back in `a0` and a value
in `a1`. Error 0 is `SBI_SUCCESS`. The legacy extensions (chapter 5) ignore
`a6` and return only `a0`, so the same helper serves them.
*/
#define SBI_EXT_LEGACY_PUTCHAR  0x01        /* chapter 5.2 */
#define SBI_EXT_LEGACY_SHUTDOWN 0x08        /* chapter 5.9 */
#define SBI_EXT_BASE            0x10        /* chapter 4 */
#define SBI_BASE_PROBE_EXT      3
#define SBI_EXT_TIME            0x54494D45  /* "TIME", chapter 6 */
#define SBI_TIME_SET_TIMER      0
#define SBI_EXT_SRST            0x53525354  /* "SRST", chapter 10 */
#define SBI_SRST_RESET          0
#define SBI_SRST_TYPE_SHUTDOWN  0
#define SBI_SRST_REASON_NONE    0
#define SBI_SRST_REASON_FAILURE 1           /* "system failure" */
#define SBI_EXT_DBCN            0x4442434E  /* "DBCN", chapter 12 */
#define SBI_DBCN_WRITE          0

struct sbiret {
    long error;
    long value;
};

static struct sbiret sbi_call(unsigned long eid, unsigned long fid,
                              unsigned long arg0, unsigned long arg1,
                              unsigned long arg2)
{
    register unsigned long a0 asm("a0") = arg0;
    register unsigned long a1 asm("a1") = arg1;
    register unsigned long a2 asm("a2") = arg2;
    register unsigned long a6 asm("a6") = fid;
    register unsigned long a7 asm("a7") = eid;

    // "memory": the firmware may read our memory (DBCN reads the line).
    asm volatile("ecall"
                 : "+r"(a0), "+r"(a1)
                 : "r"(a2), "r"(a6), "r"(a7)
                 : "memory");
    return (struct sbiret){ .error = (long)a0, .value = (long)a1 };
}

/*
## The trap vector and the console

`plat_init` points `stvec` at `trap_vector` (in `riscv64.S`). The low two
bits of `stvec` are the mode; 0 is *direct*: every trap, interrupt or
exception, enters at the base address (RISC-V privileged spec, "Supervisor
Trap Vector Base Address (stvec) Register").

Then it chooses the console. The *debug console* extension DBCN (SBI v2.0,
chapter 12) writes a whole buffer per call: one `ecall` per line instead of one
per character, which under a hypervisor means one VM exit per line. Not every
firmware has it (OpenSBI only since version 1.3), so the guest asks first with
`probe_extension`, which returns a non-zero value for an extension that
exists (chapter 4.4). Without DBCN it falls back to the legacy
`console_putchar`, which every SBI implementation of the past decade has.
*/
#define STVEC_MODE_DIRECT 0

extern char trap_vector[];
static bool have_dbcn;

void plat_init(void)
{
    asm volatile("csrw stvec, %0"
                 : : "r"((uintptr_t)trap_vector | STVEC_MODE_DIRECT));

    struct sbiret r =
        sbi_call(SBI_EXT_BASE, SBI_BASE_PROBE_EXT, SBI_EXT_DBCN, 0, 0);
    have_dbcn = r.error == 0 && r.value != 0;
}

/* S-mode cannot read its own privilege level: nothing to add. */
void plat_print_info(void)
{
}

/*
DBCN's `console_write(num_bytes, base_addr_lo, base_addr_hi)` takes the
*physical* address of the bytes. The MMU is off (`satp` = 0), so a pointer is
a physical address. (Under hvbook it is a *guest*-physical address, which the
hypervisor must translate and check: not our concern here.) The call may write
fewer bytes than asked, returning how many it wrote in `value`, so we loop.
On an error, or an answer that makes no progress or no sense (zero bytes, or
more than we asked for), we stop trusting DBCN and write the rest, and every
later line, with the legacy call: a console that works slowly beats a kernel
that spins forever on a console that does not.
*/
void plat_console_write(const char *s, size_t n)
{
    while (n && have_dbcn) {
        struct sbiret r =
            sbi_call(SBI_EXT_DBCN, SBI_DBCN_WRITE, n, (uintptr_t)s, 0);
        if (r.error || r.value <= 0 || (size_t)r.value > n) {
            have_dbcn = false;
            break;
        }
        s += r.value;
        n -= (size_t)r.value;
    }
    while (n--)
        sbi_call(SBI_EXT_LEGACY_PUTCHAR, 0, (unsigned char)*s++, 0, 0);
}

/*
## Time and the timer

The `time` CSR counts at a constant rate, the *timebase frequency*. A kernel
usually reads it from the device tree (`/cpus/timebase-frequency`); this one
knows its board: QEMU's `virt` machine ticks at 10 MHz
(`RISCV_ACLINT_DEFAULT_TIMEBASE_FREQ` in QEMU's source). Under hvbook the guest
reads the same host counter (offset by `htimedelta`), at the same rate.

The timer is one deadline in `time` units. `set_timer(t)` (SBI TIME, chapter
6.1) asks for a supervisor timer interrupt once `time` >= `t`, and also clears
the pending one: so the same call both acknowledges a tick and arms the next.
The interrupt arrives as `sip.STIP`; it is taken when `sie.STIE` (bit 5) and
`sstatus.SIE` (bit 1) are both set, and then `scause` reads interrupt bit 63
set, code 5 (RISC-V privileged spec, "Supervisor Interrupt (sip and sie)
Registers" and "Supervisor Cause (scause) Register").
*/
#define TIMEBASE_HZ     10000000UL
#define SIE_STIE        (1UL << 5)
#define SSTATUS_SIE     (1UL << 1)
#define SCAUSE_INTERRUPT (1UL << 63)
#define IRQ_S_TIMER     5

static uint64_t tick_period;            /* in `time` units */

static uint64_t read_time(void)
{
    uint64_t t;
    asm volatile("rdtime %0" : "=r"(t));
    return t;
}

uint64_t plat_time_us(void)
{
    return read_time() / (TIMEBASE_HZ / 1000000);
}

static void timer_arm(void)
{
    sbi_call(SBI_EXT_TIME, SBI_TIME_SET_TIMER, read_time() + tick_period, 0, 0);
}

void plat_timer_start(uint64_t period_us)
{
    tick_period = period_us * (TIMEBASE_HZ / 1000000);
    timer_arm();
    asm volatile("csrs sie, %0" : : "r"(SIE_STIE));
}

/* Disable the source, and push the deadline to the end of time so that
   nothing stays pending. */
void plat_timer_stop(void)
{
    asm volatile("csrc sie, %0" : : "r"(SIE_STIE));
    sbi_call(SBI_EXT_TIME, SBI_TIME_SET_TIMER, ~0UL, 0, 0);
}

/*
## Masking interrupts

One bit, `sstatus.SIE`, masks every interrupt in S-mode. `csrrci` clears it
and returns the old `sstatus` in one instruction, so saving and masking cannot
be torn apart by an interrupt. The `"memory"` clobbers make each of these a
compiler barrier too: no load or store of shared data may be moved across the
edge of a critical section.
*/
void plat_irq_enable(void)
{
    asm volatile("csrsi sstatus, 2" : : : "memory");
}

unsigned long plat_irq_save(void)
{
    unsigned long old;
    asm volatile("csrrci %0, sstatus, 2" : "=r"(old) : : "memory");
    return old & SSTATUS_SIE;
}

void plat_irq_restore(unsigned long flags)
{
    if (flags & SSTATUS_SIE)
        asm volatile("csrsi sstatus, 2" : : : "memory");
}

/*
## Power-off

SRST's `system_reset(type, reason)` (SBI v2.0, chapter 10.1) with type 0,
*shutdown*. The reason tells the platform how it went: 0 "no reason" for a
normal end, 1 "system failure" otherwise. hvbook turns reason 1 into a
failing run: no `Hypervisor ok!`, and a failure status from `run.sh`. Bare,
it depends on the firmware: Debian 12's OpenSBI 1.1 ignores the reason, and
QEMU exits with status 0 either way. If SRST is missing the call returns an
error, and we try the legacy `shutdown` (chapter 5.9), which cannot carry a
reason. If even that returns, we sleep forever with interrupts masked.
*/
void plat_shutdown(bool ok)
{
    asm volatile("csrci sstatus, 2" : : : "memory");
    sbi_call(SBI_EXT_SRST, SBI_SRST_RESET, SBI_SRST_TYPE_SHUTDOWN,
             ok ? SBI_SRST_REASON_NONE : SBI_SRST_REASON_FAILURE, 0);
    sbi_call(SBI_EXT_LEGACY_SHUTDOWN, 0, 0, 0, 0);
    for (;;)
        asm volatile("wfi");
}

/*
## A new thread's first frame

The switch frame `ctx_switch` pops is 112 bytes: `ra` at offset 0, then
`s0`..`s11`, then padding (see `riscv64.S`). For a thread that has never run,
we write `ra` = `start` and zero the rest, so that the first `ctx_switch` to
it "returns" into `start` with `sp` = `top`. `s0` = 0 also ends the chain of
frame pointers there, which is what a debugger expects at the bottom of a
stack.
*/
#define SWITCH_FRAME_WORDS 14

void *plat_thread_stack(void *top, void (*start)(void))
{
    uint64_t *frame = (uint64_t *)top - SWITCH_FRAME_WORDS;
    for (int i = 0; i < SWITCH_FRAME_WORDS; i++)
        frame[i] = 0;
    frame[0] = (uintptr_t)start;
    return frame;
}

/*
## The trap handler

`trap_vector` saves the interrupted thread's registers and calls here with a
pointer to the frame. Exactly one kind of trap is expected: the supervisor
timer interrupt. For it we arm the next deadline, which also withdraws the
pending interrupt (so it does not fire again the moment we return), and then
let the kernel have its tick, which may switch threads (see
`kernel_timer_tick`).

Anything else is a bug in the guest, or a hypervisor that gave the guest
something a real machine would not: say what it was, with the faulting
address in `stval`, and power off with a failure.
*/
struct trap_frame {
    uint64_t x[32];                     /* x[0] unused; x[2] is the old sp */
    uint64_t sepc;
    uint64_t sstatus;
};

void riscv_trap(struct trap_frame *tf);

void riscv_trap(struct trap_frame *tf)
{
    uint64_t scause, stval;
    asm volatile("csrr %0, scause" : "=r"(scause));
    asm volatile("csrr %0, stval" : "=r"(stval));

    if (scause == (SCAUSE_INTERRUPT | IRQ_S_TIMER)) {
        timer_arm();
        kernel_timer_tick();
        return;
    }

    kprintf("unexpected trap: scause=0x%lx (%s %lu) sepc=0x%lx stval=0x%lx\n",
            scause, (scause & SCAUSE_INTERRUPT) ? "interrupt" : "exception",
            scause & ~SCAUSE_INTERRUPT, tf->sepc, stval);
    plat_shutdown(false);
}
