/*
make bench's x86 guest: what one round trip out of the guest and back
costs, in instructions. The same ELF runs under hvbook and bare, under
QEMU's -icount shift=0, where one instruction takes 1 ns of virtual time
and the TSC, which QEMU derives from that clock, counts once per
instruction of the whole machine. hvbook does not intercept RDTSC, so the
guest reads it directly. The guest stays in 32-bit protected mode, where
Multiboot leaves it: the exits cost the same in long mode.

Each measurement calls a small routine, the *body*, N times from a loop
and reads the TSC around the loop; then it does the same with an *empty*
body (a routine that only returns). The difference over N is what one
round trip costs, from the instruction that leaves the guest until the
guest has its next one. Each loop starts just after the TSC changes.
Every measurement is made three times; tests/bench.sh keeps the smallest
(hvbook's once-a-second check of its own timer may fall into one loop).

The guest prints one line per measurement, in hex:

  bench NAME N BODY EMPTY

- floor: `INT3`, through the guest's own IDT: no exit;
- hypercall: `VMMCALL` of an unknown function (bare: `#UD`, which the
  guest's handler skips);
- ioread: `IN` from the serial port's line status register;
- iowrite: `OUT` to the serial port's scratch register;
- console: `OUT` of a NUL to the serial port's data register;
- apicread: a read of the APIC's task priority register, a nested page
  fault, decoded and emulated;
- apicwrite: a write of the same register;
- flashread: a read of the flash, a nested page fault, decoded and
  emulated;
- apicarm: a write of the APIC timer's initial count, due in seconds:
  the arming alone;
- apiceoi: a write of the APIC's EOI register, with nothing in service;
- timer: the APIC timer, due at once: the write that arms it, the INTR
  exit, the injection, the guest's handler and its EOI. Less the two
  rows before it, what is left is the INTR exit and the injection.
*/
#define N 10000
#define APIC 0xFEE00000
#define FLASH 0xFFC00000
#define COM1 0x3F8
#define TIMER_VECTOR 0x40

    .code32
    .text
    .global _start
_start:
    jmp     start32
    .balign 4
mb_header:
    .long   0x1BADB002                      // Multiboot magic
    .long   1 << 16                         // the address fields are valid
    .long   -(0x1BADB002 + (1 << 16))       // checksum: the three sum to 0
    .long   mb_header                       // header_addr
    .long   _start                          // load_addr: from _start on
    .long   0                               // load_end_addr: 0, the whole file
    .long   0                               // bss_end_addr: no BSS
    .long   _start                          // entry_addr
start32:
    mov     $0x90000, %esp
    lgdt    gdt_ptr
    ljmp    $0x08, $1f
1:  mov     $0x10, %ax
    mov     %ax, %ds
    mov     %ax, %es
    mov     %ax, %ss

    // Three interrupt gates: #BP, #UD and the timer.
    mov     $3, %eax
    mov     $on_int3, %edx
    call    set_gate
    mov     $6, %eax
    mov     $on_ud, %edx
    call    set_gate
    mov     $TIMER_VECTOR, %eax
    mov     $on_timer, %edx
    call    set_gate
    lidt    idt_ptr

    // The APIC timer: enabled, one-shot, divide by 1, our vector.
    movl    $0x1FF, APIC + 0xF0             // SVR: enable, spurious 0xFF
    movl    $0xB, APIC + 0x3E0              // divide by 1
    movl    $TIMER_VECTOR, APIC + 0x320     // LVT timer: one-shot, unmasked

    movl    $3, rounds
round:
    mov     $n_floor, %esi
    mov     $floor, %edi
    call    bench
    mov     $n_hypercall, %esi
    mov     $hypercall, %edi
    call    bench
    mov     $n_ioread, %esi
    mov     $ioread, %edi
    call    bench
    mov     $n_iowrite, %esi
    mov     $iowrite, %edi
    call    bench
    mov     $n_console, %esi
    mov     $console, %edi
    call    bench
    mov     $n_apicread, %esi
    mov     $apicread, %edi
    call    bench
    mov     $n_apicwrite, %esi
    mov     $apicwrite, %edi
    call    bench
    mov     $n_flashread, %esi
    mov     $flashread, %edi
    call    bench
    mov     $n_apicarm, %esi
    mov     $apicarm, %edi
    call    bench
    movl    $0, APIC + 0x380                // the timer stopped again
    mov     $n_apiceoi, %esi
    mov     $apiceoi, %edi
    call    bench
    sti                                     // interrupts on, for the timer only
    mov     $n_timer, %esi
    mov     $timer, %edi
    call    bench
    cli
    decl    rounds
    jnz     round

    xor     %eax, %eax                      // the power-off port: success
    out     %eax, $0xf4
