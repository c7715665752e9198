--- spec/helpers/cli.lua: shared setup for the helper and command specs
-- (20-29): a seed with groups of a few thousand members, readers over the
-- emulator's request log, page bodies for fault rules, and a runner for
-- bin/cfiam and examples/*.lua as child processes (stdout, stderr and the
-- exit status kept apart, the environment controlled with env -i).
local _M = {}

local emulator = require("helpers.emulator")
local cjson = require("cjson").new()

local pairs, ipairs, type, tostring, tonumber, os, io, table, string =
  pairs, ipairs, type, tostring, tonumber, os, io, table, string

_M.TOKEN = "test-token"
--- The interpreter the suite runs under, and its build directory.
_M.LUA = os.getenv("CFIAM_LUA") or (rawget(_G, "jit") and "luajit" or "lua5.4")
_M.BUILD = os.getenv("CFIAM_BUILD") or (rawget(_G, "jit") and "build/luajit" or "build/5.4")

--- The specs' seed: 3200 account members (every 7th pending), groups
-- Big (3000 members: 1..3000), Small (members 1..3), Empty, Mid (250:
-- 3001..3200 and 1..50).
function _M.seed()
  local mid = {}
  for i = 3001, 3200 do mid[#mid + 1] = i end
  for i = 1, 50 do mid[#mid + 1] = i end
  return emulator.seed{ members = 3200, pending_every = 7, groups = {
    { name = "Big", members = 3000 }, { name = "Small", members = 3 },
    { name = "Empty", members = 0 }, { name = "Mid", members = mid } } }
end

--- A client on the emulator (no retries unless opts say so).
function _M.client(emu, opts)
  local o = { api_token = _M.TOKEN, base_url = emu.base_url, timeout = 10,
    connect_timeout = 2, max_retries = 0 }
  for k, v in pairs(opts or {}) do o[k] = v end
  return require("cfiam").new(o)
end

--- Parses a raw query string into a table.
function _M.query(raw)
  local q = {}
  for k, v in (raw or ""):gmatch("([^&=]+)=([^&]*)") do
    q[k] = v:gsub("%%(%x%x)", function(h) return string.char(tonumber(h, 16)) end)
  end
  return q
end

--- Recorded requests, optionally only those whose method is `method` and
-- whose path matches `pattern`.
function _M.requests(emu, method, pattern)
  local out = {}
  for _, r in ipairs(emu:requests()) do
    if (not method or r.method == method) and (not pattern or r.path:find(pattern)) then
      out[#out + 1] = r
    end
  end
  return out
end

--- Recorded requests that could change something (not GET).
function _M.writes(emu)
  local out = {}
  for _, r in ipairs(emu:requests()) do
    if r.method ~= "GET" then out[#out + 1] = r end
  end
  return out
end

--- The member ids of a group in the emulator's state, sorted.
function _M.state_members(emu, account, group)
  for _, g in pairs(emu:state().accounts[account].groups) do
    if g.id == group then
      local ids = {}
      for i, m in ipairs(g.members) do ids[i] = type(m) == "table" and m.id or m end
      table.sort(ids)
      return ids
    end
  end
end

--- Sorted copy of an array of ids (or of the .id of entries).
function _M.sorted_ids(list)
  local out = {}
  for i, v in ipairs(list) do out[i] = type(v) == "table" and v.id or v end
  table.sort(out)
  return out
end

--- A success envelope for a list page, as a fault body.
-- members: array of seed member tables; info: result_info or nil.
function _M.page_body(members, info)
  local result = {}
  for i, m in ipairs(members) do
    result[i] = { id = m.id, email = m.email, status = m.status }
  end
  local doc = { success = true, errors = {}, messages = {}, result = result,
    result_info = info }
  local s = cjson.encode(doc)
  return (s:gsub('"result":{}', '"result":[]'):gsub('"errors":{}', '"errors":[]')
    :gsub('"messages":{}', '"messages":[]'))
end

--- Path pattern of a group's members list (not the account's members).
function _M.members_pattern(group)
  return "/user_groups/" .. group .. "/members$"
end

local function shquote(s)
  return "'" .. tostring(s):gsub("'", "'\\''") .. "'"
end
_M.shquote = shquote

local function slurp(path)
  local f = io.open(path, "rb")
  if not f then return "" end
  local s = f:read("*a")
  f:close()
  return s
end

-- The shell command running `script` with the suite's interpreter, its
-- standard streams on files (base .. ".in", ".out", ".err").
local function command(script, args, opts, files)
  local f = assert(io.open(files.stdin, "wb"))
  f:write(opts.stdin or "")
  f:close()
  local parts = { "env -i", "PATH=/usr/local/bin:/usr/bin:/bin",
    "LUA_PATH=" .. shquote("./lua/?.lua;./lua/?/init.lua;;"),
    "LUA_CPATH=" .. shquote("./" .. _M.BUILD .. "/?.so;;") }
  local names = {}
  for k in pairs(opts.env or {}) do names[#names + 1] = k end
  table.sort(names)
  for _, k in ipairs(names) do parts[#parts + 1] = k .. "=" .. shquote(opts.env[k]) end
  if opts.timeout then parts[#parts + 1] = "timeout -k 2 " .. opts.timeout end
  parts[#parts + 1] = _M.LUA
  parts[#parts + 1] = shquote(script)
  for _, a in ipairs(args or {}) do parts[#parts + 1] = shquote(a) end
  return table.concat(parts, " ") .. " <" .. shquote(files.stdin) .. " >"
    .. shquote(opts.stdout_to or files.stdout) .. " 2>" .. shquote(files.stderr)
end

local function temp_files()
  local base = os.tmpname()
  return base, { stdin = base .. ".in", stdout = base .. ".out", stderr = base .. ".err",
    pid = base .. ".pid", status = base .. ".status" }
end

local function collect(base, files, status)
  local res = { status = status, stdout = slurp(files.stdout), stderr = slurp(files.stderr) }
  for _, path in pairs(files) do os.remove(path) end
  os.remove(base)
  return res
end

--- Runs `script` (bin/cfiam or an example) with the suite's interpreter.
-- opts: env (table; the environment is exactly PATH, LUA_PATH, LUA_CPATH
-- and these), stdin (a string fed through a file, so never a terminal),
-- timeout (seconds, then the run is killed: exit status 124 or 137),
-- stdout_to (a path standard output goes to instead, e.g. /dev/full).
-- Returns { status = exit code, stdout = ..., stderr = ... }.
function _M.run(script, args, opts)
  opts = opts or {}
  local base, files = temp_files()
  local cmd = command(script, args, opts, files) .. "; echo $?"
  local p = assert(io.popen(cmd, "r"))
  local status = tonumber(p:read("*a"):match("%d+"))
  p:close()
  return collect(base, files, status)
end

-- Polls pred() (true or a value) until it holds or `limit` seconds pass.
local function poll(pred, limit)
  local deadline = os.time() + limit + 1
  repeat
    local v = pred()
    if v then return v end
    os.execute("sleep 0.05")
  until os.time() > deadline
end
_M.poll = poll

--- Starts `script` like run, in the background. Returns a handle with
-- .pid, :signal(name) and :wait(limit) -> the result as run gives it, or
-- nil when the child still runs after `limit` seconds (it is then killed).
function _M.spawn(script, args, opts)
  opts = opts or {}
  local base, files = temp_files()
  -- the child's pid and, when it ends, its status, written by a subshell
  os.execute("( " .. command(script, args, opts, files) .. " & echo $! >" .. shquote(files.pid)
    .. "; wait $!; echo $? >" .. shquote(files.status .. ".tmp") .. "; mv "
    .. shquote(files.status .. ".tmp") .. " " .. shquote(files.status) .. " ) >/dev/null 2>&1 &")
  local pid = assert(poll(function() return tonumber(slurp(files.pid):match("%d+")) end, 10),
    "the child did not start")
  local h = { pid = pid }
  function h.signal(_, name) os.execute("kill -" .. name .. " " .. pid .. " 2>/dev/null") end
  function h.wait(_, limit)
    local status = poll(function() return tonumber(slurp(files.status):match("%d+")) end, limit)
    if not status then
      h:signal("KILL")
      poll(function() return tonumber(slurp(files.status):match("%d+")) end, 5)
      collect(base, files)
      return nil
    end
    return collect(base, files, status)
  end
  return h
end

--- The environment pointing a child at the emulator with the test token.
function _M.env(emu, extra)
  local e = { CLOUDFLARE_API_TOKEN = _M.TOKEN, CLOUDFLARE_BASE_URL = emu.base_url }
  for k, v in pairs(extra or {}) do e[k] = v end
  return e
end

--- Decodes one JSON document (raises when it is not exactly one).
function _M.json(s)
  return cjson.decode(s)
end

return _M
