--- cfiam.desired: the desired state of an account's groups, from a YAML
-- (or JSON) file or from a Lua table, checked completely before anything
-- is sent.
--
--   account: 0123456789abcdef0123456789abcdef
--   defaults: { max_removals: 10, ignore_pending: false, allow_empty: false }
--   protect: [ breakglass@example.com ]
--   groups:
--     Engineering:            # exact group name, or a 32-hex group id
--       members: [ alice@example.com, 4f5f0c14a2a41d5063dd301b2f829f04 ]
--       create: true          # and max_removals, allow_empty, ignore_pending
--
-- The YAML is read with libyaml's event parser (the `yaml` module of lyaml,
-- Debian lua-yaml), required only when a file is loaded, so the library's
-- core does not depend on it. Events are turned into a small tree that
-- keeps each node's line, so every error names file, line and key. Scalars
-- keep their text: an id made of digits stays a string, and only the
-- fields that take a boolean or a number interpret them.
local type, pairs, ipairs, tostring, tonumber, error, pcall, require, next,
  setmetatable, getmetatable = type, pairs, ipairs, tostring, tonumber, error,
  pcall, require, next, setmetatable, getmetatable
local format, lower, match, find, gmatch, sub = string.format, string.lower,
  string.match, string.find, string.gmatch, string.sub
local huge = math.huge
local sort, concat = table.sort, table.concat

local A = require("cfiam.args")
local I = require("cfiam.ids")

local _M = {}

-- Metatable of a checked configuration (plan_account accepts it as is).
local DESIRED = {}
_M.DESIRED = DESIRED

local MAX_DEPTH = 32

local TOP_KEYS = { account = true, defaults = true, protect = true, groups = true }
local DEFAULT_KEYS = { max_removals = true, ignore_pending = true, allow_empty = true }
local GROUP_KEYS = { members = true, create = true, max_removals = true,
  ignore_pending = true, allow_empty = true }

---------------------------------------------------------------------------
-- Trees: { kind = "map"|"seq"|"scalar"|"null", line = n or nil, ... }
--   map: entries = { { key = "k", line = n, value = node }, ... } (in order)
--   seq: items = { node, ... }
--   scalar: text (from YAML: the text as written; plain = true when not
--   quoted) or value (from Lua: a string, number or boolean)
---------------------------------------------------------------------------

-- Raised inside the builders, caught by load_desired.
local function fail(line, key, msg)
  error({ desired_error = true, line = line, key = key, msg = msg }, 0)
end

local YAML_NULL = { ["~"] = true, null = true, Null = true, NULL = true, [""] = true }

