/*
A hostile AArch64 guest for the traps hvbook sets (issue 8, item 4). It
installs a vector table that notes any synchronous exception (x20 = its
exception class, from ESR_EL1) and skips the instruction, then:

- writes all ones to ACTLR_EL1 and reads it back: hvbook ignores the write;
- reads S3_1_C15_C2_0 (CPUACTLR_EL1 on a Cortex-A53 or A57), an
  implementation defined register: it must be undefined (EC 0);
- reads ERRIDR_EL1 on a CPU with RAS: 0, no error records;
- reads MDRAR_EL1: 0, no debug ROM table.

Each check prints one line.
*/
#include "aarch64-lib.inc"

    .text
    .global _start
_start:
    adr     x0, vectors
    msr     vbar_el1, x0
    isb

    mrs     x10, actlr_el1
    mov     x0, #-1
    msr     actlr_el1, x0
    isb
    mrs     x11, actlr_el1
    cmp     x10, x11
    b.ne    1f
    say     actlr_kept
    b       2f
1:  say     actlr_changed

2:  mov     x20, #-1
    mrs     x0, s3_1_c15_c2_0
    cbnz    x20, 3f
    say     impdef_undef
    b       4f
3:  say     impdef_read

4:  mrs     x0, id_aa64pfr0_el1
    ubfx    x0, x0, #28, #4     // RAS
    cbz     x0, 6f
    mov     x20, #-1
    mov     x0, #-1
    mrs     x0, s3_0_c5_c3_0    // ERRIDR_EL1
    cbnz    x0, 5f
    cmn     x20, #1
    b.ne    5f
    say     erridr_zero
    b       6f
5:  say     erridr_bad

6:  mov     x0, #-1
    mrs     x0, mdrar_el1
    cbnz    x0, 7f
    say     mdrar_zero
    b       power_off
7:  say     mdrar_bad
    b       power_off

sync:                           // note the class, skip the instruction
    mrs     x20, esr_el1
    lsr     x20, x20, #26
    mrs     x21, elr_el1
    add     x21, x21, #4
    msr     elr_el1, x21
    eret

    .balign 2048
vectors:
    .rept   4                   // 0x000: EL1 with SP_EL0
    .balign 0x80
    b       .
    .endr
    .balign 0x80                // 0x200: synchronous, EL1 with SP_EL1
    b       sync
    .rept   11
    .balign 0x80
    b       .
    .endr

    .section .rodata
actlr_kept:    .asciz "traps: ACTLR_EL1 ignored the guest's write\n"
actlr_changed: .asciz "traps: ACTLR_EL1 took the guest's write\n"
impdef_undef:  .asciz "traps: an implementation defined register is undefined\n"
impdef_read:   .asciz "traps: an implementation defined register could be read\n"
erridr_zero:   .asciz "traps: ERRIDR_EL1 reads 0, no error records\n"
erridr_bad:    .asciz "traps: ERRIDR_EL1 did not read 0\n"
mdrar_zero:    .asciz "traps: MDRAR_EL1 reads 0, no debug ROM table\n"
mdrar_bad:     .asciz "traps: MDRAR_EL1 did not read 0\n"
