#!/usr/bin/env bash
# Coverage-guided fuzzing of fat.c and the ELF loader with libFuzzer.
#
#   tests/fuzz/fuzz.sh run [SECONDS]   build the fuzzers with clang, run each
#                                      for SECONDS (default 60); make fuzz
#   tests/fuzz/fuzz.sh merge           minimise everything found so far into
#                                      the kept corpus, tests/fuzz/corpus/
#   tests/fuzz/fuzz.sh seeds           only make the seed inputs
#
# Two harnesses (see their comments): fuzz_fat (a sparse disk image: mount,
# look up, read /sbin/gkernel, load it as ELF) and fuzz_elf (an ELF file).
# Seeds are made fresh by the real tools: mtools images of FAT12, FAT16 and
# FAT32 with several sector and cluster sizes, and ELF files from the cross
# compilers. Work goes to build/fuzz/; a crash leaves its input there as
# crash-<hash> and the script exits 1. The kept corpus is replayed by
# make test (tests/unit/run.sh) under ASan and UBSan, compiled with gcc.
set -u
cd "$(dirname "$0")/../.."
B=build/fuzz
K=tests/fuzz/corpus
mkdir -p "$B"
export MTOOLSRC=/dev/null MTOOLS_SKIP_CHECK=1

CLANG=${CLANG:-clang}
FLAGS="-std=gnu11 -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all \
-Wall -Wextra -Werror -fno-builtin -I. -Itests/fuzz"
COMMON="tests/fuzz/env.c tests/unit/virtio_stub.c common.c fat.c"
# The longest input each fuzzer makes: 128 sectors of sparse disk, and an
# ELF file the size of the real gkernel.
MAXLEN_fat=66000
MAXLEN_elf=65536

die() { echo "fuzz.sh: $*" >&2; exit 1; }

# --- Seeds ---------------------------------------------------------------
elf_seeds() {
    local o=$B/seeds/elf prog=tests/unit/elf_prog.c
    local f="-nostdlib -static -no-pie -fno-pic -O1 -Wl,--build-id=none -Wl,-z,max-page-size=4096"
    rm -rf "$o" && mkdir -p "$o"
    riscv64-linux-gnu-gcc $f -mcmodel=medany -Wl,-Ttext=0x80200000 -o "$o/riscv64.elf" $prog &&
    riscv64-linux-gnu-gcc $f -mcmodel=medany -Wl,-Ttext=0x80200000 -Wl,-Tdata=0x80200010 \
        -Wl,--no-check-sections -o "$o/overlap.elf" $prog &&
    aarch64-linux-gnu-gcc $f -Wl,-Ttext=0x40080000 -o "$o/aarch64.elf" $prog &&
    gcc $f -Wl,-Ttext=0x200000 -o "$o/x86_64.elf" $prog || return 1
    # Stripped copies too: smaller, and what a careful build would ship.
    riscv64-linux-gnu-strip -o "$o/riscv64-stripped.elf" "$o/riscv64.elf" &&
    aarch64-linux-gnu-strip -o "$o/aarch64-stripped.elf" "$o/aarch64.elf" &&
    strip -o "$o/x86_64-stripped.elf" "$o/x86_64.elf"
}

