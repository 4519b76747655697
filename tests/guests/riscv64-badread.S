/*
A hostile RISC-V guest: it loads from BAD_GPA, an address outside its RAM and
its pflash window (the Makefile builds one copy per address). The hypervisor
must refuse with a VM-fault report naming that GPA, and stop. If the load
ever "succeeds", the guest says so and shuts down normally, which the test
then reports as a failure of isolation.
*/
#ifndef BAD_GPA
#define BAD_GPA 0x10000000      /* the host's UART */
#endif
    .section .text
    .global _start
_start:
    li      t0, BAD_GPA
    ld      t1, 0(t0)
    la      a0, escaped
    call    puts
    li      a0, 0               // SRST shutdown: should never get here
    j       shutdown

#include "riscv64-lib.inc"

    .section .rodata
escaped:
    .asciz  "ISOLATION BROKEN: the load outside guest RAM succeeded\n"
