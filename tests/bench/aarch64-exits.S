/*
make bench's AArch64 guest: what one round trip out of the guest and back
costs, in instructions. The same ELF runs under hvbook and bare, under
QEMU's -icount shift=4, where one instruction takes 16 ns of virtual time
and the virtual counter, `CNTVCT_EL0`, ticks at 62.5 MHz: once per
instruction of the whole machine, guest and hypervisor alike.

Two counters, then. `CNTVCT_EL0` sees everything, and no hypervisor can
hide it from its guest: time passes while the hypervisor works. The PMU's
event counter 0, set to count instructions retired (event 0x08) at EL1 only,
sees the guest's own share. Under hvbook the guest may not count EL2 at
all (hvbook traps its PMU accesses and clears NSH in every filter), so the
hypervisor's share is what the guest can only infer: the difference.

Each measurement calls a small routine, the *body*, N times from a loop
and reads both counters around the loop; then it does the same with an
*empty* body (a routine that only returns). The difference over N is what
one round trip costs, from the instruction that leaves the guest until the
guest has its next one. Under hvbook, each read of the PMU counter is
itself an exit; the empty loop has the same two, so they cancel. Every
measurement is made three times; tests/bench.sh keeps the smallest.

The guest prints one line per measurement, in hex:

  bench NAME N BODY EMPTY BODY-EL1 EMPTY-EL1

- floor: `brk`, taken by the guest's own vector: no exit;
- hypercall: PSCI_VERSION over HVC (bare, QEMU answers PSCI itself);
- timer: the virtual timer, due at once, to the guest's IRQ handler;
- devread: a read of the PL011's flag register (emulated);
- devwrite: a write of the PL011's interrupt mask register (emulated);
- console: a NUL written to the PL011's data register;
- s2map: a load from a pflash page never read before, a stage-2 fault
  that maps it (N = 4096, each round its own pages).
*/
#define N 10000
#define PAGES 4096
#define PFLASH 0x04000000
#define UART 0x09000000
#define GICD 0x08000000
#define GICR 0x080A0000
#define GICR_SGI (GICR + 0x10000)
#define TIMER_INTID 27

    .text
    .global _start
_start:
    ldr     x0, =0x40400000
    mov     sp, x0
    adr     x0, vectors
    msr     vbar_el1, x0
    isb

    // The PMU: event counter 0 counts instructions retired at EL1 only
    // (U, bit 30: not at EL0; NSH, bit 27, clear: not at EL2).
    ldr     x0, =(1 << 30) | 0x08
    msr     pmevtyper0_el0, x0
    mov     x0, #1
    msr     pmcntenset_el0, x0
    mrs     x0, pmcr_el0
    orr     x0, x0, #3          // E: enable; P: reset the event counters
    msr     pmcr_el0, x0
    isb

    // The GIC, as gkernel sets it up (guest/aarch64.c, gic_init).
    mrs     x0, icc_sre_el1
    orr     x0, x0, #1
    msr     icc_sre_el1, x0
    isb
    mov     x0, #0xf0
    msr     icc_pmr_el1, x0
    mrs     x0, icc_ctlr_el1
    bic     x0, x0, #2          // EOImode 0: EOIR drops and deactivates
    msr     icc_ctlr_el1, x0
    ldr     x1, =GICD
    mov     w0, #0x13           // ARE_NS, EnableGrp1A, EnableGrp1
    str     w0, [x1]
