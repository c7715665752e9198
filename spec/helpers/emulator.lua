-- spec/helpers/emulator.lua: start and drive the API emulator from tests.
--
--   local emulator = require("helpers.emulator")
--   local seed, ids = emulator.seed{ members = 3000,
--       groups = { { name = "Big", members = 2500 }, { name = "Small", members = 3 } },
--       pending_every = 7 }
--   local emu = emulator.start{ tls = true, seed = seed }   -- lua = "lua5.4"
--   emu.base_url        http://127.0.0.1:P/client/v4
--   emu.tls_base_url    https://127.0.0.1:Q/client/v4 (tls = true only)
--   emu.ca_file, emu.other_ca_file   (tls = true only; see helpers.tls)
--   emu.http_url, emu.https_url, emu.admin_url
--   emu:reset(seed)     replace the state (no argument: the start seed again)
--   emu:fault(rule or { rules })     see emulator/faults.lua
--   emu:clear_faults(), emu:faults()
--   emu:requests()      recorded API requests {method, path, query, headers,
--                       body, connection, tls}; emu:clear_requests()
--   emu:stats()         {connections, tls_handshakes, requests}
--   emu:state()         the whole state (seed format)
--   emu:stop()          stop the process and wait for it (idempotent)
--
-- The emulator runs as a child process started with io.popen(cmd, "w"): we
-- hold its stdin, so it also stops when this process ends.  Its ready line
-- is read from a FIFO (mkfifo), never by polling.

local http = require("socket.http")
local ltn12 = require("ltn12")
local socket = require("socket")
local cjson = require("cjson").new()

local M = {}

local function sh_quote(s) return "'" .. tostring(s):gsub("'", "'\\''") .. "'" end

local function run(cmd)
  local r1, _, r3 = os.execute(cmd)
  return r1 == true or r1 == 0 or (r1 == nil and r3 == 0)
end

-- The repository root, from this file's own path.
local function repo_root()
  local src = debug.getinfo(1, "S").source:gsub("^@", "")
  local root = src:match("^(.*)/spec/helpers/[^/]+$")
  if root == nil or root == "" then root = "." end   -- "spec/helpers/x.lua"
  return root
end

local tempdir, sentinel
local function temp_dir()
  if tempdir then return tempdir end
  local p = io.popen("mktemp -d \"${TMPDIR:-/tmp}/cfiam-emu.XXXXXX\"")
  tempdir = p and p:read("*l")
  if p then p:close() end
  assert(tempdir and tempdir ~= "", "emulator helper: mktemp -d failed")
  local dir = tempdir
  local function cleanup() os.execute("rm -rf " .. sh_quote(dir)) end
  if _G.newproxy then
    sentinel = newproxy(true)
    getmetatable(sentinel).__gc = cleanup
  else
    sentinel = setmetatable({}, { __gc = cleanup })
  end
  return tempdir
end

local counter = 0

---------------------------------------------------------------------------
-- Seeds
---------------------------------------------------------------------------

