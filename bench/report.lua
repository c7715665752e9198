--- bench/report.lua: turns bench/out/results.tsv into bench/RESULTS.md.
-- usage: lua5.4 bench/report.lua RESULTS.tsv MACHINE.txt > bench/RESULTS.md
-- Medians over the rounds; ratios to the floor's median; the performance
-- targets (below) checked (they are reported here, never asserted in tests).
-- bench/analysis.md (hand-written: profiles and causes) is appended.
local results_file, machine_file = arg[1], arg[2]
local format, concat, sort = string.format, table.concat, table.sort

local data = {} -- data[workload][contender][key] = { values }
for line in io.lines(results_file) do
  local wl, who, _, key, value = line:match("^(%S+) (%S+) (%S+) (%S+) (%S+)$")
  if wl then
    data[wl] = data[wl] or {}
    data[wl][who] = data[wl][who] or {}
    local t = data[wl][who]
    t[key] = t[key] or {}
    t[key][#t[key] + 1] = tonumber(value)
  end
end

local machine = {}
for line in io.lines(machine_file) do
  local k, v = line:match("^(%S+) (.*)$")
  if k then machine[k] = v end
end

local function median(list)
  if not list or #list == 0 then return nil end
  local s = {}
  for i = 1, #list do s[i] = list[i] end
  sort(s)
  local m = math.floor((#s + 1) / 2)
  return #s % 2 == 1 and s[m] or (s[m] + s[m + 1]) / 2
end

local function get(wl, who, key)
  return data[wl] and data[wl][who] and median(data[wl][who][key])
end

local function fmt(v, unit)
  if v == nil then return "–" end
  if v >= 100 then return format("%.0f%s", v, unit or "") end
  if v >= 10 then return format("%.1f%s", v, unit or "") end
  return format("%.2f%s", v, unit or "")
end

local function ratio(v, floor)
  if v == nil or floor == nil then return "–" end
  return format("%.2f×", v / floor)
end

local names = {
  { "floor", "floor (C, one libcurl handle; + lua-cjson for b, c)" },
  { "cfiam-5.4", "cfiam, Lua 5.4" },
  { "cfiam-luajit", "cfiam, LuaJIT" },
  { "cfiam-5.4-request", "cfiam, Lua 5.4, paging with client:request (no helper)" },
  { "sdk", "official SDK, Node (cloudflare npm)" },
  { "luasocket", "LuaSocket/LuaSec + lua-cjson" },
}

local out = {}
local function p(...) out[#out + 1] = concat({ ... }) end

p("# cfiam benchmark results")
p("")
p("Written by `make bench` (bench/run.sh) on ", machine.date or "?", ". Medians over ",
  machine.rounds or "?", " rounds; ratios are to the floor's median. Lower is better.")
p("")
p("| machine | |")
p("|---|---|")
for _, k in ipairs({ "cpu", "kernel", "lua", "luajit", "libcurl", "cjson", "luasocket", "node", "nginx" }) do
  if machine[k] then p("| ", k, " | ", machine[k], " |") end
end
p("")
p("## a. one small `update_members` (one id) in a loop, keep-alive")
p("")
p(format("Per call, µs (floor and cfiam: %s calls per round; SDK and LuaSocket: %s).",
         machine.iterations or "?", machine.slow_iterations or "?"))
p("")
p("| contender | HTTP µs/call | × floor | client CPU µs | HTTPS µs/call | × floor | client CPU µs |")
p("|---|---:|---:|---:|---:|---:|---:|")
local fh, fs = get("a-http", "floor", "us_per_call"), get("a-https", "floor", "us_per_call")
for _, n in ipairs(names) do
  local h, s = get("a-http", n[1], "us_per_call"), get("a-https", n[1], "us_per_call")
  if h or s then
    p("| ", n[2], " | ", fmt(h), " | ", ratio(h, fh), " | ", fmt(get("a-http", n[1], "cpu_us_per_call")),
      " | ", fmt(s), " | ", ratio(s, fs), " | ", fmt(get("a-https", n[1], "cpu_us_per_call")), " |")
  end
end
p("")
p("## b. one `update_members` with 100,000 ids (4.2 MB body, 9.7 MB answer) into Lua tables, HTTP")
p("")
p("Time from the call to the members table (the floor: send a prepared body, then `cjson.decode`); peak RSS of the whole process (VmHWM / ru_maxrss), one call per process.")
p("")
p("| contender | ms | × floor | client CPU ms | peak RSS MiB |")
p("|---|---:|---:|---:|---:|")
local fb = get("b", "floor", "ms")
for _, n in ipairs(names) do
  local v, rss = get("b", n[1], "ms"), get("b", n[1], "rss_kib")
  if v then
    p("| ", n[2], " | ", fmt(v), " | ", ratio(v, fb), " | ", fmt(get("b", n[1], "cpu_ms")),
      " | ", fmt(rss and rss / 1024), " |")
  end
end
p("")
p("## b-seq. the same with 100,000 sequential ids")
p("")
p("Ids made as `string.format(\"%032x\", i)`: alike in their first 16 digits, as a server or a file can send on purpose. The answer has the same size as in b. Ratios are to the same contender's b (random ids).")
p("")
p("| contender | ms | × b | client CPU ms | × b CPU |")
p("|---|---:|---:|---:|---:|")
for _, n in ipairs(names) do
  local v = get("b-seq", n[1], "ms")
  if v then
    local cpu = get("b-seq", n[1], "cpu_ms")
    p("| ", n[2], " | ", fmt(v), " | ", ratio(v, get("b", n[1], "ms")), " | ", fmt(cpu),
      " | ", ratio(cpu, get("b", n[1], "cpu_ms")), " |")
  end
end
p("")
p("## c. listing a 20,000-member group, 500 a page, HTTPS")
p("")
p("Per listing: ", machine.listings or "?", " listings per measurement (LuaSocket: 1), each on a fresh client (connection and TLS handshake included), after an untimed warm-up listing; until an empty page, as the SDKs stop (41 requests). TLS connections per listing are counted in nginx's log (distinct `$connection`).")
p("")
p("| contender | ms | × floor | client CPU ms | TLS connections per listing | requests per listing |")
p("|---|---:|---:|---:|---:|---:|")
local fc = get("c", "floor", "ms")
for _, n in ipairs(names) do
  local v = get("c", n[1], "ms")
  if v then
    p("| ", n[2], " | ", fmt(v), " | ", ratio(v, fc), " | ", fmt(get("c", n[1], "cpu_ms")), " | ",
      fmt(get("c", n[1], "tls_connections")), " | ", fmt(get("c", n[1], "requests")), " |")
  end
end
p("")
p("## Targets")
p("")
p("| target | measured | met |")
p("|---|---|---|")
-- "1.05× (CPU 1.12×)": the wall-clock ratio decides; the CPU one is less
-- sensitive to the other load on the machine.
local function ratios(wl, who, key, cpu_key)
  local v, f = get(wl, who, key), get(wl, "floor", key)
  local cv, cf = get(wl, who, cpu_key), get(wl, "floor", cpu_key)
  local s = ratio(v, f)
  if cv and cf then s = s .. " (client CPU " .. ratio(cv, cf) .. ")" end
  return s, v and f and v / f
end
local function target(what, value, ok)
  p("| ", what, " | ", value, " | ", ok == nil and "–" or (ok and "yes" or "**no**"), " |")
end
for _, who in ipairs({ "cfiam-5.4", "cfiam-luajit" }) do
  local label = who == "cfiam-5.4" and "Lua 5.4" or "LuaJIT"
  for _, wl in ipairs({ "a-http", "a-https" }) do
    local v = get(wl, who, "us_per_call")
    local text, r = ratios(wl, who, "us_per_call", "cpu_us_per_call")
    target(format("a %s, %s: ≤ 1.10× floor", wl:sub(3):upper(), label), text, r and r <= 1.10)
    local sdk = get(wl, "sdk", "us_per_call")
    target(format("a %s, %s: ≥ 10× faster than the SDK", wl:sub(3):upper(), label),
           (v and sdk) and format("%.1f× faster", sdk / v) or "–", v and sdk and sdk / v >= 10)
  end
  local rss = get("b", who, "rss_kib")
  local text, r = ratios("b", who, "ms", "cpu_ms")
  target(format("b, %s: ≤ 1.3× floor", label), text, r and r <= 1.3)
  target(format("b, %s: peak RSS < 150 MiB", label), fmt(rss and rss / 1024, " MiB"),
         rss and rss / 1024 < 150)
  local seq, rnd = get("b-seq", who, "ms"), get("b", who, "ms")
  local seq_cpu, rnd_cpu = get("b-seq", who, "cpu_ms"), get("b", who, "cpu_ms")
  text = ratio(seq, rnd)
  if seq_cpu and rnd_cpu then text = text .. " (client CPU " .. ratio(seq_cpu, rnd_cpu) .. ")" end
  target(format("b-seq, %s: ≤ 1.3× b (random ids)", label), text, seq and rnd and seq / rnd <= 1.3)
  text, r = ratios("c", who, "ms", "cpu_ms")
  target(format("c, %s: ≤ 1.3× floor", label), text, r and r <= 1.3)
  local conns = get("c", who, "tls_connections")
  target(format("c, %s: one TLS handshake per listing", label), fmt(conns),
         conns and conns <= 1.0)
end
p("")
p("## How it was measured")
p("")
p("- Server: nginx (Debian nginx-light, one worker) on loopback serving prepared files over HTTP and HTTPS (a test CA made per run, P-256 certificate), so each request costs it a file lookup and a send. The 4.2 MB request body of b is read and discarded by nginx.")
p("- \"client CPU\" is the contender process's CPU time (user + system) over the timed part: what the client itself spends, nginx excluded, and much less disturbed by the other load than the wall clock.")
p("- Each measurement is one process. Process start, module loading and reading the 100,000 ids into a Lua table are outside the timed part; for a, a warm-up of a tenth of the calls precedes the timed loop on the same client.")
p("- Contenders are interleaved round by round (their order rotated every round), and the tables give medians. The machine has 2 cores shared with other work that was running at the same time, so single numbers are noisy; the ratios within a round are more stable than the absolute times.")
p("- The floor decodes with lua-cjson for b and c, since a Lua user needs tables; in a it only reads the answer into a buffer. cfiam's own decoder also turns JSON null into absent keys, validates UTF-8, and (for members) checks every element has a string id.")
p("- c: the paging is list_members when lua/cfiam/members.lua has it (", (machine.list_members or "0") ~= "0" and "it did in this run" or "it did not in this run: `client:request` with page/per_page in a loop, as list_members will do", "). The SDK's fetch keeps one connection pool per process, so its timed listing may reuse the warm-up's connection.")
p("- Reproduce: `make bench` (ROUNDS=9 ITERATIONS=5000 LISTINGS=5 by default; e.g. `ROUNDS=3 ITERATIONS=1000 make bench` for a quick look, or `CONTENDERS=\"floor cfiam-5.4\" WORKLOADS=a make bench`, which writes bench/out/RESULTS.md). Raw numbers: bench/out/results.tsv.")
p("")
local f = io.open((arg[0]:match("^(.*)/") or ".") .. "/analysis.md")
if f then
  p(f:read("*a"))
  f:close()
end
io.write(concat(out, "\n"), "\n")
