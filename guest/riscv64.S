/*
# The guest's RISC-V assembly: `guest/riscv64.S`

Three pieces of the guest cannot be written in C: the first instructions
(there is no stack yet), the trap vector (it must save every register before C
may use any) and the context switch (it swaps stacks under C's feet).

## Entry

OpenSBI starts the next stage the way every RISC-V kernel expects (the
Linux kernel's RISC-V boot requirements, `Documentation/arch/riscv/boot.rst`,
describe the same hand-off): in S-mode, with the MMU off (`satp` = 0) and
interrupts masked, at 0x8020_0000, with `a0` = this hart's id and `a1` = the
address of the device tree. This kernel knows its board and ignores both.
hvbook starts its guest in exactly the same state, only in VS-mode, which the
guest cannot tell from S-mode.

`_start` masks interrupts, points `sp` at the boot stack, zeroes `.bss` (a
firmware loader need not do it for us) and calls `kernel_main`, which never
returns.
*/
    .section .text.entry, "ax"
    .globl _start
_start:
    csrw    sie, zero               // no interrupt source enabled yet
    csrci   sstatus, 2              // sstatus.SIE (bit 1) = 0: masked
    la      sp, boot_stack_top

    la      t0, __bss_start
    la      t1, __bss_end
1:  bgeu    t0, t1, 2f
    sd      zero, 0(t0)
    addi    t0, t0, 8
    j       1b

2:  call    kernel_main
3:  wfi                             // not reached: kernel_main powers off
    j       3b

/*
## The trap vector

`stvec` points here (direct mode, so every trap comes to this one address,
which must be 4-byte aligned). A trap can arrive between any two instructions
of any thread, so the vector saves *all* integer registers, plus `sepc` (where
the thread was) and `sstatus` (whose `SPIE` and `SPP` bits say how to return),
into a *trap frame* on the current thread's own stack. Then it calls
`riscv_trap(frame)` in `riscv64.c`.

The kernel runs entirely in S-mode with one stack per thread, so `sp` is
already a good kernel stack when the trap arrives: there is no user stack to
switch away from (xv6 calls this path `kernelvec`).

Why save `sepc` and `sstatus` in memory, and not leave them in their CSRs? The
timer handler may switch to another thread, which may take its own trap and
overwrite both CSRs long before this thread gets to return. The trap frame
makes each thread's return state its own.

The frame, 272 bytes (a multiple of 16, as the RISC-V psABI wants `sp`):

+------------------+-----------------------------------------------------------+
| offset           | holds                                                     |
+==================+===========================================================+
| 8 * n, n = 1..31 | register `xn` (slot 2 holds `sp` as it was before the     |
|                  | trap)                                                     |
+------------------+-----------------------------------------------------------+
| 256              | `sepc`                                                    |
+------------------+-----------------------------------------------------------+
| 264              | `sstatus`                                                 |
+------------------+-----------------------------------------------------------+
*/
    .equ    FRAME_SIZE, 272
    .equ    FRAME_SEPC, 256
    .equ    FRAME_SSTATUS, 264

    .text
    .globl  trap_vector
    .balign 4
trap_vector:
    addi    sp, sp, -FRAME_SIZE
    sd      x1, 8(sp)
    sd      x3, 24(sp)
    sd      x4, 32(sp)
    sd      x5, 40(sp)
    sd      x6, 48(sp)
    sd      x7, 56(sp)
    sd      x8, 64(sp)
    sd      x9, 72(sp)
    sd      x10, 80(sp)
    sd      x11, 88(sp)
    sd      x12, 96(sp)
    sd      x13, 104(sp)
    sd      x14, 112(sp)
    sd      x15, 120(sp)
    sd      x16, 128(sp)
    sd      x17, 136(sp)
    sd      x18, 144(sp)
    sd      x19, 152(sp)
    sd      x20, 160(sp)
    sd      x21, 168(sp)
    sd      x22, 176(sp)
    sd      x23, 184(sp)
    sd      x24, 192(sp)
    sd      x25, 200(sp)
    sd      x26, 208(sp)
    sd      x27, 216(sp)
    sd      x28, 224(sp)
    sd      x29, 232(sp)
    sd      x30, 240(sp)
    sd      x31, 248(sp)
    addi    t0, sp, FRAME_SIZE      // t0 (x5) is saved: use it as scratch
    sd      t0, 16(sp)
    csrr    t0, sepc
    sd      t0, FRAME_SEPC(sp)
    csrr    t0, sstatus
    sd      t0, FRAME_SSTATUS(sp)

    mv      a0, sp
    call    riscv_trap

