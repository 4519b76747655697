/*
A hostile RISC-V guest that jumps into its flash. The pflash window holds
data, mapped for reading only, so the fetch must end in a VM fault whose
report names the GPA and says why: the window is not executable.
*/
    .section .text
    .global _start
_start:
    li      t0, 0x22000000
    jr      t0
