--- cfiam.args: argument checks and errors made in Lua, shared by the
-- helpers (members, groups, resolve, ids, pager). Errors are built with the
-- C module's metatable, so they read and print like the C core's.
local type, pairs, tostring, error, require = type, pairs, tostring, error, require
local huge = math.huge
local sub, format = string.sub, string.format

local _M = {}

local function cfiam()
  return require("cfiam")
end

--- Builds an error value the way the C core does (same metatable).
-- @param kind a short stable token (invalid_argument, incomplete, guard, ...)
-- @param message one line
-- @param extra optional table of more fields (plan, missing, ...)
function _M.err(kind, message, extra)
  local e = { kind = kind, message = message, errors = {}, messages = {},
    attempts = 0 }
  if extra then
    for k, v in pairs(extra) do e[k] = v end
  end
  return require("cfiam.core").error(e)
end

-- 'value', shortened, for messages.
function _M.quote(s)
  s = tostring(s)
  if #s > 60 then s = sub(s, 1, 57) .. "..." end
  return "'" .. s .. "'"
end

--- Raises (a programmer error) unless v is a string.
function _M.check_string(v, name, fname)
  if type(v) ~= "string" then
    error(format("bad argument to '%s' (%s: string expected, got %s)",
      fname, name, type(v)), 3)
  end
end

--- Raises on an unknown option name or a wrong Lua type. `allowed` maps
-- each option name to its Lua type ("number", "boolean", "string").
function _M.check_opts(opts, allowed, fname)
  if opts == nil then return {} end
  if type(opts) ~= "table" then
    error(format("bad argument to '%s' (options: table expected, got %s)",
      fname, type(opts)), 3)
  end
  for k, v in pairs(opts) do
    local want = allowed[k]
    if not want then
      error(format("bad argument to '%s' (unknown option %s)", fname,
        _M.quote(k)), 3)
    end
    if type(v) ~= want then
      error(format("bad argument to '%s' (option %s: %s expected, got %s)",
        fname, k, want, type(v)), 3)
    end
  end
  return opts
end

-- nil, or an invalid_argument error when s is not a 32-hex id.
function _M.check_id(s, what)
  if not cfiam().is_id(s) then
    return _M.err("invalid_argument", what
      .. ": expected a 32-character hexadecimal id, got " .. _M.quote(s))
  end
end

-- nil, or an invalid_argument error unless the listing order is nil,
-- "asc" or "desc".
function _M.check_direction(direction)
  if direction ~= nil and direction ~= "asc" and direction ~= "desc" then
    return _M.err("invalid_argument", "direction: expected 'asc' or 'desc', got "
      .. _M.quote(direction))
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
