/*
A hostile AArch64 guest that never gives the CPU back (issue 8, item 5):
interrupts masked, an endless loop with no exits at all. Only the
hypervisor's own timer can end this: the run must stop with the time-budget
report, not a timeout.
*/
    .text
    .global _start
_start:
    msr     daifset, #0xf
1:  b       1b
