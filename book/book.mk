# make book: weave the sources into the HTML book (build/book/index.html and
# one page per chapter) and build/book/hvbook.epub.
#
# Pandoc is the only tool. book/weave.lua (a pandoc custom reader) follows
# book/chapters.txt and turns every source file into prose and listings; the
# woven document is kept as JSON so the pages, the EPUB and the map of pieces
# (book/map.lua, read by tests/book-check.sh) all come from the same text.
# book/page.lua cuts it into pages, which book/page.html lays out; every page
# is a self-contained file (its style and figures inside) that opens from disk.

BOOK_DIR   := $(B)/book
BOOK_SRCS  := $(wildcard *.c *.h *.S *.ld $(foreach d,start guest,$(d)/*.c $(d)/*.h $(d)/*.S $(d)/*.ld))
BOOK_PROSE := $(wildcard book/*.md book/*.svg) book/chapters.txt book/metadata.yaml
BOOK_TOOLS := book/weave.lua book/map.lua book/book.mk
BOOK_SYNTAX := $(wildcard book/syntax/*.xml)
BOOK_HL    := --highlight-style=tango $(foreach f,$(BOOK_SYNTAX),--syntax-definition=$(f))
BOOK_PAGE  := --metadata-file=book/metadata.yaml $(BOOK_HL) --template=book/page.html \
              --self-contained --css=book/book.css -t html5

.PHONY: book
book: $(BOOK_DIR)/index.html $(BOOK_DIR)/hvbook.epub $(BOOK_DIR)/map.tsv

$(BOOK_DIR)/book.json: $(BOOK_SRCS) $(BOOK_PROSE) $(BOOK_TOOLS)
	@mkdir -p $(@D)
	@command -v pandoc >/dev/null || { echo "make book needs pandoc: apt-get install pandoc (or dnf/pacman/brew install pandoc)"; exit 1; }
	pandoc -f book/weave.lua book/chapters.txt -t json -o $@

# map.tsv and listings.txt are written together.
$(BOOK_DIR)/map.tsv: $(BOOK_DIR)/book.json book/map.lua
	pandoc $< -L book/map.lua -t plain -o /dev/null \
	  -M map=$(BOOK_DIR)/map.tsv -M listings=$(BOOK_DIR)/listings.txt

# index.html is the contents; every chapter is a page of its own, named after
# the chapter's first file (riscv64.html). Two pandocs at a time.
$(BOOK_DIR)/index.html: $(BOOK_DIR)/book.json book/page.lua book/page.html book/book.css \
                        $(wildcard book/*.svg) $(BOOK_SYNTAX)
	rm -f $(BOOK_DIR)/*.html
	pandoc $< -L book/page.lua -M page=list -t plain >$(BOOK_DIR)/pages.txt
	xargs -P 2 -I @ pandoc $< -L book/page.lua -M page=@ $(BOOK_PAGE) \
	  -o $(BOOK_DIR)/@.html <$(BOOK_DIR)/pages.txt

$(BOOK_DIR)/hvbook.epub: $(BOOK_DIR)/book.json book/page.lua book/epub.css \
                         $(wildcard book/*.svg) $(BOOK_SYNTAX)
	pandoc $< -L book/page.lua -M page=epub --metadata-file=book/metadata.yaml \
	  --toc --toc-depth=2 $(BOOK_HL) --css=book/epub.css -t epub3 -o $@
