--[[ book/map.lua: list what the finished book shows, as a Lua filter.

  pandoc build/book/book.json -L book/map.lua -t plain -o /dev/null \
      -M map=build/book/map.tsv -M listings=build/book/listings.txt

It reads the woven document (the one the HTML and EPUB are made from) and writes

  map.tsv       one line per piece, in book order:  kind <TAB> file <TAB> first <TAB> last
                (kind is prose, code or blank)
  listings.txt  for every code piece a line "@@ file first last", then the
                text of the listing exactly as the book shows it

tests/book-check.sh compares both with the sources. ]]

local function meta_str(m)
  if m == nil then return nil end
  return pandoc.utils.stringify(m)
end

function Pandoc(doc)
  local map = assert(io.open(meta_str(doc.meta.map), "w"))
  local lst = assert(io.open(meta_str(doc.meta.listings), "w"))
  local function visit(blocks)
    for _, b in ipairs(blocks) do
      if b.t == "Div" then
        local a = b.attributes
        if b.classes:includes("piece") then
          map:write(a["data-kind"], "\t", a["data-file"], "\t", a["data-first"], "\t", a["data-last"], "\n")
          if a["data-kind"] == "code" then
            for _, c in ipairs(b.content) do
              if c.t == "CodeBlock" then
                lst:write("@@ ", a["data-file"], " ", a["data-first"], " ", a["data-last"], "\n", c.text, "\n")
              end
            end
          end
        else
          visit(b.content)
        end
      end
    end
  end
  visit(doc.blocks)
  map:close()
  lst:close()
  return doc
end
