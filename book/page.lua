--[[ book/page.lua: cut the woven book into pages, as a Lua filter.

  pandoc build/book/book.json -L book/page.lua -M page=list -t plain
      the names of the pages, one a line: index, then one per chapter
  pandoc build/book/book.json -L book/page.lua -M page=NAME --template=book/page.html ...
      the page NAME: "index" is the contents, any other name a chapter
  pandoc build/book/book.json -L book/page.lua -M page=epub -t epub3 ...
      the whole book, for the EPUB

A chapter starts at a level-1 heading; the weaver put the name of its page in
that heading's data-page attribute. On a page, a link to an anchor on another
page gets that page's file name in front ("riscv64.html#the-csrs"). The
metadata the template (book/page.html) reads: pager (previous, contents,
next), chapters (the book's chapters, for the sidebar, the current one with
its sections). Every page drops the weaver's empty markers and the attributes
book/map.lua needed; the listings keep their classes. ]]

local stringify = pandoc.utils.stringify

-- The weaver's markers: a Div of class "piece" with no content is a blank
-- or prose marker; a listing keeps its content but not its data-*.
local function clean(blocks)
  return pandoc.walk_block(pandoc.Div(blocks), {
    Div = function(d)
      if d.classes:includes("piece") then
        if #d.content == 0 then return {} end
        d.attributes = {}
        return d
      end
    end,
    Header = function(h)
      h.attributes["data-page"] = nil
      h.attributes["data-number"] = nil -- pandoc's EPUB writer sets its own
      return h
    end,
  }).content
end

-- A heading's title without its number span.
local function title_of(h)
  local t = pandoc.List()
  for _, x in ipairs(h.content) do
    if not (x.t == "Span" and x.classes:includes("header-section-number")) then
      t:insert(x)
    end
  end
  while #t > 0 and t[1].t == "Space" do t:remove(1) end
  return t
end

local function chapters_of(blocks)
  local chs = {}
  for i, b in ipairs(blocks) do
    if b.t == "Header" and b.level == 1 then
      chs[#chs + 1] = { first = i, header = b, name = b.attributes["data-page"],
                        number = b.attributes["data-number"] or "" }
    end
  end
  for k, ch in ipairs(chs) do
    ch.last = k < #chs and chs[k + 1].first - 1 or #blocks
    assert(ch.name, "page.lua: a chapter without data-page: " .. stringify(ch.header))
    ch.sections = {}
    for i = ch.first, ch.last do
      local b = blocks[i]
      if b.t == "Header" and b.level == 2 then ch.sections[#ch.sections + 1] = b end
    end
  end
  return chs
end

-- Which page holds each identifier.
local function where(blocks, chs)
  local at = {}
  for _, ch in ipairs(chs) do
    local function note(e) if e.identifier ~= "" then at[e.identifier] = ch.name end end
    for i = ch.first, ch.last do
      pandoc.walk_block(blocks[i], { Header = note, Div = note, Span = note,
                                     CodeBlock = note, Image = note })
      if blocks[i].identifier then note(blocks[i]) end
    end
  end
  return at
end

local function href(page, id)
  return page .. ".html" .. (id and ("#" .. id) or "")
end

-- A list entry: number (if any) and title, linked.
local function entry(number, title, target, class)
  local inl = pandoc.List()
  if number ~= "" then
    inl:insert(pandoc.Span({ pandoc.Str(number) }, pandoc.Attr("", { "num" })))
    inl:insert(pandoc.Space())
  end
  inl:extend(title)
  return pandoc.Link(inl, target, "", pandoc.Attr("", class and { class } or {}))
end

local function contents(chs)
  local items = {}
  for _, ch in ipairs(chs) do
    local secs = {}
    for _, s in ipairs(ch.sections) do
      secs[#secs + 1] = { pandoc.Plain({ entry(s.attributes["data-number"] or "",
                                               title_of(s), href(ch.name, s.identifier)) }) }
    end
    local item = { pandoc.Plain({ entry(ch.number, title_of(ch.header), href(ch.name)) }) }
    if #secs > 0 then item[2] = pandoc.BulletList(secs) end
    items[#items + 1] = item
  end
  return pandoc.BulletList(items)
end

function Pandoc(doc)
  local page = stringify(doc.meta.page or "")
  local blocks = doc.blocks
  local chs = chapters_of(blocks)

  if page == "list" then
    local names = { pandoc.Str("index") }
    for _, ch in ipairs(chs) do
      names[#names + 1] = pandoc.LineBreak()
      names[#names + 1] = pandoc.Str(ch.name)
    end
    return pandoc.Pandoc({ pandoc.Plain(names) }, doc.meta)
  end

  if page == "epub" then
    return pandoc.Pandoc(clean(blocks), doc.meta)
  end

  local at = where(blocks, chs)
  local meta = doc.meta
  local k
  for i, ch in ipairs(chs) do if ch.name == page then k = i end end
  if page ~= "index" and not k then error("page.lua: no chapter has the page " .. page) end

  -- The sidebar: every chapter, the current one with its sections.
  local side = {}
  for i, ch in ipairs(chs) do
    local item = { pandoc.Plain({ entry(ch.number, title_of(ch.header), href(ch.name),
                                        i == k and "current" or nil) }) }
    if i == k then
      local secs = {}
      for _, s in ipairs(ch.sections) do
        secs[#secs + 1] = { pandoc.Plain({ entry(s.attributes["data-number"] or "",
                                                 title_of(s), "#" .. s.identifier) }) }
      end
      if #secs > 0 then item[2] = pandoc.BulletList(secs) end
    end
    side[#side + 1] = item
  end
  meta.sidebar = pandoc.MetaBlocks({ pandoc.BulletList(side) })

  local function nav(ch)
    if not ch then return nil end
    local t = pandoc.List()
    if ch.number ~= "" then t:insert(pandoc.Str(ch.number)); t:insert(pandoc.Space()) end
    t:extend(title_of(ch.header))
    return pandoc.MetaMap({ href = pandoc.MetaString(href(ch.name)),
                            title = pandoc.MetaInlines(t) })
  end

  local body
  if page == "index" then
    meta.contents = true
    meta.next = nav(chs[1])
    meta.pagetitle = pandoc.MetaString(stringify(meta.title) .. ": contents")
    body = { pandoc.Header(2, { pandoc.Str("Contents") }, pandoc.Attr("contents")),
             contents(chs) }
  else
    local ch = chs[k]
    meta.chapter = true
    meta.prev = nav(chs[k - 1]) or pandoc.MetaMap({
      href = pandoc.MetaString("index.html"),
      title = pandoc.MetaInlines({ pandoc.Str("Contents") }) })
    meta.next = nav(chs[k + 1])
    meta.pagetitle = pandoc.MetaString(stringify(title_of(ch.header)) .. " · "
                                       .. stringify(meta.title))
    body = {}
    for i = ch.first, ch.last do body[#body + 1] = blocks[i] end
    body = clean(body)
  end

  -- Links to anchors on other pages name the page.
  local div = pandoc.walk_block(pandoc.Div(body), {
    Link = function(l)
      local id = l.target:match("^#(.+)$")
      if not id then return nil end
      local p = at[id]
      if not p then
        io.stderr:write("page.lua: ", page, ": link to #", id, ", which is nowhere\n")
      elseif p ~= page then
        l.target = href(p, id)
        return l
      end
    end,
  })
  return pandoc.Pandoc(div.content, meta)
end
