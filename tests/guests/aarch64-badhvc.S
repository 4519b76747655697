/*
An AArch64 guest that makes calls a careful hypervisor must refuse without
stopping: an HVC and an SMC with a function id nobody defines (0xC200_0123,
an SMC64 fast call in the SiP range). Each must come back with SMCCC
NOT_SUPPORTED, -1, in x0, and the guest must go on: for the SMC that also
proves the hypervisor moved the PC past it (a trapped SMC returns to the SMC
itself). The guest prints one line per answer through its PL011 and powers
off with PSCI SYSTEM_OFF, so the test can check both the answers and that
the VM went on.
*/
    .section .text
    .global _start
_start:
    ldr     x0, =0xC2000123     // a function id nobody defines
    hvc     #0
    adr     x1, hvc_ok
    cmn     x0, #1              // x0 == -1?
    b.eq    1f
    adr     x1, hvc_bad
1:  bl      puts

    ldr     x0, =0xC2000123
    smc     #0
    adr     x1, smc_ok
    cmn     x0, #1
    b.eq    2f
    adr     x1, smc_bad
2:  bl      puts

    ldr     x0, =0x84000008     // PSCI SYSTEM_OFF
    hvc     #0
3:  b       3b

puts:                           // x1: a NUL-terminated string, to the PL011
    ldr     x2, =0x09000000     // UARTDR
4:  ldrb    w3, [x1], #1
    cbz     w3, 5f
    strb    w3, [x2]
    b       4b
5:  ret

    .section .rodata
hvc_ok:  .asciz "unknown hvc answered -1\n"
hvc_bad: .asciz "unknown hvc got a wrong answer\n"
smc_ok:  .asciz "unknown smc answered -1\n"
smc_bad: .asciz "unknown smc got a wrong answer\n"
