/*
## RISC-V: from OpenSBI to C, and in and out of the guest

This file holds the only RISC-V code that cannot be written in C: the first
instructions the hypervisor runs, and the two halves of a *world switch*, the
code that moves the CPU from the hypervisor into the guest and back.

### The first instructions

QEMU starts OpenSBI in machine mode (M-mode). OpenSBI sets the machine up and
jumps to 0x8020_0000 in supervisor mode, which, because the CPU has the H
extension, is *HS-mode*: supervisor mode with the hypervisor's powers. On
arrival (RISC-V SBI specification, "Boot" conventions of OpenSBI's
`fw_dynamic`):

| register | value |
|---|---|
| `a0` | this hart's ID |
| `a1` | the physical address of the device tree |
| `satp` | 0: no address translation, so addresses are physical |
| `sstatus.SIE` | 0: interrupts off |

`_start` gives C what it needs, a stack and a zeroed `.bss`, then calls
`hv_main(hartid, dtb)` in `riscv64.c`. Before that it points `stvec`, the
trap vector, at `trap_entry` below, so that from the very first instruction
any trap lands somewhere that can report it.
*/
    .section .text.boot, "ax"
    .global _start
_start:
    la      sp, boot_stack_top
    la      t0, __bss_start
    la      t1, __bss_end
1:  bgeu    t0, t1, 2f
    sd      zero, 0(t0)
    addi    t0, t0, 8
    j       1b
2:
    // sscratch is 0 while the hypervisor runs; see trap_entry.
    csrw    sscratch, zero
    la      t0, trap_entry
    csrw    stvec, t0
    call    hv_main
3:  wfi                     // hv_main never returns; if it did, park here
    j       3b

/*
### Does this CPU have the H extension?

The hypervisor CSRs exist only with the H extension; reading `hstatus`
without it is an illegal instruction. `misa`, which lists the extensions, is
readable only in M-mode, so we simply try: `hv_probe_h` points `stvec` at the
instruction after the read, reads `hstatus`, and returns 1 if the read
worked, 0 if it trapped. QEMU's default `rv64` CPU has the H extension; a
CPU started with `-cpu rv64,h=false` does not.
*/
    .text
    .global hv_probe_h
    .align  2
hv_probe_h:
    la      t0, 1f
    csrrw   t1, stvec, t0
    li      a0, 0
    csrr    t2, hstatus     // traps to 1: without the H extension
    li      a0, 1
    .align  2
1:  csrw    stvec, t1
    ret

/*
### The world switch

Entering the guest and leaving it are two halves of one function call. The C
run loop calls `vcpu_enter(&vcpu)`; that "call" returns when the guest next
traps to the hypervisor, a *VM exit*. In between, the CPU runs the guest.

`struct vcpu` in `riscv64.c` starts with this layout, which the offsets
below must match (a `_Static_assert` there checks it):

+------------+-----------------------------------------------------------------+
| offset     | contents                                                        |
+============+=================================================================+
| 0 .. 255   | guest `x0` .. `x31`, 8 bytes each (`x0` is always zero)         |
+------------+-----------------------------------------------------------------+
| 256 .. 383 | host `ra, sp, gp, tp, s0` .. `s11`: what C expects kept across  |
|            | a call                                                          |
+------------+-----------------------------------------------------------------+

The instruction that enters the guest is `sret`. With `hstatus.SPV` = 1 it
returns to a *virtualized* mode (V=1), at the privilege in `sstatus.SPP`
(1: VS-mode, the guest's supervisor mode), at the address in `sepc`. The C
code has set all three before calling `vcpu_enter`. From then on every
guest instruction runs directly on the CPU; only what the hypervisor chose
to intercept comes back.

**Why `sscratch`.** When the guest traps, every general register holds a
guest value, and we need one free register to find the `struct vcpu`. RISC-V
gives supervisor software `sscratch` for exactly this: `csrrw a0, sscratch,
a0` swaps the guest's `a0` with the `vcpu` pointer in one instruction. While
the *hypervisor* runs, `sscratch` is 0, so the same swap tells the two cases
apart: a zero means the trap came from the hypervisor itself, a bug, which
we report instead of treating as a VM exit.
*/
#define GUEST(n) ((n) * 8)
#define HOST(n) (256 + (n) * 8)

    .global vcpu_enter
    .align  2
