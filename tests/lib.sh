# Helpers shared by the test scripts. Every check prints one line,
# "PASS <name>" or "FAIL <name>: <why>"; tests/run-all.sh counts them.

pass() { echo "PASS $1"; }
fail() { echo "FAIL $1: $2"; }

# in_order LOG PATTERN...: every PATTERN (an extended regular expression that
# must match a whole line) appears in LOG, in this order. Prints nothing and
# succeeds, or prints the first pattern it could not find after the previous.
in_order() {
  local log=$1; shift
  tr -d '\r' <"$log" | awk -v n=$# '
    BEGIN { for (i = 1; i <= n; i++) pat[i] = ARGV[i + 1]; ARGC = 2; ARGV[1] = "-"; k = 1 }
    k <= n && $0 ~ ("^" pat[k] "$") { k++ }
    END { if (k <= n) { print "missing (in order): " pat[k]; exit 1 } }
  ' /dev/null "$@"
}

# absent LOG PATTERN...: no line of LOG matches any PATTERN (extended regex,
# anywhere in the line). Prints the first offending line.
absent() {
  local log=$1; shift
  local p line
  for p in "$@"; do
    line=$(tr -d '\r' <"$log" | grep -E -m1 -e "$p") && { echo "forbidden line: $line"; return 1; }
  done
  return 0
}

# count_lines LOG ERE: how many lines match.
count_lines() { tr -d '\r' <"$1" | grep -E -c -e "$2"; }
