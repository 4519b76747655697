/*
A hostile AArch64 guest that sleeps for ever (issue 8, item 5): it masks
every interrupt, arms no timer and waits for an interrupt with WFI. Only the
hypervisor's own timer can end this: the run must stop with the time-budget
report, not a timeout.
*/
    .text
    .global _start
_start:
    msr     daifset, #0xf
    msr     cntv_ctl_el0, xzr
1:  wfi
    b       1b
