/*
An x86 guest that checks it is treated like a CPU without SVM, and that the
exceptions a bare CPU would raise reach *its* handlers instead of stopping
the VM: RDMSR of an MSR nobody has must raise #GP, VMLOAD (an SVM
instruction) must raise #UD, and CPUID must not show SVM. It sets up a
32-bit IDT with two gates, prints one line per check through its serial
port, and powers off through the power-off port.

One crack shows: `VMRUN` insists on `EFER.SVME` in the guest's state, so the
CPU checks an SVM instruction's operand *before* its intercept, and a VMLOAD
with an unaligned `RAX` raises #GP instead of the #UD of a CPU without SVM.
This guest passes an aligned address, and so sees #UD. Like any Multiboot kernel
it first loads a GDT of its own: the loader's is undefined, and delivering
an exception through a gate looks the code segment up in the GDT.
*/
    .code32
    .text
    .global _start
_start:
    mov     $0x90000, %esp
    lgdt    gdt_ptr
    ljmp    $0x10, $1f          // reload CS from our GDT
1:  mov     $0x18, %ax
    mov     %ax, %ds
    mov     %ax, %es
    mov     %ax, %ss
    mov     $gp_handler, %eax   // gate 13: #GP
    mov     $idt + 13 * 8, %edi
    call    set_gate
    mov     $ud_handler, %eax   // gate 6: #UD
    mov     $idt + 6 * 8, %edi
    call    set_gate
    lidt    idt_ptr

    mov     $0x4b564d00, %ecx   // an MSR number no CPU has
    rdmsr                       // -> #GP, the handler skips it
    xor     %eax, %eax          // a page-aligned address: see below
    vmload                      // -> #UD, the handler skips it

    mov     $0x80000001, %eax
    cpuid
    mov     $svm_hidden, %esi
    test    $4, %ecx            // ECX bit 2: SVM
    jz      5f
    mov     $svm_shown, %esi
5:  call    puts
    xor     %eax, %eax          // power-off port, 0: success
    jmp     power_off

set_gate:                       // %eax: handler, %edi: the 8-byte gate
    mov     %ax, (%edi)         // offset 15..0
    movw    %cs, 2(%edi)        // our code segment
    movw    $0x8e00, 4(%edi)    // present, ring 0, 32-bit interrupt gate
    shr     $16, %eax
    mov     %ax, 6(%edi)        // offset 31..16
    ret

gp_handler:
    mov     $gp_seen, %esi
    call    puts
    add     $4, %esp            // the error code
    addl    $2, (%esp)          // past the 2-byte RDMSR
    iret

ud_handler:
    mov     $ud_seen, %esi
    call    puts
    addl    $3, (%esp)          // past the 3-byte VMLOAD
    iret

    .align 8
gdt:                            // null, null, flat 32-bit code, flat data
    .quad   0, 0, 0x00cf9a000000ffff, 0x00cf92000000ffff
gdt_ptr:
    .word   4 * 8 - 1
    .long   gdt
    .align 8
idt:
    .fill   16, 8, 0
idt_ptr:
    .word   16 * 8 - 1
    .long   idt
gp_seen:    .asciz "unknown MSR: #GP delivered to the guest\n"
ud_seen:    .asciz "VMLOAD: #UD delivered to the guest\n"
svm_hidden: .asciz "CPUID hides SVM\n"
svm_shown:  .asciz "CPUID shows SVM to the guest\n"

#include "x86_64-lib.inc"
