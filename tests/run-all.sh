#!/usr/bin/env bash
# make test: run every test and count. Each test prints lines
# "PASS <name>" or "FAIL <name>: <why>"; this script shows them, counts them
# and ends with the line "N passed, M failed". Exit status 1 on any failure.
#
#   tests/run-all.sh [ARCH...]     default: every architecture that exists
set -u
cd "$(dirname "$0")/.."

arches=("$@")
[ ${#arches[@]} -gt 0 ] || arches=($(ls riscv64.c aarch64.c x86_64.c 2>/dev/null | sed 's/\.c$//'))

# Everything the tests need, in one install: the arches' tools, the C
# library's headers for the unit tests, gdb-multiarch, pandoc for the book.
book=()
[ -f tests/book-check.sh ] && book=(--book)
scripts/deps.sh --test --gdb "${book[@]}" "${arches[@]}" || exit 1

log=$(mktemp)
trap 'rm -f "$log"' EXIT

section() { echo "== $*"; }
{
  section "host unit tests (fat.c, virtio.c, the kit in common.c; the kept fuzz corpus)"
  if [ -x tests/unit/run.sh ]; then tests/unit/run.sh 2>&1; else echo "FAIL unit: tests/unit/run.sh is missing"; fi
  if [ -f tests/book-check.sh ]; then
    section "book: every source line woven exactly once"
    bash tests/book-check.sh 2>&1
  fi
  for a in "${arches[@]}"; do
    section "end to end: $a"
    tests/e2e.sh "$a" 2>&1
  done
  if [ -x scripts/lab.sh ] && [ -d labs ]; then
    section "labs: as handed out each scores 0, with its code back full marks"
    scripts/lab.sh check 2>&1
  fi
  if [ -x tests/bench/check.sh ]; then
    section "make bench's guests build and run (their figures: make bench)"
    tests/bench/check.sh "${arches[@]}" 2>&1
  fi
} | tee "$log"

passed=$(grep -c '^PASS ' "$log")
failed=$(grep -c '^FAIL ' "$log")
echo
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ] && [ "$passed" -gt 0 ]
