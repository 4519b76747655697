#!/usr/bin/env bash
# Make sure the tools hvbook needs are installed.
#
#   scripts/deps.sh riscv64 aarch64      tools to build and run these arches
#   scripts/deps.sh --test riscv64       ... and to run the tests
#   scripts/deps.sh --book               pandoc, for the book
#   scripts/deps.sh --gdb riscv64        ... and gdb-multiarch
#
# On Debian and Ubuntu it installs what is missing with apt-get (through sudo
# when not root). Elsewhere it prints the command for Fedora, Arch Linux and
# Homebrew and fails.
set -eu

want_test=0 want_book=0 want_gdb=0 arches=()
for a in "$@"; do
  case "$a" in
    --test) want_test=1 ;;
    --book) want_book=1 ;;
    --gdb) want_gdb=1 ;;
    *) arches+=("$a") ;;
  esac
done

# Each entry: command  debian-package  fedora-package  arch-package  brew-package
rows=()
add() { rows+=("$*"); }
for a in "${arches[@]}"; do
  case "$a" in
    riscv64)
      add qemu-system-riscv64 qemu-system-misc qemu-system-riscv qemu-system-riscv qemu
      add riscv64-linux-gnu-gcc gcc-riscv64-linux-gnu gcc-riscv64-linux-gnu riscv64-linux-gnu-gcc riscv64-elf-gcc ;;
    aarch64)
      add qemu-system-aarch64 qemu-system-arm qemu-system-aarch64 qemu-system-aarch64 qemu
      add aarch64-linux-gnu-gcc gcc-aarch64-linux-gnu gcc-aarch64-linux-gnu aarch64-linux-gnu-gcc aarch64-elf-gcc ;;
    x86_64)
      add qemu-system-x86_64 qemu-system-x86 qemu-system-x86 qemu-system-x86 qemu
      add gcc gcc gcc gcc x86_64-elf-gcc ;;
    *) echo "deps.sh: unknown architecture '$a'" >&2; exit 2 ;;
  esac
done
if [ ${#arches[@]} -gt 0 ]; then
  add make make make make make
  add mformat mtools mtools mtools mtools
fi
[ $want_test = 1 ] && add gcc gcc gcc gcc gcc
[ $want_book = 1 ] && add pandoc pandoc pandoc pandoc pandoc
[ $want_gdb = 1 ] && add gdb-multiarch gdb-multiarch gdb gdb gdb

missing_deb=() missing_fed=() missing_arch=() missing_brew=()
for r in "${rows[@]}"; do
  set -- $r
  # The RISC-V cross compiler has other names elsewhere; any of them will do.
  case "$1" in
    riscv64-linux-gnu-gcc) command -v riscv64-linux-gnu-gcc >/dev/null || command -v riscv64-unknown-elf-gcc >/dev/null || command -v riscv64-elf-gcc >/dev/null && continue ;;
    aarch64-linux-gnu-gcc) command -v aarch64-linux-gnu-gcc >/dev/null || command -v aarch64-none-elf-gcc >/dev/null || command -v aarch64-elf-gcc >/dev/null && continue ;;
    *) command -v "$1" >/dev/null && continue ;;
  esac
  missing_deb+=("$2") missing_fed+=("$3") missing_arch+=("$4") missing_brew+=("$5")
done
[ ${#missing_deb[@]} -eq 0 ] && exit 0

uniq_words() { printf '%s\n' "$@" | awk '!seen[$0]++' | tr '\n' ' '; }
if command -v apt-get >/dev/null && [ -r /etc/debian_version ]; then
  pkgs=$(uniq_words "${missing_deb[@]}")
  echo "hvbook: installing missing packages: $pkgs" >&2
  sudo=""
  [ "$(id -u)" -ne 0 ] && sudo=sudo
  $sudo apt-get update -qq >&2
  # shellcheck disable=SC2086
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends $pkgs >&2
  exit 0
fi
{
  echo "hvbook: some tools are missing. Install them with one of:"
  echo "  Fedora:   sudo dnf install $(uniq_words "${missing_fed[@]}")"
  echo "  Arch:     sudo pacman -S $(uniq_words "${missing_arch[@]}")"
  echo "  Homebrew: brew install $(uniq_words "${missing_brew[@]}")"
} >&2
exit 1
