/*
A hostile AArch64 guest: it loads from BAD_GPA, an intermediate physical
address outside its RAM and its device windows (the Makefile builds one copy
per address). The default, 0x0900_1000, is the page just past the guest's
emulated PL011: close to a device, but not one. The hypervisor must refuse
with a VM-fault report naming that IPA, and stop. If the load ever
"succeeds", the guest says so through its PL011 and powers off normally with
PSCI SYSTEM_OFF, which the test then reports as a failure of isolation.
*/
#ifndef BAD_GPA
#define BAD_GPA 0x09001000
#endif
    .section .text
    .global _start
_start:
    ldr     x0, =BAD_GPA
    ldr     w1, [x0]            // must never complete
    adr     x1, escaped
    bl      puts
    ldr     x0, =0x84000008     // PSCI SYSTEM_OFF: should never get here
    hvc     #0
1:  b       1b

puts:                           // x1: a NUL-terminated string, to the PL011
    ldr     x2, =0x09000000     // UARTDR
2:  ldrb    w3, [x1], #1
    cbz     w3, 3f
    strb    w3, [x2]
    b       2b
3:  ret

    .section .rodata
escaped:
    .asciz  "ISOLATION BROKEN: the load outside guest RAM succeeded\n"
