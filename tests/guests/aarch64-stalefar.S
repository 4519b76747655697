/*
A hostile AArch64 guest for the VM-fault report (issue 8, item 15). It
writes one character to its PL011, an exit that sets FAR_EL2 and HPFAR_EL2,
then reads CNTP_CTL_EL0, the EL1 physical timer hvbook keeps from the guest:
a trapped system register access, for which the CPU writes neither. The
report must not show the PL011's addresses as if they belonged to it.
*/
#include "aarch64-lib.inc"

    .text
    .global _start
_start:
    say     hello
    mrs     x0, cntp_ctl_el0    // trapped: a VM fault
    b       power_off

    .section .rodata
hello: .asciz "stalefar: touching the EL1 physical timer\n"
