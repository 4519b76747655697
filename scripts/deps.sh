#!/usr/bin/env bash
# Make sure the tools hvbook needs are installed. This is the one list of
# packages: run.sh, make test, make book, make fuzz and CI all come here.
#
#   scripts/deps.sh riscv64 aarch64      tools to build and run these arches
#   scripts/deps.sh --test riscv64       ... and to build and run the tests
#   scripts/deps.sh --book               pandoc, for the book; epubcheck, chromium and
#                                        python3, for its checks
#   scripts/deps.sh --gdb riscv64        ... and gdb-multiarch
#   scripts/deps.sh --fuzz               clang and its libFuzzer runtime
#   scripts/deps.sh --linux              cpio, to build the Linux initramfs
#
# On Debian and Ubuntu it installs what is missing with apt-get (through sudo
# when not root), quietly: one line says what and why, and apt's own output
# goes to a log file whose path is printed only if apt fails. Elsewhere it
# prints the command for Fedora, Arch Linux and Homebrew and fails.
set -eu

args=("$@")
want_test=0 want_book=0 want_gdb=0 want_fuzz=0 want_linux=0 again=0 arches=()
for a in "$@"; do
  case "$a" in
    --test) want_test=1 ;;
    --book) want_book=1 ;;
    --gdb) want_gdb=1 ;;
    --fuzz) want_fuzz=1 ;;
    --linux) want_linux=1 ;;
    -*) echo "deps.sh: unknown option '$a'" >&2; exit 2 ;;
    *) arches+=("$a") ;;
  esac
done

# Each row: what to look for, then the package on Debian, Fedora, Arch and
# Homebrew ("-" where that system needs none). What to look for is a command
# on PATH, or a file when it starts with "/".
rows=() whys=()
add() { rows+=("$*"); }
have() {
  case "$1" in
    /*) [ -e "$1" ] ;;
    # The cross compilers have other names elsewhere; any of them will do.
    riscv64-linux-gnu-gcc) command -v riscv64-linux-gnu-gcc || command -v riscv64-unknown-elf-gcc ||
                           command -v riscv64-elf-gcc ;;
    aarch64-linux-gnu-gcc) command -v aarch64-linux-gnu-gcc || command -v aarch64-none-elf-gcc ||
                           command -v aarch64-elf-gcc ;;
    *) command -v "$1" ;;
  esac >/dev/null
}

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
[ ${#arches[@]} -gt 0 ] && whys+=("to build and run ${arches[*]}")
if [ ${#arches[@]} -gt 0 ] || [ $want_test = 1 ]; then
  add make make make make make
  add mformat mtools mtools mtools mtools
fi
if [ $want_test = 1 ]; then
  # The host unit tests are ordinary C programs: a compiler and the C
  # library's headers (elf.h, fcntl.h), which gcc alone does not bring.
  add gcc gcc gcc gcc gcc
  add /usr/include/elf.h libc6-dev glibc-devel glibc -
  whys+=("for the tests")
fi
[ $want_book = 1 ] && { add pandoc pandoc pandoc pandoc pandoc; add epubcheck epubcheck epubcheck epubcheck epubcheck; add chromium chromium chromium chromium -; add /usr/bin/python3 python3 python3 python python3; whys+=("for the book and its checks"); }
[ $want_linux = 1 ] && { add cpio cpio cpio cpio cpio; whys+=("for the Linux initramfs"); }
[ $want_gdb = 1 ] && { add gdb-multiarch gdb-multiarch gdb gdb gdb; whys+=("for gdb"); }
if [ $want_fuzz = 1 ]; then
  add clang clang clang clang llvm
  # libFuzzer's runtime comes in a package named after clang's version.
  if command -v clang >/dev/null; then
    v=$(clang -dumpversion | cut -d. -f1)
    rt=$(clang -print-resource-dir)/lib/linux/libclang_rt.fuzzer-$(uname -m).a
    add "$rt" "libclang-rt-$v-dev" compiler-rt compiler-rt llvm
  else
    again=1 # once clang is in, run again to find its runtime's package
  fi
  whys+=("for fuzzing")
fi

missing_deb=() missing_fed=() missing_arch=() missing_brew=()
for r in "${rows[@]}"; do
  set -- $r
  have "$1" && continue
  missing_deb+=("$2") missing_fed+=("$3") missing_arch+=("$4")
  [ "$5" = - ] || missing_brew+=("$5")
done
[ ${#missing_deb[@]} -eq 0 ] && exit 0

uniq_words() { printf '%s\n' "$@" | awk '!seen[$0]++' | tr '\n' ' ' | sed 's/ $//'; }
why=$(printf '%s, ' "${whys[@]}" | sed 's/, $//')
if command -v apt-get >/dev/null && [ -r /etc/debian_version ]; then
  pkgs=$(uniq_words "${missing_deb[@]}")
  echo "hvbook: installing $pkgs ($why)" >&2
  sudo=""
  [ "$(id -u)" -ne 0 ] && sudo=sudo
  log=${TMPDIR:-/tmp}/hvbook-apt.$$.log
  # shellcheck disable=SC2086
  if { $sudo apt-get update && DEBIAN_FRONTEND=noninteractive \
       $sudo apt-get install -y --no-install-recommends $pkgs; } >"$log" 2>&1; then
    rm -f "$log"
    [ $again = 1 ] && exec "$0" "${args[@]}"
    exit 0
  fi
  echo "hvbook: apt-get failed; its output is in $log" >&2
  exit 1
fi
{
  echo "hvbook: some tools are missing ($why). Install them with one of:"
  echo "  Fedora:   sudo dnf install $(uniq_words "${missing_fed[@]}")"
  echo "  Arch:     sudo pacman -S $(uniq_words "${missing_arch[@]}")"
  [ ${#missing_brew[@]} -gt 0 ] && echo "  Homebrew: brew install $(uniq_words "${missing_brew[@]}")"
} >&2
exit 1
