/*
An x86 guest that checks hvbook's instruction decoder in long mode, where
the real guest runs. It builds page tables that map the first 4 GiB one to
one (2 MiB pages), sets EFER.LME (through the emulated MSR), turns paging
on and jumps to 64-bit code. Then it reads its flash ("pfld", then 0xFF)
and writes and reads back its APIC's task priority register with the MOV
forms a compiler emits: REX.W, REX.R and REX.B, a SIB byte, 8- and 32-bit
displacements, an immediate, MOVZX, a 16-bit operand, AH, SIL and a 64-bit
direct address. Every result is compared with what the hardware would give;
the guest prints the first check that differs, or that all passed, and
powers off.
*/
#define FLASH 0xFFC00000
#define APIC 0xFEE00000
    .code32
    .text
    .global _start
_start:
    mov     $0x90000, %esp
    lgdt    gdt_ptr

    mov     $pd, %edi           // 2048 PD entries: 4 GiB of 2 MiB pages
    xor     %eax, %eax
1:  mov     %eax, %edx
    or      $0x83, %edx         // P, R/W, PS
    mov     %edx, (%edi)
    movl    $0, 4(%edi)
    add     $0x200000, %eax
    add     $8, %edi
    cmp     $pd + 2048 * 8, %edi
    jb      1b
    mov     $pdpt, %edi         // four PDPT entries, one PD each
    mov     $pd + 3, %eax
    mov     $4, %ecx
2:  mov     %eax, (%edi)
    movl    $0, 4(%edi)
    add     $0x1000, %eax
    add     $8, %edi
    loop    2b
    movl    $pdpt + 3, pml4
    movl    $0, pml4 + 4

    mov     %cr4, %eax          // PAE
    or      $0x20, %eax
    mov     %eax, %cr4
    mov     $pml4, %eax
    mov     %eax, %cr3
    mov     $0xC0000080, %ecx   // EFER.LME, through hvbook's MSR emulation
    rdmsr
    or      $0x100, %eax
    wrmsr
    mov     %cr0, %eax          // paging on: long mode
    or      $0x80000000, %eax
    mov     %eax, %cr0
    ljmp    $0x08, $long_mode

    .code64
long_mode:
    mov     $0x10, %ax
    mov     %ax, %ds
    mov     %ax, %ss
    mov     $FLASH, %ebx        // zero-extended: 0x00000000FFC00000
    mov     $APIC, %r8d

    mov     (%rbx), %eax                    // 1: 8B, 32 bits
    cmp     $0x646c6670, %eax
    jne     fail1
    mov     (%rbx), %rax                    // 2: REX.W 8B, 64 bits
    movabs  $0xffffffff646c6670, %r15
    cmp     %r15, %rax
    jne     fail2
    movzbl  1(%rbx), %ecx                   // 3: MOVZX r32, m8, disp8
    cmp     $0x66, %ecx
    jne     fail3
    movzwl  2(%rbx), %r10d                  // 4: REX.R MOVZX r32, m16
    cmp     $0x646c, %r10d
    jne     fail4
    mov     $0x1111, %eax                   // 5: AH
    mov     3(%rbx), %ah
    cmp     $0x6411, %eax
    jne     fail5
    mov     $1, %esi                        // 6: SIB, REX.R: bytes 4..7 of the flash
    mov     (%rbx,%rsi,4), %r11d
    cmp     $0xffffffff, %r11d
    jne     fail6
    movabs  FLASH, %eax                     // 7: A1 with a 64-bit address
    cmp     $0x646c6670, %eax
    jne     fail7
    mov     $0x1234, %esi                   // 8: REX makes register 6 SIL, not DH
    mov     0x10(%rbx), %sil
    cmp     $0x12ff, %esi
    jne     fail8
    mov     $0xaaaa0000, %edx               // 9: 16-bit operand keeps the rest
    mov     2(%rbx), %dx
    cmp     $0xaaaa646c, %edx
    jne     fail9
    movl    $0x30, 0x80(%r8)                // 10: REX.B C7, disp32, imm32
    mov     0x80(%r8), %eax
    cmp     $0x30, %eax
    jne     fail10
    mov     $0x40, %r9d                     // 11: REX.R REX.B 89, store
    mov     %r9d, 0x80(%r8)
    mov     $APIC + 0x80, %eax
    mov     (%rax), %edi
    cmp     $0x40, %edi
    jne     fail11

    lea     all_ok(%rip), %rsi
    call    puts
    xor     %eax, %eax
    out     %eax, $0xf4
3:  hlt
    jmp     3b

    .irp n, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11
fail\n:
    movb    $(\n / 10 + '0'), failed_at
    movb    $(\n % 10 + '0'), failed_at + 1
    jmp     fail
    .endr
fail:
    lea     failed(%rip), %rsi
    call    puts
    mov     $1, %eax
    out     %eax, $0xf4
4:  hlt
    jmp     4b

puts:                           // %rsi: a NUL-terminated string, to COM1
    mov     $0x3f8, %dx
5:  lodsb
    test    %al, %al
    jz      6f
    out     %al, %dx
    jmp     5b
6:  ret

    .data
    .align 8
gdt:                            // null, 64-bit code, data
    .quad   0, 0x00af9a000000ffff, 0x00cf92000000ffff
gdt_ptr:
    .word   3 * 8 - 1
    .long   gdt
all_ok:
    .asciz  "decoder: all 11 MOV forms gave what the hardware gives\n"
failed:
    .ascii  "decoder: check "
failed_at:
    .asciz  "?? got a wrong value\n"
    .align 4096
pml4:
    .fill   512, 8, 0
pdpt:
    .fill   512, 8, 0
pd:
    .fill   2048, 8, 0
