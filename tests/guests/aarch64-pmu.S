/*
A hostile AArch64 guest that times the hypervisor with the PMU (issue 8,
item 3). It sets both kinds of counter to count *only at EL2*: the cycle
counter through PMCCFILTR_EL0, and event counter 0 (event 0x11, CPU cycles)
through PMEVTYPER0_EL0; in each filter P (bit 31) and U (bit 30) stop
counting at EL1 and EL0, NSH (bit 27) asks for EL2. Then it reads both,
makes an HVC (PSCI_VERSION), and reads them again. Whatever the hypervisor
did for that HVC must not show: both differences must be zero. It also
checks that the filters read back as written, so that it cannot tell that
anything was changed on the way.
*/
#include "aarch64-lib.inc"

#define FILTER_EL2_ONLY ((1 << 31) | (1 << 30) | (1 << 27))
#define EVENT_CPU_CYCLES 0x11

    .text
    .global _start
_start:
    mrs     x0, id_aa64dfr0_el1
    ubfx    x0, x0, #8, #4      // PMUVer
    cbz     x0, no_pmu
    cmp     x0, #0xf
    b.eq    no_pmu

    ldr     x0, =FILTER_EL2_ONLY
    msr     pmccfiltr_el0, x0
    ldr     x0, =(FILTER_EL2_ONLY | EVENT_CPU_CYCLES)
    msr     pmevtyper0_el0, x0
    ldr     x0, =(1 << 31) | 1  // enable the cycle counter and counter 0
    msr     pmcntenset_el0, x0
    mrs     x0, pmcr_el0
    orr     x0, x0, #7          // E: enable; P, C: reset the counters
    msr     pmcr_el0, x0
    isb

    mrs     x19, pmccntr_el0
    mrs     x20, pmevcntr0_el0
    psci    0x84000000          // PSCI_VERSION: work for the hypervisor
    mrs     x21, pmccntr_el0
    mrs     x22, pmevcntr0_el0

    cmp     x19, x21
    b.ne    1f
    say     cycles_zero
    b       2f
1:  say     cycles_seen
2:  cmp     x20, x22
    b.ne    3f
    say     events_zero
    b       4f
3:  say     events_seen
4:  mrs     x0, pmccfiltr_el0
    ldr     x1, =FILTER_EL2_ONLY
    cmp     x0, x1
    b.ne    5f
    mrs     x0, pmevtyper0_el0
    ldr     x1, =(FILTER_EL2_ONLY | EVENT_CPU_CYCLES)
    cmp     x0, x1
    b.ne    5f
    say     filters_same
    b       power_off
5:  say     filters_changed
    b       power_off

no_pmu:
    say     nopmu
    b       power_off

    .section .rodata
cycles_zero:     .asciz "PMU: the cycle counter saw no EL2 work around an hvc\n"
cycles_seen:     .asciz "PMU: the cycle counter counted the hypervisor's work\n"
events_zero:     .asciz "PMU: event counter 0 saw no EL2 work around an hvc\n"
events_seen:     .asciz "PMU: event counter 0 counted the hypervisor's work\n"
filters_same:    .asciz "PMU: the filters read back as written\n"
filters_changed: .asciz "PMU: the filters read back changed\n"
nopmu:           .asciz "PMU: this CPU has none\n"
