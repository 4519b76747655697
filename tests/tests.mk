# make test: everything in tests/, counted by tests/run-all.sh, which ends
# with the line "N passed, M failed".
.PHONY: test test-guests
test:
	@tests/run-all.sh $(ARCH)

# Hostile test guests: tests/guests/<arch>-<name>.S -> build/<arch>/tests/<name>.elf,
# linked where the real guest is linked. badread-ramend is badread aimed at
# the first byte past guest RAM. GUEST_LIB is the architecture's shared
# tests/guests/<arch>-lib.inc, which every guest includes: a change to it
# rebuilds them all.
GUEST_LOAD_riscv64 := 0x80200000
GUEST_LOAD_aarch64 := 0x40080000
GUEST_LOAD_x86_64 := 0x100000
RAM_END_riscv64 := 0x81000000
RAM_END_aarch64 := 0x41000000
RAM_END_x86_64 := 0x1000000

GUEST_LIB = $(wildcard tests/guests/$(1)-lib.inc)

define TEST_GUEST_RULES
$(B)/$(1)/tests/%.elf: tests/guests/$(1)-%.S $(call GUEST_LIB,$(1)) Makefile tests/tests.mk
	@mkdir -p $$(@D)
	$$(CROSS_$(1))gcc $$(CFLAGS_$(1)) -nostdlib -static -no-pie -Wl,--build-id=none \
	  -Wl,-Ttext=$$(GUEST_LOAD_$(1)) -Wl,-z,noexecstack -o $$@ $$<
$(B)/$(1)/tests/badread-ramend.elf: tests/guests/$(1)-badread.S $(call GUEST_LIB,$(1)) \
  Makefile tests/tests.mk
	@mkdir -p $$(@D)
	$$(CROSS_$(1))gcc $$(CFLAGS_$(1)) -DBAD_GPA=$$(RAM_END_$(1)) -nostdlib -static -no-pie \
	  -Wl,--build-id=none -Wl,-Ttext=$$(GUEST_LOAD_$(1)) -Wl,-z,noexecstack -o $$@ $$<
test-guests-$(1): $(patsubst tests/guests/$(1)-%.S,$(B)/$(1)/tests/%.elf,$(wildcard tests/guests/$(1)-*.S)) \
  $(if $(wildcard tests/guests/$(1)-badread.S),$(B)/$(1)/tests/badread-ramend.elf)
endef
$(foreach a,$(ALL_ARCHES),$(eval $(call TEST_GUEST_RULES,$(a))))
test-guests: $(foreach a,$(ARCH),test-guests-$(a))

# make bench: figures, not verdicts (see tests/bench.sh). Its guests,
# tests/bench/<arch>-<name>.S -> build/<arch>/bench/<name>.elf, are linked
# where the real guest is linked, like the hostile guests above, but with
# -N: one segment and no ELF header loaded below the entry point, where
# OpenSBI lives, so that QEMU's own loader can start them bare too.
define BENCH_GUEST_RULES
$(B)/$(1)/bench/%.elf: tests/bench/$(1)-%.S Makefile tests/tests.mk
	@mkdir -p $$(@D)
	$$(CROSS_$(1))gcc $$(CFLAGS_$(1)) -nostdlib -static -no-pie \
	  -Wl,--build-id=none -Wl,-Ttext=$$(GUEST_LOAD_$(1)) -Wl,-N \
	  -Wl,--no-warn-rwx-segments \
	  -Wl,-z,noexecstack -o $$@ $$<
bench-guests-$(1): $(patsubst tests/bench/$(1)-%.S,$(B)/$(1)/bench/%.elf,\
  $(wildcard tests/bench/$(1)-*.S))
endef
$(foreach a,$(ALL_ARCHES),$(eval $(call BENCH_GUEST_RULES,$(a))))
.PHONY: bench bench-guests $(foreach a,$(ALL_ARCHES),bench-guests-$(a))
bench-guests: $(foreach a,$(ARCH),bench-guests-$(a))
bench:
	@tests/bench.sh $(ARCH)

# make fuzz: libFuzzer on fat.c and the ELF loader (clang; scripts/deps.sh
# --fuzz installs it), each harness for FUZZ_SECONDS. What it finds stays in
# build/fuzz/; tests/fuzz/fuzz.sh merge folds it into the kept corpus that
# make test replays.
FUZZ_SECONDS ?= 60
.PHONY: fuzz
fuzz:
	@tests/fuzz/fuzz.sh run $(FUZZ_SECONDS)