local function hexid(prefix, n) return prefix .. string.format("%0" .. (32 - #prefix) .. "d", n) end
M.hexid = hexid

-- Builds a deterministic seed.  opts (all optional):
--   members = 10            account members user0001@example.com ...
--                           (ids b0000..0001, user ids e0000..0001)
--   pending_every = k       every k-th member is "pending"
--   groups = { { name = "Big", members = 2500, offset = 0 }, ... }
--                           members: a count (members offset+1 .. offset+count)
--                           or an array of member indexes; ids c0000..0001 ...
--   accounts = 1            extra accounts (2..n) are created empty
--   tokens, keys            replace the defaults: tokens test-token (full) and
--                           ro-token (read_only); key pair user@example.com /
--                           144c9defac04969c7bfad8efaa8ea194
-- Returns seed, ids with
--   ids.account (the first), ids.accounts, ids.token, ids.ro_token, ids.email,
--   ids.key, ids.members ({id, email, user_id, status} in e-mail order),
--   ids.member_ids, ids.emails, ids.groups[name] and ids.groups[i] =
--   {id, name, member_ids, emails}, ids.seed
function M.seed(opts)
  opts = opts or {}
  local n = opts.members or 10
  local width = math.max(4, #tostring(n))
  local ids = { accounts = {}, members = {}, member_ids = {}, emails = {}, groups = {},
                token = "test-token", ro_token = "ro-token",
                email = "user@example.com", key = "144c9defac04969c7bfad8efaa8ea194" }
  for i = 1, (opts.accounts or 1) do ids.accounts[i] = hexid("a0", i) end
  ids.account = ids.accounts[1]

  local members = {}
  for i = 1, n do
    local m = { id = hexid("b0", i), user_id = hexid("e0", i),
                email = string.format("user%0" .. width .. "d@example.com", i),
                status = (opts.pending_every and i % opts.pending_every == 0) and "pending" or "accepted" }
    members[i] = m
    ids.members[i] = m
    ids.member_ids[i] = m.id
    ids.emails[i] = m.email
  end

  local groups = {}
  for gi, spec in ipairs(opts.groups or {}) do
    local g = { id = hexid("c0", gi), name = spec.name or ("Group " .. gi), members = {} }
    local info = { id = g.id, name = g.name, member_ids = {}, emails = {} }
    local picks = {}
    if type(spec.members) == "table" then
      picks = spec.members
    else
      local off = spec.offset or 0
      for i = off + 1, math.min(n, off + (spec.members or 0)) do picks[#picks + 1] = i end
    end
    table.sort(picks)
    for _, i in ipairs(picks) do
      local m = assert(members[i], "seed: no member " .. tostring(i))
      g.members[#g.members + 1] = m.id
      info.member_ids[#info.member_ids + 1] = m.id
      info.emails[#info.emails + 1] = m.email
    end
    groups[gi] = g
    ids.groups[gi] = info
    ids.groups[g.name] = info
  end

  local accounts = {}
  for i, a in ipairs(ids.accounts) do
    if i == 1 then
      accounts[a] = { members = members, groups = groups }
    else
      accounts[a] = { members = {}, groups = {} }
    end
  end
  local seed = {
    tokens = opts.tokens or { { token = "test-token" }, { token = "ro-token", read_only = true } },
    keys = opts.keys or { { email = ids.email, key = ids.key } },
    accounts = accounts,
  }
  ids.seed = seed
  return seed, ids
end

---------------------------------------------------------------------------
-- The emulator process
---------------------------------------------------------------------------

local Emu = {}
Emu.__index = Emu

-- Admin call; returns the decoded `result`, raises on failure.
function Emu:admin(method, path, value)
  local body = value ~= nil and cjson.encode(value) or nil
  local chunks = {}
  local ok, code = http.request({
    url = self.admin_url .. path, method = method,
    headers = body and { ["content-type"] = "application/json",
                         ["content-length"] = tostring(#body) } or nil,
    source = body and ltn12.source.string(body) or nil,
    sink = ltn12.sink.table(chunks),
  })
  if not ok then error("emulator admin " .. method .. " " .. path .. ": " .. tostring(code), 2) end
  local text = table.concat(chunks)
  local okd, doc = pcall(cjson.decode, text)
  if not okd or code ~= 200 or not doc.success then
    local msg = okd and type(doc) == "table" and doc.errors and doc.errors[1]
                and doc.errors[1].message or text
    error("emulator admin " .. method .. " " .. path .. ": HTTP " .. tostring(code)
          .. ": " .. tostring(msg), 2)
  end
  return doc.result
end

function Emu:reset(seed) return self:admin("POST", "/reset", seed or self.seed or {}) end
function Emu:fault(rules) return self:admin("POST", "/faults", rules) end
function Emu:faults() return self:admin("GET", "/faults") end
function Emu:clear_faults() return self:admin("DELETE", "/faults") end
function Emu:requests() return self:admin("GET", "/requests") end
function Emu:clear_requests() return self:admin("DELETE", "/requests") end
function Emu:stats() return self:admin("GET", "/stats") end
function Emu:state() return self:admin("GET", "/state") end

-- Stops the emulator and waits for the process to end.
function Emu:stop()
  if not self.proc then return end
  -- Ask politely first (works even if another child inherited our end of
  -- its stdin), then close its stdin, which also waits for it (pclose).
  local c = socket.tcp()
  c:settimeout(2)
  if c:connect(self.host, self.port) then
    c:send("POST /__emulator/shutdown HTTP/1.1\r\nHost: emulator\r\n"
           .. "Content-Length: 0\r\nConnection: close\r\n\r\n")
    c:receive("*a")
  end
  c:close()
  local proc = self.proc
  self.proc = nil
  proc:close()
end

-- opts.tls (bool), opts.seed (table), opts.lua (interpreter, default
-- "lua5.4" or $CFIAM_EMULATOR_LUA), opts.args (extra arguments, array).
function M.start(opts)
  opts = opts or {}
  local dir = temp_dir()
  counter = counter + 1
  local root = repo_root()
  local lua = opts.lua or os.getenv("CFIAM_EMULATOR_LUA") or "lua5.4"
  local args = { sh_quote(root .. "/emulator/main.lua") }
  local certs
  if opts.tls then
    certs = require("helpers.tls").make_ca()
    args[#args + 1] = "--tls-cert " .. sh_quote(certs.cert_file)
    args[#args + 1] = "--tls-key " .. sh_quote(certs.key_file)
  end
  if opts.seed then
    local file = dir .. "/seed" .. counter .. ".json"
    local f = assert(io.open(file, "wb"))
    f:write(cjson.encode(opts.seed))
    f:close()
    args[#args + 1] = "--seed " .. sh_quote(file)
  end
  for _, a in ipairs(opts.args or {}) do args[#args + 1] = sh_quote(a) end

  local fifo = dir .. "/ready" .. counter
  assert(run("mkfifo " .. sh_quote(fifo)), "emulator helper: mkfifo failed")
  local proc = assert(io.popen("exec " .. sh_quote(lua) .. " " .. table.concat(args, " ")
                               .. " > " .. sh_quote(fifo), "w"))
  local f = assert(io.open(fifo, "r"))    -- returns once the child opened it
  local line = f:read("*l")               -- its ready line, or EOF if it died
  f:close()
  os.remove(fifo)
  if not line then
    proc:close()
    error("emulator did not start (see its messages on stderr)", 2)
  end
  local ready = cjson.decode(line)
  local self = setmetatable({
    proc = proc, ready = ready, seed = opts.seed,
    http_url = ready.http, https_url = ready.https, admin_url = ready.admin,
    base_url = ready.http .. "/client/v4",
    tls_base_url = ready.https and (ready.https .. "/client/v4") or nil,
    ca_file = certs and certs.ca_file, other_ca_file = certs and certs.other_ca_file,
    cert_file = certs and certs.cert_file, key_file = certs and certs.key_file,
  }, Emu)
  self.host, self.port = ready.http:match("^http://%[?([^%]]-)%]?:(%d+)$")
  self.port = tonumber(self.port)
  return self
end

return M