2:  hlt
    jmp     2b

/* The bodies: called, and return. */
floor:
    int3
    ret
hypercall:
    xor     %eax, %eax                      // function 0: not supported
    vmmcall
    ret
ioread:
    mov     $COM1 + 5, %dx                  // LSR
    in      %dx, %al
    ret
iowrite:
    mov     $COM1 + 7, %dx                  // SCR
    xor     %al, %al
    out     %al, %dx
    ret
console:
    mov     $COM1, %dx                      // THR: a NUL
    xor     %al, %al
    out     %al, %dx
    ret
apicread:
    mov     APIC + 0x80, %eax               // TPR
    ret
apicwrite:
    movl    $0, APIC + 0x80
    ret
flashread:
    mov     FLASH, %eax
    ret
apicarm:
    movl    $0xFFFFFFFF, APIC + 0x380       // initial count: seconds away
    ret
apiceoi:
    movl    $0, APIC + 0xB0                 // EOI
    ret
timer:
    movl    $0, fired
    movl    $1, APIC + 0x380                // initial count 1: due at once
1:  cmpl    $0, fired
    je      1b
    ret
empty:
    ret

/* The guest's own handlers. */
on_int3:
    iret
on_ud:
    addl    $3, (%esp)                      // past the 3-byte VMMCALL
    iret
on_timer:
    movl    $1, fired
    movl    $0, APIC + 0xB0                 // EOI
    iret

/* set_gate(eax = vector, edx = handler): a 32-bit interrupt gate. */
set_gate:
    lea     idt(, %eax, 8), %eax
    mov     %dx, (%eax)
    movw    $0x08, 2(%eax)
    movw    $0x8E00, 4(%eax)                // present, DPL 0, interrupt gate
    shr     $16, %edx
    mov     %dx, 6(%eax)
    ret

/* bench(esi = name, edi = body): measure, print a line. */
bench:
    mov     %edi, %ebx
    call    measure
    mov     %eax, body_ticks
    mov     $empty, %ebx
    call    measure
    mov     %eax, empty_ticks
    push    %esi
    mov     $s_bench, %esi
    call    puts
    pop     %esi
    call    puts
    mov     $N, %eax
    call    puthex
    mov     body_ticks, %eax
    call    puthex
    mov     empty_ticks, %eax
    call    puthex
    mov     $'\n', %al
    call    putc
    ret

measure:                        // ebx = body; returns eax = TSC ticks
    rdtsc
    mov     %eax, %ebp
1:  rdtsc
    cmp     %eax, %ebp
    je      1b                              // just after a tick
    mov     %eax, %ebp
    mov     $N, %ecx
2:  call    *%ebx
    dec     %ecx
    jnz     2b
    rdtsc
    sub     %ebp, %eax
    ret

putc:                                       // al to the serial port
    mov     $COM1, %dx
    out     %al, %dx
    ret
puts:                                       // esi: a NUL-terminated string
    lodsb
    test    %al, %al
    jz      1f
    call    putc
    jmp     puts
1:  ret
puthex:                                     // " 0x" and eax in hex
    mov     %eax, %edi
    mov     $' ', %al
    call    putc
    mov     $'0', %al
    call    putc
    mov     $'x', %al
    call    putc
    mov     $8, %ecx
1:  rol     $4, %edi
    mov     %edi, %eax
    and     $15, %eax
    add     $'0', %al
    cmp     $'9', %al
    jbe     2f
    add     $'a' - '0' - 10, %al
2:  call    putc
    loop    1b
    ret

    .balign 8
gdt:
    .quad   0
    .quad   0x00CF9A000000FFFF                // 0x08: flat 32-bit code
    .quad   0x00CF92000000FFFF                // 0x10: flat data
gdt_ptr:
    .word   3 * 8 - 1
    .long   gdt
    .balign 8
idt_ptr:
    .word   256 * 8 - 1
    .long   idt
rounds:      .long 0
fired:       .long 0
body_ticks:  .long 0
empty_ticks: .long 0
s_bench:     .asciz "bench "
n_floor:     .asciz "floor"
n_hypercall: .asciz "hypercall"
n_ioread:    .asciz "ioread"
n_iowrite:   .asciz "iowrite"
n_console:   .asciz "console"
n_apicread:  .asciz "apicread"
n_apicwrite: .asciz "apicwrite"
n_flashread: .asciz "flashread"
n_apicarm:   .asciz "apicarm"
n_apiceoi:   .asciz "apiceoi"
n_timer:     .asciz "timer"
    .balign 8
idt:
    .fill   256 * 8, 1, 0
