/*
A guest that triple-faults: it loads an empty IDT and executes INT3. The
breakpoint cannot be delivered (no gate), which becomes a #GP, which cannot
be delivered either: a double fault, and with no gate for that, a shutdown.
On a bare PC that resets the machine; under hvbook the SHUTDOWN intercept
stops the VM with a report. A Multiboot header with the address fields (flag
bit 16) lets QEMU's loader start it bare too, where `-no-reboot` turns the
reset into QEMU exiting with status 0 and no power-off port written: run.sh
must call that a failure.
*/
    .code32
    .text
    .global _start
_start:
    jmp     start32
    .balign 4
mb_header:
    .long   0x1BADB002                      // Multiboot magic
    .long   1 << 16                         // the address fields below are valid
    .long   -(0x1BADB002 + (1 << 16))       // checksum: the three sum to 0
    .long   mb_header                       // header_addr
    .long   _start                          // load_addr: the file from _start on
    .long   0                               // load_end_addr: 0, the whole file
    .long   0                               // bss_end_addr: no BSS
    .long   _start                          // entry_addr
start32:
    mov     $0x90000, %esp
    lidt    empty_idt
    int3
    mov     $escaped, %esi
    call    puts
    xor     %eax, %eax          // power-off port, 0: success
    jmp     power_off

    .align 8
empty_idt:
    .word   0                   // limit 0: no gates at all
    .long   0
escaped:
    .asciz  "the triple fault did not stop the VM\n"

#include "x86_64-lib.inc"