vcpu_enter:
    // a0 = struct vcpu *. Keep the host registers C cares about.
    sd      ra, HOST(0)(a0)
    sd      sp, HOST(1)(a0)
    sd      gp, HOST(2)(a0)
    sd      tp, HOST(3)(a0)
    sd      s0, HOST(4)(a0)
    sd      s1, HOST(5)(a0)
    sd      s2, HOST(6)(a0)
    sd      s3, HOST(7)(a0)
    sd      s4, HOST(8)(a0)
    sd      s5, HOST(9)(a0)
    sd      s6, HOST(10)(a0)
    sd      s7, HOST(11)(a0)
    sd      s8, HOST(12)(a0)
    sd      s9, HOST(13)(a0)
    sd      s10, HOST(14)(a0)
    sd      s11, HOST(15)(a0)

    // From now on a trap is a VM exit: sscratch holds the vcpu.
    csrw    sscratch, a0

    // Load the guest's registers; a0 last, since it is our pointer.
    ld      ra, GUEST(1)(a0)
    ld      sp, GUEST(2)(a0)
    ld      gp, GUEST(3)(a0)
    ld      tp, GUEST(4)(a0)
    ld      t0, GUEST(5)(a0)
    ld      t1, GUEST(6)(a0)
    ld      t2, GUEST(7)(a0)
    ld      s0, GUEST(8)(a0)
    ld      s1, GUEST(9)(a0)
    ld      a1, GUEST(11)(a0)
    ld      a2, GUEST(12)(a0)
    ld      a3, GUEST(13)(a0)
    ld      a4, GUEST(14)(a0)
    ld      a5, GUEST(15)(a0)
    ld      a6, GUEST(16)(a0)
    ld      a7, GUEST(17)(a0)
    ld      s2, GUEST(18)(a0)
    ld      s3, GUEST(19)(a0)
    ld      s4, GUEST(20)(a0)
    ld      s5, GUEST(21)(a0)
    ld      s6, GUEST(22)(a0)
    ld      s7, GUEST(23)(a0)
    ld      s8, GUEST(24)(a0)
    ld      s9, GUEST(25)(a0)
    ld      s10, GUEST(26)(a0)
    ld      s11, GUEST(27)(a0)
    ld      t3, GUEST(28)(a0)
    ld      t4, GUEST(29)(a0)
    ld      t5, GUEST(30)(a0)
    ld      t6, GUEST(31)(a0)
    ld      a0, GUEST(10)(a0)
    sret                    // into the guest: V=1, VS-mode, pc = sepc

/*
`trap_entry` is where *every* trap taken in HS-mode arrives: `stvec` points
here. A trap from the guest (a VM exit) saves all 31 guest registers into
the `vcpu`, restores the host's, and returns from `vcpu_enter` to the run
loop, which then reads `scause`, `stval`, `htval` and `htinst` to learn why.
*/
    .global trap_entry
    .align  2
trap_entry:
    csrrw   a0, sscratch, a0    // a0 = vcpu (0: trap in the hypervisor)
    beqz    a0, host_trap

    sd      ra, GUEST(1)(a0)
    sd      sp, GUEST(2)(a0)
    sd      gp, GUEST(3)(a0)
    sd      tp, GUEST(4)(a0)
    sd      t0, GUEST(5)(a0)
    sd      t1, GUEST(6)(a0)
    sd      t2, GUEST(7)(a0)
    sd      s0, GUEST(8)(a0)
    sd      s1, GUEST(9)(a0)
    sd      a1, GUEST(11)(a0)
    sd      a2, GUEST(12)(a0)
    sd      a3, GUEST(13)(a0)
    sd      a4, GUEST(14)(a0)
    sd      a5, GUEST(15)(a0)
    sd      a6, GUEST(16)(a0)
    sd      a7, GUEST(17)(a0)
    sd      s2, GUEST(18)(a0)
    sd      s3, GUEST(19)(a0)
    sd      s4, GUEST(20)(a0)
    sd      s5, GUEST(21)(a0)
    sd      s6, GUEST(22)(a0)
    sd      s7, GUEST(23)(a0)
    sd      s8, GUEST(24)(a0)
    sd      s9, GUEST(25)(a0)
    sd      s10, GUEST(26)(a0)
    sd      s11, GUEST(27)(a0)
    sd      t3, GUEST(28)(a0)
    sd      t4, GUEST(29)(a0)
    sd      t5, GUEST(30)(a0)
    sd      t6, GUEST(31)(a0)
    // The guest's a0 is in sscratch; save it and put 0 back there: we are
    // the hypervisor again.
    csrrw   t0, sscratch, zero
    sd      t0, GUEST(10)(a0)

    ld      ra, HOST(0)(a0)
    ld      sp, HOST(1)(a0)
    ld      gp, HOST(2)(a0)
    ld      tp, HOST(3)(a0)
    ld      s0, HOST(4)(a0)
    ld      s1, HOST(5)(a0)
    ld      s2, HOST(6)(a0)
    ld      s3, HOST(7)(a0)
    ld      s4, HOST(8)(a0)
    ld      s5, HOST(9)(a0)
    ld      s6, HOST(10)(a0)
    ld      s7, HOST(11)(a0)
    ld      s8, HOST(12)(a0)
    ld      s9, HOST(13)(a0)
    ld      s10, HOST(14)(a0)
    ld      s11, HOST(15)(a0)
    ret                         // "return" from vcpu_enter

/*
A trap with `sscratch` = 0 happened in the hypervisor itself: a bad pointer,
say. Nothing is to be resumed; put `a0` and `sscratch` back as they were and
hand the trap registers to `hv_host_trap` in C, which prints them and stops.
*/
host_trap:
    csrrw   a0, sscratch, a0
    csrr    a0, scause
    csrr    a1, sepc
    csrr    a2, stval
    mv      a3, sp
    j       hv_host_trap

/*
The boot stack: 16 KiB in `.bss`, which `_start` zeroes. The stack grows
down, so `sp` starts at its top.
*/
    .section .bss.stack, "aw", @nobits
    .align  12
boot_stack:
    .space  16384
boot_stack_top:
