/*
A guest that triple-faults: it loads an empty IDT and executes INT3. The
breakpoint cannot be delivered (no gate), which becomes a #GP, which cannot
be delivered either: a double fault, and with no gate for that, a shutdown.
On a bare PC that resets the machine; under hvbook the SHUTDOWN intercept
stops the VM with a report.
*/
    .code32
    .text
    .global _start
_start:
    mov     $0x90000, %esp
    lidt    empty_idt
    int3
    mov     $escaped, %esi
    mov     $0x3f8, %dx
1:  lodsb
    test    %al, %al
    jz      2f
    out     %al, %dx
    jmp     1b
2:  xor     %eax, %eax
    out     %eax, $0xf4
3:  hlt
    jmp     3b

    .align 8
empty_idt:
    .word   0                   // limit 0: no gates at all
    .long   0
escaped:
    .asciz  "the triple fault did not stop the VM\n"
