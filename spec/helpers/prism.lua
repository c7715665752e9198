--- spec/helpers/prism.lua: Prism, the OpenAPI mock server the official
-- Cloudflare SDKs test against, for the conformance specs (40-49).
--
-- Prism validates each request against Cloudflare's OpenAPI description
-- (spec/fixtures/cloudflare-iam-user-groups.openapi.json, an unchanged copy
-- of the document embedded in cloudflare-typescript) and answers with the document's examples. Its
-- verdict is in the status and in the `sl-violations` response header;
-- cfiam does not expose response headers, so Prism runs behind a small
-- recording proxy (spec/helpers/prism_proxy.js) whose log the specs read.
--
--   local prism = require("helpers.prism")
--   local p = prism.start{ spec = prism.SPEC }  -- or prism.token_spec()
--   p.base_url, p:exchanges(), p:clear(), p:stop()
local _M = {}

local cjson = require("cjson")

local io, os, string, tostring, tonumber, assert, error, pairs, ipairs, type, setmetatable =
  io, os, string, tostring, tonumber, assert, error, pairs, ipairs, type, setmetatable
local unpack = rawget(_G, "unpack") or table.unpack

--- The unchanged copy of Cloudflare's OpenAPI description.
_M.SPEC = "spec/fixtures/cloudflare-iam-user-groups.openapi.json"
--- Pinned versions (tools/npm.sh installs exactly these).
_M.PRISM_VERSION = "5.15.0"
_M.SDK_VERSION = "7.3.0"

local function shquote(s)
  return "'" .. tostring(s):gsub("'", "'\\''") .. "'"
end

local function read(path)
  local f = io.open(path, "rb")
  if not f then return nil end
  local s = f:read("*a")
  f:close()
  return s
end

local function write(path, s)
  local f = assert(io.open(path, "wb"))
  assert(f:write(s))
  f:close()
end

local prefix
--- Installs the pinned npm packages once (tools/npm.sh: a no-op when they
-- are already there) and returns the npm prefix (vendor/npm).
function _M.install()
  if prefix then return prefix end
  local p = assert(io.popen("sh tools/npm.sh 2>&1", "r"))
  local out = p:read("*a")
  local ok = p:close()
  if not (ok == true or ok == 0) then
    error("tools/npm.sh failed:\n" .. out, 2)
  end
  prefix = out:match("([^\n]+)\n?$")
  return prefix
end

--- Writes (once per run) a copy of the spec in which every `security` list
-- also allows an API token, `{"api_token": []}`: the document lists only
-- e-mail + key on these operations although tokens work on the real API.
-- The copy is made at the text level because lua-cjson would turn the
-- empty arrays (`"api_email": []`) into objects on re-encoding. Returns
-- the path of the copy (under .tmp/, git-ignored).
function _M.token_spec()
  local src = assert(read(_M.SPEC), "missing " .. _M.SPEC)
  local copy, n = src:gsub('("security"%s*:%s*%[)', '%1 {"api_token": []},')
  -- the document-level list plus one per operation
  local doc = cjson.decode(src)
  local ops = 0
  for _, item in pairs(doc.paths) do
    for _, op in pairs(item) do
      if type(op) == "table" and op.security then ops = ops + 1 end
    end
  end
  assert(n == ops + 1, ("expected %d security lists, found %d"):format(ops + 1, n))
  -- decoding proves the copy is still JSON and that every operation has it
  for path, item in pairs(cjson.decode(copy).paths) do
    for method, op in pairs(item) do
      assert(type(op.security[1].api_token) == "table",
             "no api_token on " .. method .. " " .. path)
    end
  end
  os.execute("mkdir -p .tmp")
  local dst = ".tmp/cloudflare-iam-user-groups.token.openapi.json"
  write(dst, copy)
  return dst
end

local Prism = {}
Prism.__index = Prism