/*
Back from C, perhaps much later and after other threads have run, put this
thread's `sepc` and `sstatus` back, reload every register and `sret`. The saved
`sstatus` has `SIE` = 0 (the hart cleared it when it took the trap), so
interrupts stay masked until `sret` copies `SPIE` back into `SIE`.
*/
    ld      t0, FRAME_SEPC(sp)
    csrw    sepc, t0
    ld      t0, FRAME_SSTATUS(sp)
    csrw    sstatus, t0
    ld      x1, 8(sp)
    ld      x3, 24(sp)
    ld      x4, 32(sp)
    ld      x5, 40(sp)
    ld      x6, 48(sp)
    ld      x7, 56(sp)
    ld      x8, 64(sp)
    ld      x9, 72(sp)
    ld      x10, 80(sp)
    ld      x11, 88(sp)
    ld      x12, 96(sp)
    ld      x13, 104(sp)
    ld      x14, 112(sp)
    ld      x15, 120(sp)
    ld      x16, 128(sp)
    ld      x17, 136(sp)
    ld      x18, 144(sp)
    ld      x19, 152(sp)
    ld      x20, 160(sp)
    ld      x21, 168(sp)
    ld      x22, 176(sp)
    ld      x23, 184(sp)
    ld      x24, 192(sp)
    ld      x25, 200(sp)
    ld      x26, 208(sp)
    ld      x27, 216(sp)
    ld      x28, 224(sp)
    ld      x29, 232(sp)
    ld      x30, 240(sp)
    ld      x31, 248(sp)
    addi    sp, sp, FRAME_SIZE
    sret

/*
## The context switch

`ctx_switch(void **old_sp, void *new_sp)`, as `guest.h` describes it: push the
registers the RISC-V calling convention says a function must preserve (`ra`,
`s0`..`s11`; RISC-V psABI, "Integer Register Convention"), park `sp` in
`*old_sp`, take up `new_sp`, pop the other thread's registers and return on
its behalf. The 112-byte switch frame (13 registers, rounded up to keep `sp`
16-byte aligned):

| offset | 0 | 8 .. 96 | 104 |
|---|---|---|---|
| holds | `ra` | `s0` .. `s11` | (padding) |

`plat_thread_stack` in `riscv64.c` forges this frame for a new thread.
*/
    .equ    SWITCH_FRAME, 112

    .globl  ctx_switch
ctx_switch:
    addi    sp, sp, -SWITCH_FRAME
    sd      ra, 0(sp)
    sd      s0, 8(sp)
    sd      s1, 16(sp)
    sd      s2, 24(sp)
    sd      s3, 32(sp)
    sd      s4, 40(sp)
    sd      s5, 48(sp)
    sd      s6, 56(sp)
    sd      s7, 64(sp)
    sd      s8, 72(sp)
    sd      s9, 80(sp)
    sd      s10, 88(sp)
    sd      s11, 96(sp)
    sd      sp, 0(a0)

    mv      sp, a1
    ld      ra, 0(sp)
    ld      s0, 8(sp)
    ld      s1, 16(sp)
    ld      s2, 24(sp)
    ld      s3, 32(sp)
    ld      s4, 40(sp)
    ld      s5, 48(sp)
    ld      s6, 56(sp)
    ld      s7, 64(sp)
    ld      s8, 72(sp)
    ld      s9, 80(sp)
    ld      s10, 88(sp)
    ld      s11, 96(sp)
    addi    sp, sp, SWITCH_FRAME
    ret

/*
## The boot stack

16 KiB in `.bss`, which becomes the stack of the `main` thread. It grows down
from `boot_stack_top`.
*/
    .section .bss.stack, "aw", @nobits
    .balign 16
boot_stack:
    .space  16 * 1024
    .globl  boot_stack_top
boot_stack_top:
