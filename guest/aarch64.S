/*
# The guest's Arm assembly: `guest/aarch64.S`

The same three pieces as on RISC-V, which cannot be C: the first instructions,
the exception vectors, and the context switch.

## Entry

QEMU starts an ELF kernel at its entry point, at the highest exception level it
offers: EL1 on a `virt` machine without `virtualization=on` (and without
EL3 firmware), with the MMU and caches off and `x0` = the device tree. hvbook
starts its guest the same way, at EL1 with its MMU off. This kernel knows its
board and ignores `x0`.

`_start` masks every exception it can (`DAIF`: Debug, SError, IRQ, FIQ),
chooses `SP_EL1` as the stack pointer (`SPSel` = 1, "EL1h": the exception
handlers and the threads share one stack pointer, the thread's own stack),
takes up the boot stack, zeroes `.bss` and calls `kernel_main`.

With the MMU off every data access is treated as Device memory (Arm ARM
DDI 0487, "The effects of disabling an address translation stage"), so an
unaligned access
faults and exclusive loads and stores may not work; the Makefile's
`-mstrict-align` keeps GCC aligned, and this kernel uses no atomics: it masks
interrupts instead.
*/
    .section .text.entry, "ax"
    .globl _start
_start:
    msr     daifset, #0xf
    msr     spsel, #1
    adrp    x0, boot_stack_top
    add     x0, x0, :lo12:boot_stack_top
    mov     sp, x0

    adrp    x0, __bss_start
    add     x0, x0, :lo12:__bss_start
    adrp    x1, __bss_end
    add     x1, x1, :lo12:__bss_end
1:  cmp     x0, x1
    b.hs    2f
    str     xzr, [x0], #8
    b       1b

2:  bl      kernel_main
3:  wfi                             // not reached: kernel_main powers off
    b       3b

