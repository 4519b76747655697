/*
A hostile AArch64 guest for the widths of emulated registers (issue 8, item
10). First two accesses a real driver makes: a byte store and a halfword
load at UARTCR's own address. The byte store must change only bits 7..0
(UARTCR = 0x301, then strb 0x01: still 0x301), and the guest says so.
Then a byte store to UARTCR + 1, inside the register: hvbook must refuse
it with a VM fault naming IPA 0x0900_0031. If it is accepted, the guest
reads the register back and says what happened to it.
*/
#include "aarch64-lib.inc"

    .text
    .global _start
_start:
    ldr     x4, =0x09000030     // UARTCR
    mov     w0, #0x301
    str     w0, [x4]
    mov     w0, #0x01
    strb    w0, [x4]
    ldrh    w5, [x4]
    cmp     w5, #0x301
    b.ne    1f
    say     narrow_ok
    b       2f
1:  say     narrow_bad
2:  mov     w0, #0
    strb    w0, [x4, #1]        // inside UARTCR: must be refused
    ldr     w5, [x4]
    cmp     w5, #0x301
    b.eq    3f
    say     clobbered
    b       power_off
3:  say     accepted
    b       power_off

    .section .rodata
narrow_ok:  .asciz "UARTCR: a byte store at its address changed only its low byte\n"
narrow_bad: .asciz "UARTCR: a byte store at its address clobbered the register\n"
clobbered:  .asciz "UARTCR: a byte store to UARTCR+1 was accepted and clobbered the register\n"
accepted:   .asciz "UARTCR: a byte store to UARTCR+1 was accepted\n"
