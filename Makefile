# hvbook: build every hypervisor, its guest, the tests and the book.
#
#   make                 every architecture whose <arch>.c exists
#   make ARCH=riscv64    one architecture
#   make test            host unit tests and end-to-end QEMU runs
#   make book            build/book/index.html and build/book/hvbook.epub
#   make bench           what one VM exit costs (instructions, under -icount)
#                        and whole runs, hvbook against bare; prints figures
#   make fuzz            libFuzzer on the FAT reader and the ELF loader
#   make lab LAB=name    a student tree for one lab; make grade scores it
#   make clean
#
# Cross compilers are found by themselves; override with CROSS=prefix-
# (for one architecture) or CROSS_riscv64=..., CROSS_aarch64=....

ALL_ARCHES := $(patsubst %.c,%,$(wildcard riscv64.c aarch64.c x86_64.c))
ARCH ?= $(ALL_ARCHES)
B := build

# First prefix in the list whose gcc is on PATH.
find_cross = $(firstword $(foreach p,$(1),$(if $(shell command -v $(p)gcc 2>/dev/null),$(p))))
CROSS_riscv64 ?= $(or $(CROSS),$(call find_cross,riscv64-linux-gnu- riscv64-unknown-elf- riscv64-elf-))
CROSS_aarch64 ?= $(or $(CROSS),$(call find_cross,aarch64-linux-gnu- aarch64-none-elf- aarch64-elf-))
CROSS_x86_64  ?= $(or $(CROSS),$(call find_cross,x86_64-linux-gnu- x86_64-elf-),)

# Freestanding: no C library, no start files, no red zone or FP registers the
# hypervisor would have to save; every warning on and none tolerated.
CFLAGS_common := -std=gnu11 -O2 -g -Wall -Wextra -Werror -ffreestanding -fno-builtin \
  -fno-stack-protector -fno-pic -fno-pie -nostdlib \
  -fno-asynchronous-unwind-tables -fno-omit-frame-pointer -fno-tree-loop-distribute-patterns -I.
CFLAGS_riscv64 := -march=rv64imac_zicsr_zifencei -mabi=lp64 -mcmodel=medany -mno-relax -mstrict-align
CFLAGS_aarch64 := -march=armv8-a+nofp+nosimd -mgeneral-regs-only -mstrict-align
# x86-64: linked at 1 MiB, so the small code model (every address below
# 2 GiB) fits; -mcmodel=kernel is for code in the top 2 GiB. No SSE: the
# hypervisor never saves the guest's FP state. QEMU's Multiboot loader takes
# no ELF64, so the build also writes an ELF32 copy, hvbook.elf32.
CFLAGS_x86_64  := -m64 -mno-red-zone -mgeneral-regs-only -mcmodel=small -Wl,-z,max-page-size=0x1000
LDFLAGS_common := -nostdlib -static -no-pie -Wl,--build-id=none -Wl,-z,noexecstack -Wl,--no-warn-rwx-segments

HV_SRCS = $(1).c common.c virtio.c fat.c start/$(1).S
GUEST_SRCS = guest/kernel.c guest/$(1).c guest/$(1).S

.PHONY: all clean test book $(ALL_ARCHES)
all: $(ARCH)

define ARCH_RULES
$(1): $(B)/$(1)/hvbook.elf $(B)/$(1)/gkernel

$(B)/$(1)/hvbook.elf: $(call HV_SRCS,$(1)) common.h start/$(1).ld Makefile
	@mkdir -p $$(@D)
	$$(if $$(CROSS_$(1)),,$$(error no cross compiler for $(1): install gcc-$(subst _,-,$(1))-linux-gnu or set CROSS_$(1)=))
	$$(CROSS_$(1))gcc $$(CFLAGS_common) \
	  $$(CFLAGS_$(1)) $$(LDFLAGS_common) -T start/$(1).ld -o $$@ $$(call HV_SRCS,$(1)) -lgcc
	$$(if $$(filter x86_64,$(1)),$$(CROSS_$(1))objcopy -O elf32-i386 $$@ $(B)/$(1)/hvbook.elf32)

$(B)/$(1)/gkernel: $(call GUEST_SRCS,$(1)) guest/guest.h guest/$(1).ld Makefile
	@mkdir -p $$(@D)
	$$(CROSS_$(1))gcc $$(CFLAGS_common) \
	  $$(CFLAGS_$(1)) $$(LDFLAGS_common) -T guest/$(1).ld -o $$@ $$(call GUEST_SRCS,$(1)) -lgcc
endef
$(foreach a,$(ALL_ARCHES),$(eval $(call ARCH_RULES,$(a))))

# Tests and the book have their own fragments.
include tests/tests.mk
-include book/book.mk

clean:
	rm -rf $(B)

# Labs (labs/*.lab, scripts/lab.sh, book/labs.md): make lab LAB=gstage
# writes a student tree to build/labs/gstage (LABDIR=dir: elsewhere); make
# grade scores the lab of a student tree, or LAB=name in this one.
.PHONY: lab grade
lab:
	@scripts/lab.sh make $(LAB) $(if $(LABDIR),--dir $(LABDIR))
grade:
	@scripts/lab.sh grade $(LAB)
