-- spec/helpers/reliability.lua: shared pieces of the reliability and
-- security specs (50-59) and of tools/stress.lua (run under valgrind).
--
--   local rel = require("helpers.reliability")
--   local l = rel.listener()        a TCP socket we own on 127.0.0.1:<free>;
--   l.port, l:connections() -> how many connections reached it, l:close()
--   rel.install_faults(emu)         persistent emulator rules under /__rel/
--   rel.kind_calls(emu, ids)        one call per error kind (and a success)
--   rel.rss_kb()                    this process's resident set, in kB
--
-- The fault rules match paths under /__rel/ only, so they never touch the
-- real routes a spec also uses.
local socket = require("socket")
local cfiam = require("cfiam")

local setmetatable, pairs, ipairs, tonumber, io, string =
  setmetatable, pairs, ipairs, tonumber, io, string

local _M = {}

local Listener = {}
Listener.__index = Listener

--- A listening TCP socket on a free loopback port that never answers.
-- The kernel completes connections into the backlog even though we never
-- accept them while a call runs, so `connections()` (which accepts without
-- waiting) counts every connection any client made to it.
function _M.listener()
  local s = assert(socket.bind("127.0.0.1", 0))
  local _, port = s:getsockname()
  return setmetatable({ sock = s, port = tonumber(port), seen = 0 }, Listener)
end

--- How many connections reached the listener so far (accepts and closes them).
function Listener:connections()
  self.sock:settimeout(0)
  while true do
    local c = self.sock:accept()
    if not c then break end
    self.seen = self.seen + 1
    c:close()
  end
  return self.seen
end

function Listener:close()
  if self.sock then self.sock:close() end
  self.sock = nil
end

-- Persistent rules (times = -1): one path per answer.
local RULES = {
  { path = "/__rel/auth$", status = 401 },
  { path = "/__rel/permission$", status = 403 },
  { path = "/__rel/not_found$", status = 404 },
  { path = "/__rel/rate_limited$", status = 429, headers = { ["Retry-After"] = "300" } },
  { path = "/__rel/api$", status = 400 },
  { path = "/__rel/server$", status = 503, headers = { ["x-should-retry"] = "false" } },
  { path = "/__rel/timeout$", stall_at = 12 },
  { path = "/__rel/network$", drop = true },
  { path = "/__rel/invalid_response$", status = 200, body = "<html>not the API</html>" },
  { path = "/__rel/success$", status = 200,
    body = '{"success":true,"errors":[],"messages":[],"result":[{"id":"0123456789abcdef0123456789abcdef"}]}' },
}

--- Installs the /__rel/ rules on the emulator (after any reset).
function _M.install_faults(emu)
  local rules = {}
  for i, r in ipairs(RULES) do
    local copy = { times = -1 }
    for k, v in pairs(r) do copy[k] = v end
    rules[i] = copy
  end
  emu:fault(rules)
end

--- The kinds every sweep covers, in a fixed order.
_M.KINDS = { "invalid_argument", "auth", "permission", "not_found", "rate_limited",
  "api", "server", "timeout", "network", "tls", "invalid_response" }

