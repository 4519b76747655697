/*
A hostile RISC-V guest that keeps the CPU busy: after one line it spins in
a loop of one instruction and never exits to the hypervisor again. Only
the hypervisor's own timer can end the run, with the time-budget report.
*/
    .section .text
    .global _start
_start:
    la      t2, msg
1:  lbu     a0, 0(t2)               // legacy SBI putchar, one byte at a time
    beqz    a0, 2f
    li      a7, 1
    ecall
    addi    t2, t2, 1
    j       1b
2:  j       2b

    .section .rodata
msg: .asciz "spinning for ever\n"
