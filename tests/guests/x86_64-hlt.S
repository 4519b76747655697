/*
An x86 guest that waits for its timer with HLT, the way an idle kernel
does. It loads a GDT and an IDT with a gate for vector 0x20, programs its
local APIC timer (periodic, about 10 ms) with plain 32-bit MOVs, and halts
with interrupts on, three times; each time the hypervisor must wait for the
guest's deadline, inject the interrupt, and the HLT must end. The handler
counts the ticks and writes EOI. Then the guest masks the timer, says how
many ticks woke it, and powers off.
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
    mov     $tick, %eax         // gate 0x20: the timer
    mov     $idt + 0x20 * 8, %edi
    mov     %ax, (%edi)
    movw    %cs, 2(%edi)
    movw    $0x8e00, 4(%edi)
    shr     $16, %eax
    mov     %ax, 6(%edi)
    lidt    idt_ptr

    movl    $0x1ff, APIC + 0xF0         // SVR: APIC on, spurious vector 0xFF
    movl    $0xb, APIC + 0x3E0          // divide by 1
    movl    $0x20020, APIC + 0x320      // LVT timer: periodic, vector 0x20
    movl    $10000000, APIC + 0x380     // initial count: 10 ms on QEMU

2:  sti
    hlt                                 // until the next tick
    cli
    cmpl    $3, ticks
    jb      2b

    movl    $0x10000, APIC + 0x320      // masked
    movl    $0, APIC + 0x380            // stopped
    mov     $woke, %esi
    call    puts
    xor     %eax, %eax          // power-off port, 0: success
    jmp     power_off

tick:
    incl    ticks
    movl    $0, APIC + 0xB0             // EOI
    iret

    .align 8
ticks:
    .long   0
gdt:
    .quad   0, 0, 0x00cf9a000000ffff, 0x00cf92000000ffff
gdt_ptr:
    .word   4 * 8 - 1
    .long   gdt
    .align 8
idt:
    .fill   0x21, 8, 0
idt_ptr:
    .word   0x21 * 8 - 1
    .long   idt
woke:
    .asciz  "HLT woken by 3 timer interrupts\n"

#include "x86_64-lib.inc"
