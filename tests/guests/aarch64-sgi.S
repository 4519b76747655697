/*
An AArch64 guest that sends itself SGIs (issue 10). With its interrupts
masked (PSTATE.I, from reset) it sets up its GIC, enables SGIs 0..7 and
then sends itself all eight at once, one `ICC_SGI1R_EL1` write each (its
own Aff0 in the target list): each write traps to the hypervisor, which
must deliver it. Eight are more than the four list registers of QEMU's GIC,
so the hypervisor has to wait for the guest to end some before it can give
it the rest (the maintenance interrupt, `ICH_HCR_EL2.UIE`).

The guest then acknowledges them by polling `ICC_IAR1_EL1` (which answers
whether or not PSTATE.I masks IRQs), ends each with `ICC_EOIR1_EL1`, and
keeps a bit per SGI received. While the hypervisor is refilling the list
registers the CPU interface may say 1023, "nothing pending": the guest
tries again, a bounded number of times. All eight bits set, and no
INTID twice: "SGI: all 8 arrived". Then an SGI with IRM = 1 ("every CPU but
me") must not arrive at all, nor may a Group 1 SGI sent with the Group 0
registers `ICC_SGI0R_EL1` and `ICC_ASGI1R_EL1`.
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
    ldr     x1, =0x080a0014     // GICR_WAKER: awake
    str     wzr, [x1]
    ldr     x1, =0x080b0080     // GICR_IGROUPR0: SGIs 0..15 in Group 1
    mov     w0, #0xffff
    str     w0, [x1]
    ldr     x1, =0x080b0100     // GICR_ISENABLER0: SGIs 0..7 on
    mov     w0, #0xff
    str     w0, [x1]

    mrs     x19, mpidr_el1      // TargetList bit: Aff0 (< 16 here), RS 0
    and     x19, x19, #0xf
    mov     x0, #1
    lsl     x19, x0, x19
    ldr     x2, =0xff00ff00     // Aff1, Aff2, Aff3 of this CPU
    mrs     x3, mpidr_el1
    and     x4, x3, #0xff00     // Aff1 -> bits 23..16
    orr     x19, x19, x4, lsl #8
    and     x4, x3, #0xff0000   // Aff2 -> bits 39..32
    orr     x19, x19, x4, lsl #16
    and     x4, x3, #0xff00000000 // Aff3 -> bits 55..48
    orr     x19, x19, x4, lsl #16

    mov     x20, #0             // SGI number
1:  orr     x0, x19, x20, lsl #24
    msr     icc_sgi1r_el1, x0
    add     x20, x20, #1
    cmp     x20, #8
    b.lo    1b
    isb

    mov     x21, #0             // bits received
    mov     x22, #0             // received twice?
    ldr     x23, =1000000       // tries left
2:  cmp     x21, #0xff
    b.eq    4f
    subs    x23, x23, #1
    b.eq    4f
    mrs     x0, icc_iar1_el1
    and     x0, x0, #0xffffff
    cmp     x0, #1020
    b.hs    2b                  // nothing pending (yet)
    msr     icc_eoir1_el1, x0
    isb
    cmp     x0, #8
    b.hs    3f                  // not one of ours: wrong
    mov     x1, #1
    lsl     x1, x1, x0
    tst     x21, x1
    b.eq    5f
3:  mov     x22, #1
5:  orr     x21, x21, x1
    b       2b
4:  cmp     x21, #0xff
    b.ne    6f
    cbnz    x22, 6f
    say     ok
    b       7f
6:  say     bad

7:  ldr     x0, =0x10000000000  // IRM = 1, INTID 0: everyone but me
    msr     icc_sgi1r_el1, x0
    isb
    ldr     x23, =10000
8:  mrs     x0, icc_iar1_el1
    and     x0, x0, #0xffffff
    cmp     x0, #1020
    b.lo    9f
    subs    x23, x23, #1
    b.ne    8b
    say     irm_ok
    b       10f
9:  msr     icc_eoir1_el1, x0
    say     irm_bad
    b       power_off

    // SGI 1 is Group 1. ICC_SGI0R_EL1 sends Group 0 SGIs only, and with
    // one security state ICC_ASGI1R_EL1 does the same (IHI0069, "Forwarding
    // an SGI to a target PE"): neither write may make SGI 1 pending.
10: orr     x0, x19, #(1 << 24)
    msr     icc_sgi0r_el1, x0
    msr     icc_asgi1r_el1, x0
    isb
    ldr     x23, =10000
11: mrs     x0, icc_iar1_el1
    and     x0, x0, #0xffffff
    cmp     x0, #1020
    b.lo    12f
    subs    x23, x23, #1
    b.ne    11b
    say     group_ok
    b       power_off
12: msr     icc_eoir1_el1, x0
    say     group_bad
    b       power_off
    .ltorg

    .section .rodata
ok:      .asciz "SGI: all 8 arrived, each once\n"
bad:     .asciz "SGI: WRONG, not all 8 arrived, or one twice\n"
irm_ok:  .asciz "SGI: one for every other CPU reached nobody\n"
irm_bad: .asciz "SGI: WRONG, one for every other CPU came back\n"
group_ok:
    .asciz "SGI: Group 0 writes did not raise a Group 1 SGI\n"
group_bad:
    .asciz "SGI: WRONG, a Group 0 write raised a Group 1 SGI\n"
