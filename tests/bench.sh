#!/usr/bin/env bash
# make bench: what one VM exit costs, and what whole runs cost. It prints
# figures and judges nothing: no figure can fail.
#
#   tests/bench.sh [--exits | --wall] [ARCH...]
#
# 1. The cost of one exit (--exits): tests/bench/<arch>-exits.S runs under
#    hvbook and bare with QEMU's -icount, where a counter the guest can read
#    counts instructions, so each figure is the same on every run and every
#    machine. One table per architecture: instructions per round trip, and
#    that as a multiple of the floor (a trap the guest handles itself).
# 2. Whole runs (--wall): gkernel under hvbook and bare, in pairs (hv, bare,
#    hv, bare, ...) so that a machine that slows down slows both; the Linux
#    boot on Arm to its /init line; wall-clock milliseconds as median, min
#    and max, the ratio pair by pair, and the exits of each run by reason.
#    These move from run to run: QEMU without -icount runs as fast as the
#    host lets it.
#
# Without an option, both. WALL_RUNS (default 5) and LINUX_RUNS (default 3)
# set the number of pairs.
set -u
cd "$(dirname "$0")/.." || exit 1

parts="exits wall"
case "${1:-}" in
  --exits) parts=exits; shift ;;
  --wall) parts=wall; shift ;;
esac
arches=("$@")
[ ${#arches[@]} -gt 0 ] ||
  arches=($(ls riscv64.c aarch64.c x86_64.c 2>/dev/null | sed 's/\.c$//'))
wall_runs=${WALL_RUNS:-5}
linux_runs=${LINUX_RUNS:-3}

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

ms() { date +%s%3N; }

# ---------------------------------------------------------------------------
# 1. The cost of one exit
#
# The bench guest prints "bench NAME N BODY EMPTY [BODY-EL1 EMPTY-EL1]" in
# hex, three rounds of each. A round trip costs (BODY - EMPTY) / N; of the
# three rounds we keep the smallest difference. Under -icount shift=S, one
# instruction is 2^S ns of virtual time:
#   riscv64  shift=0  rdcycle counts instructions
#   aarch64  shift=4  CNTVCT_EL0 (62.5 MHz) ticks once per instruction
#   x86_64   shift=0  RDTSC counts nanoseconds, one per instruction
# ---------------------------------------------------------------------------
icount_shift() { case "$1" in aarch64) echo 4 ;; *) echo 0 ;; esac; }
counter_name() {
  case "$1" in
    riscv64) echo "the cycle CSR" ;;
    aarch64) echo "CNTVCT_EL0 (the guest's share: its PMU, EL1)" ;;
    x86_64) echo "RDTSC" ;;
  esac
}

# The rows of each table: NAME|what the body does|exits per round trip.
rows() {
  case "$1" in
    riscv64) cat <<'EOF'
floor|ebreak, to the guest's stvec|0
hypercall|SBI BASE get_spec_version|1
settimer|SBI set_timer(never)|1
timer|set_timer(0) and its interrupt|2
inject|its interrupt: timer - settimer|1
s2map|pflash page, first read: mapped|1
devread|none emulated (pflash: direct)|-
devwrite|none emulated (console: SBI)|-
console|SBI legacy putchar|1
EOF
    ;;
    aarch64) cat <<'EOF'
floor|brk, to the guest's vector|0
hypercall|HVC PSCI_VERSION|1
timer|virtual timer: IRQ, to an LR|1
s2map|pflash page, first read: mapped|1
devread|PL011 UARTFR read|1
devwrite|PL011 UARTIMSC write|1
console|PL011 UARTDR write|1
EOF
    ;;
    x86_64) cat <<'EOF'
