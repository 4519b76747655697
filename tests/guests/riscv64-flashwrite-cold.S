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
    la      a0, escaped
    call    puts
    li      a0, 0                   // SRST shutdown: should never get here
    j       shutdown

#include "riscv64-lib.inc"

    .section .rodata
escaped:
    .asciz  "FLASH WRITABLE: the store to the pflash succeeded\n"
