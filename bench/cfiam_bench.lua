--- bench/cfiam_bench.lua: cfiam's side of make bench (Lua 5.4 or LuaJIT).
-- usage: lua bench/cfiam_bench.lua a|b|c BASE_URL CAFILE|- N
--   a  N small update_members (one id) on one client (keep-alive)
--   b  one update_members with the 100,000 ids of $BENCH_OUT/$BENCH_B_IDS
--      (default ids_large.txt) to group $BENCH_B_GROUP (default
--      $BENCH_G_LARGE)
--   c  N listings of a 20,000-member group (500 a page), each on a fresh
--      client, after one untimed warm-up listing; list_members, or with
--      BENCH_PAGING=request a client:request loop
-- Prints one line of "key value" pairs, as bench/floor.c does.
local cfiam = require "cfiam"
local socket = require "socket" -- gettime: wall clock in microseconds

local workload, base_url, ca, n = arg[1], arg[2], arg[3], tonumber(arg[4])
local env = os.getenv
local account = env("BENCH_ACCOUNT")
local gettime = socket.gettime

local function client()
  return cfiam.new {
    api_token = "test-token", base_url = base_url,
    ca_file = ca ~= "-" and ca or nil, max_retries = 0,
  }
end

local function peak_rss_kib()
  local f = assert(io.open("/proc/self/status"))
  local s = f:read("*a")
  f:close()
  return tonumber(s:match("VmHWM:%s*(%d+)"))
end

local function check(v, err)
  if v == nil then
    io.stderr:write("cfiam_bench: ", tostring(err), "\n")
    os.exit(1)
  end
  return v
end

-- The listing: list_members when the helper exists (unless
-- BENCH_PAGING=request), else the same paging with client:request
-- (page=1.. until an empty page): the C part alone.
local function list(c, group)
  if c.list_members and env("BENCH_PAGING") ~= "request" then
    return check(c:list_members(account, group, { per_page = 500 }))
  end
  local path = check(require("cfiam.core").path(c, "group_members", account, group))
  local all, page = {}, 1
  while true do
    local res = check(c:request("GET", path, {
      query = { page = page, per_page = 500 }, decode = "members" }))
    if #res == 0 then break end
    local k = #all
    for i = 1, #res do all[k + i] = res[i] end
    page = page + 1
  end
  return all
end

if workload == "a" then
  local c = client()
  local group, ids = env("BENCH_G_SMALL"), { env("BENCH_SMALL_ID") }
  for _ = 1, math.floor(n / 10) + 1 do -- warm-up: connection, caches, JIT
    check(c:update_members(account, group, ids))
  end
  local t0, c0 = gettime(), os.clock()
  for _ = 1, n do
    check(c:update_members(account, group, ids))
  end
  print(string.format("us_per_call %.3f cpu_us_per_call %.3f", (gettime() - t0) * 1e6 / n,
                      (os.clock() - c0) * 1e6 / n))
elseif workload == "b" then
  local ids = {}
  for line in io.lines(env("BENCH_OUT") .. "/" .. (env("BENCH_B_IDS") or "ids_large.txt")) do
    ids[#ids + 1] = line
  end
  local c = client()
  local t0, c0 = gettime(), os.clock()
  local members = check(c:update_members(account, env("BENCH_B_GROUP") or env("BENCH_G_LARGE"), ids))
  local ms, cpu_ms = (gettime() - t0) * 1e3, (os.clock() - c0) * 1e3
  print(string.format("ms %.3f cpu_ms %.3f rss_kib %d members %d", ms, cpu_ms,
                      peak_rss_kib(), #members))
elseif workload == "c" then
  local group, t0, c0, members = env("BENCH_G_LIST"), 0, 0, nil
  for l = 0, n do
    if l == 1 then t0, c0 = gettime(), os.clock() end
    local c = client()
    members = list(c, group)
    c:close()
  end
  print(string.format("ms %.3f cpu_ms %.3f members %d", (gettime() - t0) * 1e3 / n,
                      (os.clock() - c0) * 1e3 / n, #members))
else
  error("unknown workload " .. tostring(workload))
end
