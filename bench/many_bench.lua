--- bench/many_bench.lua: cfiam's side of bench/many.sh (Lua 5.4 or LuaJIT).
-- usage: lua bench/many_bench.lua d|e BASE_URL CAFILE|- CONCURRENCY N
--   d  N listings of the 20,000-member group (40 pages of 500) with
--      list_members{ concurrency = CONCURRENCY } (1: page after page)
--   e  N runs over 100 groups: each group's first member page, then a PUT
--      of its members; with CONCURRENCY > 1 as two request_many batches
--      (the 100 GETs, then the 100 PUTs), with 1 a plain request loop
-- Each run on a fresh client, after one untimed warm-up run. Prints
-- "ms <median of the N runs>".
local cfiam = require "cfiam"
local socket = require "socket"

local workload, base_url, ca = arg[1], arg[2], arg[3]
local conc, n = tonumber(arg[4]), tonumber(arg[5])
local account = os.getenv("BENCH_ACCOUNT")
local g_list, small_id = os.getenv("BENCH_G_LIST"), os.getenv("BENCH_SMALL_ID")

local function check(v, err)
  if v == nil then
    io.stderr:write("many_bench: ", tostring(err), "\n")
    os.exit(1)
  end
  return v
end

-- 100 group ids (the canned server answers any of them alike)
local groups = {}
for i = 1, 100 do groups[i] = string.format("%032x", 0xe0000 + i) end

local function run()
  local c = cfiam.new { api_token = "test-token", base_url = base_url,
    ca_file = ca ~= "-" and ca or nil, max_retries = 0 }
  if workload == "d" then
    local all = check(c:list_members(account, g_list, { per_page = 500, concurrency = conc }))
    assert(#all == 20000, "listing short")
  else
    local paths = {}
    for i, g in ipairs(groups) do paths[i] = "/accounts/" .. account .. "/iam/user_groups/" .. g .. "/members" end
    if conc == 1 then
      for i = 1, #paths do
        check(c:request("GET", paths[i], { query = { per_page = 50 }, decode = "members" }))
        check(c:update_members(account, groups[i], { small_id }))
      end
    else
      local gets, puts = {}, {}
      for i = 1, #paths do
        gets[i] = { "GET", paths[i], query = { per_page = 50 }, decode = "members" }
        puts[i] = { "PUT", paths[i], ids = { small_id }, decode = "members" }
      end
      for _, batch in ipairs({ gets, puts }) do
        local out = check(c:request_many(batch, { concurrency = conc }))
        for i = 1, #out do check(out[i].result, out[i].err) end
      end
    end
  end
  c:close()
end

run() -- warm-up
local times = {}
for i = 1, n do
  local t0 = socket.gettime()
  run()
  times[i] = (socket.gettime() - t0) * 1000
end
table.sort(times)
print(string.format("ms %.1f", times[math.floor((n + 1) / 2)]))
