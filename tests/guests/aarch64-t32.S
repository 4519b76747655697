/*
A hostile AArch64 guest for the PC step after an emulated access (issue 8,
item 10). The guest kernel runs a 32-bit Thumb program at EL0 (if the CPU
can: ID_AA64PFR0_EL1.EL0, bits 3..0, = 2), which loads UARTFR with a 16-bit
instruction, a trapped access that hvbook emulates, and then sets r2 = 1,
also with a 16-bit instruction, and returns to the kernel with SVC. A
hypervisor that moved the PC by 4 after the load would have skipped the
`movs`, and r2 would still be 0.

The Thumb code is written as halfwords, since this is an A64 assembler:

    0x6801  ldr  r1, [r0]      the trapped load (T1 encoding, 16 bits)
    0x2201  movs r2, #1
    0xdf00  svc  #0            back to EL1, vector 0x600 (EL0 in AArch32)
*/
#include "aarch64-lib.inc"

    .text
    .global _start
_start:
    mrs     x0, id_aa64pfr0_el1
    and     x0, x0, #0xf
    cmp     x0, #2
    b.ne    no_aarch32
    adr     x0, vectors
    msr     vbar_el1, x0
    isb
    ldr     x0, =0x09000018     // r0 = UARTFR
    mov     x1, #0
    mov     x2, #0
    adr     x3, thumb
    msr     elr_el1, x3
    mov     x3, #0x1f0          // SPSR: AIF masked, T (5), AArch32 (4), User (0b10000)
    msr     spsr_el1, x3
    eret

no_aarch32:
    say     skipped
    b       power_off

back:                           // the SVC from EL0 lands here
    cmp     x2, #1
    b.ne    1f
    cmp     x1, #0x90           // UARTFR: TXFE | RXFE
    b.ne    1f
    say     stepped_2
    b       power_off
1:  say     stepped_wrong
    b       power_off

    .balign 4
thumb:
    .hword  0x6801, 0x2201, 0xdf00, 0xe7fe

    .balign 2048
vectors:
    .rept   12                  // 0x000 .. 0x580: not expected
    .balign 0x80
    b       .
    .endr
    .balign 0x80                // 0x600: synchronous, from EL0 in AArch32
    b       back
    .rept   3
    .balign 0x80
    b       .
    .endr

    .section .rodata
skipped:       .asciz "T32: this CPU has no AArch32 at EL0; nothing to check\n"
stepped_2:     .asciz "T32: the emulated 16-bit load moved the PC by 2\n"
stepped_wrong: .asciz "T32: the emulated 16-bit load did not move the PC by 2\n"
