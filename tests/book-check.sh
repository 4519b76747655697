#!/bin/sh
# tests/book-check.sh: the book shows every line of every source file exactly once.
#
# `make book` weaves the sources into build/book/book.json, and book/map.lua lists,
# from that very document, each piece the book shows (build/book/map.tsv: kind,
# file, first line, last line) and the text of every listing
# (build/book/listings.txt). This script checks those against the sources:
#
#   book-builds    make book succeeds and writes the HTML and the EPUB
#   book-files     the files woven are exactly the source files (*.c *.h *.S *.ld
#                  at the top level and under start/ and guest/)
#   book-tiling    each file's pieces, in book order, run 1..N with no gap and
#                  no overlap, and a file is woven in one place only
#   book-listings  every listing shows its lines exactly as the source has them
#   book-pieces    a prose piece is a comment from column 0 to its "*/"; a
#                  piece left out of sight holds only blank lines
#   book-html      the HTML book is paged: a contents page that links to every
#                  chapter's page, and every page has previous/next links;
#                  C is highlighted as C, assembler as GNU assembler for its
#                  architecture, linker scripts not as C; the EPUB is one

#   book-raw-html  no raw HTML (or TeX) reaches the book from a source file or
#                  a chapter's Markdown: "ICH_LR<n>_EL2" must stay text
#   book-columns   no line of a file woven into the book is wider than 80
#                  columns, so listings fit a laptop's column
#   book-epub      epubcheck finds no error and no fatal error in the EPUB
#   book-browser-* headless Chromium reads every page at 1366x900 and 390x844:
#                  no page scrolls sideways, no internal link is broken, no
#                  console error (tests/book-browser.py; screenshots in
#                  build/book/shots/)
#
# Output: one line per check, "PASS name" or "FAIL name: why"; the exit status
# is non-zero if any check failed.

cd "$(dirname "$0")/.." || exit 1
BUILD=${B:-build}   # B=dir: build and check the book in dir/book
B=$BUILD/book
failed=0
pass() { echo "PASS $1"; }
fail() { echo "FAIL $1: $2"; failed=1; }
tmp=$(mktemp -d) || exit 1
trap 'rm -rf "$tmp"' EXIT INT TERM

# --- book-builds -----------------------------------------------------------
if ! command -v pandoc >/dev/null 2>&1; then
    fail book-builds "pandoc not found (Debian/Ubuntu: apt-get install pandoc; Fedora: dnf install pandoc; Arch: pacman -S pandoc; macOS: brew install pandoc)"
    exit 1
fi
# -B: weave afresh, so that a source file deleted since the last build is noticed.
if ! make -s -B book B="$BUILD" >"$tmp/make.log" 2>&1; then

    fail book-builds "make book failed: $(grep -v '^weave:' "$tmp/make.log" | tail -n 3 | tr '\n' ' ')"
    exit 1
fi
for f in index.html hvbook.epub map.tsv listings.txt; do
    if [ ! -s "$B/$f" ]; then fail book-builds "make book did not write $B/$f"; exit 1; fi
done
pass book-builds

# --- book-files ------------------------------------------------------------
{ find . -maxdepth 1 -type f \( -name '*.c' -o -name '*.h' -o -name '*.S' -o -name '*.ld' \)
  for d in start guest; do
      [ -d "$d" ] && find "$d" -type f \( -name '*.c' -o -name '*.h' -o -name '*.S' -o -name '*.ld' \)
  done; } | sed 's|^\./||' | LC_ALL=C sort >"$tmp/sources"
cut -f2 "$B/map.tsv" | LC_ALL=C sort -u >"$tmp/woven"
missing=$(LC_ALL=C comm -23 "$tmp/sources" "$tmp/woven" | tr '\n' ' ' | sed 's/ $//')
extra=$(LC_ALL=C comm -13 "$tmp/sources" "$tmp/woven" | tr '\n' ' ' | sed 's/ $//')
if [ ! -s "$tmp/sources" ]; then
    fail book-files "found no source files at all"
elif [ -n "$missing" ]; then
    fail book-files "not in the book (add to book/chapters.txt): $missing"
elif [ -n "$extra" ]; then
    fail book-files "in the book but not a source file: $extra"
