/*
A RISC-V guest that makes calls a careful hypervisor must refuse without
stopping, prints one line per answer and shuts down normally, so the test
can check both the answers and that the VM went on:

- an unknown SBI extension: SBI_ERR_NOT_SUPPORTED (-2);
- a DBCN console write whose buffer lies outside guest RAM:
  SBI_ERR_INVALID_PARAM (-3);
- SRST system_reset with a reserved reset_type (3), a platform-specific one
  nobody implements (0xF000_0000), a reserved reset_reason (2) and an
  SBI-implementation-specific one (0xE000_0000): SBI_ERR_INVALID_PARAM
  (-3) each, and no reset (SBI 2.0, 10.1);
- every legacy extension ID hvbook does not implement, 0x03..0x07 and
  0x09..0x0F: SBI_ERR_NOT_SUPPORTED in a0, and a1 exactly as the guest left
  it, since legacy calls answer in a0 alone (SBI 2.0, chapter 5).
*/
    .equ    SRST, 0x53525354
    .section .text
    .global _start
_start:
    li      sp, 0x80400000
    li      a7, 0x0A000000      // an extension nobody defines
    li      a6, 0
    ecall
    mv      s1, a0              // s1 = answer to the unknown extension
    li      a7, 0x4442434E      // DBCN write(num_bytes, base_lo, base_hi)
    li      a6, 0
    li      a0, 16
    li      a1, 0x10000000      // the host's UART: not guest RAM
    li      a2, 0
    ecall
    mv      s2, a0              // s2 = answer to the bad buffer

    li      t0, -2
    la      a0, unknown_ok
    beq     s1, t0, 3f
    la      a0, unknown_bad
3:  call    puts
    li      t0, -3
    la      a0, dbcn_ok
    beq     s2, t0, 4f
    la      a0, dbcn_bad
4:  call    puts

    // SRST with a bad type or reason: -3, and the guest goes on.
    li      a0, 3               // reserved reset_type
    li      a1, 0
    la      a2, srst_type_ok
    call    srst_refused
    li      a0, 0xF0000000      // platform-specific reset_type
    li      a1, 0
    la      a2, srst_ptype_ok
    call    srst_refused
    li      a0, 0               // shutdown, reserved reset_reason
    li      a1, 2
    la      a2, srst_reason_ok
    call    srst_refused
    li      a0, 0               // shutdown, SBI-implementation-specific reason
    li      a1, 0xE0000000
    la      a2, srst_ireason_ok
    call    srst_refused

    // Legacy IDs without an implementation: -2 in a0, a1 untouched.
    li      s3, 3
8:  li      t0, 8               // 0x08 is shutdown: skip it
    beq     s3, t0, 9f
    mv      a7, s3
    li      a6, 0
    li      a0, 0
    li      a1, 0x5a5a          // must come back unchanged
    ecall
    li      t0, 0x5a5a
    la      s4, legacy_a1_bad
    bne     a1, t0, 10f
    li      t0, -2
    la      s4, legacy_a0_bad
    bne     a0, t0, 10f
9:  addi    s3, s3, 1
    li      t0, 0x10
    bltu    s3, t0, 8b
    la      a0, legacy_ok
    call    puts
    j       11f
10: mv      a0, s4
    call    puts

11: li      a0, 0               // SRST: shutdown, no reason
    j       shutdown

// srst_refused(a0 = type, a1 = reason, a2 = line to print if refused
// with -3): a reset that happens stops the VM, so the line never appears.
srst_refused:
    mv      s5, ra
    mv      s6, a2
    li      a7, SRST
    li      a6, 0
    ecall
    li      t0, -3
    mv      t1, a0
    mv      a0, s6
    beq     t1, t0, 12f
    la      a0, srst_bad
12: call    puts
    mv      ra, s5
    ret

#include "riscv64-lib.inc"

    .section .rodata
unknown_ok:      .asciz "unknown SBI extension answered -2 (not supported)\n"
unknown_bad:     .asciz "unknown SBI extension got a wrong answer\n"
dbcn_ok:         .asciz "DBCN write outside guest RAM answered -3 (invalid param)\n"
dbcn_bad:        .asciz "DBCN write outside guest RAM got a wrong answer\n"
srst_type_ok:    .asciz "SRST reserved reset_type 3 answered -3 (invalid param)\n"
srst_ptype_ok:   .asciz "SRST platform reset_type 0xF0000000 answered -3 (invalid param)\n"
srst_reason_ok:  .asciz "SRST reserved reset_reason 2 answered -3 (invalid param)\n"
srst_ireason_ok: .asciz "SRST implementation reset_reason 0xE0000000 answered -3 (invalid param)\n"
srst_bad:        .asciz "SRST with a bad type or reason got a wrong answer\n"
legacy_ok:       .asciz "legacy EIDs 0x03..0x07, 0x09..0x0F answered -2 and kept a1\n"
legacy_a1_bad:   .asciz "a legacy EID changed a1\n"
legacy_a0_bad:   .asciz "a legacy EID got a wrong answer in a0\n"
