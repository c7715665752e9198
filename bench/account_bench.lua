--- bench/account_bench.lua: workload g of make bench, a whole account's
-- plan (client:plan_account): 5,000 account members and 200 groups of 50
-- members, every API request answered after 50 ms.
--
-- The emulator makes the account (spec/helpers/emulator.lua) and answers
-- once for every page a plan reads; those bodies are then served by nginx
-- (lua-nginx-module, spec/helpers/nginx.lua), which waits RTT_MS with
-- ngx.sleep before each answer: requests in flight overlap as they would
-- against a distant API, and the server's own cost stays far below the
-- round trip (the emulator, one Lua process, would not). The desired state
-- is the current one, so every group is read in full.
--
-- Measured: the plan at concurrency 16 (median of ROUNDS) and one request
-- at a time (one round), against the floor RTT x ceil(requests / 16).
-- Writes its section into bench/RESULTS.md (replacing an earlier one).
--
--   lua5.4 bench/account_bench.lua        (make bench runs it after run.sh)
--   ROUNDS=3 GROUPS=200 PER_GROUP=50 MEMBERS=5000 RTT_MS=50 CONCURRENCY=16
--   CFIAM_BUILD=build/5.4 (the module measured)
package.path = "./spec/?.lua;./lua/?.lua;" .. package.path
package.cpath = "./" .. (os.getenv("CFIAM_BUILD") or "build/5.4") .. "/?.so;" .. package.cpath

local emulator = require("helpers.emulator")
local nginx = require("helpers.nginx")
local socket = require("socket")
local http = require("socket.http")
local ltn12 = require("ltn12")
local cfiam = require("cfiam")

local function num(name, default) return tonumber(os.getenv(name)) or default end
local ROUNDS, GROUPS, PER_GROUP = num("ROUNDS", 3), num("GROUPS", 200), num("PER_GROUP", 50)
local MEMBERS, RTT_MS, CONCURRENCY = num("MEMBERS", 5000), num("RTT_MS", 50), num("CONCURRENCY", 16)
local RESULTS = arg[1] or "bench/RESULTS.md"

local groups = {}
for g = 1, GROUPS do
  local picks = {}
  for k = 1, PER_GROUP do picks[k] = ((g - 1) * PER_GROUP + k - 1) % MEMBERS + 1 end
  groups[g] = { name = string.format("Team %03d", g), members = picks }
end
local seed, ids = emulator.seed{ members = MEMBERS, groups = groups }

local cfg = { account = ids.account, groups = {} }
for g = 1, GROUPS do
  local info = ids.groups[g]
  cfg.groups[info.name] = { members = info.emails }
end
cfg = assert(cfiam.load_desired(cfg))

-- The canned answers: every page a plan reads (and the empty one after).
local emu = emulator.start{ seed = seed }
local canned = {}
local function fetch(path, per_page, pages)
  for page = 1, pages do
    local chunks = {}
    local _, code = http.request{ url = emu.base_url .. path .. "?page=" .. page
      .. "&per_page=" .. per_page, headers = { authorization = "Bearer test-token" },
      sink = ltn12.sink.table(chunks) }
    assert(code == 200, "emulator: " .. tostring(code))
    canned["/client/v4" .. path .. "?" .. page] = table.concat(chunks)
  end
end
local acct = "/accounts/" .. ids.account
fetch(acct .. "/iam/user_groups", 500, math.ceil(GROUPS / 500) + 1)
fetch(acct .. "/members", 50, math.ceil(MEMBERS / 50) + 1)
for g = 1, GROUPS do
  fetch(acct .. "/iam/user_groups/" .. ids.groups[g].id .. "/members", 500,
    math.ceil(PER_GROUP / 500) + 1)
end
emu:stop()
local canned_file = os.tmpname()
do
  local f = assert(io.open(canned_file, "wb"))
  f:write("return {\n")
  for k, v in pairs(canned) do f:write(string.format("[%q] = %q,\n", k, v)) end
  f:write("}\n")
  f:close()
end

local srv = nginx.start{
  http = "lua_shared_dict bench 1m;\n"
    .. "init_by_lua_block { CANNED = dofile(" .. string.format("%q", canned_file) .. ") }",
  server = [[
    location = /count { content_by_lua_block { ngx.say(ngx.shared.bench:get("n") or 0) } }
    location /client/v4/ { content_by_lua_block {
      ngx.shared.bench:incr("n", 1, 0)
      ngx.sleep(]] .. RTT_MS / 1000 .. [[)
      local body = CANNED[ngx.var.uri .. "?" .. (ngx.var.arg_page or "1")]
      ngx.header.content_type = "application/json"
      -- Cloudflare's quota headers, with a quota the runs never reach
      ngx.header["Ratelimit"] = '"default";r=1000000;t=300'
      ngx.header["Ratelimit-Policy"] = '"default";q=1000000;w=300'
      if not body then
        ngx.status = 404
        body = '{"success":false,"errors":[{"code":7003,"message":"no canned answer"}],"messages":[],"result":null}'
      end
      ngx.print(body)
    } }
  ]] }
local base_url = "http://127.0.0.1:" .. srv.port .. "/client/v4"