floor|INT3, through the guest's IDT|0
hypercall|VMMCALL (bare: #UD, skipped)|1
ioread|IN from the serial LSR|1
iowrite|OUT to the serial SCR|1
console|OUT to the serial THR|1
apicread|APIC TPR read: NPF, decoded|1
apicwrite|APIC TPR write: NPF, decoded|1
flashread|flash read: NPF, decoded|1
apicarm|APIC timer armed: NPF, decoded|1
apiceoi|APIC EOI write: NPF, decoded|1
timer|APIC timer: arm, INTR, EOI|3
inject|INTR, V_IRQ (timer - arm - EOI)|1
s2map|none: RAM all mapped up front|-
EOF
    ;;
  esac
}

# Rows that are not measured but derived: NAME's figure is the first
# measurement's less the others'.
derived() {
  case "$1:$2" in
    riscv64:inject) echo "timer settimer" ;;
    x86_64:inject) echo "timer apicarm apiceoi" ;;
  esac
}

# best LOG NAME COLUMN: the smallest (BODY - EMPTY) of the rounds, with
# COLUMN 4 for the whole machine and 6 for the guest's own share; then N.
best() {
  local f d min="" n=""
  while read -r -a f; do
    [ "${f[0]:-}" = bench ] && [ "${f[1]}" = "$2" ] || continue
    [ ${#f[@]} -gt "$3" ] || continue
    d=$(( f[$3 - 1] - f[$3] ))
    if [ -z "$min" ] || [ "$d" -lt "$min" ]; then min=$d; fi
    n=$(( f[2] ))
  done < <(tr -d '\r\0' <"$1")
  [ -n "$min" ] && echo "$min $n"
}

# figure ARCH LOG NAME COLUMN: best's answer, for a derived row too (all
# the measurements it is derived from have the same N).
figure() {
  local terms t b d="" n=""
  terms=$(derived "$1" "$3")
  [ -n "$terms" ] || { best "$2" "$3" "$4"; return; }
  for t in $terms; do
    b=$(best "$2" "$t" "$4")
    [ -n "$b" ] || return
    if [ -z "$d" ]; then d=${b%% *} n=${b#* }; else d=$(( d - ${b%% *} )); fi
  done
  echo "$d $n"
}

per_trip() {
  awk -v d="$1" -v n="$2" 'BEGIN {
    if (d % n == 0) printf "%d", d / n; else printf "%.1f", d / n }'
}
ratio() { # A B: A / B, or "-"
  case "$1$2" in *-*) echo - ; return ;; esac
  awk -v a="$1" -v b="$2" 'BEGIN {
    if (b > 0) printf "%.1f", a / b; else printf "-" }'
}

exits_table() {
  local a=$1 shift_n hv bare
  shift_n=$(icount_shift "$a")
  make --no-print-directory -s ARCH="$a" all bench-guests >/dev/null ||
    { echo "$a: the build failed"; return; }
  hv=$tmp/$a-hv.log bare=$tmp/$a-bare.log
  ./run.sh "$a" --guest "build/$a/bench/exits.elf" --timeout 120 \
    --qemu "-icount shift=$shift_n" --log "$hv" >/dev/null 2>&1 ||
    echo "$a: the run under hvbook failed (figures may be missing)"
  ./run.sh "$a" --bare --guest "build/$a/bench/exits.elf" --timeout 120 \
    --qemu "-icount shift=$shift_n" --log "$bare" >/dev/null 2>&1 ||
    echo "$a: the bare run failed (figures may be missing)"

  echo
  echo "## $a: instructions per round trip"
  echo "(-icount shift=$shift_n; counted with $(counter_name "$a");"
  echo " the best of 3 rounds of N round trips, less an empty loop)"
  echo
  # The floor, per round trip, for the multiples.
  local fh fb
  fh=$(best "$hv" floor 4) fb=$(best "$bare" floor 4)
  fh=$(per_trip ${fh:-0 1}) fb=$(per_trip ${fb:-0 1})
  local fmt='%-9s %-31s %5s %7s %6s %7s %6s\n'
  printf "$fmt" round-trip what exits hvbook xfloor bare xfloor
  local name what exits h b g hf bf split=""
  while IFS='|' read -r name what exits; do
    h=$(figure "$a" "$hv" "$name" 4) b=$(figure "$a" "$bare" "$name" 4)
    hf=- bf=-
    [ -z "$h" ] || hf=$(per_trip $h)
    [ -z "$b" ] || bf=$(per_trip $b)
    # Bare, with no stage 2, the first read of a page costs nothing more.
    [ "$name" = s2map ] && bf=-
    printf "$fmt" "$name" "$what" "$exits" "$hf" "$(ratio "$hf" "$fh")" \
      "$bf" "$(ratio "$bf" "$fb")"
    # AArch64: the guest's own share, from its PMU, and the rest.
    g=$(figure "$a" "$hv" "$name" 6)
    if [ -n "$g" ] && [ -n "$h" ]; then
      split+=$(printf '%-9s %12s %12s %12s' "$name" "$hf" "$(per_trip $g)" \
        "$(per_trip $(( ${h%% *} - ${g%% *} )) ${h#* })")$'\n'
    fi
  done < <(rows "$a")
  if [ -n "$split" ]; then
    echo
    echo "Who runs them, under hvbook: the guest (its PMU, counting EL1) and"
    echo "the rest (CNTVCT_EL0 less that: hvbook at EL2, and the trap itself)"
    printf '%-9s %12s %12s %12s\n' round-trip all guest rest
    printf '%s' "$split"
  fi
}

