/*
A hostile RISC-V guest: it loads from BAD_GPA, an address outside its RAM and
its pflash window (the Makefile builds one copy per address). The hypervisor
must refuse with a VM-fault report naming that GPA, and stop. If the load
ever "succeeds", the guest says so and shuts down normally, which the test
then reports as a failure of isolation.
*/
#ifndef BAD_GPA
#define BAD_GPA 0x10000000      /* the host's UART */
#endif
    .section .text
    .global _start
_start:
    li      t0, BAD_GPA
    ld      t1, 0(t0)
    la      a0, escaped
    call    puts
    li      a7, 0x53525354      // SRST shutdown: should never get here
    li      a6, 0
    li      a0, 0
    li      a1, 0
    ecall
1:  j       1b

puts:                           // legacy SBI putchar, one byte at a time
    mv      t2, a0
2:  lbu     a0, 0(t2)
    beqz    a0, 3f
    li      a7, 1
    ecall
    addi    t2, t2, 1
    j       2b
3:  ret

    .section .rodata
escaped:
    .asciz  "ISOLATION BROKEN: the load outside guest RAM succeeded\n"
