#!/usr/bin/env bash
# scripts/lab.sh: hand out a lab, grade it, and prove that every lab is real.
#
#   scripts/lab.sh list                    the labs in labs/*.lab
#   scripts/lab.sh make LAB... [--dir D]   write a student tree (default
#                                          build/labs/LAB) and D.tar.gz
#   scripts/lab.sh grade [LAB...]          run the lab's tests, print the
#                                          points and "Score: X/Y"; without
#                                          LAB, the labs named in ./.lab
#   scripts/lab.sh restore TREE [LAB...]   put the original bodies back into
#                                          a student tree (from this tree)
#   scripts/lab.sh check [LAB...]          for make test: each lab's tree
#                                          builds, scores 0 as handed out and
#                                          full marks with the bodies back;
#                                          without LAB, every lab, and the
#                                          student book with all of them
#
# A lab is one file, labs/NAME.lab (see book/labs.md for the format): lines
# of directives, a line "---", then the handout in Markdown. Directives:
#
#   title TEXT                        the handout's title
#   write FILE FUNCTION [STATEMENTS]  the student writes this function's
#                                     body; STATEMENTS end the stub (default:
#                                     return 0, false or nothing)
#   test POINTS SECONDS NAME COMMAND  a graded test: COMMAND is bash, run in
#                                     the tree with the helpers below, and
#                                     passes when it exits 0 within SECONDS
#
# The helpers a test may use (defined under "Test helpers" below):
#   boot ID ARCH [run.sh options]   ./run.sh once per grade for each ID
#   status N                        that run's exit status was N
#   lines ERE...                    its log has these lines, in this order
#   none ERE...                     and none of these
#   number_at_least PREFIX N        a line "PREFIX<number>" with number >= N
#   unit NAME-ERE...                the host unit tests (tests/unit/run.sh,
#                                   once per grade) have these PASS lines and
#                                   no FAIL line with these names
#
# Written for bash and POSIX awk (mawk): a fresh Debian has both.
set -u
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

die() { echo "lab.sh: $*" >&2; exit 2; }

# ---------------------------------------------------------------------------
# Reading a lab file.

lab_file() { echo "$ROOT/labs/$1.lab"; }

# lab_directives LAB: the directive lines, comments and blank lines dropped.
# A line that ends in a backslash goes on on the next line.
lab_directives() {
  awk '/^---[ \t]*$/ { exit }
       !cont && /^[ \t]*(#|$)/ { next }
       { l = $0; if (cont) sub(/^[ \t]+/, "", l)
         line = line (cont ? " " : "") l; cont = sub(/[ \t]*\\$/, "", line)
         if (!cont) { print line; line = "" } }
       END { if (line != "") print line }' "$(lab_file "$1")"
}

# lab_handout LAB: the Markdown after the "---" line.
lab_handout() {
  awk 'on { print } /^---[ \t]*$/ { on = 1 }' "$(lab_file "$1")"
}

lab_title() {
  lab_directives "$1" |
    awk '$1 == "title" { sub(/^title[ \t]+/, ""); print; exit }'
}

lab_exists() {
  [ -f "$(lab_file "$1")" ] ||
    die "no lab '$1' (the labs: $(echo $(all_labs)))"
}

all_labs() {
  local f
  for f in "$ROOT"/labs/*.lab; do [ -f "$f" ] && basename "$f" .lab; done
}

# ---------------------------------------------------------------------------
# Finding a function by name in a C file.
#
# locate FILE NAME prints "SIG BRACE_LINE BRACE_COL END_LINE END_COL": the
# line where the definition of NAME starts (at column 0, at file scope), and
# where its body's "{" and matching "}" are. It reads the file as C does:
# braces, parentheses and names inside comments, strings and character
# constants do not count, nor do preprocessor lines, and a prototype (which
# ends in ";" before any "{") is not the definition.
locate() {
  awk -v name="$2" '
    BEGIN { st = "code"; depth = 0; cand = 0; inbody = 0; pp = 0
            pat = "(^|[^A-Za-z0-9_])" name "[ \t]*\\(" }
    {
      line = $0
      if (pp) { pp = (line ~ /\\$/); next }
      if (st == "code" && line ~ /^[ \t]*#/) { pp = (line ~ /\\$/); next }
      if (st == "code" && depth == 0 && !cand && line ~ /^[A-Za-z_]/ &&
          line ~ pat)
        cand = NR
      n = length(line)
      for (i = 1; i <= n; i++) {
        c = substr(line, i, 1)
        if (st == "code") {
          d = substr(line, i, 2)
          if (d == "/*") { st = "block"; i++ }
          else if (d == "//") break
          else if (c == "\"") st = "str"
          else if (c == "\047") st = "chr"
          else if (c == "{") {
            depth++
            if (depth == 1 && cand && !inbody) { inbody = 1; bl = NR; bc = i }
          } else if (c == "}") {
            depth--
            if (depth == 0 && inbody) { print cand, bl, bc, NR, i; exit }
          } else if (c == ";" && depth == 0 && !inbody) cand = 0
        } else if (st == "block") {
          if (substr(line, i, 2) == "*/") { st = "code"; i++ }
        } else if (st == "str") {
          if (c == "\\") i++; else if (c == "\"") st = "code"
        } else if (st == "chr") {
          if (c == "\\") i++; else if (c == "\047") st = "code"
        }
      }
      if (st == "str" || st == "chr") st = "code"
    }
  ' "$1"
}

