/*
A RISC-V guest that makes calls a careful hypervisor must refuse without
stopping: an unknown SBI extension (answer SBI_ERR_NOT_SUPPORTED, -2) and a
DBCN console write whose buffer lies outside guest RAM (answer
SBI_ERR_INVALID_PARAM, -3). It prints one line per answer and shuts down
normally, so the test can check both the answers and that the VM went on.
*/
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

    li      a7, 0x53525354      // SRST: shutdown, no reason
    li      a6, 0
    li      a0, 0
    li      a1, 0
    ecall
5:  j       5b

puts:
    mv      t2, a0
6:  lbu     a0, 0(t2)
    beqz    a0, 7f
    li      a7, 1
    ecall
    addi    t2, t2, 1
    j       6b
7:  ret

    .section .rodata
unknown_ok:  .asciz "unknown SBI extension answered -2 (not supported)\n"
unknown_bad: .asciz "unknown SBI extension got a wrong answer\n"
dbcn_ok:     .asciz "DBCN write outside guest RAM answered -3 (invalid param)\n"
dbcn_bad:    .asciz "DBCN write outside guest RAM got a wrong answer\n"