1:  ldr     w0, [x1]
    tbnz    w0, #31, 1b         // RWP
    ldr     x1, =GICR
    ldr     w0, [x1, #0x14]     // WAKER
    bic     w0, w0, #2          // ProcessorSleep
    str     w0, [x1, #0x14]
2:  ldr     w0, [x1, #0x14]
    tbnz    w0, #2, 2b          // ChildrenAsleep
    ldr     x1, =GICR_SGI
    mov     w0, #(1 << TIMER_INTID)
    str     w0, [x1, #0x80]     // IGROUPR0: Group 1
    mov     w0, #0xa0000000
    str     w0, [x1, #0x418]    // IPRIORITYR6, byte 3: priority 0xA0
    mov     w0, #(1 << TIMER_INTID)
    str     w0, [x1, #0x100]    // ISENABLER0
    mov     x0, #1
    msr     icc_igrpen1_el1, x0
    isb

    ldr     x19, =PFLASH
    mov     x28, #3             // three rounds
round:
    adr     x0, n_floor
    adr     x1, floor
    bl      bench
    adr     x0, n_hypercall
    adr     x1, hypercall
    bl      bench
    msr     daifclr, #2         // IRQs on, for the timer only
    adr     x0, n_timer
    adr     x1, timer
    bl      bench
    msr     daifset, #2
    adr     x0, n_devread
    adr     x1, devread
    bl      bench
    adr     x0, n_devwrite
    adr     x1, devwrite
    bl      bench
    adr     x0, n_console
    adr     x1, console
    bl      bench
    // The stage-2 mapping: the body is the load itself, the empty loop
    // the same loads again, now that the pages are mapped.
    adr     x0, n_s2map
    adr     x1, flash_read
    mov     x2, #PAGES
    mov     x3, x1
    mov     x20, x19
    bl      bench_with
    ldr     x9, =PAGES * 4096
    add     x19, x20, x9
    subs    x28, x28, #1
    b.ne    round

    ldr     x0, =0x84000008     // PSCI SYSTEM_OFF
    hvc     #0
3:  b       3b

/* The bodies: entered with blr, left with ret. */
floor:
    brk     #0
    ret
hypercall:
    ldr     x0, =0x84000000     // PSCI_VERSION
    hvc     #0
    ret
timer:
    mov     x10, #0
    mrs     x9, cntvct_el0
    msr     cntv_cval_el0, x9   // due now
    mov     x9, #1
    msr     cntv_ctl_el0, x9    // ENABLE
    isb
1:  cbz     x10, 1b             // until the handler has run
    ret
devread:
    ldr     x9, =UART
    ldr     w9, [x9, #0x18]     // UARTFR
    ret
devwrite:
    ldr     x9, =UART
    str     wzr, [x9, #0x38]    // UARTIMSC = 0
    ret
console:
    ldr     x9, =UART
    strb    wzr, [x9]           // UARTDR: a NUL
    ret
flash_read:
    ldr     w9, [x19]
    add     x19, x19, #4096
    ret
empty:
    ret

/*
bench(x0 = name, x1 = body): N round trips, measured, a line printed.
bench_with also takes x2 = n and x3 = the empty body, and resets x19 to
x20 before each loop.
*/
bench:
    mov     x2, #N
    adr     x3, empty
    mov     x20, x19
bench_with:
    mov     x27, x30
    mov     x21, x0
    mov     x22, x2
    mov     x23, x3
    mov     x19, x20
    mov     x0, x1
    bl      measure
    mov     x24, x0
    mov     x25, x1
    mov     x19, x20
    mov     x0, x23
    bl      measure
    mov     x23, x0
    mov     x26, x1

    adr     x1, s_bench
    bl      puts
    mov     x1, x21
    bl      puts
    mov     x0, x22
    bl      puthex
    mov     x0, x24
    bl      puthex
    mov     x0, x23
    bl      puthex
    mov     x0, x25
    bl      puthex
    mov     x0, x26
    bl      puthex
    mov     w0, #'\n'
    bl      putc
    mov     x30, x27
    ret

// measure(x0 = body), x22 = n: returns x0 = CNTVCT_EL0 ticks and
// x1 = instructions at EL1
measure:
    mov     x11, x0
    mov     x12, x22
    mov     x16, x30
    mrs     x13, cntvct_el0
1:  mrs     x14, cntvct_el0
    cmp     x13, x14
    b.eq    1b                  // just after a tick
    mrs     x15, pmevcntr0_el0
2:  blr     x11
    subs    x12, x12, #1
    b.ne    2b
    mrs     x1, pmevcntr0_el0
    mrs     x0, cntvct_el0
    sub     x0, x0, x14
    sub     x1, x1, x15
    mov     x30, x16
    ret

putc:       // w0 to the PL011, after its flag register says there is room
    ldr     x9, =UART
1:  ldr     w10, [x9, #0x18]
    tbnz    w10, #5, 1b         // TXFF
    strb    w0, [x9]
    ret
puts:       // x1: a NUL-terminated string
    mov     x17, x30
1:  ldrb    w0, [x1], #1
    cbz     w0, 2f
    bl      putc
    b       1b
2:  mov     x30, x17
    ret
puthex:     // " 0x" and x0 in hex
    mov     x17, x30
    mov     x18, x0
    mov     w0, #' '
    bl      putc
    mov     w0, #'0'
    bl      putc
    mov     w0, #'x'
    bl      putc
    mov     x8, #60
1:  lsr     x0, x18, x8
    and     x0, x0, #15
    add     x0, x0, #'0'
    cmp     x0, #'9'
    b.le    2f
    add     x0, x0, #'a' - '0' - 10
2:  bl      putc
    subs    x8, x8, #4
    b.ge    1b
    mov     x30, x17
    ret
    .ltorg

/*
The guest's own vectors: 16 entries of 0x80 bytes. Only two are used,
both "current EL with SP_ELx": a synchronous exception (the brk) and an
IRQ (the timer). Anything else stops the guest where it is.
*/
    .balign 2048
vectors:
    .rept   4
    b       .
    .balign 0x80
    .endr
    // 0x200: synchronous, current EL, SP_ELx
    mrs     x9, elr_el1
    add     x9, x9, #4
    msr     elr_el1, x9
    eret
    .balign 0x80
    // 0x280: IRQ, current EL, SP_ELx
    mrs     x9, icc_iar1_el1
    msr     cntv_ctl_el0, xzr   // the timer off: its level drops
    isb
    msr     icc_eoir1_el1, x9
    mov     x10, #1
    eret
    .balign 0x80
    .rept   10
    b       .
    .balign 0x80
    .endr

s_bench:     .asciz "bench "
n_floor:     .asciz "floor"
n_hypercall: .asciz "hypercall"
n_timer:     .asciz "timer"
n_devread:   .asciz "devread"
n_devwrite:  .asciz "devwrite"
n_console:   .asciz "console"
n_s2map:     .asciz "s2map"