fat_seeds() {
    local o=$B/seeds/fat w=$B/img kernel=$B/seeds/elf/riscv64-stripped.elf
    rm -rf "$o" "$w" && mkdir -p "$o" "$w"
    [ -f "$kernel" ] || kernel=$B/seeds/elf/riscv64.elf
    echo "two directories down" >"$w/deep.txt"
    echo "a name only long entries can hold" >"$w/long.txt"
    # NAME MFORMAT-ARGS: a volume with /sbin/gkernel, a long name, a deep path.
    img() {
        local i=$w/$1.img
        shift
        mformat -C -i "$i" "$@" :: &&
        mmd -i "$i" ::/sbin ::/boot ::/a ::/a/b &&
        mcopy -i "$i" "$kernel" ::/sbin/gkernel &&
        mcopy -i "$i" "$w/long.txt" "::/boot/A Rather Long Kernel Name.elf" &&
        mcopy -i "$i" "$w/deep.txt" ::/a/b/deep.txt || return 1
    }
    img fat12-floppy -f 1440 &&                    # FAT12, 512 B clusters
    img fat12-4k -T 16384 -c 8 &&                  # FAT12, 4 KiB clusters
    img fat16-2k -T 65536 -c 4 &&                  # FAT16, 2 KiB clusters, fixed root
    img fat16-s1024 -S 3 -T 32768 -c 1 &&          # FAT16, 1024-byte sectors
    img fat32-512 -T 70000 -F -c 1 &&              # FAT32, 512 B clusters
    img fat32-4k -T 540000 -F -c 8 &&              # FAT32, 4 KiB clusters
    img fat32-s4096 -S 5 -T 70000 -F -c 1 || return 1  # FAT32, 4096-byte sectors
    cc -O1 -o "$B/mksparse" tests/fuzz/mksparse.c || return 1
    for i in "$w"/*.img; do
        n=$(basename "$i" .img)
        "$B/mksparse" "$i" "$o/$n.sparse" || return 1
    done
    rm -rf "$w"
}

seeds() {
    elf_seeds || die "could not build the ELF seeds (cross compilers missing? scripts/deps.sh --test)"
    fat_seeds || die "mtools could not make the FAT seeds"
    echo "seeds: $(ls "$B/seeds/elf" | wc -l) ELF files, $(ls "$B/seeds/fat" | wc -l) disks"
}

# --- Fuzzers -------------------------------------------------------------
build() {
    command -v "$CLANG" >/dev/null || die "clang not found: scripts/deps.sh --fuzz installs it"
    for h in fat elf; do
        $CLANG $FLAGS -o "$B/fuzz_$h" "tests/fuzz/fuzz_$h.c" $COMMON ||
            die "fuzz_$h does not build (libFuzzer missing? scripts/deps.sh --fuzz)"
    done
}

run() {
    local secs=${1:-60} status=0
    # clang and libFuzzer; the cross compilers and mtools for the seeds.
    scripts/deps.sh --fuzz --test riscv64 aarch64 || exit 1
    seeds && build || exit 1
    for h in fat elf; do
        mkdir -p "$B/corpus-$h" "$K/$h"
        local maxlen=MAXLEN_$h
        echo "== fuzz_$h for $secs s"
        # New inputs go to build/fuzz/corpus-<h>; the kept corpus and the
        # seeds are read only. The summary is the last lines of the log.
        (cd "$B" && ./fuzz_$h -max_total_time="$secs" -max_len="${!maxlen}" -timeout=10 \
            -rss_limit_mb=1024 -print_final_stats=1 -artifact_prefix=./ \
            "corpus-$h" "../../$K/$h" "seeds/$h") >"$B/fuzz_$h.log" 2>&1 || status=1
        grep -E '^#[0-9]+.*DONE|stat::number_of_executed_units|stat::peak_rss|ERROR|SUMMARY' \
            "$B/fuzz_$h.log" | sed 's/^/  /'
        echo "  corpus: $(ls "$B/corpus-$h" | wc -l) new inputs; log: $B/fuzz_$h.log"
    done
    ls "$B"/crash-* "$B"/timeout-* "$B"/oom-* 2>/dev/null && { echo "fuzz.sh: inputs that fail are above"; status=1; }
    exit $status
}

merge() {
    [ -x "$B/fuzz_fat" ] && [ -x "$B/fuzz_elf" ] || build
    for h in fat elf; do
        mkdir -p "$B/corpus-$h" "$K/$h"
        rm -rf "$B/merged-$h" && mkdir -p "$B/merged-$h"
        local maxlen=MAXLEN_$h
        # -use_counters=0: an input is kept for a branch it reaches first,
        # not for reaching a known branch more often. That keeps the corpus
        # a few hundred KiB while losing no branch.
        "$B/fuzz_$h" -merge=1 -use_counters=0 -max_len="${!maxlen}" "$B/merged-$h" "$K/$h" \
            "$B/seeds/$h" "$B/corpus-$h" >"$B/merge_$h.log" 2>&1 ||
            die "merge of $h failed: $B/merge_$h.log"
        grep -h 'MERGE-OUTER: .* new files' "$B/merge_$h.log"
        rm -f "$K/$h"/* && cp "$B/merged-$h"/* "$K/$h/"
        echo "kept corpus $h: $(ls "$K/$h" | wc -l) inputs, $(cat "$K/$h"/* | wc -c) bytes"
    done
}

case "${1:-run}" in
  run) run "${2:-60}" ;;
  merge) merge ;;
  seeds) seeds ;;
  *) die "usage: fuzz.sh run [SECONDS] | merge | seeds" ;;
esac