--- One function per error kind (plus "success"), each making a real call
-- through the C module and returning its results. opts.token / opts.email
-- / opts.key are the credentials (defaults: the seed's token); opts.tls
-- needs an emulator started with tls = true (else the tls call is left out);
-- opts.quick_timeout is the timeout of the client that times out (0.05 s).
-- The clients are made once; call `close()` on the returned table.
function _M.kind_calls(emu, opts)
  opts = opts or {}
  local creds = opts.key and { api_email = opts.email, api_key = opts.key }
    or { api_token = opts.token or "test-token" }
  local function client(extra)
    local o = { base_url = emu.base_url, max_retries = 0, timeout = 2, connect_timeout = 2 }
    for k, v in pairs(creds) do o[k] = v end
    for k, v in pairs(extra or {}) do o[k] = v end
    return cfiam.new(o)
  end
  local c = client()
  local quick = client({ timeout = opts.quick_timeout or 0.05 })
  local clients = { c, quick }
  local calls = {
    success = function() return c:request("GET", "/__rel/success", { decode = "members" }) end,
    invalid_argument = function()
      return c:update_members("not-an-id", "0123456789abcdef0123456789abcdef", {})
    end,
    timeout = function() return quick:request("GET", "/__rel/timeout") end,
  }
  for _, k in ipairs({ "auth", "permission", "not_found", "rate_limited", "api", "server",
                       "network", "invalid_response" }) do
    local path = "/__rel/" .. k
    calls[k] = function() return c:request("GET", path) end
  end
  if emu.tls_base_url and emu.other_ca_file then
    local t = client({ base_url = emu.tls_base_url, ca_file = emu.other_ca_file })
    clients[#clients + 1] = t
    calls.tls = function() return t:request("GET", "/__rel/success") end
  end
  calls.close = function()
    for _, x in ipairs(clients) do x:close() end
  end
  calls.clients = clients
  return calls
end

-- The fuzz harnesses' status table (fuzz/fuzz_common.h): byte 0 of a
-- corpus input picks the status by its low 4 bits.
local STATUSES = { 200, 201, 204, 400, 401, 403, 404, 409, 429, 500, 503, 301, 302, 100, 299, 599 }
_M.FUZZ_SECRET = "fuzz-SECRET-token-0123456789abcdef"

local function corpus_files(dir)
  local p = assert(io.popen("ls " .. dir))
  local names = {}
  for name in p:lines() do names[#names + 1] = name end
  p:close()
  table.sort(names)
  return names
end

local function slurp(path)
  local f = assert(io.open(path, "rb"))
  local s = f:read("*a")
  f:close()
  return s
end

--- Feeds every committed fuzz input (fuzz/corpus/response and
-- fuzz/corpus/headers) to core.outcome, the same C the libcurl transport
-- runs on a response. `client` must hold _M.FUZZ_SECRET as its token.
-- Returns a list of { name, res, meta_or_err, wait } in file order.
function _M.replay_corpus(client, root)
  root = root or "fuzz/corpus"
  local out = {}
  for _, name in ipairs(corpus_files(root .. "/response")) do
    local data = slurp(root .. "/response/" .. name)
    if #data >= 2 then
      local status = STATUSES[string.byte(data, 1) % 16 + 1]
      local decode = data:sub(2, 2) == "m" and "members" or "raw"
      local res, x, wait = require("cfiam.core").outcome(client, decode, 1, status,
        { ["cf-ray"] = _M.FUZZ_SECRET }, data:sub(3))
      out[#out + 1] = { name = "response/" .. name, res = res, x = x, wait = wait }
    end
  end
  for _, name in ipairs(corpus_files(root .. "/headers")) do
    local data = slurp(root .. "/headers/" .. name)
    if #data >= 1 then
      local status = STATUSES[string.byte(data, 1) % 16 + 1]
      local headers = {}
      for line in data:sub(2):gmatch("[^\n]+") do
        local k, v = line:match("^([^:]+):[ \t]*(.-)[\r ]*$")
        if k then headers[k:lower()] = v end
      end
      local body = status >= 400 and '{"success":false,"errors":[{"code":1,"message":"x"}],"messages":[]}'
        or '{"success":true,"errors":[],"messages":[],"result":[]}'
      local res, x, wait = require("cfiam.core").outcome(client, "raw", 1, status, headers, body)
      out[#out + 1] = { name = "headers/" .. name, res = res, x = x, wait = wait }
    end
  end
  return out
end

--- Resident set size of this process in kB (Linux /proc), or nil.
function _M.rss_kb()
  local f = io.open("/proc/self/status", "r")
  if not f then return nil end
  local s = f:read("*a")
  f:close()
  return tonumber(string.match(s, "VmRSS:%s*(%d+)"))
end

return _M
