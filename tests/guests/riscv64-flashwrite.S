/*
A hostile RISC-V guest that tries to change its flash. It reads the flash's
first word (so the hypervisor maps that page for it), then sends the CFI
command "block erase" (0x20) to the same address, as the first half of the
erase-and-program sequence that would rewrite the magic. The pflash is the
guest's to read only: the store must end in a VM fault naming GPA
0x2200_0000. If the store ever succeeds, the guest says so and shuts down
normally, which the test reports as a failure.
*/
    .section .text
    .global _start
_start:
    li      t0, 0x22000000
    lw      t1, 0(t0)               // a read: allowed, maps the page
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
