/*
make bench's RISC-V guest: what one round trip out of the guest and back
costs, in instructions. The same ELF runs under hvbook and bare (on
OpenSBI alone), under QEMU's -icount shift=0, where the `cycle` CSR counts
the instructions of the whole machine: guest, hypervisor and firmware.

Each measurement calls a small routine, the *body*, N times from a loop
and reads `cycle` around the loop; then it does the same with an *empty*
body of the same shape (a routine that only returns). The difference over
N is what one round trip costs, counting the instruction that leaves the
guest and everything until the guest has its next instruction. Each loop
starts just after `time` ticks (once per 100 instructions), so that it
meets the same phase of the timer on every run. Every measurement is made
three times; tests/bench.sh keeps the smallest.

The guest prints one line per measurement, in hex:

  bench NAME N BODY EMPTY

- floor: `ebreak`, which the guest's own trap handler takes: no exit;
- hypercall: SBI BASE get_spec_version, a null hypercall;
- settimer: SBI set_timer(never), the same call with no interrupt;
- timer: SBI set_timer(0), and the timer interrupt it brings, to the
  guest's handler;
- console: SBI legacy putchar of a NUL;
- s2map: a load from a pflash page never read before, a G-stage fault
  that maps it (N = 2048, each round its own pages).
*/
#define N 10000
#define PAGES 2048
#define PFLASH 0x22000000
#define SIE_STIE 0x20
#define SSTATUS_SIE 0x2

    .option norvc               // every ebreak 4 bytes long: sepc += 4
    .section .text
    .global _start
_start:
    li      sp, 0x80400000
    la      t0, on_ebreak
    csrw    stvec, t0
    csrw    sie, zero
    csrsi   sstatus, SSTATUS_SIE
    li      s3, PFLASH

    li      s2, 3               // three rounds
round:
    la      a0, n_floor
    la      a1, floor
    li      a2, N
    call    bench
    la      a0, n_hypercall
    la      a1, hypercall
    li      a2, N
    call    bench
    la      a0, n_settimer
    la      a1, settimer
    li      a2, N
    call    bench
    la      t0, on_timer
    csrw    stvec, t0
    la      a0, n_timer
    la      a1, timer
    li      a2, N
    call    bench
    li      a7, 0               // legacy set_timer(never): no more interrupts
    li      a0, -1
    ecall
    la      t0, on_ebreak
    csrw    stvec, t0
    la      a0, n_console
    la      a1, console
    li      a2, N
    call    bench
    // The stage-2 mapping: the body is the load itself, and the empty loop
    // the same loads again, now that the pages are mapped.
    la      a0, n_s2map
    la      a1, flash_read
    li      a2, PAGES
    mv      a3, a1
    mv      s4, s3
    call    bench_with
    li      t0, PAGES * 4096
    add     s3, s4, t0          // the next round's pages
    addi    s2, s2, -1
    bnez    s2, round

    li      a7, 0x53525354      // SRST system_reset(shutdown, no reason)
    li      a6, 0
    li      a0, 0
    li      a1, 0
    ecall
1:  j       1b

/* The bodies: entered with jalr t2, left with jr t2. */
floor:
    ebreak
    jr      t2
hypercall:
    li      a7, 0x10            // BASE
    li      a6, 0               // get_spec_version
    ecall
    jr      t2
settimer:
    li      a7, 0               // legacy set_timer(never)
    li      a0, -1
    ecall
    jr      t2
timer:
    li      t0, SIE_STIE        // the handler clears it again
    csrs    sie, t0
    li      a7, 0               // legacy set_timer(0): due at once
    li      a0, 0
    ecall
    jr      t2
console:
    li      a7, 1               // legacy putchar(NUL)
    li      a0, 0
    ecall
    jr      t2
flash_read:
    lw      zero, 0(s3)
    li      t0, 4096
    add     s3, s3, t0
    jr      t2
empty:
    jr      t2

/* The guest's own trap handlers. */
    .balign 4
on_ebreak:
    csrr    t0, sepc
    addi    t0, t0, 4
    csrw    sepc, t0
    sret
    .balign 4
on_timer:
    li      t0, SIE_STIE        // the interrupt stays pending: mask it
    csrc    sie, t0
    sret

/*
bench(a0 = name, a1 = body, a2 = n): measure, print a line.
bench_with also takes a3 = the empty body, and resets s3 to s4 before
each loop.
*/
bench:
    la      a3, empty
    mv      s4, s3
bench_with:
    mv      s5, ra
    mv      s6, a0
    mv      s7, a2
    mv      s8, a3
    mv      s3, s4
    mv      a0, a1
    call    measure
    mv      s9, a0
    mv      s3, s4
    mv      a0, s8
    call    measure
    mv      s10, a0

    la      a0, s_bench
    call    puts
    mv      a0, s6
    call    puts
    mv      a0, s7
    call    puthex
    mv      a0, s9
    call    puthex
    mv      a0, s10
    call    puthex
    li      a0, '\n'
    call    putc
    mv      ra, s5
    ret

measure:                        // a0 = body, s7 = n; returns cycles in a0
    mv      t3, a0
    mv      t4, s7
    rdtime  t0
1:  rdtime  t1
    beq     t0, t1, 1b          // just after a tick of time
    rdcycle t5
2:  jalr    t2, 0(t3)
    addi    t4, t4, -1
    bnez    t4, 2b
    rdcycle t6
    sub     a0, t6, t5
    ret

putc:                           // legacy SBI putchar
    li      a7, 1
    ecall
    ret
puts:                           // a0: NUL-terminated string
    mv      t5, ra
    mv      t6, a0
1:  lbu     a0, 0(t6)
    beqz    a0, 2f
    call    putc
    addi    t6, t6, 1
    j       1b
2:  mv      ra, t5
    ret
puthex:                         // " 0x" and a0 in hex
    mv      t5, ra
    mv      t6, a0
    li      a0, ' '
    call    putc
    li      a0, '0'
    call    putc
    li      a0, 'x'
    call    putc
    li      t4, 60
1:  srl     a0, t6, t4
    andi    a0, a0, 15
    addi    a0, a0, '0'
    li      t3, '9'
    ble     a0, t3, 2f
    addi    a0, a0, 'a' - '0' - 10
2:  call    putc
    addi    t4, t4, -4
    bgez    t4, 1b
    mv      ra, t5
    ret

    .section .rodata
s_bench:     .asciz "bench "
n_floor:     .asciz "floor"
n_hypercall: .asciz "hypercall"
n_settimer:  .asciz "settimer"
n_timer:     .asciz "timer"
n_console:   .asciz "console"
n_s2map:     .asciz "s2map"
