/*
An AArch64 guest that makes calls a careful hypervisor must refuse without
stopping: an HVC and an SMC with a function id nobody defines (0xC200_0123,
an SMC64 fast call in the SiP range). Each must come back with SMCCC
NOT_SUPPORTED, -1, in x0, and the guest must go on: for the SMC that also
proves the hypervisor moved the PC past it (a trapped SMC returns to the SMC
itself).

Then it asks PSCI (DEN0022) what a one-CPU machine must answer, with its
own MPIDR (MPIDR_EL1, which the hypervisor sets) and with CPU 1's, which
does not exist:

| call | arguments | answer |
|---|---|---|
| PSCI_VERSION | | 0x10001 (1.1) |
| PSCI_FEATURES | CPU_ON (SMC64), MIGRATE_INFO_TYPE, SYSTEM_RESET | 0 |
| PSCI_FEATURES | CPU_SUSPEND | 0 (original power_state format) |
| PSCI_FEATURES | an unknown id | -1 (NOT_SUPPORTED) |
| CPU_SUSPEND, SMC64 | a power-down state (bit 16), a cluster level (bit 24) | -2 |
| CPU_SUSPEND, SMC32 | standby at level 0, with the virtual timer armed | 0, after a wait |
| CPU_ON, SMC64 and SMC32 | own MPIDR | -4 (ALREADY_ON) |
| CPU_ON, SMC64 | MPIDR of CPU 1 | -2 (INVALID_PARAMETERS) |
| AFFINITY_INFO, SMC64 and SMC32 | own MPIDR, level 0 | 0 (ON) |
| AFFINITY_INFO, SMC64 | MPIDR of CPU 1, level 0 | -2 |
| MIGRATE_INFO_TYPE | | 2 (no Trusted OS to migrate) |

One line per answer, "... answered ..." when right and "... WRONG" when
not; then SYSTEM_OFF, so the test can check both the answers and that the
VM went on.
*/
#include "aarch64-lib.inc"

/* check FN, X1, X2, EXPECTED, NAME: x0 = FN, hvc, compare x0 with EXPECTED
   (a 64-bit value, so -1 means all ones), print NAME's line. x1 and x2 are
   registers holding the arguments. */
    .macro  check fn, a1, a2, expected, name
    mov     x1, \a1
    mov     x2, \a2
    ldr     x0, =\fn
    hvc     #0
    ldr     x9, =\expected
    cmp     x0, x9
    b.ne    1f
    say     \name\()_ok
    b       2f
1:  say     \name\()_bad
2:
    .endm

    .text
    .global _start
_start:
    ldr     x0, =0xC2000123     // a function id nobody defines
    hvc     #0
    adr     x1, hvc_ok
    cmn     x0, #1              // x0 == -1?
    b.eq    1f
    adr     x1, hvc_bad
1:  bl      puts

    ldr     x0, =0xC2000123
    smc     #0
    adr     x1, smc_ok
    cmn     x0, #1
    b.eq    2f
    adr     x1, smc_bad
2:  bl      puts

    mrs     x19, mpidr_el1
    ldr     x20, =0xff00ffffff
    and     x19, x19, x20       // this CPU's affinity
    eor     x20, x19, #1        // Aff0 one different: CPU 1, not present
    mov     x21, #0
    ldr     x22, =0xC4000003
    ldr     x23, =0x84000006
    ldr     x24, =0x84000009
    ldr     x25, =0x84000001
    ldr     x26, =0x8400ffff

    check   0x84000000, x21, x21, 0x10001, version
    check   0x8400000A, x22, x21, 0, feat_cpu_on
    check   0x8400000A, x23, x21, 0, feat_migrate
    check   0x8400000A, x24, x21, 0, feat_reset
    check   0x8400000A, x25, x21, 0, feat_suspend
    check   0x8400000A, x26, x21, -1, feat_unknown
    check   0xC4000003, x19, x21, -4, cpu_on_self
    check   0x84000003, x19, x21, -4, cpu_on_self32
    check   0xC4000003, x20, x21, -2, cpu_on_other
    check   0xC4000004, x19, x21, 0, affinity_self
    check   0x84000004, x19, x21, 0, affinity_self32
    check   0xC4000004, x20, x21, -2, affinity_other
    check   0x84000006, x21, x21, 2, migrate_info

    // CPU_SUSPEND: two states hvbook does not offer, then a standby. For
    // the standby to end, an interrupt must come: the virtual timer, armed
    // 1 ms ahead and enabled at the (emulated) GIC, its IRQ masked here.
    ldr     x27, =0x10000       // StateType 1: power-down
    ldr     x28, =0x1000000     // PowerLevel 1
    check   0xC4000001, x27, x21, -2, suspend_powerdown
    check   0xC4000001, x28, x21, -2, suspend_level1
    ldr     x1, =0x08000000     // GICD_CTLR: ARE, EnableGrp1
    mov     w2, #0x12
    str     w2, [x1]
    ldr     x1, =0x080a0014     // GICR_WAKER: awake
    str     wzr, [x1]
    ldr     x1, =0x080b0080     // GICR_IGROUPR0: 27 in Group 1
    mov     w2, #(1 << 27)
    str     w2, [x1]
    ldr     x1, =0x080b0100     // GICR_ISENABLER0: 27 on
    str     w2, [x1]
    mrs     x1, cntfrq_el0
    lsr     x1, x1, #10         // about 1 ms
    msr     cntv_tval_el0, x1
    mov     x1, #1
    msr     cntv_ctl_el0, x1    // ENABLE
    isb
    check   0x84000001, x21, x21, 0, suspend_standby
    msr     cntv_ctl_el0, xzr

    b       power_off
    .ltorg

    .section .rodata