# ---------------------------------------------------------------------------
# 2. Whole runs, by the wall clock
# ---------------------------------------------------------------------------
# stats [FORMAT]: median, min and max of the numbers on stdin (ms: whole
# numbers; ratios: FORMAT %.2f).
stats() {
  sort -g | awk -v f="${1:-%.0f}" '{ v[NR] = $1 } END {
    if (NR == 0) { print "- - -"; exit }
    m = NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
    printf f " " f " " f "\n", m, v[1], v[NR] }'
}
row() { printf '%-8s %-28s %5s %10s %10s %10s\n' "$@"; }
# exits LOG: "reason|count" for each row of the hypervisor's exit table.
exits_of() {
  tr -d '\r' <"$1" | awk '/^VM exits by reason:$/ { on = 1; next }
    on && /^  / {
      n = $NF; $NF = ""; sub(/^ +/, ""); sub(/ +$/, ""); print $0 "|" n; next
    }
    on { exit }'
}

wall_gkernel() {
  local a=$1 i t0 d
  d=$tmp/wall-$a
  mkdir -p "$d"
  make --no-print-directory -s ARCH="$a" >/dev/null ||
    { echo "$a: the build failed"; return; }
  : >"$d/hv" ; : >"$d/bare"
  for i in $(seq "$wall_runs"); do
    t0=$(ms)
    ./run.sh "$a" --log "$d/hv.$i.log" >/dev/null 2>&1 ||
      echo "$a: run $i under hvbook failed"
    echo $(( $(ms) - t0 )) >>"$d/hv"
    t0=$(ms)
    ./run.sh "$a" --bare --log "$d/bare.$i.log" >/dev/null 2>&1 ||
      echo "$a: bare run $i failed"
    echo $(( $(ms) - t0 )) >>"$d/bare"
  done
  row "$a" "gkernel, hvbook" "$wall_runs" $(stats <"$d/hv")
  row "$a" "gkernel, bare" "$wall_runs" $(stats <"$d/bare")
  row "$a" "ratio hvbook/bare, by pair" "$wall_runs" \
    $(pairs "$d/hv" "$d/bare" | awk '{ print $1 / $2 }' | stats %.2f)
}

