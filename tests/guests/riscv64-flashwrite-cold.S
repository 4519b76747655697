/*
riscv64-flashwrite.S without the read first: the store is the guest's
first touch of its flash, 64 KiB into the window, on a page the hypervisor
has not mapped yet. It must not be mapped writable on the way: the store
must end in a VM fault naming GPA 0x2201_0000.
*/
    .section .text
    .global _start
_start:
    li      t0, 0x22010000
    li      t1, 0x20                // CFI "block erase"
    sw      t1, 0(t0)               // must fault
    la      t2, escaped
1:  lbu     a0, 0(t2)               // legacy SBI putchar, one byte at a time
    beqz    a0, 2f
    li      a7, 1
    ecall
    addi    t2, t2, 1
    j       1b
2:  li      a7, 0x53525354          // SRST shutdown: should never get here
    li      a6, 0
    li      a0, 0
    li      a1, 0
    ecall
3:  j       3b

    .section .rodata
escaped:
    .asciz  "FLASH WRITABLE: the store to the pflash succeeded\n"