local function count()
  local _, body = srv:get("/count", 5)
  return tonumber(body)
end

-- One plan on a fresh client: seconds, requests.
local function measure(concurrency)
  local c = cfiam.new{ api_token = "test-token", base_url = base_url, max_retries = 0,
    timeout = 60 }
  local before = count()
  local t0 = socket.gettime()
  local plan, err = c:plan_account(cfg, { concurrency = concurrency })
  local t = socket.gettime() - t0
  c:close()
  if not plan then error("plan_account: " .. tostring(err)) end
  assert(plan.summary.change == 0 and plan.summary.unchanged == GROUPS, "unexpected plan")
  return t, count() - before
end

local many = require("cfiam.core").client_methods.request_many ~= nil
local times, requests = {}, nil
for r = 1, ROUNDS do
  local t
  t, requests = measure(CONCURRENCY)
  times[r] = t
  io.stderr:write(string.format("bench g: concurrency %d, round %d: %.3f s, %d requests\n",
    CONCURRENCY, r, t, requests))
end
table.sort(times)
local median = times[math.floor((#times + 1) / 2)]
local seq, seq_requests = measure(1)
io.stderr:write(string.format("bench g: one at a time: %.3f s, %d requests\n", seq, seq_requests))

-- What a script does without plan_account: plan_members for each group,
-- one request at a time, the account's members listed again for every
-- group (its addresses are resolved per call). Measured on LOOP_GROUPS
-- groups and scaled to all of them: the whole loop would take minutes.
local LOOP = math.min(num("LOOP_GROUPS", 4), GROUPS)
local loop, loop_requests
do
  local c = cfiam.new{ api_token = "test-token", base_url = base_url, max_retries = 0,
    timeout = 60 }
  local before = count()
  local t0 = socket.gettime()
  for g = 1, LOOP do
    local info = ids.groups[g]
    local plan, err = c:plan_members(ids.account, info.id, info.emails)
    if not plan then error("plan_members: " .. tostring(err)) end
    assert(#plan.add == 0 and #plan.remove == 0, "unexpected plan")
  end
  loop = (socket.gettime() - t0) / LOOP * GROUPS
  loop_requests = (count() - before) / LOOP * GROUPS
  c:close()
  io.stderr:write(string.format("bench g: plan_members loop, %d groups: %.3f s (x %d)\n",
    LOOP, loop * LOOP / GROUPS, GROUPS / LOOP))
end
srv:stop()
os.remove(canned_file)

local rtt = RTT_MS / 1000
local floor = rtt * math.ceil(requests / CONCURRENCY)
local lines = {
  "## g. a whole account's plan (`plan_account`), 50 ms per request",
  "",
  string.format("Written by `make bench` (bench/account_bench.lua) on %s. %d "
    .. "account members and %d groups of %d members, served by nginx (the emulator's answers, "
    .. "canned), each request answered after %d ms (ngx.sleep); the desired state is the "
    .. "current one (every group and the account's members read in full). "
    .. "Floor: RTT × ceil(requests / %d). request_many %s.", os.date("!%Y-%m-%d %H:%M UTC"),
    MEMBERS, GROUPS, PER_GROUP, RTT_MS, CONCURRENCY,
    many and "is in the C module" or "is NOT in this build: the plan falls back to one "
      .. "request at a time, so concurrency 16 cannot be faster than 1"),
  "",
  "| run | requests | seconds | × floor | speed-up over one at a time |",
  "|---|---:|---:|---:|---:|",
  string.format("| concurrency %d (median of %d) | %d | %.2f | %.2f× | %.1f× |", CONCURRENCY,
    ROUNDS, requests, median, median / floor, seq / median),
  string.format("| one request at a time | %d | %.2f | %.2f× | 1.0× |", seq_requests, seq,
    seq / floor),
  string.format("| `plan_members` per group, one request at a time (%d groups measured, × %g) "
    .. "| %d | %.0f | %.0f× | %.2f× |", LOOP, GROUPS / LOOP, loop_requests, loop, loop / floor,
    seq / loop),
  "",
  string.format("Targets: ≤ 1.3× the floor (%.2f s) at concurrency %d, and ≥ 20× faster than one "
    .. "request at a time. With the same %d requests, concurrency %d can be at most %d× faster than "
    .. "one at a time (a round trip each); against the per-group loop a script would write without "
    .. "plan_account, concurrency %d is %.0f× faster.", floor, CONCURRENCY, requests, CONCURRENCY,
    CONCURRENCY, CONCURRENCY, loop / median),
  "",
}
local section = table.concat(lines, "\n")

local f = io.open(RESULTS, "rb")
local text = f and f:read("*a") or "# cfiam benchmark results\n\n"
if f then f:close() end
local head = "## g. a whole account's plan"
local at = text:find(head, 1, true)
if at then
  local next_at = text:find("\n## ", at + 1, true)
  text = text:sub(1, at - 1) .. section .. (next_at and text:sub(next_at + 1) or "")
else
  text = text:gsub("\n*$", "\n\n") .. section
end
f = assert(io.open(RESULTS, "wb"))
f:write(text)
f:close()
print(section)
