/*
A hostile x86 guest: it loads from BAD_GPA, an address outside its RAM and
its devices (the Makefile builds one copy per address; by default the host's
VirtIO slots at 0xFEB0_0000). It runs in the 32-bit protected mode it is
started in, without paging, so the address in the instruction is the GPA.
The hypervisor must refuse with a VM-fault report naming that GPA, and stop.
If the load ever "succeeds", the guest says so and powers off normally,
which the test then reports as a failure of isolation.
*/
#ifndef BAD_GPA
#define BAD_GPA 0xFEB00000      /* the host's VirtIO-MMIO slots */
#endif
    .code32
    .text
    .global _start
_start:
    mov     $0x90000, %esp
    mov     BAD_GPA, %eax       // the load that must not succeed
    mov     $escaped, %esi
    call    puts
    xor     %eax, %eax          // power-off port, 0: success
    jmp     power_off

escaped:
    .asciz  "ISOLATION BROKEN: the load outside guest RAM succeeded\n"

#include "x86_64-lib.inc"
