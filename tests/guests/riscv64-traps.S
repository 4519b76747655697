/*
A RISC-V guest that makes the exceptions a kernel handles itself on bare
hardware, and checks that each reaches its own trap handler exactly as the
hardware would deliver it: scause, sepc (the instruction that trapped),
stval, and sstatus (SPP = the mode it came from, SPIE = the old SIE, SIE =
0). Under hvbook they arrive at the hypervisor first; it must inject them,
not stop the VM. The guest prints one line per exception and shuts down
normally.

| test | instruction | mode | expected scause |
|---|---|---|---|
| misaligned AMO | amoadd.w on an odd address | VS | 4..7 (misaligned or access fault) |
| misaligned LR | lr.w on an odd address | VS | 4..7 |
| illegal instruction | csrw cycle (read-only) | VS | 2 |
| stimecmp (Sstc hidden) | csrr stimecmp | VS | 2 |
| wfi in a program | wfi | VU | 2 |
| stimecmp in a program | csrr stimecmp | VU | 2 |

Registers: the handler records scause, sepc, stval and sstatus in s8..s11
and resumes at s7 in S-mode (VS). Each test sets s7, s6 (the address of the
instruction that must trap) and s5 (the expected stval; -1: the
instruction's bits or 0).
*/
    .equ    SSTATUS_SIE, 1 << 1
    .equ    SSTATUS_SPIE, 1 << 5
    .equ    SSTATUS_SPP, 1 << 8
    .equ    ODD, 0x80300001         // a misaligned address in guest RAM

    .section .text
    .global _start
_start:
    li      sp, 0x80400000
    la      t0, handler
    csrw    stvec, t0
    csrw    sie, zero               // no interrupt can arrive ...
    csrsi   sstatus, SSTATUS_SIE    // ... but SIE = 1, so SPIE can be checked

    // 1. A misaligned AMO.
    la      s7, 1f
    la      s6, 0f
    li      s5, ODD
    li      t0, ODD
0:  amoadd.w t1, t1, (t0)
    j       no_trap
1:  la      a0, m_amo
    li      a1, 0xf0                // causes 4, 5, 6, 7
    li      a2, SSTATUS_SPP
    call    check

    // 2. A misaligned LR.
    la      s7, 1f
    la      s6, 0f
    li      s5, ODD
    li      t0, ODD
0:  lr.w    t1, (t0)
    j       no_trap
1:  la      a0, m_lr
    li      a1, 0xf0
    li      a2, SSTATUS_SPP
    call    check

    // 3. An illegal instruction: a write to a read-only CSR.
    la      s7, 1f
    la      s6, 0f
    li      s5, -1
0:  csrw    cycle, zero
    j       no_trap
1:  la      a0, m_illegal
    li      a1, 1 << 2
    li      a2, SSTATUS_SPP
    call    check

    // 4. stimecmp, which a CPU without Sstc does not have.
    la      s7, 1f
    la      s6, 0f
    li      s5, -1
0:  csrr    t1, 0x14d               // stimecmp
    j       no_trap
1:  la      a0, m_stimecmp
    li      a1, 1 << 2
    li      a2, SSTATUS_SPP
    call    check

    // 5. wfi in a program (U-mode): sret to it with SPP = 0.
    la      s7, 1f
    la      s6, 0f
    li      s5, -1
    call    to_user
0:  wfi
    j       no_trap
1:  la      a0, m_wfi
    li      a1, 1 << 2
    li      a2, 0
    call    check

    // 6. stimecmp in a program.
    la      s7, 1f
    la      s6, 0f
    li      s5, -1
    call    to_user
0:  csrr    t1, 0x14d
    j       no_trap
1:  la      a0, m_ustimecmp
    li      a1, 1 << 2
    li      a2, 0
    call    check

    la      a0, m_done
    call    puts
    li      a0, 0                   // SRST shutdown, no reason
    j       shutdown

// to_user: continue at the return address, in U-mode.
to_user:
    csrw    sepc, ra
    li      t0, SSTATUS_SPP
    csrc    sstatus, t0
    sret

// The trap handler: record, then resume at s7 in S-mode.
    .balign 4
handler:
    csrr    s8, scause
    csrr    s9, sepc
    csrr    s10, stval
    csrr    s11, sstatus
    csrw    sepc, s7
    li      t0, SSTATUS_SPP
    csrs    sstatus, t0
    sret

// check(a0 = name, a1 = mask of allowed causes, a2 = expected SPP bit):
// compare what the handler recorded, print "<name>: handled by the guest
// (cause N)" or "<name>: WRONG <what>", and go on.
check:
    mv      s2, ra
    mv      s3, a0
    mv      s4, a1
    mv      s1, a2
    call    puts
    la      a0, m_wrong_cause
    li      t0, 63
    bgeu    s8, t0, bad
    srl     t0, s4, s8
    andi    t0, t0, 1
    beqz    t0, bad
    la      a0, m_wrong_sepc
    bne     s9, s6, bad
    la      a0, m_wrong_stval
    li      t0, -1
    beq     s5, t0, 1f
    bne     s10, s5, bad
    j       2f
1:  beqz    s10, 2f                 // 0, or the instruction's own bits
    lw      t0, 0(s6)
    li      t1, 0xffffffff
    and     t0, t0, t1
    bne     s10, t0, bad
2:  la      a0, m_wrong_status
    andi    t0, s11, SSTATUS_SIE
    bnez    t0, bad
    andi    t0, s11, SSTATUS_SPIE
    beqz    t0, bad
    li      t0, SSTATUS_SPP
    and     t0, s11, t0
    bne     t0, s1, bad
    la      a0, m_ok
    call    puts
    addi    a0, s8, '0'
    li      a7, 1
    ecall
    la      a0, m_close
    call    puts
    mv      ra, s2
    ret
bad:
    call    puts
    li      a0, 1                   // SRST reason "system failure"
    j       shutdown

no_trap:
    la      a0, m_no_trap
    call    puts
    li      a0, 1
    j       shutdown

#include "riscv64-lib.inc"

    .section .rodata
m_amo:          .asciz "misaligned AMO: "
m_lr:           .asciz "misaligned LR: "
m_illegal:      .asciz "illegal instruction: "
m_stimecmp:     .asciz "stimecmp without Sstc: "
m_wfi:          .asciz "wfi in U-mode: "
m_ustimecmp:    .asciz "stimecmp in U-mode: "
m_ok:           .asciz "handled by the guest (cause "
m_close:        .asciz ")\n"
m_wrong_cause:  .asciz "WRONG scause\n"
m_wrong_sepc:   .asciz "WRONG sepc\n"
m_wrong_stval:  .asciz "WRONG stval\n"
m_wrong_status: .asciz "WRONG sstatus (SPP, SPIE or SIE)\n"
m_no_trap:      .asciz "the instruction did not trap\n"
m_done:         .asciz "all exceptions handled by the guest\n"
