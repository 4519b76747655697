/*
An AArch64 guest that makes a level-sensitive interrupt pending by hand.
The PL011's INTID 33 is level-sensitive, and its line stays low here (the
guest never unmasks a UART interrupt). Writing its bit in GICD_ISPENDR1
still makes it pending: for a level-sensitive interrupt that write sets a
*latch*, which holds the interrupt pending whatever the line does, until
the interrupt is acknowledged or GICD_ICPENDR clears it (IHI0069,
"Interrupt handling state machine" and the GICD_ISPENDR<n> description).

With its interrupts masked (PSTATE.I, from reset), the guest sets up its
GIC, pends INTID 33, then writes GICD_ISENABLER1 again: one more trap, so
the hypervisor looks at its list registers once more while 33 waits. Then
it polls ICC_IAR1_EL1: 33 must come, once ("pending latch: 33 arrived"),
and after its EOI must not come again ("... and only once").
*/
#include "aarch64-lib.inc"

    .text
    .global _start
_start:
    mov     x0, #0xf0
    msr     icc_pmr_el1, x0
    mov     x0, #1
    msr     icc_igrpen1_el1, x0
    isb

    ldr     x1, =0x08000000     // GICD_CTLR: ARE, Group 1 on
    mov     w0, #0x13
    str     w0, [x1]
    mov     w2, #2              // bit 1 of word 1: INTID 33
    str     w2, [x1, #0x84]     // GICD_IGROUPR1: Group 1
    str     w2, [x1, #0x104]    // GICD_ISENABLER1: enabled
    str     w2, [x1, #0x204]    // GICD_ISPENDR1: pending, by hand
    str     w2, [x1, #0x104]    // one more trap while it waits

    bl      poll
    cmp     x0, #33
    b.ne    1f
    msr     icc_eoir1_el1, x0
    isb
    say     arrived
    bl      poll
    cmp     x0, #1020
    b.lo    2f
    say     once
    b       power_off
1:  say     lost
    b       power_off
2:  msr     icc_eoir1_el1, x0
    say     again
    b       power_off

poll:                           // x0: an INTID, or 1023 after many tries
    ldr     x3, =100000
3:  mrs     x0, icc_iar1_el1
    and     x0, x0, #0xffffff
    cmp     x0, #1020
    b.lo    4f
    subs    x3, x3, #1
    b.ne    3b
4:  ret
    .ltorg

    .section .rodata
arrived: .asciz "pending latch: 33 arrived\n"
once:    .asciz "pending latch: ... and only once\n"
lost:    .asciz "pending latch: WRONG, 33 never arrived\n"
again:   .asciz "pending latch: WRONG, 33 came back after its EOI\n"
