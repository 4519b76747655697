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
    mov     $0x3f8, %dx
1:  lodsb
    test    %al, %al
    jz      2f
    out     %al, %dx
    jmp     1b
2:  xor     %eax, %eax
    out     %eax, $0xf4
3:  hlt
    jmp     3b

escaped:
    .asciz  "ISOLATION BROKEN: the ICR write was accepted\n"
