#!/bin/sh
# Host unit tests for fat.c, virtio.c and the kit in common.c (the page
# allocator, the ELF loader, the boot arguments).
#
# Run from anywhere; works in the repository root. Builds into build/unit/,
# makes the disk images with mtools and the ELF files with the cross
# compilers, then runs the tests, and last replays the kept fuzz corpus
# (tests/fuzz/corpus/). Every check prints one line:
#   PASS <name>
#   FAIL <name>: <why>
# Build problems and crashes are FAIL lines too. The exit status is always 0:
# tests/run-all.sh counts the lines.

cd "$(dirname "$0")/../.." || { echo "FAIL unit-setup: cannot cd to the repository root"; exit 0; }
B=build/unit
IMG=$B/img
ELF=$B/elf
DTB=$B/dtb
mkdir -p "$B" "$IMG" "$ELF" "$DTB"

CC=${HOSTCC:-gcc}
CFLAGS="-std=gnu11 -O1 -g -fsanitize=address,undefined -fno-sanitize-recover=all \
-Wall -Wextra -Werror -fno-builtin -fno-tree-loop-distribute-patterns -I. -Itests/unit"
# The sanitizers should stop at the first report and say where it happened.
export ASAN_OPTIONS=abort_on_error=0:detect_leaks=0
export UBSAN_OPTIONS=print_stacktrace=1

# mtools: no user configuration, and no complaints that our made-up
# geometries are not those of a real floppy.
export MTOOLSRC=/dev/null MTOOLS_SKIP_CHECK=1

# build NAME OUTPUT SOURCES...: compile, or print a FAIL with the first error.
build() {
    name=$1 out=$2
    shift 2
    if $CC $CFLAGS -o "$out" "$@" >"$out.log" 2>&1; then
        return 0
    fi
    echo "FAIL $name: does not compile: $(grep -m1 -E 'error|undefined' "$out.log" || head -n1 "$out.log") (log: $out.log)"
    return 1
}

# run NAME PROGRAM ARGS...: run a test program; a crash or sanitizer report
# (non-zero exit) becomes a FAIL line quoting the report's summary, and so
# does a program still running after UNIT_TIMEOUT seconds (default 120).
# Every program gets a time limit: a reader that loops on a broken disk must
# show up as a FAIL line, not as a make test that never ends.
run() {
    name=$1
    shift
    timeout -k 5 "${UNIT_TIMEOUT:-120}" "$@" 2>"$B/$name.err"
    rc=$?
    if [ $rc -eq 124 ] || [ $rc -eq 137 ]; then
        echo "FAIL $name: the test program did not finish within ${UNIT_TIMEOUT:-120} s"
    elif [ $rc -ne 0 ]; then
        echo "FAIL $name: the test program stopped with status $rc: $(grep -m1 -E 'SUMMARY|runtime error|ERROR' "$B/$name.err" || tail -n1 "$B/$name.err") (log: $B/$name.err)"
    fi
}

