# make book: weave the sources into build/book/index.html and build/book/hvbook.epub.
#
# Pandoc is the only tool. book/weave.lua (a pandoc custom reader) follows
# book/chapters.txt and turns every source file into prose and listings; the
# woven document is kept as JSON so the HTML, the EPUB and the map of pieces
# (book/map.lua, read by tests/book-check.sh) all come from the same text.

BOOK_DIR   := $(B)/book
BOOK_SRCS  := $(wildcard *.c *.h *.S *.ld $(foreach d,start guest,$(d)/*.c $(d)/*.h $(d)/*.S $(d)/*.ld))
BOOK_PROSE := $(wildcard book/*.md book/*.svg) book/chapters.txt book/metadata.yaml
BOOK_TOOLS := book/weave.lua book/map.lua book/book.mk
BOOK_META  := --metadata-file=book/metadata.yaml --number-sections --toc --toc-depth=2 \
              --highlight-style=tango

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

$(BOOK_DIR)/index.html: $(BOOK_DIR)/book.json book/book.css $(wildcard book/*.svg)
	pandoc $< -s $(BOOK_META) --self-contained --css=book/book.css \
	  --section-divs -t html5 -o $@

$(BOOK_DIR)/hvbook.epub: $(BOOK_DIR)/book.json book/epub.css $(wildcard book/*.svg)
	pandoc $< $(BOOK_META) --css=book/epub.css -t epub3 -o $@
