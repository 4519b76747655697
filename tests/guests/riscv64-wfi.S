/*
A hostile RISC-V guest that takes the CPU and sleeps on it: it masks every
interrupt (sie = 0, sstatus.SIE = 0), arms no timer, and executes wfi
forever. Nothing it does will ever wake it; only the hypervisor's own
timer can end the run, with the time-budget report.
*/
    .section .text
    .global _start
_start:
    csrw    sie, zero
    csrci   sstatus, 2
    la      a0, msg
    call    puts
2:  wfi
    j       2b

#include "riscv64-lib.inc"

    .section .rodata
msg: .asciz "interrupts masked, no timer armed: waiting for ever\n"
