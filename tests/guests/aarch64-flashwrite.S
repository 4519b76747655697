/*
A hostile AArch64 guest that tries to rewrite its flash (issue 8, item 1).
QEMU's pflash1 is a CFI flash (Intel command set) of two 16-bit chips side
by side, so each command is written twice in one 32-bit word: "block erase"
(0x20, then 0xD0 to confirm) on the first block, "program" (0x40, then the
data) to turn the magic "pfld" into "HACK", "read array" (0xFF) to read it
back. hvbook maps the flash read-only: the first store must end the run
with a VM fault naming IPA 0x0400_0000. If the stores go through, the guest
says what it reads back and powers off normally, which the test reports.
*/
#include "aarch64-lib.inc"

    .text
    .global _start
_start:
    ldr     x0, =0x04000000
    ldr     w1, =0x00200020     // block erase
    str     w1, [x0]
    ldr     w1, =0x00d000d0     // confirm
    str     w1, [x0]
    bl      wait_ready
    ldr     w1, =0x00400040     // program
    str     w1, [x0]
    ldr     w1, =0x4b434148     // "HACK"
    str     w1, [x0]
    bl      wait_ready
    ldr     w1, =0x00ff00ff     // read array
    str     w1, [x0]
    ldr     w4, [x0]
    ldr     w5, =0x646c6670     // "pfld"
    cmp     w4, w5
    b.eq    1f
    say     rewritten
    b       power_off
1:  say     unchanged
    b       power_off

wait_ready:                     // status register bit 7: ready (bounded)
    mov     x6, #0x100000
2:  ldr     w7, [x0]
    tbnz    w7, #7, 3f
    subs    x6, x6, #1
    b.ne    2b
3:  ret

    .section .rodata
rewritten: .asciz "FLASH REWRITTEN: the guest erased and programmed its flash\n"
unchanged: .asciz "flash writes accepted but the magic is unchanged\n"
