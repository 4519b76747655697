/*
A hostile x86 guest that writes to an I/O port it does not own: 0x80, the
PC's POST diagnostic port, harmless on real hardware, which is exactly why
a hypervisor must refuse it anyway (the rule of the house: only what is
listed is reachable). hvbook must stop the VM with a report naming the port.
*/
    .code32
    .text
    .global _start
_start:
    mov     $0x90000, %esp
    mov     $0x42, %al
    out     %al, $0x80          // must be refused
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

escaped:
    .asciz  "ISOLATION BROKEN: the write to port 0x80 succeeded\n"
