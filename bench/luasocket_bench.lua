--- bench/luasocket_bench.lua: what a Lua user writes without cfiam, for
-- make bench: LuaSocket / LuaSec http.request + lua-cjson, one connection
-- per request (LuaSocket has no keep-alive).
-- usage: lua5.4 bench/luasocket_bench.lua a|b|c BASE_URL CAFILE|- N
-- Workloads and output as in bench/cfiam_bench.lua.
local http = require "socket.http"
local https = require "ssl.https"
local ltn12 = require "ltn12"
local cjson = require "cjson"
local socket = require "socket"

local workload, base_url, ca, n = arg[1], arg[2], arg[3], tonumber(arg[4])
local env = os.getenv
local account = env("BENCH_ACCOUNT")
local gettime, concat = socket.gettime, table.concat

local function members_url(group)
  return base_url .. "/accounts/" .. account .. "/iam/user_groups/" .. group .. "/members"
end

-- One request; returns the decoded envelope's result.
local function call(method, url, payload)
  local chunks = {}
  local headers = {
    ["accept"] = "application/json",
    ["authorization"] = "Bearer test-token",
    ["user-agent"] = "cfiam-bench-luasocket",
  }
  local req = { url = url, method = method, headers = headers,
                sink = ltn12.sink.table(chunks) }
  if payload then
    local body = cjson.encode(payload)
    headers["content-type"] = "application/json"
    headers["content-length"] = tostring(#body)
    req.source = ltn12.source.string(body)
  end
  local ok, status
  if url:sub(1, 6) == "https:" then
    req.cafile, req.verify, req.protocol = ca, "peer", "any"
    ok, status = https.request(req)
  else
    ok, status = http.request(req)
  end
  if not ok or status ~= 200 then
    io.stderr:write("luasocket_bench: ", tostring(status), "\n")
    os.exit(1)
  end
  local env_ = cjson.decode(concat(chunks))
  return env_.result
end

local function peak_rss_kib()
  local f = assert(io.open("/proc/self/status"))
  local s = f:read("*a")
  f:close()
  return tonumber(s:match("VmHWM:%s*(%d+)"))
end

if workload == "a" then
  local url = members_url(env("BENCH_G_SMALL"))
  local payload = { { id = env("BENCH_SMALL_ID") } }
  for _ = 1, math.floor(n / 10) + 1 do call("PUT", url, payload) end
  local t0, c0 = gettime(), os.clock()
  for _ = 1, n do call("PUT", url, payload) end
  print(string.format("us_per_call %.3f cpu_us_per_call %.3f", (gettime() - t0) * 1e6 / n,
                      (os.clock() - c0) * 1e6 / n))
elseif workload == "b" then
  local ids = {}
  for line in io.lines(env("BENCH_OUT") .. "/" .. (env("BENCH_B_IDS") or "ids_large.txt")) do
    ids[#ids + 1] = line
  end
  local t0, c0 = gettime(), os.clock()
  local payload = {}
  for i = 1, #ids do payload[i] = { id = ids[i] } end
  local members = call("PUT", members_url(env("BENCH_B_GROUP") or env("BENCH_G_LARGE")), payload)
  local ms, cpu_ms = (gettime() - t0) * 1e3, (os.clock() - c0) * 1e3
  print(string.format("ms %.3f cpu_ms %.3f rss_kib %d members %d", ms, cpu_ms,
                      peak_rss_kib(), #members))
elseif workload == "c" then
  local url, t0, c0, all = members_url(env("BENCH_G_LIST")), 0, 0, nil
  for l = 0, n do
    if l == 1 then t0, c0 = gettime(), os.clock() end
    all = {}
    local page = 1
    while true do
      local res = call("GET", url .. "?page=" .. page .. "&per_page=500")
      if #res == 0 then break end
      for i = 1, #res do all[#all + 1] = res[i] end
      page = page + 1
    end
  end
  print(string.format("ms %.3f cpu_ms %.3f members %d", (gettime() - t0) * 1e3 / n,
                      (os.clock() - c0) * 1e3 / n, #all))
else
  error("unknown workload " .. tostring(workload))
end
