#!/usr/bin/env bash
# make test's look at make bench: each architecture's bench guest still
# builds, runs once under hvbook and once bare with -icount, shuts down
# normally and prints all its measurements. The figures themselves are not
# judged here (tests/bench.sh prints them).
#
#   tests/bench/check.sh [ARCH...]
set -u
cd "$(dirname "$0")/../.." || exit 1
. tests/lib.sh

arches=("$@")
[ ${#arches[@]} -gt 0 ] ||
  arches=($(ls riscv64.c aarch64.c x86_64.c 2>/dev/null | sed 's/\.c$//'))

for a in "${arches[@]}"; do
  out=build/$a/bench
  if ! make --no-print-directory -s ARCH="$a" all bench-guests >/dev/null; then
    fail "bench-$a-build" "make bench-guests failed"
    continue
  fi
  shift_n=0
  [ "$a" = aarch64 ] && shift_n=4
  # How many measurements the guest makes: its names, three rounds each.
  names=$(grep -c '^n_[a-z0-9]*:' "tests/bench/$a-exits.S")
  for mode in hv bare; do
    opt=()
    [ "$mode" = bare ] && opt=(--bare)
    log=$out/check-$mode.log
    ./run.sh "$a" "${opt[@]}" --guest "$out/exits.elf" --timeout 60 \
      --qemu "-icount shift=$shift_n" --log "$log" >/dev/null 2>&1
    status=$?
    got=$(tr -d '\r\0' <"$log" |
          grep -c -E '^bench [a-z0-9]+ 0x[0-9a-f]+( 0x[0-9a-f]+){2,4}$')
    if [ "$status" != 0 ]; then
      fail "bench-$a-$mode" "run.sh exited $status (log: $log)"
    elif [ "$got" != $(( names * 3 )) ]; then
      fail "bench-$a-$mode" "$got measurements, expected $(( names * 3 ))"
    else
      pass "bench-$a-$mode ($got measurements)"
    fi
  done
done
