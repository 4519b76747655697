/*
An x86 guest that checks four things a CPU's own state decides. CPUID
leaf 1 reports OSXSAVE (ECX bit 27) from the *guest's* CR4, once it sets
CR4.OSXSAVE. WRMSR to EFER with TCE (bit 15), a bit this CPU does not
offer (CPUID 0x8000_0001, ECX bit 17), raises #GP, as the APM says for a
reserved bit, and the next VMRUN does not fail; so does WRMSR to PAT with
an entry that is no memory type. INVD must not reach the
real caches (it would throw away the hypervisor's unwritten data): hvbook
intercepts and skips it, but QEMU 7.2 never reports that intercept (its
INVD does nothing), so here it only must not disturb anything. One line
per check, then power-off.
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
    mov     $gp_handler, %eax   // gate 13: #GP
    mov     $idt + 13 * 8, %edi
    mov     %ax, (%edi)
    movw    %cs, 2(%edi)
    movw    $0x8e00, 4(%edi)
    shr     $16, %eax
    mov     %ax, 6(%edi)
    lidt    idt_ptr

    mov     $1, %eax            // OSXSAVE follows the guest's CR4
    xor     %ecx, %ecx
    cpuid
    mov     $no_xsave, %esi
    bt      $26, %ecx           // XSAVE
    jnc     2f
    mov     %cr4, %eax
    or      $0x40000, %eax      // CR4.OSXSAVE
    mov     %eax, %cr4
    mov     $1, %eax
    xor     %ecx, %ecx
    cpuid
    mov     $osxsave_ok, %esi
    bt      $27, %ecx
    jc      2f
    mov     $osxsave_bad, %esi
2:  call    puts

    mov     $0x80000001, %eax   // EFER.TCE, if this CPU has no TCE
    cpuid
    mov     $has_tce, %esi
    bt      $17, %ecx
    jc      3f
    mov     $0xc0000080, %ecx
    rdmsr
    or      $0x8000, %eax
    movl    $0, gp_seen
    wrmsr                       // -> #GP, the handler skips it
    mov     $tce_gp, %esi
    cmpl    $0, gp_seen
    jne     3f
    mov     $tce_taken, %esi
3:  call    puts

    mov     $0x277, %ecx        // PAT with entry 0 = 2, no memory type
    mov     $0x00070402, %eax
    mov     $0x00070406, %edx
    movl    $0, gp_seen
    wrmsr                       // -> #GP, the handler skips it
    mov     $pat_gp, %esi
    cmpl    $0, gp_seen
    jne     7f
    mov     $pat_taken, %esi
7:  call    puts

    invd
    mov     $invd_done, %esi
    call    puts
    xor     %eax, %eax          // power-off port, 0: success
    jmp     power_off

gp_handler:
    movl    $1, gp_seen
    addl    $2, 4(%esp)         // skip the 2-byte WRMSR (past the error code)
    add     $4, %esp            // drop the error code
    iret

    .align 8
gp_seen:
    .long   0
gdt:
    .quad   0, 0, 0x00cf9a000000ffff, 0x00cf92000000ffff
gdt_ptr:
    .word   4 * 8 - 1
    .long   gdt
    .align 8
idt:
    .fill   14, 8, 0
idt_ptr:
    .word   14 * 8 - 1
    .long   idt
no_xsave:
    .asciz  "CPUID: no XSAVE, OSXSAVE not checked\n"
osxsave_ok:
    .asciz  "CPUID: OSXSAVE follows the guest's CR4\n"
osxsave_bad:
    .asciz  "CPUID: OSXSAVE does not follow the guest's CR4\n"
has_tce:
    .asciz  "EFER: this CPU has TCE, not checked\n"
tce_gp:
    .asciz  "EFER: a bit the CPU lacks raises #GP\n"
tce_taken:
    .asciz  "EFER: a bit the CPU lacks was accepted\n"
pat_gp:
    .asciz  "PAT: a reserved memory type raises #GP\n"
pat_taken:
    .asciz  "PAT: a reserved memory type was accepted\n"
invd_done:
    .asciz  "INVD done\n"

#include "x86_64-lib.inc"
