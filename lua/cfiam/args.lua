--- cfiam.args: argument checks and errors made in Lua, shared by the
-- helpers (members, groups, resolve, ids, pager). Errors are built with the
-- C module's metatable, so they read and print like the C core's.
local type, pairs, tostring, error, require, rawget, pcall =
  type, pairs, tostring, error, require, rawget, pcall
local debug_getmetatable = debug.getmetatable
local getinfo = debug.getinfo
local huge, min = math.huge, math.min
local sub, format, gsub, byte = string.sub, string.format, string.gsub, string.byte
local concat = table.concat

local _M = {}

local function cfiam()
  return require("cfiam")
end

-- "@/path/to/lua/cfiam/": the source prefix of cfiam's own Lua files.
local HERE = "@" .. (sub(getinfo(1, "S").source, 2):match("^(.*[/\\])") or "")

--- Raises msg at the line of the first Lua function on the stack outside
-- cfiam's files (the user's call), however deep inside the helpers the
-- mistake was found and whatever wraps them.
function _M.raise(msg)
  local level = 2
  while true do
    local info = getinfo(level, "S")
    if not info then error(msg, 0) end
    -- C functions, Lua 5.1's "(tail call)" marks and cfiam's own files
    -- are passed over
    if info.what ~= "C" and info.what ~= "tail" and sub(info.source, 1, #HERE) ~= HERE then
      error(msg, level)
    end
    level = level + 1
  end
end

-- The results of a pcall: passed on, or its error raised again by raise.
local function reraised(ok, ...)
  if ok then return ... end
  local e = ...
  if type(e) ~= "string" then error(e, 0) end
  _M.raise(e)
end

--- Calls the C function f(...) and returns its results. A raise from it
-- (a bad argument, a closed client) is raised again at the user's line:
-- called by pcall, a C function's raise carries no position, while called
-- from a file of cfiam it would name that file.
function _M.call(f, ...)
  return reraised(pcall(f, ...))
end

-- The README's promise for a message: one line of at most this many bytes.
local MAX_MESSAGE = 1023
-- Values quoted in one message before "and N more".
local MAX_LISTED = 5

-- A message as one bounded line: control bytes escaped, then cut.
local function one_line(message)
  message = gsub(tostring(message), "%c", function(c)
    return format("\\x%02x", byte(c))
  end)
  if #message > MAX_MESSAGE then message = sub(message, 1, MAX_MESSAGE - 3) .. "..." end
  return message
end

--- Builds an error value the way the C core does (same metatable).
-- @param kind a short stable token (invalid_argument, incomplete, guard, ...)
-- @param message one line (control bytes are escaped, the length capped)
-- @param extra optional table of more fields (plan, missing, ...)
function _M.err(kind, message, extra)
  local e = { kind = kind, message = one_line(message), errors = {}, messages = {},
    attempts = 0 }
  if extra then
    for k, v in pairs(extra) do e[k] = v end
  end
  return require("cfiam.core").error(e)
end

--- A user value for a message, quoted by the C core's quoting: bounded,
-- control bytes escaped, "[redacted]" when it holds a piece of the
-- client's credential (client optional).
function _M.quote(s, client)
  return require("cfiam.core").quote(tostring(s), client)
end

-- 4990 -> "4,990".
local function thousands(n)
  local s = tostring(n)
  local k
  repeat s, k = gsub(s, "^(%d+)(%d%d%d)", "%1,%2") until k == 0
  return s
end
_M.thousands = thousands

--- The first few values of a list, quoted and joined, then "and N more":
-- a message names some, the error's fields keep them all.
function _M.quote_list(list, client)
  local out = {}
  for i = 1, min(#list, MAX_LISTED) do out[i] = _M.quote(list[i], client) end
  local s = concat(out, ", ")
  if #list > MAX_LISTED then s = s .. " and " .. thousands(#list - MAX_LISTED) .. " more" end
  return s
end

--- The one scrubbing function (C): v (a string, or a table scrubbed in
-- place) without any run of 8 or more bytes of the client's credential.
function _M.scrub(client, v)
  return require("cfiam.core").scrub(client, v)
end

-- Raises below use level 4: this check (1), the helper (2), the scrubbing
-- wrapper of cfiam.extend (3), the caller (4).

--- Raises (a programmer error) unless v is a string.
function _M.check_string(v, name, fname)
  if type(v) ~= "string" then
    _M.raise(format("bad argument to '%s' (%s: string expected, got %s)",
      fname, name, type(v)))
  end
end

--- Raises unless the table `list` is a plain list: no __index or __len in
-- its metatable (a proxy showing a list would read differently under each
-- interpreter, and raw as empty in the C core, which raises alike; a marker
-- metatable such as lua-cjson's array_mt is fine), keys 1 to #list only (a
-- member table or a list with holes would otherwise lose entries).
function _M.check_list(list, what, fname)
  local mt = debug_getmetatable(list)
  if mt and (rawget(mt, "__index") ~= nil or rawget(mt, "__len") ~= nil) then
    _M.raise(format("bad argument to '%s' (%s: a plain list expected, got a table whose "
      .. "metatable has __index or __len)", fname, what))
  end
  local n = 0
  for _ in pairs(list) do n = n + 1 end
  if n ~= #list then
    _M.raise(format("bad argument to '%s' (%s: a list expected, got a table with keys "
      .. "other than 1 to #%s)", fname, what, what))
  end
end

--- Raises on an unknown option name or a wrong Lua type. `allowed` maps
-- each option name to its Lua type ("number", "boolean", "string"); the
-- client (optional) names the credential to keep out of the message.
function _M.check_opts(opts, allowed, fname, client)
  if opts == nil then return {} end
  if type(opts) ~= "table" then
    _M.raise(format("bad argument to '%s' (options: table expected, got %s)",
      fname, type(opts)))
  end
  for k, v in pairs(opts) do
    local want = allowed[k]
    if not want then
      _M.raise(format("bad argument to '%s' (unknown option %s)", fname,
        _M.quote(k, client)))
    end
    if type(v) ~= want then
      _M.raise(format("bad argument to '%s' (option %s: %s expected, got %s)",
        fname, k, want, type(v)))
    end
  end
  return opts
end

-- nil, or an invalid_argument error when s is not a 32-hex id.
function _M.check_id(s, what, client)
  if not cfiam().is_id(s) then
    return _M.err("invalid_argument", what
      .. ": expected a 32-character hexadecimal id, got " .. _M.quote(s, client))
  end
end

-- nil, or an invalid_argument error unless the listing order is nil,
-- "asc" or "desc".
function _M.check_direction(direction, client)
  if direction ~= nil and direction ~= "asc" and direction ~= "desc" then
    return _M.err("invalid_argument", "direction: expected 'asc' or 'desc', got "
      .. _M.quote(direction, client))
  end
end

-- Requests in flight at once (client:request_many's limit).
_M.MAX_CONCURRENCY = 64

-- nil, or an invalid_argument error for a bad concurrency option.
function _M.check_concurrency(opts)
  local c = opts.concurrency
  if c ~= nil and (c ~= c or c < 1 or c > _M.MAX_CONCURRENCY or c % 1 ~= 0) then
    return _M.err("invalid_argument", format(
      "concurrency: expected a whole number from 1 to %d, got %s",
      _M.MAX_CONCURRENCY, tostring(c)))
  end
end

-- nil, or an invalid_argument error for a bad page size, page limit or
-- concurrency.
function _M.check_paging(opts, max_per_page)
  local pp = opts.per_page
  if pp ~= nil and (pp ~= pp or pp < 1 or pp > max_per_page or pp % 1 ~= 0) then
    return _M.err("invalid_argument", format(
      "per_page: expected a whole number from 1 to %d, got %s", max_per_page,
      tostring(pp)))
  end
  local mp = opts.max_pages
  if mp ~= nil and (mp ~= mp or mp < 1 or (mp % 1 ~= 0 and mp ~= huge)) then
    return _M.err("invalid_argument",
      "max_pages: expected a whole number of at least 1, got " .. tostring(mp))
  end
  return _M.check_concurrency(opts)
end

return _M