hvc_ok:  .asciz "unknown hvc answered -1\n"
hvc_bad: .asciz "unknown hvc got a wrong answer\n"
smc_ok:  .asciz "unknown smc answered -1\n"
smc_bad: .asciz "unknown smc got a wrong answer\n"
version_ok:          .asciz "PSCI_VERSION answered 1.1\n"
version_bad:         .asciz "PSCI_VERSION WRONG\n"
feat_cpu_on_ok:      .asciz "PSCI_FEATURES(CPU_ON) answered 0\n"
feat_cpu_on_bad:     .asciz "PSCI_FEATURES(CPU_ON) WRONG\n"
feat_migrate_ok:     .asciz "PSCI_FEATURES(MIGRATE_INFO_TYPE) answered 0\n"
feat_migrate_bad:    .asciz "PSCI_FEATURES(MIGRATE_INFO_TYPE) WRONG\n"
feat_reset_ok:       .asciz "PSCI_FEATURES(SYSTEM_RESET) answered 0\n"
feat_reset_bad:      .asciz "PSCI_FEATURES(SYSTEM_RESET) WRONG\n"
feat_suspend_ok:     .asciz "PSCI_FEATURES(CPU_SUSPEND) answered 0\n"
feat_suspend_bad:    .asciz "PSCI_FEATURES(CPU_SUSPEND) WRONG\n"
suspend_powerdown_ok:  .asciz "CPU_SUSPEND(power-down) answered -2\n"
suspend_powerdown_bad: .asciz "CPU_SUSPEND(power-down) WRONG\n"
suspend_level1_ok:     .asciz "CPU_SUSPEND(level 1) answered -2\n"
suspend_level1_bad:    .asciz "CPU_SUSPEND(level 1) WRONG\n"
suspend_standby_ok:    .asciz "CPU_SUSPEND(standby) answered 0\n"
suspend_standby_bad:   .asciz "CPU_SUSPEND(standby) WRONG\n"
feat_unknown_ok:     .asciz "PSCI_FEATURES(unknown) answered -1\n"
feat_unknown_bad:    .asciz "PSCI_FEATURES(unknown) WRONG\n"
cpu_on_self_ok:      .asciz "CPU_ON(self) answered -4\n"
cpu_on_self_bad:     .asciz "CPU_ON(self) WRONG\n"
cpu_on_self32_ok:    .asciz "CPU_ON32(self) answered -4\n"
cpu_on_self32_bad:   .asciz "CPU_ON32(self) WRONG\n"
cpu_on_other_ok:     .asciz "CPU_ON(other) answered -2\n"
cpu_on_other_bad:    .asciz "CPU_ON(other) WRONG\n"
affinity_self_ok:    .asciz "AFFINITY_INFO(self) answered 0\n"
affinity_self_bad:   .asciz "AFFINITY_INFO(self) WRONG\n"
affinity_self32_ok:  .asciz "AFFINITY_INFO32(self) answered 0\n"
affinity_self32_bad: .asciz "AFFINITY_INFO32(self) WRONG\n"
affinity_other_ok:   .asciz "AFFINITY_INFO(other) answered -2\n"
affinity_other_bad:  .asciz "AFFINITY_INFO(other) WRONG\n"
migrate_info_ok:     .asciz "MIGRATE_INFO_TYPE answered 2\n"
migrate_info_bad:    .asciz "MIGRATE_INFO_TYPE WRONG\n"
