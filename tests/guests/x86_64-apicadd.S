/*
A guest that touches its local APIC with an instruction hvbook's decoder
does not know: ADD to memory (opcode 83 /0), a read-modify-write of the task
priority register. A real APIC would take it; the decoder only emulates the
MOV forms a compiler emits for volatile loads and stores, so hvbook must
stop the VM with a report that shows the instruction's bytes.
*/
    .code32
    .text
    .global _start
_start:
    mov     $0x90000, %esp
    addl    $0x10, 0xFEE00080   // TPR += 0x10: not a MOV
    mov     $escaped, %esi
    call    puts
    xor     %eax, %eax          // power-off port, 0: success
    jmp     power_off

escaped:
    .asciz  "the ADD to the APIC page was emulated after all\n"

#include "x86_64-lib.inc"
