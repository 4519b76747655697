/*
A hostile AArch64 guest for the timer interrupt's withdrawal (issue 8, item
11). With its interrupts masked (PSTATE.I, from reset) it sets up its GIC
as the real guest does, lets the virtual timer fire at once and enables
INTID 27, then waits until the interrupt is pending in its (virtual) CPU
interface: ICC_HPPIR1_EL1 says 27. Then it *disables* INTID 27. A real GIC
no longer signals a disabled interrupt, so HPPIR1 must now say 1023,
"nothing pending". Finally it enables INTID 27 again: the timer still
fires, so the interrupt must come back.
*/
#include "aarch64-lib.inc"

    .text
    .global _start
_start:
    mrs     x0, icc_sre_el1
    orr     x0, x0, #1          // SRE
    msr     icc_sre_el1, x0
    isb
    mov     x0, #0xf0
    msr     icc_pmr_el1, x0
    mov     x0, #1
    msr     icc_igrpen1_el1, x0
    isb

    ldr     x1, =0x08000000     // GICD_CTLR: ARE, Group 1 on
    mov     w0, #0x13
    str     w0, [x1]
    ldr     x1, =0x080a0014     // GICR_WAKER: awake
    str     wzr, [x1]
    ldr     x1, =0x080b0080     // GICR_IGROUPR0: INTID 27 in Group 1
    mov     w0, #(1 << 27)
    str     w0, [x1]
    ldr     x1, =0x080b0418     // GICR_IPRIORITYR6: INTID 27 at 0xa0
    mov     w0, #0xa0000000
    str     w0, [x1]

    msr     cntv_cval_el0, xzr  // fire at once
    mov     x0, #1
    msr     cntv_ctl_el0, x0
    isb

    ldr     x4, =0x080b0100     // GICR_ISENABLER0
    ldr     x5, =0x080b0180     // GICR_ICENABLER0
    mov     w6, #(1 << 27)
    str     w6, [x4]            // enable
    bl      wait_pending
    cbz     x0, never
    str     w6, [x5]            // disable
    isb
    mrs     x0, icc_hppir1_el1
    and     x0, x0, #0xffffff
    cmp     x0, #27
    b.eq    1f
    say     withdrawn
    b       2f
1:  say     still_pending
2:  str     w6, [x4]            // enable again
    bl      wait_pending
    cbz     x0, 3f
    say     back_again
    b       power_off
3:  say     lost
    b       power_off
never:
    say     not_pending
    b       power_off

wait_pending:                   // x0 = 1 once HPPIR1 says 27 (bounded)
    ldr     x7, =2000000
4:  mrs     x0, icc_hppir1_el1
    and     x0, x0, #0xffffff
    cmp     x0, #27
    b.eq    5f
    subs    x7, x7, #1
    b.ne    4b
    mov     x0, #0
    ret
5:  mov     x0, #1
    ret

    .section .rodata
withdrawn:     .asciz "vtimer: a disabled timer interrupt is no longer pending\n"
still_pending: .asciz "vtimer: a disabled timer interrupt is still pending\n"
back_again:    .asciz "vtimer: enabled again, the timer interrupt is pending again\n"
lost:          .asciz "vtimer: enabled again, the timer interrupt never came back\n"
not_pending:   .asciz "vtimer: the timer interrupt never became pending\n"
