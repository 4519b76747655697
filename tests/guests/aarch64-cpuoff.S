/*
An AArch64 guest that switches off its only CPU with PSCI CPU_OFF (issue 8,
item 13). Nothing can switch it on again, and the guest never said it was
done: hvbook must end the run as a failure, not hang and not pass.
*/
#include "aarch64-lib.inc"

    .text
    .global _start
_start:
    psci    0x84000002          // CPU_OFF
    say     returned
    b       power_off

    .section .rodata
returned: .asciz "CPU_OFF returned\n"