else
    pass book-files
fi

# --- book-tiling -----------------------------------------------------------
# Line counts as awk sees them (a last line without a newline still counts).
while read -r f; do
    printf '%s\t%s\n' "$f" "$(awk 'END { print NR }' "$f")"
done <"$tmp/woven" >"$tmp/lengths"
why=$(awk -F '\t' '
    FNR == NR { len[$1] = $2; next }
    {
        f = $2; a = $3 + 0; b = $4 + 0
        if (f in done) { if (!(f in twice)) say(sprintf("%s is woven in two places", f)); twice[f] = 1; next }
        if (cur != "" && f != cur) finish()
        if (f != cur) { cur = f; next_line = 1 }
        if (a < next_line) say(sprintf("%s lines %d-%d shown twice", f, a, (b < next_line - 1 ? b : next_line - 1)))
        else if (a > next_line) say(sprintf("%s lines %d-%d missing", f, next_line, a - 1))
        if (b < a) say(sprintf("%s has an empty piece %d-%d", f, a, b))
        if (b + 1 > next_line) next_line = b + 1
    }
    function finish() {
        if (next_line - 1 < len[cur]) say(sprintf("%s lines %d-%d missing", cur, next_line, len[cur]))
        if (next_line - 1 > len[cur]) say(sprintf("%s has %d lines but the book shows up to line %d", cur, len[cur], next_line - 1))
        done[cur] = 1
    }
    # Name the first five problems, count the rest.
    function say(m) { if (++nerr <= 5) err = err (nerr > 1 ? "; " : "") m }
    END {
        if (cur != "") finish()
        if (nerr > 5) err = err sprintf("; and %d more", nerr - 5)
        printf "%s", err
    }
' "$tmp/lengths" "$B/map.tsv")
if [ -n "$why" ]; then fail book-tiling "$why"; else pass book-tiling; fi

# --- book-listings ---------------------------------------------------------
# listings.txt: "@@ file first last", then exactly last-first+1 lines of text.
why=$(awk '
    function load(f,   l, n) {
        if (f in loaded) return
        loaded[f] = 1; n = 0
        while ((getline l < f) > 0) src[f, ++n] = l
        close(f)
    }
    need > 0 {
        line++; need--
        if ($0 != src[f, line]) { bad++; if (bad <= 3) err = err sprintf("%s:%d differs from the source; ", f, line) }
        next
    }
    /^@@ / { f = $2; line = $3 - 1; need = $4 - $3 + 1; load(f); pieces++; next }
    { bad++; if (bad <= 3) err = err sprintf("unexpected text after the listing of %s:%d; ", f, line) }
    END {
        if (need > 0) err = err sprintf("the listing of %s stops short at line %d; ", f, line)
        if (pieces == 0) err = err "the book has no listings at all; "
        printf "%s", err
    }
' "$B/listings.txt")
if [ -n "$why" ]; then fail book-listings "$why"; else pass book-listings; fi

# --- book-pieces -----------------------------------------------------------
why=$(awk -F '\t' '
    function load(f,   l, n) {
        if (f in loaded) return
        loaded[f] = 1; n = 0
        while ((getline l < f) > 0) src[f, ++n] = l
        close(f)
    }
    {
        load($2)
        if ($1 == "prose") {
            if (src[$2, $3] !~ /^\/\*/) err = err sprintf("%s:%d: prose that does not open a comment at column 0; ", $2, $3)
            if (src[$2, $4] !~ /\*\/[ \t]*$/) err = err sprintf("%s:%d: prose that does not end with */; ", $2, $4)
        } else if ($1 == "blank") {
            for (i = $3; i <= $4; i++)
                if (src[$2, i] !~ /^[ \t\r]*$/) { err = err sprintf("%s:%d is hidden but not blank; ", $2, i); break }
        } else if ($1 != "code") err = err sprintf("unknown piece kind %s; ", $1)
    }
    END { printf "%s", err }
' "$B/map.tsv")
if [ -n "$why" ]; then fail book-pieces "$why"; else pass book-pieces; fi

# epubcheck takes half a minute: let it run while the other checks do.
if command -v epubcheck >/dev/null 2>&1 && command -v java >/dev/null 2>&1; then
    java -jar "$(readlink -f "$(command -v epubcheck)")" "$B/hvbook.epub" \
        >"$tmp/epubcheck.log" 2>&1 &
    epub_pid=$!
else
    epub_pid=
fi

# --- book-html -------------------------------------------------------------
why=
pages=$(tr '\n' ' ' <"$B/pages.txt" 2>/dev/null)
case " $pages " in *" index "*) ;; *) why="$why no contents page (index) in pages.txt;" ;; esac
for p in $pages; do
    f=$B/$p.html
    if [ ! -s "$f" ]; then why="$why $f is missing;"; continue; fi
    [ "$p" = index ] || grep -q "href=\"$p.html\"" "$B/index.html" ||
        why="$why the contents do not link to $p.html;"
    grep -q 'rel="prev"' "$f" || [ "$p" = index ] || why="$why $p.html has no previous link;"
    grep -q 'rel="next"' "$f" || [ "$p" = "$(tail -n 1 "$B/pages.txt")" ] ||
        why="$why $p.html has no next link;"
    grep -q 'href="index.html"' "$f" || why="$why $p.html has no way back to the contents;"
done
grep -l 'class="sourceCode c' "$B"/*.html >/dev/null 2>&1 || why="$why no highlighted C;"
# Assembler as GNU assembler for its architecture; linker scripts not as C.
for a in riscv64 aarch64 x86_64; do
    [ -f "start/$a.S" ] || continue
    grep -q "class=\"sourceCode gas$(echo $a | tr -d _)\"" "$B"/*.html ||
        why="$why start/$a.S is not highlighted as GNU assembler for $a;"
done
grep -l 'id="[^"]*-ld-[0-9]*"[^>]*><pre class="sourceCode numberSource c ' "$B"/*.html \
    >/dev/null 2>&1 && why="$why a linker script is highlighted as C;"

[ "$(head -c 58 "$B/hvbook.epub" | tail -c 20)" = "application/epub+zip" ] || why="$why hvbook.epub is not an EPUB;"
if [ -n "$why" ]; then fail book-html "$why"; else pass book-html; fi

# --- book-raw-html ---------------------------------------------------------
# The weaver reads Markdown without raw HTML, so none should be in the woven
# document; any that is would reach the pages and the EPUB unescaped.
raw=$(grep -o '"t":"Raw\(Inline\|Block\)","c":\[[^]]*\]' "$B/book.json" | head -n 5 | tr '\n' ' ')
if [ -n "$raw" ]; then fail book-raw-html "raw markup in the woven book: $raw"; else pass book-raw-html; fi

# --- book-columns ----------------------------------------------------------
# The sources are ASCII, so awk's length is the width in columns.
why=$(awk 'length > 80 { n[FILENAME]++; if (!(FILENAME in at)) at[FILENAME] = FNR }
           END { for (f in n) printf "%s (%d, first at line %d); ", f, n[f], at[f] }' \
      $(cat "$tmp/woven") | sed 's/; $//')
if [ -n "$why" ]; then fail book-columns "lines over 80 columns: $why"; else pass book-columns; fi

# --- book-browser-* --------------------------------------------------------
if command -v python3 >/dev/null 2>&1; then
    python3 tests/book-browser.py "$B" || failed=1
else
    fail book-browser "python3 not found (scripts/deps.sh --book installs it)"
fi

# --- book-epub -------------------------------------------------------------
if [ -z "$epub_pid" ]; then
    fail book-epub "epubcheck not found (scripts/deps.sh --book installs it)"
else
    wait "$epub_pid"
    counts=$(grep -o '^Messages: .*' "$tmp/epubcheck.log")
    if [ -z "$counts" ] && grep -q '^No errors or warnings detected' "$tmp/epubcheck.log"; then
        pass book-epub
    elif echo "$counts" | grep -Eq '^Messages: 0 fatals? / 0 errors'; then
        pass book-epub
    else
        fail book-epub "epubcheck: ${counts:-did not run}; first: $(grep -m 2 -E '^(FATAL|ERROR)' "$tmp/epubcheck.log" | cut -c 1-200 | tr '\n' ' ')"
    fi
fi

exit $failed
