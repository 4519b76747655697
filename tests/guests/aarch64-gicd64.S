/*
A hostile AArch64 guest for the widths of emulated registers (issue 8, item
10): a 64-bit store to GICD_CTLR, a 32-bit register (the upper half would
land in GICD_TYPER). hvbook must refuse it with a VM fault naming IPA
0x0800_0000, not take it as a 32-bit store.
*/
#include "aarch64-lib.inc"

    .text
    .global _start
_start:
    ldr     x4, =0x08000000     // GICD_CTLR
    mov     x0, #0x13
    str     x0, [x4]            // 64 bits: must be refused
    say     accepted
    b       power_off

    .section .rodata
accepted: .asciz "GICD_CTLR: a 64-bit store was accepted\n"