# ---------------------------------------------------------------------------
# Disk images, made by the real tools. Each is rebuilt from scratch on every
# run (a few seconds); the big ones are sparse files, so they cost little disk.
make_images() {
    rm -f "$IMG"/*.img
    rm -rf "$IMG/many"

    # The files we put on the disks. gkernel.bin stands for the guest kernel:
    # about 370 KB of numbered lines, so a misplaced cluster cannot go unseen.
    seq -f 'gkernel line %g' 1 20000 >"$IMG/gkernel.bin"
    seq -f 'long name %g' 1 300 >"$IMG/longname.bin"
    echo "five directories deep" >"$IMG/deep.txt"
    echo "an 8.3 name in lower case" >"$IMG/readme.txt"
    : >"$IMG/empty.txt"
    head -c 4096 "$IMG/gkernel.bin" >"$IMG/exact.bin"   # exactly 8 clusters of 512 B
    mkdir -p "$IMG/many"
    for i in $(seq -w 1 150); do echo "entry $i" >"$IMG/many/entry number $i.txt"; done

    # fat32.img: 64 MiB FAT32, 512-byte clusters (mformat's choice for this
    # size): gkernel, a name only LFN entries can hold, five directory
    # levels, a directory of 150 long names spanning many clusters.
    i=$IMG/fat32.img
    mformat -C -i "$i" -T 131072 -F -v HVBOOK :: &&
    mmd -i "$i" ::/sbin ::/boot ::/a ::/a/b ::/a/b/c ::/a/b/c/d ::/many &&
    mcopy -i "$i" "$IMG/gkernel.bin" ::/sbin/gkernel &&
    mcopy -i "$i" "$IMG/longname.bin" "::/boot/A Rather Long Kernel Name.elf" &&
    mcopy -i "$i" "$IMG/deep.txt" ::/a/b/c/d/file.txt &&
    mcopy -i "$i" "$IMG/readme.txt" "$IMG/empty.txt" "$IMG/exact.bin" ::/ &&
    mcopy -i "$i" "$IMG"/many/* ::/many/ || return 1

    # frag.img: fragmented gkernel. Copy 40 small files, delete every other
    # one, then copy gkernel: it must fill the holes. mtools would rather
    # append after the last cluster it allocated, which it remembers in the
    # FSInfo sector's FSI_Nxt_Free hint (byte 492 of sector 1); we set that to
    # 0xFFFFFFFF, "unknown" per the spec, so it searches from the start.
    i=$IMG/frag.img
    mformat -C -i "$i" -T 131072 -F :: && mmd -i "$i" ::/sbin || return 1
    for n in $(seq 10 49); do
        head -c $((1024 + (n - 10) * 37)) "$IMG/gkernel.bin" >"$B/small$n"
    done
    mcopy -i "$i" "$B"/small* ::/ || return 1
    for n in $(seq 10 2 49); do mdel -i "$i" "::/small$n" || return 1; done
    printf '\377\377\377\377' | dd of="$i" bs=1 seek=$((512 + 492)) conv=notrunc status=none &&
    mcopy -i "$i" "$IMG/gkernel.bin" ::/sbin/gkernel || return 1
    rm -f "$B"/small*

    # clusN.img: FAT32 with N sectors per cluster, 512 B to 32 KiB. FAT32
    # needs at least 65525 clusters, so the 32 KiB one is 2 GiB (sparse).
    for n in 1 2 4 8 16 32 64; do
        i=$IMG/clus$n.img
        mformat -C -i "$i" -T $((66600 * n + 2048)) -F -c $n :: &&
        mmd -i "$i" ::/sbin && mcopy -i "$i" "$IMG/gkernel.bin" ::/sbin/gkernel || return 1
    done

    # fat16.img: 32 MiB FAT16 with 2 KiB clusters and a fixed root directory
    # holding 100 long names (300 entries, many sectors).
    i=$IMG/fat16.img
    mformat -C -i "$i" -T 65536 -c 4 :: &&
    mmd -i "$i" ::/sbin ::/x ::/x/y &&
    mcopy -i "$i" "$IMG/gkernel.bin" ::/sbin/gkernel &&
    mcopy -i "$i" "$IMG/deep.txt" ::/x/y/z.txt &&
    mcopy -i "$i" "$IMG"/many/*0[0-9][0-9].txt "$IMG/many/entry number 100.txt" ::/ || return 1

    # fat12.img: a 1.44 MB floppy; FAT12 entries straddle sector boundaries.
    i=$IMG/fat12.img
    mformat -C -i "$i" -f 1440 :: && mmd -i "$i" ::/sbin &&
    mcopy -i "$i" "$IMG/gkernel.bin" ::/sbin/gkernel &&
    mcopy -i "$i" "$IMG/longname.bin" "::/A Rather Long Kernel Name.elf" || return 1

    # sec4096.img: FAT32 with 4096-byte sectors (mformat -S 5: 128 << 5), so
    # every FAT sector is 8 device sectors. -T counts 4096-byte sectors.
    i=$IMG/sec4096.img
    mformat -C -i "$i" -S 5 -T 70000 -F -c 1 :: &&
    mmd -i "$i" ::/sbin ::/a ::/a/b ::/a/b/c ::/a/b/c/d &&
    mcopy -i "$i" "$IMG/gkernel.bin" ::/sbin/gkernel &&
    mcopy -i "$i" "$IMG/deep.txt" ::/a/b/c/d/file.txt || return 1

    # sec1024.img: FAT16 with 1024-byte sectors and 1 KiB clusters.
    i=$IMG/sec1024.img
    mformat -C -i "$i" -S 3 -T 32768 -c 1 :: && mmd -i "$i" ::/sbin &&
    mcopy -i "$i" "$IMG/gkernel.bin" ::/sbin/gkernel || return 1
}

# ---------------------------------------------------------------------------
# ELF files for the loader, made by the real cross compilers.
make_elves() {
    rm -f "$ELF"/*.elf
    RV=riscv64-linux-gnu-gcc
    command -v $RV >/dev/null 2>&1 || RV=riscv64-unknown-elf-gcc
    command -v $RV >/dev/null 2>&1 || { echo "no riscv64 cross compiler"; return 1; }
    RVFLAGS="-nostdlib -static -no-pie -fno-pic -O1 -mcmodel=medany -Wl,--build-id=none"
    $RV $RVFLAGS -Wl,-Ttext=0x80200000 -o "$ELF/good.elf" tests/unit/elf_prog.c &&
    $RV $RVFLAGS -Wl,-Ttext=0x90000000 -o "$ELF/entry-out.elf" tests/unit/elf_prog.c &&
    $RV $RVFLAGS -Wl,-Ttext=0x80200000 -Wl,-Tdata=0x90000000 -o "$ELF/data-out.elf" \
        tests/unit/elf_prog.c || return 1
    # The linker's own ways to make a file the loader must refuse: the entry
    # point set to a data symbol (a segment without PF_X), the entry point at
    # an address no segment covers, and .data placed on top of .text (ld
    # would refuse that, unless told not to check).
    $RV $RVFLAGS -Wl,-Ttext=0x80200000 -Wl,-e,data_bytes -o "$ELF/entry-data.elf" \
        tests/unit/elf_prog.c &&
    $RV $RVFLAGS -Wl,-Ttext=0x80200000 -Wl,-e,0x80100000 -o "$ELF/entry-nowhere.elf" \
        tests/unit/elf_prog.c &&
    $RV $RVFLAGS -Wl,-Ttext=0x80200000 -Wl,-Tdata=0x80200010 -Wl,--no-check-sections \
        -o "$ELF/overlap.elf" tests/unit/elf_prog.c || return 1
    # AArch64 only if its compiler is here; elf_test skips what is missing.
    if command -v aarch64-linux-gnu-gcc >/dev/null 2>&1; then
        aarch64-linux-gnu-gcc -nostdlib -static -no-pie -fno-pic -O1 -Wl,--build-id=none \
            -Wl,-Ttext=0x40200000 -o "$ELF/a64.elf" tests/unit/elf_prog.c || return 1
    fi
}

# ---------------------------------------------------------------------------
# Device trees for fdt_bootargs, written by QEMU itself (dumpdtb), with the
# command line run.sh passes.
make_dtbs() {
    rm -f "$DTB"/*.dtb
    args='hvbook.budget=5 hvbook.token=abc'
    # QEMU takes -append only with -kernel; the kernel is never run.
    k=$DTB/kernel.bin
    # Each QEMU only if it is installed (make test ARCH=x86_64 may not bring
    # it); kit_test skips the device trees that are missing.
    printf 'hvbook' >"$k"
    if command -v qemu-system-riscv64 >/dev/null 2>&1; then
        qemu-system-riscv64 -M virt,dumpdtb="$DTB/riscv64.dtb" -nographic -kernel "$k" \
            -append "$args" &&
        qemu-system-riscv64 -M virt,dumpdtb="$DTB/noargs.dtb" -nographic -kernel "$k" ||
            return 1
    fi
    if command -v qemu-system-aarch64 >/dev/null 2>&1; then
        qemu-system-aarch64 -M virt,virtualization=on,gic-version=3,dumpdtb="$DTB/aarch64.dtb" \
            -cpu max -nographic -kernel "$k" -append "$args" || return 1
    fi
}

# ---------------------------------------------------------------------------
if [ ! -f common.c ]; then
    echo "FAIL unit-common-c: common.c does not exist yet; the unit tests need it"
    exit 0
fi
for t in mformat mcopy mmd mdel; do
    command -v $t >/dev/null 2>&1 || { echo "FAIL unit-tools: $t not found (install mtools)"; exit 0; }
done

H="tests/unit/harness.c tests/unit/virtio_stub.c common.c"

if build fat-test-build "$B/fat_test" tests/unit/fat_test.c fat.c $H; then
    if make_images >"$B/images.log" 2>&1; then
        run fat-test "$B/fat_test" "$IMG"
    else
        echo "FAIL fat-images: mtools could not make the test images: $(tail -n1 "$B/images.log") (log: $B/images.log)"
    fi
fi

if build elf-test-build "$B/elf_test" tests/unit/elf_test.c fat.c $H; then
    if make_elves >"$B/elves.log" 2>&1; then
        run elf-test "$B/elf_test" "$ELF"
    else
        echo "FAIL elf-files: could not build the test ELF files: $(tail -n1 "$B/elves.log") (log: $B/elves.log)"
    fi
fi

if build kit-test-build "$B/kit_test" tests/unit/kit_test.c fat.c $H; then
    if make_dtbs >"$B/dtbs.log" 2>&1; then
        run kit-test "$B/kit_test" "$DTB"
    else
        echo "FAIL kit-dtbs: QEMU could not write its device trees: $(tail -n1 "$B/dtbs.log") (log: $B/dtbs.log)"
    fi
fi

# virtio.c against a model of the device: no images, no QEMU.
if build virtio-test-build "$B/virtio_test" -DHVBOOK_HOST_TEST tests/unit/virtio_test.c \
    tests/unit/harness.c common.c fat.c; then
    run virtio-test "$B/virtio_test"
fi

# The kept fuzz corpus (tests/fuzz/corpus/, grown by make fuzz), replayed
# once through each harness under the sanitizers: an input that once found a
# bug keeps checking that it stays fixed. gcc only; clang is for make fuzz.
for h in fat elf; do
    set -- tests/fuzz/corpus/$h/*
    [ -e "$1" ] || { echo "FAIL fuzz-replay-$h: tests/fuzz/corpus/$h is empty"; continue; }
    if build fuzz-replay-$h-build "$B/replay_$h" -Itests/fuzz tests/fuzz/replay.c \
        tests/fuzz/fuzz_$h.c tests/fuzz/env.c tests/unit/virtio_stub.c common.c fat.c; then
        n=$#
        "$B/replay_$h" "$@" 2>"$B/fuzz-replay-$h.err"
        rc=$?
        if [ $rc -eq 0 ]; then
            echo "PASS fuzz-replay-$h ($n inputs)"
        else
            echo "FAIL fuzz-replay-$h: status $rc: $(grep -m1 -E 'SUMMARY|runtime error|ERROR' "$B/fuzz-replay-$h.err" || tail -n1 "$B/fuzz-replay-$h.err") (log: $B/fuzz-replay-$h.err)"
        fi
    fi
done
exit 0