-- lyaml cuts every string at a NUL character, so a name or an address
-- holding one would read back as a shorter, different one (another
-- group's name): a raw NUL, or a NUL escape in a double-quoted scalar (\0,
-- \x00, \u0000, \U00000000; escapes exist nowhere else), is refused,
-- naming its line. The scan jumps between the bytes that change its state.
local NUL_ESCAPE = { ["0"] = "", x = "00", u = "0000", U = "00000000" }
local function refuse_nul(text)
  local line, i, dq, sq = 1, 1, false, false
  if find(text, "\0", 1, true) then
    for _ in gmatch(sub(text, 1, find(text, "\0", 1, true)), "\n") do line = line + 1 end
    fail(line, nil, "a NUL character cannot be read faithfully")
  end
  while true do
    local at = find(text, dq and '[\n\\"]' or sq and "[\n']" or "[\n#\"']", i)
    if not at then return end
    local c, prev = sub(text, at, at), sub(text, at - 1, at - 1)
    i = at + 1
    if c == "\n" then
      line = line + 1
    elseif dq and c == "\\" then
      local e = sub(text, at + 1, at + 1)
      local zeros = NUL_ESCAPE[e]
      if zeros and sub(text, at + 2, at + 1 + #zeros) == zeros then
        fail(line, nil, "a NUL character (escape \\" .. e .. ") cannot be read faithfully")
      end
      i = at + 2
    elseif dq then
      dq = false -- the closing quote
    elseif sq then
      if sub(text, at + 1, at + 1) == "'" then i = at + 2 else sq = false end
    elseif c == "#" and (at == 1 or find(prev, "%s")) then
      i = find(text, "\n", at, true) or #text + 1 -- a comment, to its line's end
    elseif at == 1 or find(prev, "[%s%[{,:%-?]") then
      if c == '"' then dq = true else sq = true end -- a quoted scalar starts
    end
  end
end

-- The tree of a YAML text (one document), or raises through fail().
local function yaml_tree(text)
  local ok, yaml = pcall(require, "yaml")
  if not ok then
    fail(nil, nil, "reading YAML needs lyaml (Debian package lua-yaml, "
      .. "LuaRocks lyaml), which is not installed")
  end
  local next_event = yaml.parser(text)
  local ev
  local function advance()
    local okp, e = pcall(next_event)
    if not okp then
      local msg = tostring(e)
      local line = tonumber(match(msg, "line: (%d+)"))
      msg = msg:gsub(" at document: .*$", ""):gsub("%s+", " ")
      fail(line, nil, "not valid YAML: " .. msg)
    end
    ev = e
    return e.type
  end
  local anchors = {}
  local node
  function node(t, depth)
    local line = ev.start_mark.line + 1
    if depth > MAX_DEPTH then fail(line, nil, "nested too deeply") end
    local anchor = ev.anchor
    local n
    if t == "ALIAS" then
      n = anchors[ev.anchor]
      if not n then fail(line, nil, "unknown alias *" .. tostring(ev.anchor)) end
      return n
    elseif t == "SCALAR" then
      local plain = ev.style == "PLAIN"
      if plain and YAML_NULL[ev.value] then
        n = { kind = "null", line = line }
      else
        n = { kind = "scalar", line = line, text = ev.value, plain = plain }
      end
    elseif t == "SEQUENCE_START" then
      n = { kind = "seq", line = line, items = {} }
      while true do
        local t2 = advance()
        if t2 == "SEQUENCE_END" then break end
        n.items[#n.items + 1] = node(t2, depth + 1)
      end
    elseif t == "MAPPING_START" then
      n = { kind = "map", line = line, entries = {} }
      while true do
        local t2 = advance()
        if t2 == "MAPPING_END" then break end
        local k = node(t2, depth + 1)
        if k.kind ~= "scalar" then
          fail(k.line, nil, "a key must be a plain value, not a " .. k.kind)
        end
        local v = node(advance(), depth + 1)
        n.entries[#n.entries + 1] = { key = k.text, line = k.line, value = v }
      end
    else
      fail(line, nil, "unexpected YAML event " .. tostring(t))
    end
    if anchor then anchors[anchor] = n end
    return n
  end
  advance() -- STREAM_START
  if advance() == "STREAM_END" then fail(nil, nil, "the file is empty") end
  local root = node(advance(), 1) -- after DOCUMENT_START
  advance() -- DOCUMENT_END
  if advance() ~= "STREAM_END" then
    fail(ev.start_mark.line + 1, nil, "only one YAML document is allowed")
  end
  return root
end

-- The tree of a Lua value (no lines; keys name the place).
local function lua_tree(v, key, depth)
  if depth > MAX_DEPTH then fail(nil, key, "nested too deeply") end
  local t = type(v)
  if t == "nil" then return { kind = "null" } end
  if t == "string" or t == "number" or t == "boolean" then
    return { kind = "scalar", value = v }
  end
  if t ~= "table" then fail(nil, key, "a " .. t .. " is not allowed here") end
  local n = #v
  local only_array = true
  for k in pairs(v) do
    if type(k) ~= "number" or k < 1 or k > n or k % 1 ~= 0 then
      only_array = false
      break
    end
  end
  if only_array and n > 0 then
    local items = {}
    for i = 1, n do items[i] = lua_tree(v[i], format("%s[%d]", key, i), depth + 1) end
    return { kind = "seq", items = items }
  end
  if next(v) == nil then return { kind = "empty" } end -- {} is a list or a map
  local entries, keys = {}, {}
  for k in pairs(v) do
    if type(k) ~= "string" then
      fail(nil, key, "keys must be strings, got a " .. type(k))
    end
    keys[#keys + 1] = k
  end
  sort(keys)
  for _, k in ipairs(keys) do
    entries[#entries + 1] = { key = k, value = lua_tree(v[k], key .. "." .. k, depth + 1) }
  end
  return { kind = "map", entries = entries }
end

---------------------------------------------------------------------------
-- Checking the tree
---------------------------------------------------------------------------

local function describe(node)
  if node.kind == "scalar" then
    return format("%s %s", node.plain == false and "the string" or "the value",
      A.quote(node.text or tostring(node.value)))
  end
  if node.kind == "null" then return "nothing" end
  if node.kind == "seq" then return "a list" end
  return "a mapping"
end

local function as_map(node, key)
  if node.kind == "empty" then return {} end
  if node.kind ~= "map" then
    fail(node.line, key, "expected a mapping, got " .. describe(node))
  end
  return node.entries
end

local function as_seq(node, key)
  if node.kind == "empty" then return {} end
  if node.kind ~= "seq" then
    fail(node.line, key, "expected a list, got " .. describe(node))
  end
  return node.items
end

local function as_string(node, key)
  if node.kind == "scalar" and node.text then return node.text end
  if node.kind == "scalar" and type(node.value) == "string" then return node.value end
  fail(node.line, key, "expected a string, got " .. describe(node))
end

local BOOLEANS = { ["true"] = true, yes = true, on = true,
  ["false"] = false, no = false, off = false }

local function as_boolean(node, key)
  if node.kind == "scalar" then
    if node.text and node.plain and BOOLEANS[lower(node.text)] ~= nil then
      return BOOLEANS[lower(node.text)]
    end
    if type(node.value) == "boolean" then return node.value end
  end
  fail(node.line, key, "expected true or false, got " .. describe(node))
end

-- A whole number >= 0, or .inf / math.huge (no limit).
local function as_count(node, key)
  local v
  if node.kind == "scalar" then
    if node.text and node.plain then
      if match(node.text, "^%d+$") then v = tonumber(node.text)
      elseif lower(node.text) == ".inf" then v = huge end
    elseif type(node.value) == "number" then
      v = node.value
    end
  end
  if not v or v ~= v or v < 0 or (v % 1 ~= 0 and v ~= huge) then
    fail(node.line, key, "expected a whole number of at least 0 (or .inf), got "
      .. describe(node))
  end
  return v
end

-- Checks the keys of a mapping: unknown keys and keys given twice.
local function check_keys(entries, allowed, key, what)
  local seen = {}
  for _, e in ipairs(entries) do
    local where = key and (key .. "." .. e.key) or e.key
    if not allowed[e.key] then
      local names = {}
      for k in pairs(allowed) do names[#names + 1] = k end
      sort(names)
      fail(e.line, where, format("unknown key %s in %s (expected one of: %s)",
        A.quote(e.key), what, table.concat(names, ", ")))
    end
    if seen[e.key] then
      fail(e.line, where, format("%s given twice (first at line %s)",
        A.quote(e.key), tostring(seen[e.key])))
    end
    seen[e.key] = e.line or "?"
  end
end

-- A member list: ids (lower-cased) and addresses, each with its place.
local function member_list(node, key, is_id)
  local out, where, lines = {}, {}, {}
  for i, item in ipairs(as_seq(node, key)) do
    local k = format("%s[%d]", key, i)
    local v = as_string(item, k)
    if is_id(v) then
      v = lower(v)
    elseif not I.is_email(v) then
      local why = match(v, "^%x+$") and format("an id must be 32 hexadecimal "
        .. "digits, this one has %d", #v) or "expected a 32-hexadecimal-digit "
        .. "member id or an e-mail address"
      fail(item.line, k, format("%s: %s", why, A.quote(v)))
    end
    out[#out + 1] = v
    where[#out] = k
    lines[#out] = item.line
  end
  return out, where, lines
end

local function group_key(name)
  if match(name, "^[%w_%-]+$") then return "groups." .. name end
  return "groups[" .. format("%q", name):gsub("\\\n", "\\n") .. "]"
end

local function check(root, source)
  local is_id = require("cfiam").is_id
  local cfg = { source = source, defaults = { max_removals = 10,
    ignore_pending = false, allow_empty = false }, protect = {}, groups = {} }
  if root.kind ~= "map" then
    fail(root.line, nil, "expected a mapping with account and groups, got "
      .. describe(root))
  end
  local entries = root.entries
  check_keys(entries, TOP_KEYS, nil, "the file")
  local by = {}
  for _, e in ipairs(entries) do by[e.key] = e end
  if not by.account then fail(root.line, "account", "account is missing") end
  if not by.groups then fail(root.line, "groups", "groups is missing") end
  local account = as_string(by.account.value, "account")
  if not is_id(account) then
    fail(by.account.value.line or by.account.line, "account",
      "expected a 32-character hexadecimal account id, got " .. A.quote(account))
  end
  cfg.account = lower(account)
  if by.defaults then
    local d = as_map(by.defaults.value, "defaults")
    check_keys(d, DEFAULT_KEYS, "defaults", "defaults")
    for _, e in ipairs(d) do
      local k = "defaults." .. e.key
      if e.key == "max_removals" then
        cfg.defaults.max_removals = as_count(e.value, k)
      else
        cfg.defaults[e.key] = as_boolean(e.value, k)
      end
    end
  end
  if by.protect then
    cfg.protect, cfg.protect_where = member_list(by.protect.value, "protect", is_id)
  end
  local seen_id = {}
  for _, e in ipairs(as_map(by.groups.value, "groups")) do
    local gk = group_key(e.key)
    if e.key == "" then fail(e.line, gk, "a group name cannot be empty") end
    local g = { key = e.key, line = e.line, where = gk }
    if is_id(e.key) then g.id = lower(e.key) else g.name = e.key end
    local first = seen_id[g.id or ("name:" .. e.key)]
    if first then
      fail(e.line, gk, format("group %s is named twice (first at line %s)",
        A.quote(e.key), tostring(first.line or "?")))
    end
    seen_id[g.id or ("name:" .. e.key)] = g
    local fields = as_map(e.value, gk)
    if e.value.kind ~= "map" and e.value.kind ~= "empty" then
      fail(e.value.line or e.line, gk, "expected a mapping with members")
    end
    check_keys(fields, GROUP_KEYS, gk, "group " .. A.quote(e.key))
    for _, f in ipairs(fields) do
      local k = gk .. "." .. f.key
      if f.key == "members" then
        g.members, g.member_where, g.member_lines = member_list(f.value, k, is_id)
      elseif f.key == "max_removals" then
        g.max_removals = as_count(f.value, k)
      else
        g[f.key] = as_boolean(f.value, k)
      end
    end
    if not g.members then fail(e.line, gk .. ".members", "members is missing "
      .. "(give [] for a group that should have none)") end
    if g.create and g.id then
      fail(e.line, gk .. ".create", "create needs a group name, not an id")
    end
    if g.max_removals == nil then g.max_removals = cfg.defaults.max_removals end
    if g.ignore_pending == nil then g.ignore_pending = cfg.defaults.ignore_pending end
    if g.allow_empty == nil then g.allow_empty = cfg.defaults.allow_empty end
    g.create = g.create or false
    cfg.groups[#cfg.groups + 1] = g
  end
  return setmetatable(cfg, DESIRED)
end

--- The most a file (or standard input) given to load_desired or the
-- `cfiam` command may hold: an endless or huge input is refused before it
-- exhausts memory.
_M.MAX_INPUT = 16 * 1024 * 1024

--- The whole of an open file, in pieces, up to MAX_INPUT bytes: text, or
-- nil and why (the caller closes f).
function _M.read_all(f)
  local parts, n = {}, 0
  while true do
    local piece, err = f:read(65536)
    if not piece then
      if err then return nil, err end
      break
    end
    n = n + #piece
    if n > _M.MAX_INPUT then return nil, "larger than the 16 MiB limit" end
    parts[#parts + 1] = piece
  end
  return concat(parts)
end

local function read_file(path)
  local f, err = io.open(path, "rb")
  if not f then return nil, err end
  local text, rerr = _M.read_all(f)
  f:close()
  if not text then return nil, rerr or "read error" end
  return text
end

--- Loads and checks a desired state.
-- syntax: cfg, err = cfiam.load_desired(path_or_table)
-- A string is a path to a YAML (or JSON) file; a table is the same
-- structure in Lua. Nothing is sent.
-- @return the checked configuration ({ account, defaults, protect, groups
--   (in file order: { key, name or id, members, create, max_removals,
--   allow_empty, ignore_pending, line }) }), or nil, err with kind
--   "invalid_argument" and err.file, err.line, err.key saying where.
function _M.load_desired(src)
  if type(src) ~= "string" and type(src) ~= "table" then
    A.raise("bad argument to 'load_desired' (path or "
      .. "table expected, got " .. type(src) .. ")")
  end
  if getmetatable(src) == DESIRED then return src end
  local source = type(src) == "string" and src or nil
  local ok, res = pcall(function()
    local root
    if source then
      local text, err = read_file(source)
      if not text then fail(nil, nil, "cannot read the file: " .. tostring(err)) end
      if #text == 0 or find(text, "^%s*$") then fail(nil, nil, "the file is empty") end
      text = text:gsub("^\239\187\191", "") -- a UTF-8 byte-order mark
      refuse_nul(text)
      root = yaml_tree(text)
    else
      root = lua_tree(src, "", 1)
      root.line = nil
    end
    return check(root, source)
  end)
  if ok then return res end
  if type(res) ~= "table" or not res.desired_error then error(res, 0) end
  local place = source or "desired state"
  if res.line then place = place .. ":" .. res.line end
  local key = res.key and res.key:gsub("^%.", "")
  local msg = place .. ": " .. (key and key ~= "" and (key .. ": ") or "") .. res.msg
  return nil, A.err("invalid_argument", msg, { file = source, line = res.line,
    key = key ~= "" and key or nil })
end

---------------------------------------------------------------------------
-- Writing: a desired state as YAML (what `cfiam dump` prints)
---------------------------------------------------------------------------

local PLAIN_WORDS = { ["true"] = 1, ["false"] = 1, yes = 1, no = 1, on = 1,
  off = 1, y = 1, n = 1, null = 1, ["~"] = 1 }

-- What YAML reads as a line break or refuses outright (C1 controls, U+2028,
-- U+2029, a byte-order mark, U+FFFE, U+FFFF; ASCII controls are done
-- separately), as double-quoted escapes.
local UNICODE_ESCAPES = { ["\226\128\168"] = "\\L", ["\226\128\169"] = "\\P",
  ["\239\187\191"] = "\\uFEFF", ["\239\191\190"] = "\\uFFFE",
  ["\239\191\191"] = "\\uFFFF", ["\194\133"] = "\\N" }

-- s with every character a double-quoted YAML scalar (or a comment) cannot
-- hold as is written as an escape, so YAML reads back exactly s and no
-- character of it starts a new line.
local function escape(s)
  s = s:gsub('[%c"\\\127]', function(c)
    if c == '"' then return '\\"' end
    if c == "\\" then return "\\\\" end
    return format("\\x%02x", c:byte())
  end)
  s = s:gsub("\194([\128-\159])", function(c)
    return UNICODE_ESCAPES["\194" .. c] or format("\\x%02x", c:byte())
  end)
  return (s:gsub("[\226\239][\128\187\191][\168\169\190\191]", function(c)
    return UNICODE_ESCAPES[c]
  end))
end

-- A scalar as YAML: plain when any YAML reader takes it back as the same
-- string, double-quoted otherwise.
local function scalar(s)
  if match(s, "^[%w][%w%.%-_@+]*$") and not PLAIN_WORDS[lower(s)]
    and not match(s, "^[%d%.eE+%-_]+$") and not match(s, "^0[xXoObB]")
    and not match(s, "^%.") then
    return s
  end
  return '"' .. escape(s) .. '"'
end
_M.yaml_scalar = scalar

--- The YAML text of a state from client:dump_account.
-- syntax: text = cfiam.desired.to_yaml(state [, header])
function _M.to_yaml(state, header)
  local out = {}
  if header then out[#out + 1] = "# " .. escape(header) end
  out[#out + 1] = "account: " .. state.account
  if #state.groups == 0 then
    out[#out + 1] = "groups: {}"
  else
    out[#out + 1] = "groups:"
  end
  for _, g in ipairs(state.groups) do
    local line = "  " .. scalar(g.key) .. ":"
    if g.key ~= g.name then line = line .. "  # " .. escape(g.name) end
    out[#out + 1] = line
    if #g.members == 0 then
      out[#out + 1] = "    members: []"
    else
      out[#out + 1] = "    members:"
      for _, m in ipairs(g.members) do out[#out + 1] = "      - " .. scalar(m) end
    end
  end
  return concat(out, "\n") .. "\n"
end

return _M
