/*
A hostile x86 guest that writes to an I/O port it does not own: 0x80, the
PC's POST diagnostic port, harmless on real hardware, which is exactly why
a hypervisor must refuse it anyway (the rule of the house: only what is
listed is reachable). hvbook must stop the VM with a report naming the port.
*/
    .code32
    .text
    .global _start
_start:
    mov     $0x90000, %esp
    mov     $0x42, %al
    out     %al, $0x80          // must be refused
    mov     $escaped, %esi
    call    puts
    xor     %eax, %eax          // power-off port, 0: success
    jmp     power_off

escaped:
    .asciz  "ISOLATION BROKEN: the write to port 0x80 succeeded\n"

#include "x86_64-lib.inc"