# wall_exits TITLE PREFIX RUNS: the exits of each run under hvbook by
# reason, from the logs PREFIX.1.log ..., one column per run.
wall_exits() {
  local i
  echo
  echo "$1: VM exits of each run under hvbook, by reason"
  for i in $(seq "$3"); do
    [ -f "$2.$i.log" ] && exits_of "$2.$i.log" | sed "s/^/$i|/"
  done | awk -F'|' -v runs="$3" '
    !($2 in seen) && $2 != "total" { seen[$2] = 1; order[++k] = $2 }
    { c[$2, $1] = $3 }
    END {
      if (k == 0) { print "  (no exit table: no run under hvbook ended)"; exit }
      order[++k] = "total"
      printf "  %-32s", "reason"
      for (i = 1; i <= runs; i++) printf " %7s", "run " i
      print ""
      for (j = 1; j <= k; j++) {
        printf "  %-32s", order[j]
        for (i = 1; i <= runs; i++)
          printf " %7s", ((order[j], i) in c) ? c[order[j], i] : "-"
        print ""
      }
    }'
}

# linux_once MODE LOG: milliseconds from start to the /init line, or "-".
# The shell /init starts is told "poweroff -f" once the line is out; a
# writer in the background repeats it until the shell is there to read it.
linux_once() {
  local mode=$1 log=$2 opt=() fifo=$tmp/linux.in t0 at=- line writer=""
  [ "$mode" = bare ] && opt=(--bare)
  rm -f "$fifo" && mkfifo "$fifo"
  exec 3<>"$fifo"
  t0=$(ms)
  while IFS= read -r line; do
    printf '%s\n' "$line" >>"$log"
    case "$line" in
      *"hvbook: /init is running"*)
        at=$(( $(ms) - t0 ))
        while :; do printf 'poweroff -f\n'; sleep 0.5; done >&3 &
        writer=$! ;;
    esac
  done < <(./run.sh aarch64 --linux "${opt[@]}" --timeout 40 <&3 2>&1)
  if [ -n "$writer" ]; then kill "$writer"; wait "$writer" 2>/dev/null; fi
  exec 3>&-
  echo "$at"
}

# pairs A B: the lines of A and B side by side, where both are numbers.
pairs() { paste -d' ' "$1" "$2" | grep -E '^[0-9]+ [0-9]+$'; }

wall_linux() {
  local d=$tmp/wall-linux i
  mkdir -p "$d"
  : >"$d/hv" ; : >"$d/bare"
  for i in $(seq "$linux_runs"); do
    linux_once hv "$d/hv.$i.log" >>"$d/hv"
    linux_once bare "$d/bare.$i.log" >>"$d/bare"
  done
  row aarch64 "Linux to /init, hvbook" "$(grep -c '^[0-9]' "$d/hv")" \
    $(grep '^[0-9]' "$d/hv" | stats)
  row aarch64 "Linux to /init, bare" "$(grep -c '^[0-9]' "$d/bare")" \
    $(grep '^[0-9]' "$d/bare" | stats)
  row aarch64 "ratio hvbook/bare, by pair" \
    "$(pairs "$d/hv" "$d/bare" | wc -l)" \
    $(pairs "$d/hv" "$d/bare" | awk '{ print $1 / $2 }' | stats %.2f)
}

case " $parts " in
  *" exits "*)
    echo "# The cost of one VM exit, in instructions (identical on every run)"
    echo "# columns: exits per round trip; hvbook's figure and its multiple of"
    echo "# the floor; bare, the same guest on QEMU alone (firmware included)."
    for a in "${arches[@]}"; do exits_table "$a"; done ;;
esac
case " $parts " in
  *" wall "*)
    echo
    echo "# Whole runs by the wall clock, in ms (they move from run to run)"
    echo
    row arch run runs median min max
    for a in "${arches[@]}"; do wall_gkernel "$a"; done
    case " ${arches[*]} " in *" aarch64 "*) wall_linux ;; esac
    for a in "${arches[@]}"; do
      wall_exits "$a, gkernel" "$tmp/wall-$a/hv" "$wall_runs"
    done
    case " ${arches[*]} " in
      *" aarch64 "*) wall_exits "aarch64, Linux to /init" \
                       "$tmp/wall-linux/hv" "$linux_runs" ;;
    esac ;;
esac
exit 0
