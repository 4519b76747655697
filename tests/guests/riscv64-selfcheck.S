/*
A RISC-V guest whose own self-check fails, and which ends the run the way
gkernel does when it finds a bad pflash magic: it prints the line and asks
for SRST shutdown with reason 1, "system failure". (To fail without a
hostile flash it checks for the wrong magic, "HACK", on purpose.) The
hypervisor must turn that reason into a failing run: no "Hypervisor ok!",
and a failure status from run.sh.
*/
    .section .text
    .global _start
_start:
    li      t0, 0x22000000
    lw      t1, 0(t0)               // "pfld"
    li      t2, 0x4b434148          // "HACK"
    li      s1, 0                   // SRST reason 0: no reason, all is well
    la      a0, good
    beq     t1, t2, 1f
    li      s1, 1                   // SRST reason 1: system failure
    la      a0, bad
1:  call    puts
    mv      a0, s1                  // SRST system_reset(shutdown, reason)
    j       shutdown

#include "riscv64-lib.inc"

    .section .rodata
good: .asciz "Got pflash magic: HACK\n"
bad:  .asciz "Bad pflash magic: the self-check failed\n"
