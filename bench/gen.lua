--- bench/gen.lua: writes the canned server's files and the request inputs.
-- usage: lua5.4 bench/gen.lua OUT ACCOUNT G_SMALL G_LARGE G_LIST G_SEQ
-- OUT/www/_put/<group>.json  answer to PUT members (1 or 100,000 members)
-- OUT/www/_get/<group>/<page>.json  pages of 500 for a 20,000-member group,
--                                   then one empty page (SDKs stop on it)
-- OUT/ids_large.txt  the 100,000 ids the large PUT sends, one a line
-- OUT/body_large.json  the same as the JSON body (for the floor)
-- OUT/ids_seq.txt, OUT/body_seq.json  b-seq: 100,000 sequential ids
--                                   (string.format("%032x", i)), the same
--                                   size as the random ones
local out, _, g_small, g_large, g_list, g_seq = arg[1], arg[2], arg[3], arg[4], arg[5], arg[6]
local LARGE, LIST, PER_PAGE = 100000, 20000, 500

local format, concat = string.format, table.concat

-- Deterministic, random-looking 32-hex ids (a 32-bit LCG, 4 words each).
local state = 12345
local function word()
  state = (state * 1103515245 + 12345) % 4294967296
  return state
end
local function id()
  return format("%08x%08x%08x%08x", word(), word(), word(), word())
end

local function member(mid, i)
  return format('{"id":"%s","email":"member%06d@example.com","status":"%s"}',
                mid, i, i % 10 == 0 and "pending" or "accepted")
end

local function envelope(items, info)
  return '{"success":true,"errors":[],"messages":[],"result":[' .. concat(items, ",") ..
         "]" .. (info and (',"result_info":' .. info) or "") .. "}"
end

local function write(path, s)
  local f = assert(io.open(path, "wb"))
  f:write(s)
  f:close()
end

local function mkdir(p) assert(os.execute("mkdir -p '" .. p .. "'")) end

mkdir(out .. "/www/_put")
mkdir(out .. "/www/_get/" .. g_list)

-- a: one member (the id the small PUT sends).
write(out .. "/www/_put/" .. g_small .. ".json",
      envelope({ member("4f5f0c14a2a41d5063dd301b2f829f04", 1) }))

-- b: 100,000 members, the same ids as the request; b-seq the same with
-- ids alike in their first 16 digits.
local function large(name, group, make_id)
  local ids, items, body = {}, {}, {}
  for i = 1, LARGE do
    ids[i] = make_id(i)
    items[i] = member(ids[i], i)
    body[i] = '{"id":"' .. ids[i] .. '"}'
  end
  write(out .. "/ids_" .. name .. ".txt", concat(ids, "\n") .. "\n")
  write(out .. "/body_" .. name .. ".json", "[" .. concat(body, ",") .. "]")
  write(out .. "/www/_put/" .. group .. ".json", envelope(items))
end
large("large", g_large, id)
large("seq", g_seq, function(i) return format("%032x", i) end)

-- c: 40 pages of 500, then an empty page 41.
local pages = LIST / PER_PAGE
for p = 1, pages + 1 do
  local page = {}
  if p <= pages then
    for i = 1, PER_PAGE do
      local n = (p - 1) * PER_PAGE + i
      page[i] = member(id(), n)
    end
  end
  local info = format('{"page":%d,"per_page":%d,"count":%d,"total_count":%d}',
                      p, PER_PAGE, #page, LIST)
  write(out .. "/www/_get/" .. g_list .. "/" .. p .. ".json", envelope(page, info))
end