/*
## The exception vectors

`VBAR_EL1` points at a table of 16 entries, 0x80 bytes (32 instructions)
each, 2 KiB aligned (Arm ARM DDI 0487, chapter D1, "Exception vectors"). The
entry used depends on where the exception came from and on its type:

| offset | taken from | sync | IRQ | FIQ | SError |
|---|---|---|---|---|---|
| 0x000 | EL1 using SP_EL0 ("EL1t") | 0 | 1 | 2 | 3 |
| 0x200 | EL1 using SP_EL1 ("EL1h") | 4 | 5 | 6 | 7 |
| 0x400 | EL0, AArch64 | 8 | 9 | 10 | 11 |
| 0x600 | EL0, AArch32 | 12 | 13 | 14 | 15 |

The numbers in the table are the *kinds* this guest passes to C. It runs
everything at EL1h, so the only entry it expects is kind 5, an IRQ (the timer).
Every entry does the same: make room for a trap frame on the current stack,
save `x0`/`x1`, put its kind in `x0` and branch to the common code.
*/
    .equ    FRAME_SIZE, 272
    .equ    FRAME_ELR, 248
    .equ    FRAME_SPSR, 256

    .macro  VECTOR kind
    .balign 0x80
    sub     sp, sp, #FRAME_SIZE
    stp     x0, x1, [sp, #0]
    mov     x0, #\kind
    b       trap_entry
    .endm

    .section .text.vectors, "ax"
    .balign 2048
    .globl  vectors
vectors:
    VECTOR  0
    VECTOR  1
    VECTOR  2
    VECTOR  3
    VECTOR  4
    VECTOR  5
    VECTOR  6
    VECTOR  7
    VECTOR  8
    VECTOR  9
    VECTOR  10
    VECTOR  11
    VECTOR  12
    VECTOR  13
    VECTOR  14
    VECTOR  15

/*
The common path saves the remaining registers and the two that describe where
to return: `ELR_EL1` (the interrupted instruction) and `SPSR_EL1` (the
interrupted `PSTATE`, including its interrupt mask). As on RISC-V they go into
the frame and not just stay in their registers, because the timer handler may
switch to a thread that takes its own exception and overwrites both.

The 272-byte frame, on the interrupted thread's stack:

| offset | 0 .. 240 | 248 | 256 | 264 |
|---|---|---|---|---|
| holds | `x0` .. `x30` | `ELR_EL1` | `SPSR_EL1` | (padding) |

Then `arm_trap(kind, frame)` in `aarch64.c`; on return, reload and `eret`.
The exception masked IRQs (`PSTATE.I` = 1) on entry, and `eret` restores the
thread's own `PSTATE` from `SPSR_EL1`, unmasking them again.
*/
    .text
trap_entry:
    stp     x2, x3, [sp, #16]
    stp     x4, x5, [sp, #32]
    stp     x6, x7, [sp, #48]
    stp     x8, x9, [sp, #64]
    stp     x10, x11, [sp, #80]
    stp     x12, x13, [sp, #96]
    stp     x14, x15, [sp, #112]
    stp     x16, x17, [sp, #128]
    stp     x18, x19, [sp, #144]
    stp     x20, x21, [sp, #160]
    stp     x22, x23, [sp, #176]
    stp     x24, x25, [sp, #192]
    stp     x26, x27, [sp, #208]
    stp     x28, x29, [sp, #224]
    mrs     x1, elr_el1
    mrs     x2, spsr_el1
    stp     x30, x1, [sp, #240]
    str     x2, [sp, #FRAME_SPSR]

    mov     x1, sp
    bl      arm_trap

    ldr     x2, [sp, #FRAME_SPSR]
    ldp     x30, x1, [sp, #240]
    msr     elr_el1, x1
    msr     spsr_el1, x2
    ldp     x2, x3, [sp, #16]
    ldp     x4, x5, [sp, #32]
    ldp     x6, x7, [sp, #48]
    ldp     x8, x9, [sp, #64]
    ldp     x10, x11, [sp, #80]
    ldp     x12, x13, [sp, #96]
    ldp     x14, x15, [sp, #112]
    ldp     x16, x17, [sp, #128]
    ldp     x18, x19, [sp, #144]
    ldp     x20, x21, [sp, #160]
    ldp     x22, x23, [sp, #176]
    ldp     x24, x25, [sp, #192]
    ldp     x26, x27, [sp, #208]
    ldp     x28, x29, [sp, #224]
    ldp     x0, x1, [sp, #0]
    add     sp, sp, #FRAME_SIZE
    eret

/*
## The context switch

`ctx_switch(void **old_sp, void *new_sp)`: push the registers the Arm
procedure call standard says a function must preserve (`x19`..`x28`, the frame
pointer `x29` and the link register `x30`; AAPCS64, 6.1.1 "General-purpose
registers"), park `sp` in `*old_sp`, take up `new_sp`, pop and return. `ret`
jumps to `x30`, which is wherever the other thread called `ctx_switch` from.
The 96-byte switch frame:

| offset | 0 .. 72 | 80 | 88 |
|---|---|---|---|
| holds | `x19` .. `x28` | `x29` | `x30` |

`plat_thread_stack` in `aarch64.c` forges this frame for a new thread.
*/
    .equ    SWITCH_FRAME, 96

    .globl  ctx_switch
ctx_switch:
    sub     sp, sp, #SWITCH_FRAME
    stp     x19, x20, [sp, #0]
    stp     x21, x22, [sp, #16]
    stp     x23, x24, [sp, #32]
    stp     x25, x26, [sp, #48]
    stp     x27, x28, [sp, #64]
    stp     x29, x30, [sp, #80]
    mov     x9, sp
    str     x9, [x0]

    mov     sp, x1
    ldp     x19, x20, [sp, #0]
    ldp     x21, x22, [sp, #16]
    ldp     x23, x24, [sp, #32]
    ldp     x25, x26, [sp, #48]
    ldp     x27, x28, [sp, #64]
    ldp     x29, x30, [sp, #80]
    add     sp, sp, #SWITCH_FRAME
    ret

/*
## The boot stack

16 KiB in `.bss`, the stack of the `main` thread, 16-byte aligned as AArch64
requires of `sp`.
*/
    .section .bss.stack, "aw", %nobits
    .balign 16
boot_stack:
    .space  16 * 1024
    .globl  boot_stack_top
boot_stack_top:
