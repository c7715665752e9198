--- spec/helpers/core.lua: shared setup for the core specs (01-06).
-- A client factory for a running emulator, a child-process runner with a
-- controlled environment (for the CLOUDFLARE_* variables), a closed port,
-- and small readers over the emulator's request log.
local _M = {}

local cfiam = require("cfiam")
local socket = require("socket")

local pairs, type, tostring, os, io, string, table, math =
  pairs, type, tostring, os, io, string, table, math

_M.TOKEN = "test-token"
_M.EMAIL = "user@example.com"
_M.KEY = "144c9defac04969c7bfad8efaa8ea194"

--- The interpreter the suite runs under ("lua5.4" or "luajit").
_M.LUA = os.getenv("CFIAM_LUA") or (rawget(_G, "jit") and "luajit" or "lua5.4")
--- The build directory holding cfiam.so for that interpreter.
_M.BUILD = os.getenv("CFIAM_BUILD") or (rawget(_G, "jit") and "build/luajit" or "build/5.4")
--- Whether whole JSON numbers must come back as Lua integers.
_M.HAVE_INTEGERS = math.type ~= nil

--- A client on the emulator's plain-HTTP URL with the seed's token.
-- `opts` overrides the defaults; a value of false removes an option.
function _M.client(emu, opts)
  local o = { api_token = _M.TOKEN, base_url = emu.base_url, timeout = 5,
              connect_timeout = 2, max_retries = 0 }
  for k, v in pairs(opts or {}) do
    if v == false then o[k] = nil else o[k] = v end
  end
  return cfiam.new(o)
end

--- A loopback TCP port that nothing listens on (bound, then closed).
function _M.closed_port()
  local s = assert(socket.bind("127.0.0.1", 0))
  local _, port = s:getsockname()
  s:close()
  return tonumber(port)
end

local function shquote(s)
  return "'" .. tostring(s):gsub("'", "'\\''") .. "'"
end
_M.shquote = shquote

--- Runs `code` in a child interpreter (the suite's own) whose environment is
-- exactly PATH, LUA_PATH, LUA_CPATH and `env` (env -i), so that the
-- CLOUDFLARE_* variables are controlled. Returns its stdout and whether it
-- exited with status 0.
function _M.child(env, code)
  local parts = { "env -i", "PATH=/usr/local/bin:/usr/bin:/bin",
    "LUA_PATH=" .. shquote("./lua/?.lua;./lua/?/init.lua;./spec/?.lua;;"),
    "LUA_CPATH=" .. shquote("./" .. _M.BUILD .. "/?.so;;") }
  local names = {}
  for k in pairs(env or {}) do names[#names + 1] = k end
  table.sort(names)
  for _, k in pairs(names) do parts[#parts + 1] = k .. "=" .. shquote(env[k]) end
  parts[#parts + 1] = _M.LUA
  parts[#parts + 1] = "-e " .. shquote(code)
  parts[#parts + 1] = "2>&1"
  local p = assert(io.popen(table.concat(parts, " "), "r"))
  local out = p:read("*a")
  local ok = p:close()
  return out, ok == true or ok == 0
end

--- Prefix for child code: prints one line "ok <n>" or "err <kind> <msg>"
-- for the results of an expression (a cfiam call).
_M.CHILD_REPORT = [[
local cfiam = require("cfiam")
local function report(r, err)
  if r then print("ok " .. #r) else print("err " .. err.kind .. " " .. err.message) end
end
]]

--- The emulator's log of API requests (admin requests excluded).
function _M.requests(emu)
  return emu:requests()
end

--- The only recorded request (asserts there is exactly one).
function _M.only_request(emu)
  local list = emu:requests()
  assert(#list == 1, "expected exactly 1 recorded request, got " .. #list)
  return list[1]
end

--- A request header by (case-insensitive) name, from a recorded request.
function _M.header(req, name)
  local h = req.headers or {}
  name = name:lower()
  for k, v in pairs(h) do
    if type(k) == "string" and k:lower() == name then return v end
  end
  return nil
end

--- Seconds since an arbitrary origin (wall clock with sub-second precision).
_M.now = socket.gettime

--- Calls f(...) and returns the seconds it took followed by its results.
function _M.timed(f, ...)
  local t0 = socket.gettime()
  local r = { f(...) }
  return socket.gettime() - t0, r[1], r[2], r[3]
end

--- A 32-hex id made from a small number (for ids that exist nowhere).
function _M.fake_id(n)
  return string.format("%032x", n)
end

--- true when every value of t (recursively) is a string, number, boolean or
-- table, i.e. no cjson.null (lightuserdata) or other sentinel.
function _M.plain(t)
  for _, v in pairs(t) do
    local tv = type(v)
    if tv == "table" then
      if not _M.plain(v) then return false end
    elseif tv ~= "string" and tv ~= "number" and tv ~= "boolean" then
      return false
    end
  end
  return true
end

--- Fixed ids of the core specs' seed.
_M.ACCOUNT = "0123456789abcdef0123456789abcdef"
_M.OTHER_ACCOUNT = "fedcba9876543210fedcba9876543210"
_M.GROUP = "e0000000000000000000000000000001"
_M.GROUP2 = "e0000000000000000000000000000002"

--- The id of account member i (1-based); e-mails sort in the same order.
function _M.member(i)
  return string.format("c%031x", i)
end

function _M.email(i)
  return string.format("user%05d@example.com", i)
end

--- A seed in the emulator's format: `n` account members (member 2 is
-- pending), GROUP holding members 1..in_group (default 3), an empty GROUP2,
-- tokens test-token (full), ro-token (read only) and scoped-token (only
-- OTHER_ACCOUNT), and the key pair EMAIL/KEY.
function _M.seed(n, in_group)
  n = n or 10
  in_group = in_group or math.min(3, n)
  local members, gm = {}, {}
  for i = 1, n do
    members[i] = { id = _M.member(i), email = _M.email(i),
                   status = (i == 2) and "pending" or "accepted" }
  end
  for i = 1, in_group do gm[i] = _M.member(i) end
  return {
    tokens = { { token = _M.TOKEN }, { token = "ro-token", read_only = true },
               { token = "scoped-token", accounts = { _M.OTHER_ACCOUNT } } },
    keys = { { email = _M.EMAIL, key = _M.KEY } },
    accounts = {
      [_M.ACCOUNT] = { members = members, groups = {
        { id = _M.GROUP, name = "Engineering", members = gm },
        { id = _M.GROUP2, name = "Empty", members = {} } } },
      [_M.OTHER_ACCOUNT] = { members = {}, groups = {} },
    },
  }
end

--- The member ids of a group in the emulator's current state, sorted.
function _M.group_members(emu, account, group)
  local st = emu:state()
  local acct = st.accounts[account or _M.ACCOUNT]
  for _, g in pairs(acct.groups) do
    if g.id == (group or _M.GROUP) then
      local ids = {}
      for i, m in pairs(g.members) do ids[i] = type(m) == "table" and m.id or m end
      table.sort(ids)
      return ids
    end
  end
  return nil
end

--- The members path of GROUP (relative to the base URL).
_M.MEMBERS_PATH = "/accounts/" .. _M.ACCOUNT .. "/iam/user_groups/" .. _M.GROUP .. "/members"

return _M
