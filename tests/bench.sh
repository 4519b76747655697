#!/usr/bin/env bash
# make bench: how fast is a whole run, and how many VM exits does it take?
# Prints figures; judges nothing (machines differ, and QEMU's software
# emulation is slower than hardware by an order of magnitude or two).
#
#   tests/bench.sh [ARCH...]   five runs each, under the hypervisor and bare
set -u
cd "$(dirname "$0")/.."
arches=("$@")
[ ${#arches[@]} -gt 0 ] || arches=($(ls riscv64.c aarch64.c x86_64.c 2>/dev/null | sed 's/\.c$//'))
runs=5

ms() { date +%s%3N; }
median() { sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }

printf '%-8s %-6s %12s %12s %12s %10s\n' arch mode "median ms" "min ms" "max ms" "VM exits"
for a in "${arches[@]}"; do
  make --no-print-directory -s ARCH="$a" >/dev/null || exit 1
  for mode in hv bare; do
    opt=(); [ "$mode" = bare ] && opt=(--bare)
    times=() exits=-
    for i in $(seq $runs); do
      t0=$(ms)
      ./run.sh "$a" "${opt[@]}" --log "build/$a/bench.log" >/dev/null 2>&1 || { echo "$a $mode: run $i failed"; exit 1; }
      times+=($(( $(ms) - t0 )))
    done
    [ "$mode" = hv ] && exits=$(tr -d '\r' <"build/$a/bench.log" | awk '$1 == "total" { print $2 }')
    printf '%-8s %-6s %12s %12s %12s %10s\n' "$a" "$mode" \
      "$(printf '%s\n' "${times[@]}" | median)" \
      "$(printf '%s\n' "${times[@]}" | sort -n | head -1)" \
      "$(printf '%s\n' "${times[@]}" | sort -n | tail -1)" "$exits"
  done
done
