/*
A hostile x86 guest that tries to send an inter-processor interrupt: it
writes its local APIC's interrupt command register (ICR, offset 0x300 of the
page at 0xFEE0_0000) with a plain 32-bit MOV the decoder understands. An
INIT or startup IPI would reach CPUs the guest does not own, so hvbook must
refuse it with a VM fault, and stop.
*/
    .code32
    .text
    .global _start
_start:
    mov     $0x90000, %esp
    movl    $0x000C4500, 0xFEE00300 // INIT to all others: must be refused
    mov     $escaped, %esi
    call    puts
    xor     %eax, %eax          // power-off port, 0: success
    jmp     power_off

escaped:
    .asciz  "ISOLATION BROKEN: the ICR write was accepted\n"

#include "x86_64-lib.inc"
