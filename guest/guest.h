/*
# The guest's two halves: `guest/guest.h`

The guest kernel, `gkernel`, is the program the hypervisor runs. It is a real,
if tiny, operating system: it boots the way firmware starts any kernel, prints
a banner, reads a device, and then runs three threads that a timer interrupt
preempts. Nothing in it knows whether it runs on bare QEMU or inside hvbook, and
that is the point: the same ELF must print the same lines in both places.

The guest is split like any portable kernel:

+-------------------+----------------------------------------------------------+
| file              | what it holds                                            |
+===================+==========================================================+
| `guest/kernel.c`  | the portable kernel: `printf`, the scheduler, the        |
|                   | workload                                                 |
+-------------------+----------------------------------------------------------+
| `guest/<arch>.c`  | the platform drivers: console, timer, interrupt          |
|                   | controller, power-off                                    |
+-------------------+----------------------------------------------------------+
| `guest/<arch>.S`  | entry, the trap vector, the context switch               |
+-------------------+----------------------------------------------------------+
| `guest/<arch>.ld` | where in guest RAM each section goes                     |
+-------------------+----------------------------------------------------------+

This header is the seam between them. Read it as two lists: what every
platform gives the kernel (the functions named `plat_*`, and `ctx_switch`), and
what the kernel gives back to the platform (`kernel_main`, `kernel_timer_tick`,
`kprintf`). The kernel contains no `#ifdef` for an architecture; everything
that differs between RISC-V, Arm and x86-64 is behind one of these names.

Like the hypervisor, the guest has no C library. It only uses the compiler's
freestanding headers, which every C compiler ships even for bare metal.
*/
#ifndef HVBOOK_GUEST_H
#define HVBOOK_GUEST_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/*
## What the platform gives the kernel

**Identity.** The two strings the kernel prints as `arch = ...` and
`platform = ...`, and the physical address of the flash the device test
reads: the second flash bank, `pflash1`, on RISC-V and Arm, the firmware
window below 4 GiB on x86-64. The guest does not parse the device
tree: like firmware written for one board, it knows its board. These are the
addresses of QEMU's `virt` machine (RISC-V, Arm) and `microvm` machine
(x86-64), and hvbook promises the guest exactly that machine.
*/
extern const char plat_arch[];
extern const char plat_name[];
extern const uintptr_t plat_pflash_base;

/*
`plat_init` runs first, before any output: it installs the trap vector and
gets the console ready. `plat_print_info` may print extra lines of
architecture-specific facts after `smp = 1` (AArch64 prints the exception level
it runs at; RISC-V prints nothing, since S-mode cannot read its own privilege
level).
*/
void plat_init(void);
void plat_print_info(void);

/*
**Console.** Write `n` bytes. The kernel calls this with interrupts masked,
once per line, so that two threads' lines never mix.
*/
void plat_console_write(const char *s, size_t n);

/*
**Time and the timer.** `plat_time_us` reads a free-running clock in
microseconds. `plat_timer_start(period_us)` sets up the timer interrupt to fire
every `period_us` microseconds: the platform programs the interrupt controller,
arms the first deadline, and from then on re-arms the timer and acknowledges
the interrupt itself before it calls `kernel_timer_tick`. The kernel only ever
sees ticks. `plat_timer_stop` silences the timer before power-off.
*/
uint64_t plat_time_us(void);
void plat_timer_start(uint64_t period_us);
void plat_timer_stop(void);

/*
**Interrupt masking.** This is a single-CPU kernel, so masking interrupts is
all the locking it needs: with interrupts off, nothing else can run.
`plat_irq_save` masks them and returns the previous state; `plat_irq_restore`
puts that state back, so critical sections can nest.
*/
void plat_irq_enable(void);
unsigned long plat_irq_save(void);
void plat_irq_restore(unsigned long flags);

/*
**Power.** `plat_shutdown(true)` reports success to whoever runs the machine
(firmware or hypervisor); `plat_shutdown(false)` reports a failure. It does not
return.
*/
__attribute__((noreturn)) void plat_shutdown(bool ok);

/*
**Threads.** A thread that is not running is fully described by one number:
its saved stack pointer. `ctx_switch(&old_sp, new_sp)` pushes the callee-saved
registers (the ones a C function must preserve) onto the current stack, stores
the stack pointer in `*old_sp`, loads `new_sp` and pops the other thread's
registers; its final `ret` then returns into whatever function that thread was
in when *it* called `ctx_switch`. Caller-saved registers need no saving: the
compiler already assumes a call clobbers them.

A new thread has never called `ctx_switch`, so `plat_thread_stack(top, start)`
forges the frame it would have pushed: callee-saved registers zero and the
return address `start`. The first switch to the thread "returns" into
`start` with the stack pointer at `top`. Both are in `<arch>.S`/`<arch>.c`,
because only they know which registers are callee-saved.
*/
void ctx_switch(void **old_sp, void *new_sp);
void *plat_thread_stack(void *top, void (*start)(void));

/*
## What the kernel gives the platform

`kernel_main` is called by the entry code once a stack exists and `.bss` is
zero. `kernel_timer_tick` is called by the platform's trap handler on every
timer interrupt, with interrupts masked and the interrupt already acknowledged.
`kprintf` is the kernel's `printf` (`%s %c %d %u %x %p`, `l` for long, a width
with `0` padding), which the platform uses to report unexpected traps.
*/
void kernel_main(void);
void kernel_timer_tick(void);
__attribute__((format(printf, 1, 2))) void kprintf(const char *fmt, ...);

#endif
