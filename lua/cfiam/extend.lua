--- cfiam.extend: attaches the Lua half of cfiam to the module table that
-- the C half (csrc/cfiam.c) built. luaopen_cfiam calls it once, as
-- require("cfiam.extend")(M).
--
-- Each helper module returns a table of functions whose first argument is
-- a client; they become client methods (client:list_members(...)). Every
-- method but close, the C ones included, is also a module-level function
-- on the default client (cfiam.list_members(...)), made here only.
-- Helpers call client:request(...) by method lookup, so the transport
-- chosen by cfiam.transport (libcurl or nginx cosockets) applies to them.
-- A helper function whose name starts with "_" is internal (shared between
-- helpers) and is not attached.
local _VERSION = "0.1.0"

local pairs, error, tostring, type = pairs, error, tostring, type
local call = require("cfiam.args").call

local HELPERS = { "cfiam.members", "cfiam.resolve", "cfiam.groups", "cfiam.account" }

-- cfiam.name(...): client:name(...) on the default client. The method is
-- looked up on each call, so it is the one the transport installed. A C
-- method (`c_methods`) is called through args.call, so that its raises
-- name the user's line rather than this file's.
local function on_default(M, name, c_methods)
  return function(...)
    local client = M.default_client()
    local f = client[name]
    if c_methods[f] then return call(f, client, ...) end
    return f(client, ...)
  end
end

-- Every error a helper returns (or an iterator yields) goes through the C
-- scrubbing with the client's credential, whatever quoted it: the helpers
-- build messages from user values that may be a misplaced token.
local function scrubbed(M, client, res, err, ...)
  if type(res) == "function" then -- an iterator (each_member)
    local it = res
    res = function(...) return scrubbed(M, client, it(...)) end
  elseif not res and type(err) == "table" then
    require("cfiam.core").scrub(client, err)
  end
  return res, err, ...
end

-- A helper as a method: a closed client raises at the user's line before
-- the helper runs (found by the C core inside the helper, the raise would
-- name the helper's file); its errors are scrubbed.
local function wrap(M, f)
  local check_open = require("cfiam.core").check_open
  return function(client, ...)
    call(check_open, client)
    return scrubbed(M, client, f(client, ...))
  end
end

return function(M)
  if M._VERSION ~= _VERSION then
    error(("cfiam: the C module is version %s but the Lua files are %s; "
      .. "install both from the same release"):format(tostring(M._VERSION), _VERSION), 2)
  end
  local methods = require("cfiam.core").client_methods
  local names = { "request", "update_members", "request_many" }
  local c_methods = {}
  for _, name in pairs(names) do c_methods[methods[name]] = true end
  for _, name in pairs(HELPERS) do
    for fname, f in pairs(require(name)) do
      if methods[fname] ~= nil then
        error("cfiam: helper " .. name .. "." .. fname .. " would replace a method", 2)
      end
      if fname:sub(1, 1) ~= "_" then -- "_name": internal, not a method
        f = wrap(M, f)
        methods[fname] = f
        names[#names + 1] = fname
      end
    end
  end
  -- Not a client method: it reads a file or a table, and sends nothing.
  -- Its errors quote the file's values: they are scrubbed with the default
  -- client's credential, as the helpers' are with their client's.
  M.load_desired = function(src)
    local cfg, err = require("cfiam.desired").load_desired(src)
    if not cfg and type(err) == "table" then
      local ok, client = pcall(M.default_client)
      if ok then require("cfiam.core").scrub(client, err) end
    end
    return cfg, err
  end
  require("cfiam.transport").install(M, methods)
  for _, fname in pairs(names) do M[fname] = on_default(M, fname, c_methods) end
  -- cfiam.configure raises (cfiam.new's checks) at the user's line
  local configure = M.configure
  M.configure = function(opts) return call(configure, opts) end
  return M
end