-- Launches the proxy (which launches Prism) without waiting for it.
local function launch(spec)
  local npm = _M.install()
  local log = os.tmpname()
  -- `echo $$; exec node`: the first line is node's pid (exec keeps it)
  -- io.popen's own shell execs node, so node's parent is this process and
  -- its watchdog stops it (and Prism) if this process dies.
  local cmd = "echo $$; exec env -u NODE_ENV node spec/helpers/prism_proxy.js "
    .. shquote(npm .. "/node_modules/.bin/prism") .. " " .. shquote(spec) .. " "
    .. shquote(log)
  local p = assert(io.popen(cmd, "r"))
  return { pid = tonumber(p:read("*l")), pipe = p, log = log, spec = spec }
end

-- Waits for the READY line (the proxy bounds this wait itself).
local function ready(h)
  local line = h.pipe:read("*l") or "FAILED no output"
  local proxy_port, prism_port = line:match("^READY (%d+) (%d+)")
  if not proxy_port then
    if h.pid then os.execute("kill " .. h.pid .. " 2>/dev/null") end
    h.pipe:close()
    os.remove(h.log)
    return nil, "prism did not start on " .. h.spec .. ": " .. line
  end
  h.base_url = "http://127.0.0.1:" .. proxy_port
  h.prism_url = "http://127.0.0.1:" .. prism_port
  return setmetatable(h, Prism)
end

--- Starts Prism on each spec file given (in parallel) behind recording
-- proxies and returns the servers, in order, once every Prism says it
-- listens. Fields: base_url (the proxy, which is what the client talks
-- to), prism_url (Prism itself), pid. Raises when one does not start
-- (after stopping the others).
function _M.start_all(specs)
  local handles, servers, failure = {}, {}, nil
  for i, spec in ipairs(specs) do handles[i] = launch(spec) end
  for i, h in ipairs(handles) do
    local srv, why = ready(h)
    servers[i] = srv
    failure = failure or why
  end
  if failure then
    for _, srv in pairs(servers) do srv:stop() end
    error(failure, 2)
  end
  return unpack(servers, 1, #specs)
end

--- Starts one Prism (see start_all); opts.spec defaults to _M.SPEC.
function _M.start(opts)
  return _M.start_all{ (opts or {}).spec or _M.SPEC }
end

--- Every exchange since the start or the last clear(), oldest first:
-- {method, url, req_headers, req_body, status, violations (string|nil),
-- res_headers, body}. The proxy writes each line before it answers, so a
-- returned client call is always in the log.
function Prism:exchanges()
  local list = {}
  for line in (read(self.log) or ""):gmatch("[^\n]+") do
    local e = cjson.decode(line)
    if e.violations == cjson.null then e.violations = nil end
    for _, k in ipairs({ "req_body", "sent_body" }) do
      if e[k] == cjson.null then e[k] = nil end
    end
    list[#list + 1] = e
  end
  return list
end

--- Forgets the exchanges logged so far.
function Prism:clear()
  write(self.log, "")
end

--- Stops the proxy and Prism (idempotent).
function Prism:stop()
  if not self.pid then return end
  os.execute("kill " .. self.pid .. " 2>/dev/null")
  self.pipe:close() -- waits for node, which stops Prism before it exits
  os.remove(self.log)
  self.pid = nil
end

--- Splits "a=1&b=x%40y" into {a="1", b="x@y"} (for asserting queries).
function _M.parse_query(url)
  local q = {}
  local s = url:match("%?(.*)$") or ""
  for pair in s:gmatch("[^&]+") do
    local k, v = pair:match("^([^=]*)=?(.*)$")
    local function unesc(x)
      return (x:gsub("+", " "):gsub("%%(%x%x)", function(h)
        return string.char(tonumber(h, 16))
      end))
    end
    q[unesc(k)] = unesc(v)
  end
  return q
end

--- The path of a logged url, without its query.
function _M.path_of(url)
  return (url:match("^([^?]*)"))
end

_M.read = read
_M.shquote = shquote
return _M
