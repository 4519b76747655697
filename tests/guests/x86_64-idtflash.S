/*
An x86 guest whose IDT lies in its flash. It single-steps one NOP (TF), so
the CPU delivers #DB with the guest's pc at the next instruction, a plain
load from RAM. Delivering #DB reads the gate from the flash: a nested page
fault made by the CPU's event delivery, not by the load. A hypervisor that
took the load for the faulting instruction would "emulate" it, give the
guest flash bytes and step past it. hvbook must see EXITINTINFO and refuse.
*/
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
    lidt    idt_ptr             // the IDT is in the flash
    pushf
    orl     $0x100, (%esp)      // TF: a #DB after the next instruction
    popf
    nop
    mov     0x2000, %eax        // pc here when #DB is delivered
    xor     %eax, %eax
    out     %eax, $0xf4         // power-off port: must not be reached
2:  hlt
    jmp     2b

    .align 8
gdt:
    .quad   0, 0, 0x00cf9a000000ffff, 0x00cf92000000ffff
gdt_ptr:
    .word   4 * 8 - 1
    .long   gdt
idt_ptr:
    .word   0x7ff
    .long   0xffc00000