# body FILE NAME: the text of NAME's body, from its "{" to its "}".
body() {
  local pos
  pos=$(locate "$1" "$2")
  [ -n "$pos" ] || return 1
  set -- "$1" $pos
  awk -v bl="$3" -v bc="$4" -v el="$5" -v ec="$6" '
    NR < bl || NR > el { next }
    { s = $0
      if (NR == el) s = substr(s, 1, ec)
      if (NR == bl) s = substr(s, bc)
      print s }' "$1"
}

# signature FILE NAME: the text from the start of the definition to its "{",
# on one line.
signature() {
  local pos
  pos=$(locate "$1" "$2")
  [ -n "$pos" ] || return 1
  set -- "$1" $pos
  awk -v sl="$2" -v bl="$3" -v bc="$4" '
    NR >= sl && NR <= bl { s = $0; if (NR == bl) s = substr(s, 1, bc - 1)
                           out = out " " s }
    NR > bl { exit }
    END { gsub(/[ \t]+/, " ", out); print out }' "$1"
}

# code_only FILE: the file with comments, strings and character constants
# blanked out and preprocessor lines dropped, so that what is left are the
# names the C code really uses.
code_only() {
  awk '
    BEGIN { st = "code"; pp = 0 }
    {
      line = $0
      if (pp) { pp = (line ~ /\\$/); print ""; next }
      if (st == "code" && line ~ /^[ \t]*#/) {
        pp = (line ~ /\\$/); print ""; next
      }
      out = ""; n = length(line)
      for (i = 1; i <= n; i++) {
        c = substr(line, i, 1)
        if (st == "code") {
          d = substr(line, i, 2)
          if (d == "/*") { st = "block"; i++; out = out " " }
          else if (d == "//") break
          else if (c == "\"") { st = "str"; out = out " " }
          else if (c == "\047") { st = "chr"; out = out " " }
          else out = out c
        } else if (st == "block") {
          if (substr(line, i, 2) == "*/") { st = "code"; i++ }
        } else if (st == "str") {
          if (c == "\\") i++; else if (c == "\"") st = "code"
        } else if (st == "chr") {
          if (c == "\\") i++; else if (c == "\047") st = "code"
        }
      }
      if (st == "str" || st == "chr") st = "code"
      print out
    }' "$1"
}

# names: the identifiers in standard input, one per line, each once.
names() {
  tr -c 'A-Za-z0-9_' '\n' | grep -E '^[A-Za-z_][A-Za-z0-9_]*$' | sort -u
}

