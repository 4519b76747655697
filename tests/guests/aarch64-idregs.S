/*
An AArch64 guest that asks its CPU what it has (issue 10). hvbook keeps
SVE and SME trapped (CPTR_EL2.TZ and TSM), so the ID registers must say
they are absent, even under -cpu max, whose CPU has both: the SVE field of
ID_AA64PFR0_EL1 (bits 35..32), the SME field of ID_AA64PFR1_EL1 (27..24),
and all of ID_AA64ZFR0_EL1 and ID_AA64SMFR0_EL1 read 0. Fields hvbook does
not hide are the CPU's: ID_AA64PFR0_EL1.EL1 (bits 7..4) says EL1 is
implemented, AArch64 at least (1 or 2).
*/
#include "aarch64-lib.inc"

    .text
    .global _start
_start:
    mrs     x19, id_aa64pfr0_el1
    mrs     x20, id_aa64pfr1_el1
    mrs     x21, s3_0_c0_c4_4       // ID_AA64ZFR0_EL1
    mrs     x22, s3_0_c0_c4_5       // ID_AA64SMFR0_EL1
    ubfx    x0, x19, #32, #4
    ubfx    x1, x20, #24, #4
    orr     x0, x0, x1
    orr     x0, x0, x21
    orr     x0, x0, x22
    cbnz    x0, 1f
    say     hidden
    b       2f
1:  say     shown
2:  ubfx    x0, x19, #4, #4
    cbz     x0, 3f
    say     el1
    b       power_off
3:  say     el1_bad
    b       power_off
    .ltorg

    .section .rodata
hidden:  .asciz "idregs: no SVE, no SME, as hvbook keeps them\n"
shown:   .asciz "idregs: WRONG, SVE or SME is advertised\n"
el1:     .asciz "idregs: ID_AA64PFR0_EL1.EL1 is the CPU's\n"
el1_bad: .asciz "idregs: WRONG, ID_AA64PFR0_EL1.EL1 reads 0\n"
