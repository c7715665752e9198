-- spec/helpers/load_memory_child.lua: the memory half of spec/53-load_spec.lua,
-- in a process of its own, so that what earlier specs left in the heap of
-- the test process (fragmentation, not leaks) cannot move the reading.
--   <lua> spec/helpers/load_memory_child.lua BASE_URL TLS_BASE_URL OTHER_CA TOKEN ACCOUNT GROUP CALLS WARMUP
-- Makes CALLS calls mixing successes and every error kind (the parent has
-- installed the emulator's fault rules), and prints one line:
--   ok <rss after warm-up kB> <rss at end kB> <Lua heap after warm-up kB> <at end kB> <seconds> <kinds seen>
-- or "fail <why>" at the first wrong answer.
local rel = require("helpers.reliability")
local socket = require("socket")

local base_url, tls_base_url, other_ca, token, account, group, calls_n, warmup = ...
calls_n, warmup = tonumber(calls_n), tonumber(warmup)

-- The order in which the kinds come round: successes and cheap errors
-- often, the slow ones (a timeout waits its 20 ms, a TLS failure makes a
-- handshake) rarely, so the run stays within seconds.
local CYCLE = {
  "success", "invalid_argument", "auth", "success", "permission", "not_found",
  "rate_limited", "success", "api", "server", "network", "invalid_response",
  "success", "invalid_argument", "success", "list",
}

local emu = { base_url = base_url, tls_base_url = tls_base_url, other_ca_file = other_ca }
local calls = rel.kind_calls(emu, { token = token, quick_timeout = 0.02 })
calls.list = function() return calls.clients[1]:list_members(account, group) end
local seen, t0, rss0, lua0 = {}, socket.gettime(), nil, nil
for i = 1, calls_n do
  local kind = CYCLE[(i - 1) % #CYCLE + 1]
  if i % 200 == 0 then kind = "timeout" elseif i % 100 == 50 then kind = "tls" end
  local res, err = calls[kind]()
  local ok
  if kind == "success" or kind == "list" then ok = type(res) == "table"
  else ok = res == nil and type(err) == "table" and err.kind == kind end
  if not ok then
    print(("fail call %d expected %s, got %s"):format(i, kind, tostring(err or res)))
    os.exit(1)
  end
  seen[kind] = true
  if i == warmup then
    collectgarbage("collect")
    collectgarbage("collect")
    rss0, lua0 = rel.rss_kb(), collectgarbage("count")
  end
end
collectgarbage("collect")
collectgarbage("collect")
local rss1, lua1 = rel.rss_kb(), collectgarbage("count")
local took = socket.gettime() - t0
calls.close()
local kinds = {}
for k in pairs(seen) do kinds[#kinds + 1] = k end
table.sort(kinds)
print(("ok %d %d %.0f %.0f %.1f %s"):format(rss0, rss1, lua0, lua1, took, table.concat(kinds, ",")))
