/*
A guest that never gives the CPU back: interrupts off, an endless loop, no
timer armed. Nothing it does causes a VM exit. Only the hypervisor's own
timer, which the guest cannot mask, ends its turn, and the time budget
(run.sh --budget) stops it with a report.
*/
    .code32
    .text
    .global _start
_start:
    cli
1:  jmp     1b
