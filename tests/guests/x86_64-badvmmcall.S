/*
An x86 guest that makes hypercalls a careful hypervisor must answer without
stopping: VMMCALL with a number hvbook does not define (0xC200_0123) must
come back with -1 in RAX, and the guest must go on, which also proves that
the hypervisor moved RIP past the 3-byte VMMCALL. A putchar call (RAX = 1,
the byte in BL) prints one character. The guest reports both through its
serial port and powers off through the power-off port.
*/
    .code32
    .text
    .global _start
_start:
    mov     $0x90000, %esp
    mov     $0xC2000123, %eax   // a hypercall number nobody defines
    vmmcall
    mov     $answer_ok, %esi
    cmp     $-1, %eax
    je      1f
    mov     $answer_bad, %esi
1:  call    puts

    mov     $1, %eax            // putchar: '>' then a newline
    mov     $'>', %bl
    vmmcall
    mov     %eax, %ecx
    mov     $1, %eax
    mov     $'\n', %bl
    vmmcall
    or      %eax, %ecx          // both answered 0?
    mov     $putchar_ok, %esi
    jz      2f
    mov     $putchar_bad, %esi
2:  call    puts

    xor     %eax, %eax          // power-off port, 0: success
    jmp     power_off

answer_ok:   .asciz "unknown vmmcall answered -1\n"
answer_bad:  .asciz "unknown vmmcall got a wrong answer\n"
putchar_ok:  .asciz "putchar vmmcall answered 0\n"
putchar_bad: .asciz "putchar vmmcall got a wrong answer\n"

#include "x86_64-lib.inc"