# static_names FILE: the names that file-scope "static" lines at column 0
# define (functions and variables), one per line.
static_names() {
  code_only "$1" | awk '
    /^static[ \t]/ {
      s = $0
      if (match(s, /[(=[;,]/)) s = substr(s, 1, RSTART - 1)
      if (match(s, /[A-Za-z_][A-Za-z0-9_]*[ \t]*$/)) {
        w = substr(s, RSTART, RLENGTH); sub(/[ \t]+$/, "", w); print w
      }
    }' | sort -u
}

# unused_after FILE NAMES-FILE: of the names in NAMES-FILE, the static
# functions and variables of FILE that FILE no longer uses anywhere but in
# their own declarations. A stub names each of them once, "(void)name;", or
# gcc's -Wunused-function would stop the build (-Werror).
unused_after() {
  local f=$1 n code statics
  code=$(mktemp); statics=$(mktemp)
  code_only "$f" >"$code"
  static_names "$f" >"$statics"
  while read -r n; do
    grep -qx -- "$n" "$statics" || continue
    local uses decls
    uses=$(grep -o -E "(^|[^A-Za-z0-9_])$n([^A-Za-z0-9_]|$)" "$code" | wc -l)
    decls=$(grep -E '^static[ \t]' "$code" |
            grep -c -E "(^|[^A-Za-z0-9_])$n[ \t]*([(=[;,]|$)")
    [ "$uses" -gt 0 ] && [ "$uses" -le "$decls" ] && echo "$n"
  done <"$2"
  rm -f "$code" "$statics"
}

# splice FILE NAME BODY-FILE NOTE-FILE: replace NAME's body by BODY-FILE's
# text; put NOTE-FILE (a block comment, or empty) just above the definition,
# in place of any lab note already there.
splice() {
  local f=$1 pos tmp
  pos=$(locate "$f" "$2")
  [ -n "$pos" ] || return 1
  tmp=$(mktemp)
  set -- "$f" "$2" "$3" "$4" $pos
  awk -v sl="$5" -v bl="$6" -v bc="$7" -v el="$8" -v ec="$9" \
      -v bodyf="$3" -v notef="$4" '
    BEGIN {
      while ((getline l < bodyf) > 0) body[++nb] = l
      while ((getline l < notef) > 0) note[++nn] = l
    }
    { src[NR] = $0 }
    END {
      # A lab note above the definition: "/*", "#### Lab" or "**Lab", ..., "*/".
      from = sl
      if (sl > 2 && src[sl - 1] ~ /^\*\/[ \t]*$/) {
        for (k = sl - 2; k >= 1 && src[k] !~ /^\/\*/; k--) ;
        if (k >= 1 && src[k] ~ /^\/\*[ \t]*$/ &&
            (src[k + 1] ~ /^#### Lab / || src[k + 1] ~ /^\*\*Lab /))
          from = k
      }
      for (i = 1; i < from; i++) print src[i]
      for (i = 1; i <= nn; i++) print note[i]
      for (i = sl; i < bl; i++) print src[i]
      pre = substr(src[bl], 1, bc - 1)
      post = substr(src[el], ec + 1)
      for (i = 1; i <= nb; i++) {
        s = body[i]
        if (i == 1) s = pre s
        if (i == nb) s = s post
        print s
      }
      for (i = el + 1; i <= NR; i++) print src[i]
    }' "$f" >"$tmp" && cat "$tmp" >"$f"
  local rc=$?
  rm -f "$tmp"
  return $rc
}

# params SIGNATURE NAME: the parameter names, one per line.
params() {
  printf '%s\n' "$1" | awk -v name="$2" '
    {
      s = $0
      if (!match(s, "(^|[^A-Za-z0-9_])" name "[ \t]*\\(")) exit
      s = substr(s, RSTART + RLENGTH)
      depth = 1; cur = ""
      for (i = 1; i <= length(s) && depth > 0; i++) {
        c = substr(s, i, 1)
        if (c == "(") depth++
        if (c == ")") depth--
        if ((c == "," && depth == 1) || depth == 0) { p[++n] = cur; cur = "" }
        else cur = cur c
      }
      for (k = 1; k <= n; k++) {
        q = p[k]
        if (match(q, /\(\*[ \t]*[A-Za-z_][A-Za-z0-9_]*/)) {     # int (*fn)(int)
          q = substr(q, RSTART + 2, RLENGTH - 2); gsub(/[ \t]/, "", q)
          print q; continue
        }
        sub(/\[.*$/, "", q)
        if (match(q, /[A-Za-z_][A-Za-z0-9_]*[ \t]*$/)) {
          w = substr(q, RSTART, RLENGTH); sub(/[ \t]+$/, "", w)
          if (w != "void" && q ~ /[A-Za-z_0-9*][ \t*]+[A-Za-z_]/) print w
        }
      }
    }'
}

# default_return SIGNATURE NAME: the statement a stub ends with.
default_return() {
  local type=${1%%"$2"*}
  type=$(echo "$type" |
         sed -E 's/\b(static|inline|extern)\b//g; s/^ +//; s/ +$//')
  case "$type" in
    *'*'*) echo "return 0;" ;;
    void) echo "" ;;
    bool) echo "return false;" ;;
    struct*|union*) echo "return ($type){0};" ;;
    *) echo "return 0;" ;;
  esac
}

# note LAB FIRST: the block comment put above a removed function. The first
# function of a lab gets the whole handout, its headings moved down four
# levels to sit under the lab's own heading ("# Hints" becomes "##### Hints").
note() {
  local lab=$1 first=$2 fn=$3 file=$4
  echo "/*"
  if [ "$first" = 1 ]; then
    echo "#### Lab \`$lab\`: $(lab_title "$lab")"
    echo
    lab_handout "$lab" | awk '
      /^(```|~~~)/ { fence = !fence }
      !fence && /^#+ / { print "####" $0; next }
      { print }'
  else
    echo "**Lab \`$lab\`, continued:** \`$fn\` in \`$file\` is yours to write"
    echo "too; the handout is \`labs/$lab.lab\`, shown in the book where the"
    echo "lab's first function is."
  fi
  echo "*/"
}

# stub FILE NAME LAB STATEMENTS: the stub body for NAME, written to stdout.
stub() {
  local f=$1 fn=$2 lab=$3 stmts=$4 sig p
  sig=$(signature "$f" "$fn")
  echo "{"
  echo "    // LAB $lab: write this function."
  echo "    // The handout: labs/$lab.lab, and the book, just above."
  for p in $(params "$sig" "$fn"); do echo "    (void)$p;"; done
  if [ -n "$KEEP" ]; then
    echo "    // Names only the removed code used: keep them, unused, for gcc."
    for p in $KEEP; do echo "    (void)$p;"; done
  fi
  [ -n "$stmts" ] || stmts=$(default_return "$sig" "$fn")
  # One statement a line: split after each ";" outside a string.
  [ -z "$stmts" ] || printf '%s\n' "$stmts" | awk '{
      out = ""; q = 0
      for (i = 1; i <= length($0); i++) {
        c = substr($0, i, 1); out = out c
        if (c == "\\" && q) { i++; out = out substr($0, i, 1); continue }
        if (c == "\"") q = !q
        if (c == ";" && !q) {
          sub(/^[ \t]+/, "", out); print "    " out; out = ""
        }
      }
      sub(/^[ \t]+/, "", out); if (out != "") print "    " out }'
  echo "}"
}

# stub_out TREE LAB: replace the lab's functions in TREE by stubs.
stub_out() {
  local tree=$1 lab=$2 first=1 kw file fn stmts
  local tb tn tk
  tb=$(mktemp); tn=$(mktemp); tk=$(mktemp)
  while read -r kw file fn stmts; do
    [ "$kw" = write ] || continue
    local f=$tree/$file
    [ -f "$f" ] || { rm -f "$tb" "$tn" "$tk"; die "$lab: no file $file"; }
    body "$f" "$fn" >"$tb" || { rm -f "$tb" "$tn" "$tk"
                                die "$lab: no function $fn in $file"; }
    code_only "$tb" | names >"$tk"
    note "$lab" "$first" "$fn" "$file" >"$tn"
    # The note is a block comment: "*/" would end it early, and "/*" in it
    # is a warning (-Wcomment), so an error with -Werror.
    if sed '1d;$d' "$tn" | grep -q -e '\*/' -e '/\*'; then
      rm -f "$tb" "$tn" "$tk"
      die "$lab: the handout may not contain '/*' or '*/'"
    fi
    KEEP="" stub "$f" "$fn" "$lab" "$stmts" >"$tb"
    splice "$f" "$fn" "$tb" "$tn" || die "$lab: could not replace $fn in $file"
    # Now that the body is gone, which static helpers does nothing use?
    KEEP=$(unused_after "$f" "$tk" | tr '\n' ' ')
    if [ -n "$KEEP" ]; then
      KEEP="$KEEP" stub "$f" "$fn" "$lab" "$stmts" >"$tb"
      : >"$tn"
      splice_keep_note "$f" "$fn" "$tb"
    fi
    first=0
  done < <(lab_directives "$lab")
  rm -f "$tb" "$tn" "$tk"
}

# splice_keep_note FILE NAME BODY-FILE: replace the body only.
splice_keep_note() {
  local pos tmp
  pos=$(locate "$1" "$2")
  tmp=$(mktemp)
  set -- "$1" "$2" "$3" $pos
  awk -v bl="$5" -v bc="$6" -v el="$7" -v ec="$8" -v bodyf="$3" '
    BEGIN { while ((getline l < bodyf) > 0) body[++nb] = l }
    { src[NR] = $0 }
    END {
      for (i = 1; i < bl; i++) print src[i]
      pre = substr(src[bl], 1, bc - 1); post = substr(src[el], ec + 1)
      for (i = 1; i <= nb; i++) {
        s = body[i]; if (i == 1) s = pre s; if (i == nb) s = s post; print s
      }
      for (i = el + 1; i <= NR; i++) print src[i]
    }' "$1" >"$tmp" && cat "$tmp" >"$1"
  rm -f "$tmp"
}

# restore_into TREE LAB: the original bodies (from this tree) back into
# TREE, and the lab notes out.
restore_into() {
  local tree=$1 lab=$2 kw file fn stmts tb empty
  tb=$(mktemp); empty=$(mktemp)
  while read -r kw file fn stmts; do
    [ "$kw" = write ] || continue
    body "$ROOT/$file" "$fn" >"$tb" || die "$lab: no function $fn in $file"
    splice "$tree/$file" "$fn" "$tb" "$empty" ||
      die "$lab: no function $fn in the student's $file"
  done < <(lab_directives "$lab")
  rm -f "$tb" "$empty"
}

# copy_tree DIR: this tree's files, without .git and build/, into DIR.
copy_tree() {
  rm -rf "$1" && mkdir -p "$1" || die "cannot create $1"
  (cd "$ROOT" && tar --exclude=./.git --exclude=./build -cf - .) |
    tar -C "$1" -xf -
}

cmd_make() {
  local dir="" labs=() lab
  while [ $# -gt 0 ]; do
    case "$1" in
      --dir) dir=${2:?--dir needs a directory}; shift 2 ;;
      *) labs+=("$1"); shift ;;
    esac
  done
  [ ${#labs[@]} -gt 0 ] ||
    die "which lab? make lab LAB=name (the labs: $(echo $(all_labs)))"
  for lab in "${labs[@]}"; do lab_exists "$lab"; done
  local IFS=-
  [ -n "$dir" ] || dir=$ROOT/build/labs/${labs[*]}
  unset IFS
  case "$dir" in /*) ;; *) dir=$PWD/$dir ;; esac
  dir=${dir%/}
  # Never overwrite anything but an old student tree, nor copy the tree
  # into itself.
  case "$dir" in
    "$ROOT"/build/?*) ;;
    "$ROOT"|"$ROOT"/*) die "$dir is inside this tree: use build/... or" \
                           "a directory outside it" ;;
  esac
  if [ -e "$dir" ] && [ ! -f "$dir/.lab" ] &&
     [ -n "$(ls -A "$dir" 2>/dev/null)" ]; then
    die "$dir exists and is not a student tree: not overwriting it"
  fi
  copy_tree "$dir"
  for lab in "${labs[@]}"; do stub_out "$dir" "$lab"; done
  printf '%s\n' "${labs[@]}" >"$dir/.lab"
  tar -C "$(dirname "$dir")" -czf "$dir.tar.gz" "$(basename "$dir")"
  echo "lab ${labs[*]}: the student tree is $dir"
  echo "  (and $dir.tar.gz); in it: make grade"
}

# ---------------------------------------------------------------------------
# Grading. Each test runs in its own bash, in the tree, under `timeout`;
# what it prints last is the reason shown when it fails.

cmd_grade() {
  local labs=("$@") lab total=0 score=0
  if [ ${#labs[@]} -eq 0 ]; then
    [ -f "$ROOT/.lab" ] ||
      die "this is not a student tree (no .lab file): make grade LAB=name"
    mapfile -t labs <"$ROOT/.lab"
  fi
  for lab in "${labs[@]}"; do lab_exists "$lab"; done
  for lab in "${labs[@]}"; do
    local out=$ROOT/build/grade/$lab
    rm -rf "$out"; mkdir -p "$out"
    echo "== lab $lab: $(lab_title "$lab")"
    local kw pts secs name cmd
    while read -r kw pts secs name cmd; do
      [ "$kw" = test ] || continue
      total=$((total + pts))
      local t0 t1 res rc
      t0=$(date +%s%N)
      res=$(cd "$ROOT" && LAB_OUT=build/grade/$lab LAB_LIMIT=$secs \
            timeout -k 5 "$secs" bash -c '. scripts/lab.sh --lib; '"$cmd" \
            </dev/null 2>&1)
      rc=$?
      t1=$(date +%s%N)
      local took
      took=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", (b - a) / 1e9 }')
      if [ $rc -eq 0 ]; then
        score=$((score + pts))
        printf '%-34s %3s/%-3s OK (%s s)\n' "$lab/$name" "$pts" "$pts" "$took"
      else
        local why
        why=$(printf '%s\n' "$res" | grep -v '^[[:space:]]*$' | tail -n 1)
        if [ $rc -eq 124 ] || [ $rc -eq 137 ]; then
          why="no answer within its time limit of $secs s"
        fi
        printf '%-34s %3s/%-3s FAIL (%s s): %s\n' "$lab/$name" 0 "$pts" \
          "$took" "${why:-exit status $rc}"
      fi
    done < <(lab_directives "$lab")
  done
  echo "Score: $score/$total"
  [ "$score" -eq "$total" ]
}

# --- Test helpers -------------------------------------------------------------
# Used inside a test's COMMAND (the tree is the current directory, LAB_OUT
# the grade's directory, LAB_LIMIT the test's time limit in seconds).

# boot ID ARCH [run.sh options]: build ARCH and its test guests, then
# ./run.sh ARCH once per grade for this ID; later tests reuse the log. Sets
# RUN_LOG and RUN_STATUS. The run gets --timeout (a little under the test's
# limit) and, unless given, --budget, so that a broken guest ends cleanly.
boot() {
  local id=$1 arch=$2; shift 2
  RUN_LOG=$LAB_OUT/$id.log
  if [ ! -f "$LAB_OUT/$id.status" ]; then
    if [ ! -f "$LAB_OUT/build-$arch.ok" ]; then
      if ! make --no-print-directory -s ARCH="$arch" all test-guests \
           >"$LAB_OUT/build-$arch.log" 2>&1; then
        echo "the $arch build failed: $(grep -m1 -E 'error|Error' \
          "$LAB_OUT/build-$arch.log") (log: $LAB_OUT/build-$arch.log)"
        return 1
      fi
      : >"$LAB_OUT/build-$arch.ok"
    fi
    local limit=${LAB_LIMIT:-60} budget=()
    case " $* " in
      *" --budget "*) ;;
      *) budget=(--budget $((limit / 2))) ;;
    esac
    ./run.sh "$arch" --timeout $((limit > 10 ? limit - 5 : limit)) \
      "${budget[@]}" --log "$RUN_LOG" "$@" >/dev/null 2>"$LAB_OUT/$id.err"
    echo $? >"$LAB_OUT/$id.status"
  fi
  RUN_STATUS=$(cat "$LAB_OUT/$id.status")
  return 0
}

status() {
  [ "$RUN_STATUS" = "$1" ] && return 0
  local last
  last=$(tr -d '\r' <"$RUN_LOG" 2>/dev/null |
         grep -E 'VM fault|panic|LAB|stopped' | head -n 1)
  echo "run.sh exited $RUN_STATUS, not $1${last:+: \"$last\"} (log: $RUN_LOG)"
  return 1
}

lines() {
  local why
  why=$(in_order "$RUN_LOG" "$@") && return 0
  echo "$why (log: $RUN_LOG)"
  return 1
}

none() {
  local why
  why=$(absent "$RUN_LOG" "$@") && return 0
  echo "$why (log: $RUN_LOG)"
  return 1
}

number_at_least() {
  local n
  n=$(tr -d '\r' <"$RUN_LOG" | grep -E "^$1[0-9]+" | head -n 1 |
      sed -E "s/^$1([0-9]+).*/\\1/")
  [ -n "$n" ] && [ "$n" -ge "$2" ] && return 0
  echo "wanted a line \"$1N\" with N >= $2, got ${n:-none} (log: $RUN_LOG)"
  return 1
}

# unit NAME-ERE...: the unit tests run once per grade, whatever their time;
# a test whose program never got that far has no line and fails.
unit() {
  local log=$LAB_OUT/unit.log e
  if [ ! -f "$LAB_OUT/unit.started" ]; then
    : >"$LAB_OUT/unit.started"
    tests/unit/run.sh >"$log.tmp" 2>&1
    mv "$log.tmp" "$log"
  fi
  [ -f "$log" ] || { echo "the unit tests did not finish in time"; return 1; }
  for e in "$@"; do
    local bad
    bad=$(grep -m1 -E "^FAIL ($e)(:| )" "$log") && { echo "$bad"; return 1; }
    grep -q -E "^PASS ($e)( |$)" "$log" && continue
    bad=$(grep -m1 -E '^FAIL .*(does not compile|stopped with status)' "$log")
    echo "no result for $e${bad:+; $bad}"
    return 1
  done
}

# ---------------------------------------------------------------------------
# make test: every lab is real.

# lab_arches LAB: the architectures whose build compiles the lab's files.
lab_arches() {
  lab_directives "$1" | awk '$1 == "write" { print $2 }' | sort -u |
    while read -r f; do
      case "$f" in
        riscv64.c|aarch64.c|x86_64.c) echo "${f%.c}" ;;
        *) ls "$ROOT"/riscv64.c "$ROOT"/aarch64.c "$ROOT"/x86_64.c 2>/dev/null |
             sed 's|.*/||; s|\.c$||' ;;
      esac
    done | sort -u | tr '\n' ' '
}

score_of() { sed -n 's/^Score: \([0-9]*\)\/.*/\1/p' "$1"; }

# check_one LAB: prints one PASS or FAIL line.
check_one() {
  local lab=$1 tree t0=$SECONDS why="" total
  tree=$(dirname "$ROOT")/$1
  rm -rf "$tree"
  "$ROOT/scripts/lab.sh" make "$lab" --dir "$tree" >/dev/null 2>"$tree.err" ||
    { echo "FAIL lab-$lab: make lab failed: $(tail -n 1 "$tree.err")"; return; }
  rm -f "$tree.tar.gz"
  total=$(lab_directives "$lab" |
          awk '$1 == "test" { s += $2 } END { print s + 0 }')
  # 1. The student tree builds with -Werror, on every architecture that
  #    compiles the files the lab changed.
  if ! make -C "$tree" --no-print-directory -s ARCH="$(lab_arches "$lab")" \
       all >"$tree.build" 2>&1; then
    echo "FAIL lab-$lab: the student tree does not build:" \
         "$(grep -m1 -E 'error' "$tree.build")"
    return
  fi
  # 2. As handed out it scores 0: every graded test fails.
  (cd "$tree" && scripts/lab.sh grade "$lab") >"$tree.stub" 2>&1
  local stub sol
  stub=$(score_of "$tree.stub")
  [ "$stub" = 0 ] ||
    why="as handed out it scores ${stub:-nothing}/$total, not 0 ($tree.stub)"
  # 3. The original bodies back: the sources are the originals again, byte
  #    for byte, and the grade is full marks.
  if [ -z "$why" ]; then
    (cd "$tree" && "$ROOT/scripts/lab.sh" restore . "$lab") 2>"$tree.err" ||
      why="restore failed: $(tail -n 1 "$tree.err")"
  fi
  if [ -z "$why" ]; then
    local f
    for f in $(lab_directives "$lab" | awk '$1 == "write" { print $2 }'); do
      cmp -s "$ROOT/$f" "$tree/$f" ||
        why="$f is not the original once its bodies are back"
    done
  fi
  if [ -z "$why" ]; then
    (cd "$tree" && scripts/lab.sh grade "$lab") >"$tree.solution" 2>&1
    sol=$(score_of "$tree.solution")
    [ "$sol" = "$total" ] ||
      why="the original bodies score ${sol:-nothing}/$total ($tree.solution)"
  fi
  if [ -z "$why" ]; then
    echo "PASS lab-$lab (builds; stub 0/$total, original $total/$total;" \
         "$((SECONDS - t0)) s)"
  else
    echo "FAIL lab-$lab: $why"
  fi
}

# check_book: the student edition of the book, with every lab handed out at
# once. tests/book-check.sh must pass there as it does here: a check that
# fails only in the student tree is the labs' fault. (Only when something
# fails there is the book checked here too, in a copy, for comparison.)
check_book() {
  local tree labs
  tree=$(dirname "$ROOT")/all
  mapfile -t labs < <(all_labs)
  "$ROOT/scripts/lab.sh" make "${labs[@]}" --dir "$tree" >/dev/null \
    2>"$tree.err" ||
    { echo "FAIL lab-book: make lab failed: $(tail -n 1 "$tree.err")"; return; }
  rm -f "$tree.tar.gz"
  (cd "$tree" && bash tests/book-check.sh) >"$tree.book" 2>&1
  local n
  n=$(grep -c '^#### Lab `' "$tree"/*.c | awk -F: '{ s += $2 } END { print s }')
  if [ "$n" != "${#labs[@]}" ]; then
    echo "FAIL lab-book: $n handouts in the student sources, not ${#labs[@]}"
    return
  fi
  local wide
  wide=$(cd "$tree" && for f in *.c; do
           diff "$ROOT/$f" "$f" | sed -n 's/^> //p' | awk -v f="$f" \
             'length > 80 { print f ": " substr($0, 1, 40) "..."; exit }'
         done | head -n 1)
  [ -z "$wide" ] ||
    { echo "FAIL lab-book: a line over 80 columns: $wide"; return; }
  local failed new="" c
  failed=$(sed -n 's/^FAIL \([^:]*\):.*/\1/p' "$tree.book")
  if [ -n "$failed" ]; then
    (cd "$ROOT" && bash tests/book-check.sh) >"$ROOT.book" 2>&1
    for c in $failed; do
      grep -q "^FAIL $c:" "$ROOT.book" || new="$new $c"
    done
  fi
  if [ -n "$new" ]; then
    echo "FAIL lab-book: the student book fails what the book passes:$new" \
         "(see $tree.book)"
  else
    local as="book-check passes"
    [ -z "$failed" ] ||
      as="book-check as in this tree, which fails $(echo $failed)"
    echo "PASS lab-book (${#labs[@]} handouts in the student book; $as)"
  fi
}

cmd_check() {
  local labs=("$@") book=()
  [ ${#labs[@]} -gt 0 ] || book=(book)
  if [ -f "$ROOT/.lab" ]; then
    echo "(a student tree: the labs are checked in the full tree)"
    return 0
  fi
  [ ${#labs[@]} -gt 0 ] || mapfile -t labs < <(all_labs)
  # Everything is checked against one snapshot of this tree, taken now, so
  # that an edit made meanwhile cannot tell the original from the restored.
  local src=$ROOT/build/labs-check/src
  mkdir -p "$ROOT/build/labs-check"
  copy_tree "$src"
  # Three jobs at a time, the longest first (the book, then the labs that
  # run the unit tests): most of a job's time is QEMU's guests waiting for
  # their timers and mtools writing disk images, so three keep two cores
  # busy.
  local l first=() rest=()
  for l in "${labs[@]}"; do
    if lab_directives "$l" | grep -q -E '^test .* unit '; then first+=("$l")
    else rest+=("$l"); fi
  done
  printf '%s\n' "${book[@]}" "${first[@]}" "${rest[@]}" |
    xargs -P 3 -I{} "$src/scripts/lab.sh" check-one {}
}

# ---------------------------------------------------------------------------
if [ "${1:-}" = --lib ]; then
  . "$ROOT/tests/lib.sh"
  return 0 2>/dev/null || exit 0
fi

case "${1:-}" in
  list) for l in $(all_labs); do
          printf '%-14s %s\n' "$l" "$(lab_title "$l")"
        done ;;
  make) shift; cmd_make "$@" ;;
  grade) shift; cmd_grade "$@" ;;
  restore) shift; t=${1:?restore needs a student tree}; shift
           [ $# -gt 0 ] || mapfile -t rest <"$t/.lab"
           for l in "${@:-${rest[@]}}"; do
             lab_exists "$l"; restore_into "$t" "$l"
           done ;;
  check) shift; cmd_check "$@" ;;
  check-one) # from cmd_check only: this tree is its snapshot
             [ "$(basename "$(dirname "$ROOT")")" = labs-check ] ||
               die "check-one runs in the snapshot that check makes"
             if [ "$2" = book ]; then check_book; else check_one "$2"; fi ;;
  locate) locate "$2" "$3" ;;
  body) body "$2" "$3" ;;
  *) sed -n '2,/^$/s/^# \{0,1\}//p' "$0"; exit 2 ;;
esac
