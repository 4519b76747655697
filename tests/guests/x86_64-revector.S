/*
An x86 guest that moves its timer to another vector, as a kernel may when
it reprograms its APIC. It takes one one-shot tick at vector 0x20, then
one at vector 0x41, and checks which gate the second one arrived at. A
hypervisor that ORs the new vector into the VMCB's V_INTR_VECTOR without
clearing the old one delivers 0x61 (0x20 | 0x41) instead.
*/
#define APIC 0xFEE00000
    .code32
    .text
    .global _start
_start:
    mov     $0x90000, %esp
    lgdt    gdt_ptr
    ljmp    $0x10, $1f
1:  mov     $0x18, %ax
    mov     %ax, %ds
    mov     %ax, %es
    mov     %ax, %ss
    mov     $tick20, %eax
    mov     $idt + 0x20 * 8, %edi
    call    set_gate
    mov     $tick41, %eax
    mov     $idt + 0x41 * 8, %edi
    call    set_gate
    mov     $tick61, %eax
    mov     $idt + 0x61 * 8, %edi
    call    set_gate
    lidt    idt_ptr

    movl    $0x1ff, APIC + 0xF0         // SVR: APIC on
    movl    $0xb, APIC + 0x3E0          // divide by 1
    movl    $0x20, APIC + 0x320         // LVT timer: one-shot, vector 0x20
    movl    $1000000, APIC + 0x380      // 1 ms
2:  sti
    hlt
    cli
    cmpl    $0, got20
    je      2b

    movl    $0x41, APIC + 0x320         // one-shot, vector 0x41
    movl    $1000000, APIC + 0x380
3:  sti
    hlt
    cli
    cmpl    $0, arrived
    je      3b

    mov     $good, %esi
    xor     %ebx, %ebx
    cmpl    $0x41, arrived
    je      4f
    mov     $bad, %esi
    mov     $1, %ebx
4:  call    puts
    mov     %ebx, %eax          // power-off port: 0 success, 1 failure
    jmp     power_off

set_gate:                       // %eax: handler, %edi: the 8-byte gate
    mov     %ax, (%edi)
    movw    %cs, 2(%edi)
    movw    $0x8e00, 4(%edi)
    shr     $16, %eax
    mov     %ax, 6(%edi)
    ret

tick20:
    movl    $1, got20
    movl    $0, APIC + 0xB0             // EOI
    iret
tick41:
    movl    $0x41, arrived
    movl    $0, APIC + 0xB0
    iret
tick61:
    movl    $0x61, arrived
    movl    $0, APIC + 0xB0
    iret

    .align 8
got20:
    .long   0
arrived:
    .long   0
gdt:
    .quad   0, 0, 0x00cf9a000000ffff, 0x00cf92000000ffff
gdt_ptr:
    .word   4 * 8 - 1
    .long   gdt
    .align 8
idt:
    .fill   0x62, 8, 0
idt_ptr:
    .word   0x62 * 8 - 1
    .long   idt
good:
    .asciz  "timer moved to vector 0x41: the tick arrived at 0x41\n"
bad:
    .asciz  "timer moved to vector 0x41: the tick arrived elsewhere\n"

#include "x86_64-lib.inc"
