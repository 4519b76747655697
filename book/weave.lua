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
"piece" and attributes kind, file, first, last; a listing carries them itself),
so book/map.lua can later list, from the finished document, which lines of which
file the book shows. tests/book-check.sh checks that list against the sources.

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

local LANG = { c = "c", h = "c", S = "gnuassembler", s = "gnuassembler", ld = "c" }

local function markdown(text)
  return pandoc.read(text, "markdown").blocks
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

local function marker(kind, file, a, b)
  return pandoc.Div({}, pandoc.Attr("", { "piece" },
    { kind = kind, file = file, first = tostring(a), last = tostring(b) }))
end

-- Cut one source file into pieces; append their blocks to `out`. The file's
-- highest heading gets level `top`: 1 if the file opens its chapter, else 2.
local function weave_file(file, out, top)
  local lines = split_lines(read_file(file))
  local n = #lines
  local ext = file:match("%.([^./]+)$") or ""
  local blocks, headers = {}, {}

  local function code(a, b) -- lines a..b, not part of any prose piece
    while a <= b and is_blank(lines[a]) do a = a + 1 end
    while b >= a and is_blank(lines[b]) do b = b - 1 end
    if a > b then return end
    local text = table.concat(lines, "\n", a, b)
    local range = a == b and tostring(a) or (a .. "–" .. b)
    blocks[#blocks + 1] = pandoc.Div({
      pandoc.Div({ pandoc.Plain({ pandoc.Str(file .. ":" .. range) }) },
                 pandoc.Attr("", { "label" })),
      pandoc.CodeBlock(text, pandoc.Attr("", { LANG[ext] or "default", "numberLines" },
                                         { startFrom = tostring(a) })),
    }, pandoc.Attr("", { "piece", "listing" },
                   { kind = "code", file = file, first = tostring(a), last = tostring(b) }))
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
  local out, absent = {}, {}
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
      local opener = true
      for _, item in ipairs(ch) do
        if item:match("%.md$") then
          local md = read_file(BOOKDIR .. item)
          if not md then error("weave: " .. BOOKDIR .. item .. " is missing") end
          for _, b in ipairs(markdown(md)) do out[#out + 1] = b end
          opener = false
        elseif read_file(item) then
          weave_file(item, out, opener and 1 or 2)
          opener = false
        end
      end
    end
  end

  if #absent > 0 then
    io.stderr:write("weave: not written yet, left out: ", table.concat(absent, " "), "\n")
  end

  -- Only chapters are numbered; sections keep the titles their authors gave.
  for _, b in ipairs(out) do
    if b.t == "Header" and b.level > 1 and not b.classes:includes("unnumbered") then
      b.classes:insert("unnumbered")
    end
  end

  -- Headings were parsed piece by piece, so identifiers may repeat
  -- ("console" in two files): make each one unique.
  local seen = {}
  for _, b in ipairs(out) do
    if b.t == "Header" then
      local id = b.identifier
      if id == "" then id = "section" end
      local base, k = id, 1
      while seen[id] do id = base .. "-" .. k; k = k + 1 end
      seen[id] = true
      b.identifier = id
    end
  end
  return pandoc.Pandoc(out)
end
