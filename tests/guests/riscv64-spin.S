/*
A hostile RISC-V guest that keeps the CPU busy: after one line it spins in
a loop of one instruction and never exits to the hypervisor again. Only
the hypervisor's own timer can end the run, with the time-budget report.
*/
    .section .text
    .global _start
_start:
    la      a0, msg
    call    puts
2:  j       2b

#include "riscv64-lib.inc"

    .section .rodata
msg: .asciz "spinning for ever\n"
