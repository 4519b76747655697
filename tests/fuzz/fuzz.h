/* Shared by the fuzz harnesses and the replay program.

   Every harness is a function
       int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
   which libFuzzer calls with each input it makes up (make fuzz, with clang),
   and which replay.c calls with each file of the kept corpus (make test,
   with gcc). Both builds run under AddressSanitizer and UBSan, so an input
   that makes fat.c or elf_load read or write out of bounds, or do anything
   undefined, stops the program with a report. */
#ifndef HVBOOK_FUZZ_H
#define HVBOOK_FUZZ_H

#include "common.h"

int LLVMFuzzerTestOneInput(const u8 *data, size_t size);

/* The guest-RAM window elf_load copies into: small, so that a segment's
   zero fill costs little, around the address the machine's guests are
   linked at. 256 KiB holds every test program and the real gkernel. */
#define FUZZ_RAM_SIZE (256 * 1024)
u64 fuzz_ram_gpa(u16 machine);
extern u8 fuzz_ram[FUZZ_RAM_SIZE];

#endif
