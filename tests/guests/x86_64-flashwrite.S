/*
A hostile x86 guest that writes to its flash: a plain 32-bit MOV to
0xFFC0_0000, where the magic "pfld" lives. The flash is read-only for the
guest, so hvbook must refuse with a VM fault naming the GPA, and stop. If
the write ever "succeeds", the guest says so and powers off normally.
*/
    .code32
    .text
    .global _start
_start:
    mov     $0x90000, %esp
    movl    $0x21646162, 0xFFC00000 // "bad!" over the magic: must be refused
    mov     $escaped, %esi
    call    puts
    xor     %eax, %eax          // power-off port, 0: success
    jmp     power_off

escaped:
    .asciz  "ISOLATION BROKEN: the write to the flash succeeded\n"

#include "x86_64-lib.inc"
