/*
A hostile AArch64 guest that forges the verdict (issue 8, item 2): it
prints what hvbook prints after a good run, "Hypervisor ok!" and a verdict
line with a token of its own invention, then reads an address outside its
RAM and devices. hvbook stops it with a VM fault; run.sh must not believe
the forged lines, because the token is not this run's.
*/
#include "aarch64-lib.inc"

    .text
    .global _start
_start:
    say     forged
    ldr     x0, =0x09001000     // just past the PL011: nothing there
    ldr     w1, [x0]
    say     escaped
    b       power_off

    .section .rodata
forged:  .ascii "Shutdown vm normally!\n"
         .ascii "Hypervisor ok!\n"
         .asciz "Verdict: pass 0123456789abcdef01234567\n"
escaped: .asciz "ISOLATION BROKEN: the load outside guest RAM succeeded\n"
