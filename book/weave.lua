--[[ book/weave.lua: the weaver, a pandoc custom reader.

  pandoc -f book/weave.lua book/chapters.txt -t json -o build/book/book.json

The input is book/chapters.txt: one chapter per line, naming, in reading order,
Markdown files that live in book/ (anything ending in .md) and source files of
the repository (paths from its top). A line that starts with white space
continues the chapter above; '#' starts a comment line. A chapter opens with
a Markdown file whose "# Title" names it, or with a source file, whose own
highest heading then becomes the chapter's title.

A source file is cut into pieces:

  prose  a block comment whose "/*" is at column 0 and whose "*/" ends a line:
         its text is Markdown, parsed and spliced into the chapter; the
         file's highest heading becomes a section of the chapter;
  code   the lines between two prose pieces, shown as one highlighted listing
         labelled "file:first–last";
  blank  blank lines at either end of a code run, which are not shown.

Every piece leaves an invisible marker in the document (a Div with class
"piece" and attributes data-kind, data-file, data-first, data-last; a listing
carries them itself), so book/map.lua can later list, from the finished
document, which lines of which file the book shows. tests/book-check.sh checks
that list against the sources; book/page.lua drops the empty markers from the
HTML and the EPUB.

A listing's code block is named after its file and first line
("riscv64-c-120"), its lines after their own numbers ("riscv64-c-120-125"), so
the anchor moves only when its own file changes above it, never because
another file or chapter did; its label links to it. A heading's anchor comes
from its text, with the chapter's page in front when several chapters have a
heading of that name ("riscv64-exercises"). Listings are highlighted as C, as
GNU assembler for their architecture (book/syntax/*.xml), or not at all
(linker scripts).


Prose is Markdown without raw HTML or TeX: "ICH_LR<n>_EL2" in a comment is
text, not an element. Inline code that a comment breaks over two lines loses
the indentation of the second line.

Chapters are numbered (1, 2, ...) and so are their sections (5.1, 5.2, ...),
by the weaver, for the HTML pages and the EPUB alike; deeper headings are not.
A source file may number its own sections by hand ("## 3. Stage 2"): the
weaver drops that number and turns the chapter's "section 3" into a link to
the section, with the book's number ("section 7.3"). The first heading of
each chapter carries data-page, the name of the chapter's HTML page: the name
of the chapter's first file, without directory or extension.

A source file that does not exist is skipped with a note on stderr, and a
chapter whose source files are all missing is left out: the Arm chapter can be
listed before aarch64.c lands. A missing Markdown file is an error. ]]

local BOOKDIR = "book/"

local function read_file(path)
  local f = io.open(path, "rb")
  if not f then return nil end
  local s = f:read("a")
  f:close()
  return s
end

local function split_lines(s)
  local lines = {}
  for line in s:gmatch("([^\n]*)\n") do lines[#lines + 1] = line end
  local rest = s:match("([^\n]*)$")
  if rest ~= "" then lines[#lines + 1] = rest end -- no final newline
  for i, l in ipairs(lines) do lines[i] = l:gsub("\r$", "") end
  return lines
end

local function is_blank(l) return l:match("^%s*$") ~= nil end

-- The class of a listing: a skylighting syntax, or one pandoc does not know
-- (then the listing is not highlighted).
local function lang_of(file)
  local ext = file:match("%.([^./]+)$") or ""
  if ext == "c" or ext == "h" then return "c" end
  if ext == "S" or ext == "s" then
    for _, arch in ipairs({ "riscv64", "aarch64", "x86_64" }) do
      if file:find(arch, 1, true) then return "gas" .. arch:gsub("_", "") end
    end
  end
  if ext == "ld" then return "linkerscript" end
  return "plaintext"
end

local function slug(s) return (s:gsub("[^%w]", "-")) end

-- Inline code a line break ran through: pandoc keeps the next line's
-- indentation as spaces. A span whose text is not in the source as it
-- stands was broken over lines; squeeze its runs of spaces to one.
local function fix_code_spans(blocks, text)
  local function code(c)
    if c.text:find("  ", 1, true) and not text:find(c.text, 1, true) then
      c.text = c.text:gsub("  +", " ")
      return c
    end
  end
  local out = {}
  for _, b in ipairs(blocks) do out[#out + 1] = pandoc.walk_block(b, { Code = code }) end
  return out
end

local READER = "markdown-raw_html-raw_tex-raw_attribute"
local function markdown(text)
  return fix_code_spans(pandoc.read(text, READER).blocks, text)
end

-- The Markdown inside a prose comment spanning lines[a..b].
local function prose_text(lines, a, b)
  local body = {}
  for i = a, b do body[#body + 1] = lines[i] end
  body[1] = body[1]:gsub("^/%*+ ?", "")
  body[#body] = body[#body]:gsub("%s*%*+/%s*$", "")
  -- Continuation lines: drop a " * " gutter if every line has one, else the
  -- indentation they all share ("/* text\n   text */").
  local gutter, indent = true, math.huge
  for i = 2, #body do
    local l = body[i]
    if not is_blank(l) then
      if not l:match("^%s*%*") then gutter = false end
      indent = math.min(indent, #l:match("^ *"))
    end
  end
  if #body > 1 then
    for i = 2, #body do
      if gutter then
        body[i] = body[i]:gsub("^%s*%* ?", "")
      elseif indent ~= math.huge then
        body[i] = body[i]:sub(indent + 1)
      end
    end
  end
  return table.concat(body, "\n")
end

local function piece_attrs(kind, file, a, b)
  return { ["data-kind"] = kind, ["data-file"] = file,
           ["data-first"] = tostring(a), ["data-last"] = tostring(b) }
end

local function marker(kind, file, a, b)
  return pandoc.Div({}, pandoc.Attr("", { "piece" }, piece_attrs(kind, file, a, b)))
end

-- Cut one source file into pieces; append their blocks to `out`. The file's
-- highest heading gets level `top`: 1 if the file opens its chapter, else 2.
local function weave_file(file, out, top, hand)
  local lines = split_lines(read_file(file))
  local n = #lines
  local lang = lang_of(file)
  local blocks, headers = {}, {}

  local function code(a, b) -- lines a..b, not part of any prose piece
    while a <= b and is_blank(lines[a]) do a = a + 1 end
    while b >= a and is_blank(lines[b]) do b = b - 1 end
    if a > b then return end
    local text = table.concat(lines, "\n", a, b)
    local range = a == b and tostring(a) or (a .. "–" .. b)
    local id = slug(file) .. "-" .. a
    local classes = { "piece", "listing" }
    if b - a < 3 then classes[#classes + 1] = "short" end
    blocks[#blocks + 1] = pandoc.Div({
      pandoc.Div({ pandoc.Plain({ pandoc.Link({ pandoc.Str(file .. ":" .. range) },
                                              "#" .. id) }) },
                 pandoc.Attr("", { "label" })),
      pandoc.CodeBlock(text, pandoc.Attr(id, { lang, "numberLines" },
                                         { startFrom = tostring(a) })),
    }, pandoc.Attr("", classes, piece_attrs("code", file, a, b)))
  end

  local function code_run(a, b) -- code a..b with its blank ends marked
    local s, e = a, b
    while s <= e and is_blank(lines[s]) do s = s + 1 end
    while e >= s and is_blank(lines[e]) do e = e - 1 end
    if s > e then
      if a <= b then blocks[#blocks + 1] = marker("blank", file, a, b) end
      return
    end
    if s > a then blocks[#blocks + 1] = marker("blank", file, a, s - 1) end
    code(s, e)
    if e < b then blocks[#blocks + 1] = marker("blank", file, e + 1, b) end
  end

  local i, code_start = 1, 1
  while i <= n do
    local j = nil
    if lines[i]:match("^/%*") then
      -- find the line that closes this comment
      local from = 3
      for k = i, n do
        local p = lines[k]:find("*/", from, true)
        if p then
          if lines[k]:sub(p + 2):match("^%s*$") then j = k end
          break
        end
        from = 1
      end
    end
    if j then
      code_run(code_start, i - 1)
      blocks[#blocks + 1] = marker("prose", file, i, j)
      for _, b in ipairs(markdown(prose_text(lines, i, j))) do
        if b.t == "Header" then
          headers[#headers + 1] = b
        end
        blocks[#blocks + 1] = b
      end
      i = j + 1
      code_start = i
    else
      i = i + 1
    end
  end
  code_run(code_start, n)

  -- The file's highest heading becomes the chapter's title (level 1) or a
  -- section of the chapter (level 2), whether its author wrote it as "#" or
  -- "##"; the levels below follow in rank, without gaps ("#" then "###"
  -- become 2 and 3). A file that does not open with a heading of its own
  -- gets its name as one.
  local used, rank = {}, {}
  for _, h in ipairs(headers) do used[h.level] = true end
  local r = top
  for lvl = 1, 6 do
    if used[lvl] then rank[lvl] = math.min(r, 6); r = r + 1 end
  end
  for _, h in ipairs(headers) do h.level = rank[h.level] end
  -- Sections numbered by hand ("## 3. Stage 2"): keep the number aside, for
  -- the chapter's "section 3", and drop it from the title.
  for _, h in ipairs(headers) do
    local c = h.content
    if h.level == 2 and #c >= 3 and c[1].t == "Str" and c[2].t == "Space" then
      local n = c[1].text:match("^(%d+)%.$")
      if n then
        c:remove(1); c:remove(1)
        hand[#hand + 1] = { n = n, header = h }
      end
    end
  end
  local opening
  for _, b in ipairs(blocks) do
    if not (b.t == "Div" and #b.content == 0) then opening = b; break end
  end
  if not (opening and opening.t == "Header" and opening.level == top) then
    out[#out + 1] = pandoc.Header(top, { pandoc.Code(file) },
      pandoc.Attr("file-" .. file:gsub("[^%w]", "-")))
  end
  for _, b in ipairs(blocks) do out[#out + 1] = b end
end

local function parse_chapters(text)
  local chapters = {}
  for line in text:gmatch("[^\n]+") do
    if line:match("^%s*#") or is_blank(line) then
      -- comment or empty
    elseif line:match("^%s") and #chapters > 0 then
      for w in line:gmatch("%S+") do table.insert(chapters[#chapters], w) end
    else
      local ch = {}
      for w in line:gmatch("%S+") do ch[#ch + 1] = w end
      chapters[#chapters + 1] = ch
    end
  end
  return chapters
end

function Reader(input, opts)
  local text = tostring(input)
  local out, absent, chapters = {}, {}, {}
  for _, ch in ipairs(parse_chapters(text)) do
    local nsrc, present = 0, 0
    for _, item in ipairs(ch) do
      if not item:match("%.md$") then
        nsrc = nsrc + 1
        if read_file(item) then present = present + 1
        else absent[#absent + 1] = item end
      end
    end
    if nsrc == 0 or present > 0 then
      local opener, hand, first = true, {}, #out + 1
      for _, item in ipairs(ch) do
        if item:match("%.md$") then
          local md = read_file(BOOKDIR .. item)
          if not md then error("weave: " .. BOOKDIR .. item .. " is missing") end
          for _, b in ipairs(markdown(md)) do out[#out + 1] = b end
          opener = false
        elseif read_file(item) then
          weave_file(item, out, opener and 1 or 2, hand)
          opener = false
        end
      end
      chapters[#chapters + 1] = { first = first, last = #out, hand = hand,
                                  page = ch[1]:match("([^/]+)%.[^.]+$") }
    end
  end

  if #absent > 0 then
    io.stderr:write("weave: not written yet, left out: ", table.concat(absent, " "), "\n")
  end

  -- Number chapters and their sections; pandoc is told to number nothing.
  -- A heading keeps its number in a span, as pandoc's own numbering would.
  local chap, sect, numbered = 0, 0, false
  for _, b in ipairs(out) do
    if b.t == "Header" and b.level <= 2 then
      local num
      if b.level == 1 then
        numbered = not b.classes:includes("unnumbered")
        if numbered then chap = chap + 1; sect = 0; num = tostring(chap) end
      elseif numbered and not b.classes:includes("unnumbered") then
        sect = sect + 1
        num = chap .. "." .. sect
      end
      if num then
        b.attributes["data-number"] = num
        b.content:insert(1, pandoc.Space())
        b.content:insert(1, pandoc.Span({ pandoc.Str(num) },
                                        pandoc.Attr("", { "header-section-number" })))
      end
    end
  end

  -- Headings were parsed piece by piece, so identifiers may repeat
  -- ("exercises" in every chapter). An identifier that more than one
  -- chapter uses gets its chapter's page name in front of it everywhere
  -- ("riscv64-exercises"); one a chapter repeats gets -2, -3 after it. An
  -- anchor then depends on its heading and its chapter, not on what other
  -- chapters hold, and a link to it stays right when they change.
  local page_at, chapters_of_id = {}, {}
  for _, ch in ipairs(chapters) do
    for i = ch.first, ch.last do
      page_at[i] = ch.page
      local b = out[i]
      if b.t == "Header" then
        if b.identifier == "" then b.identifier = "section" end
        local set = chapters_of_id[b.identifier] or {}
        set[ch.page] = true
        chapters_of_id[b.identifier] = set
      end
    end
  end
  local seen = {}
  for i, b in ipairs(out) do
    if b.t == "Header" then
      local id = b.identifier
      local n = 0
      for _ in pairs(chapters_of_id[id]) do n = n + 1 end
      if n > 1 then id = page_at[i] .. "-" .. id end
      local base, k = id, 2
      while seen[id] do id = base .. "-" .. k; k = k + 1 end
      seen[id] = true
      b.identifier = id
    end
  end


  -- Each chapter: its page's name on its first heading, and its "section N"
  -- (N as its source numbered it by hand) made a link.
  for _, ch in ipairs(chapters) do
    for i = ch.first, ch.last do
      if out[i].t == "Header" and out[i].level == 1 then
        out[i].attributes["data-page"] = ch.page
        break
      end
    end
    local by_n = {}
    for _, h in ipairs(ch.hand) do by_n[h.n] = h.header end
    if next(by_n) then
      local function link_refs(inl)
        local res, i = pandoc.List(), 1
        while i <= #inl do
          local a, b, c = inl[i], inl[i + 1], inl[i + 2]
          local pre, word, n, rest
          if a.t == "Str" then pre, word = a.text:match("^(%(?)([Ss]ection)$") end
          if word and b and (b.t == "Space" or b.t == "SoftBreak")
             and c and c.t == "Str" then
            n, rest = c.text:match("^(%d+)(.*)$")
          end
          -- "section 3" is ours; "section 3.2" is some manual's.
          local h = n and not rest:match("^%.%d") and by_n[n]
          if h then
            if pre ~= "" then res:insert(pandoc.Str(pre)) end
            res:insert(pandoc.Link({ pandoc.Str(word), pandoc.Space(),
                                     pandoc.Str(h.attributes["data-number"]) },
                                   "#" .. h.identifier))
            if rest ~= "" then res:insert(pandoc.Str(rest)) end
            i = i + 3
          else
            res:insert(a)
            i = i + 1
          end
        end
        return res
      end
      for i = ch.first, ch.last do
        if out[i].t ~= "Header" then
          out[i] = pandoc.walk_block(out[i], { Inlines = link_refs })
        end
      end
    end
  end
  return pandoc.Pandoc(out)
end
