-- emulator/faults.lua: fault injection for the emulator.
--
-- A queue of rules.  For each API request (never for /__emulator/ admin
-- requests) the FIRST rule that matches and has times left is applied and
-- its count decremented; a rule whose count reaches 0 is removed.
--
-- Rule fields (all optional):
--   method = "PUT"             exact HTTP method
--   path   = "/members$"       Lua pattern, string.find'ed (unanchored) on the
--                              request path without the query string, e.g.
--                              "/client/v4/accounts/<a>/iam/user_groups/<g>/members"
--   query  = "[?&]page=2"      Lua pattern, string.find'ed on the raw query
--                              string prefixed with "?" ("?" alone when there
--                              is none), e.g. to pick one page of a listing
--   times  = 1                 how many requests it applies to; -1 = forever
-- Actions (combinable where it makes sense):
--   delay_ms = N               wait N ms (other connections are served
--                              meanwhile), then go on with the rest of the
--                              rule, or with the normal answer
--   drop = true                close the connection without answering
--   status = N, body = "...", headers = { Name = "value" }
--                              answer with this instead of the normal answer.
--                              status defaults to 200.  body defaults to a
--                              failure envelope when status >= 400 (code 971
--                              "Please wait and consider throttling your
--                              request speed" for 429, code 10001 "Emulated
--                              failure (HTTP <status>)" otherwise) and to ""
--                              below 400.  Content-Type: application/json and
--                              cf-ray are added unless `headers` names them
--                              (a header set to false is left out).
--                              `headers` alone (no status/body) adds/overrides
--                              headers on the normal answer.
--                              A Content-Length or Transfer-Encoding in
--                              `headers` is sent as is (no framing is added).
--   chunked = true             send the answer with chunked encoding
--   truncated_chunked = true   chunked, closed before the terminating 0 chunk
--   truncate_at = N            send only the first N bytes of the serialized
--                              answer (status line + headers + body), close
--   stall_at = N               send only the first N bytes, then stay silent
--                              (connection open) until the client closes it
--   result_null = true         the normal answer, with "result": null when it
--                              is a success (the operation IS carried out)
--   total_count = N            the normal answer, with result_info.total_count
--                              set to N when it has a result_info (a server
--                              that miscounts its collection)
--   remove_member = "<id>"     before anything else, that member is removed
--                              from the group the request's path names, as
--                              another client would do (DELETE .../members/
--                              <id> with the request's credentials; nothing
--                              happens when it is not in the group); then
--                              the rest of the rule, or the normal answer:
--                              e.g. a removal between two pages of a listing
--   body_bytes = N             a 200 success envelope whose result is a valid
--                              JSON array of member objects of about N bytes
--                              (the operation is NOT carried out; GET requests
--                              also get a result_info)
--   nested = D                 a 200 body whose result is D nested arrays
--                              ("[[[...]]]"; the operation is NOT carried out)
--   dsr = true                 a 400 failure envelope, code 1011 "Members
--                              <ids of the body> do not have DSR enabled"
--                              (the member-eligibility refusal; the phrase
--                              is the API's, code and the rest the
--                              emulator's); the operation is NOT carried out
--   invalid_utf8 = true        the normal answer with bytes FF FE inserted at
--                              the start of the first "email" string value
--                              (else "name", else "message"; else a string
--                              with them is added to "messages")
-- Precedence: drop, then body_bytes / nested, then dsr, then status / body, then the
-- normal answer; the transport fields (chunked, truncated_chunked,
-- truncate_at, stall_at) apply to whatever answer is produced.

local server = require("server")

local M = {}

local FIELDS = {
  method = "string", path = "string", query = "string", times = "number",
  delay_ms = "number", drop = "boolean", status = "number", body = "string",
  headers = "table", chunked = "boolean", truncated_chunked = "boolean",
  truncate_at = "number", stall_at = "number", result_null = "boolean",
  body_bytes = "number", nested = "number", invalid_utf8 = "boolean",
  total_count = "number", remove_member = "string",
  dsr = "boolean",
}

local Faults = {}
Faults.__index = Faults

function M.new() return setmetatable({ rules = {} }, Faults) end

local function check(rule)
  if type(rule) ~= "table" then return nil, "a fault rule must be an object" end
  local copy = {}
  for k, v in pairs(rule) do
    local want = FIELDS[k]
    if not want then return nil, "unknown fault field '" .. tostring(k) .. "'" end
    if type(v) ~= want then
      return nil, "fault field '" .. k .. "' must be a " .. want
    end
    -- JSON numbers may arrive as floats (cjson): keep integers integral
    if want == "number" and k ~= "delay_ms" then v = math.floor(v) end
    copy[k] = v
  end
  for _, k in ipairs({ "path", "query" }) do
    if copy[k] and not pcall(string.find, "", copy[k]) then
      return nil, "fault " .. k .. " is not a valid Lua pattern: " .. copy[k]
    end
  end
  if copy.remove_member and not copy.remove_member:match(("^" .. ("%x"):rep(32) .. "$")) then
    return nil, "fault field 'remove_member' must be a 32-hex member id"
  end
  if copy.headers then
    local h = {}
    for k, v in pairs(copy.headers) do
      if type(k) ~= "string" then return nil, "fault headers must be name = value" end
      if type(v) == "number" and v == math.floor(v) then v = string.format("%d", v) end
      h[k] = (v == false) and false or tostring(v)
    end
    copy.headers = h
  end
  copy.times = copy.times or 1
  if copy.times == 0 or copy.times ~= math.floor(copy.times) then
    return nil, "fault field 'times' must be a positive integer or -1"
  end
  return copy
end

-- Appends one rule or an array of rules (all validated first).
-- Returns the number of rules added, or nil + message.
function Faults:add(rules)
  if type(rules) ~= "table" then return nil, "expected a rule or an array of rules" end
  local list = (rules[1] ~= nil) and rules or { rules }
  local checked = {}
  for i, r in ipairs(list) do
    local c, err = check(r)
    if not c then return nil, "rule " .. i .. ": " .. err end
    checked[#checked + 1] = c
  end
  for _, c in ipairs(checked) do self.rules[#self.rules + 1] = c end
  return #checked
end

function Faults:clear() self.rules = {} end

function Faults:list() return self.rules end

-- The rule to apply to this request (its count decremented), or nil.
-- query: the raw query string ("" when there is none).
function Faults:take(method, path, query)
  local q = "?" .. (query or "")
  for i, r in ipairs(self.rules) do
    if (not r.method or r.method == method)
       and (not r.path or path:find(r.path))
       and (not r.query or q:find(r.query)) then
      if r.times > 0 then
        r.times = r.times - 1
        if r.times == 0 then table.remove(self.rules, i) end
      end
      return r
    end
  end
  return nil
end

---------------------------------------------------------------------------
-- Building the answer
---------------------------------------------------------------------------

local BAD = "\255\254"   -- never valid in UTF-8

function M.corrupt_utf8(body)
  for _, key in ipairs({ "email", "name", "message" }) do
    local s, e = body:find('"' .. key .. '":"', 1, true)
    if s then return body:sub(1, e) .. BAD .. body:sub(e + 1) end
  end
  local s, e = body:find('"messages":[', 1, true)
  if s then
    local sep = body:sub(e + 1, e + 1) == "]" and "" or ","
    return body:sub(1, e) .. '"' .. BAD .. '"' .. sep .. body:sub(e + 1)
  end
  return body
end

local function padded_array(n)
  local item = '{"id":"00000000000000000000000000000bad","email":"padding@example.com","status":"accepted"}'
  local count = math.max(1, math.floor(n / (#item + 1)))
  return "[" .. string.rep(item .. ",", count - 1) .. item .. "]", count
end

-- Replaces (or adds) headers of `list` ({ {name, value} }) by those of map.
local function merge_headers(list, map)
  if not map then return list end
  local out = {}
  for _, p in ipairs(list) do
    local override = false
    for k in pairs(map) do
      if k:lower() == p[1]:lower() then override = true end
    end
    if not override then out[#out + 1] = p end
  end
  local names = {}
  for k in pairs(map) do names[#names + 1] = k end
  table.sort(names)
  for _, k in ipairs(names) do
    if map[k] ~= false then out[#out + 1] = { k, map[k] } end
  end
  return out
end

-- Produces the server response for `rule`.
-- ctx.normal(rule) -> { status, headers = list, body } (runs the operation;
--                     applies rule.result_null and rule.total_count)
-- ctx.headers()     -> the standard headers list (Content-Type, cf-ray)
-- ctx.fail(status, code, message) -> JSON text of a failure envelope
-- ctx.remove_member(id) -> removes the member from the path's group
function M.respond(rule, req, ctx)
  if rule.remove_member then ctx.remove_member(rule.remove_member) end
  if rule.delay_ms and rule.delay_ms > 0 then server.sleep(rule.delay_ms / 1000) end
  if rule.drop then return { drop = true } end

  local resp
  if rule.body_bytes or rule.nested then
    local body
    if rule.body_bytes then
      local arr, count = padded_array(rule.body_bytes)
      local info = ""
      if req.method == "GET" then
        info = string.format(',"result_info":{"count":%d,"page":1,"per_page":%d,"total_count":%d}',
                             count, count, count)
      end
      body = '{"success":true,"errors":[],"messages":[],"result":' .. arr .. info .. '}'
    else
      local d = math.max(0, math.floor(rule.nested))
      body = '{"success":true,"errors":[],"messages":[],"result":'
             .. string.rep("[", d) .. string.rep("]", d) .. (d == 0 and "null" or "") .. '}'
    end
    resp = { status = 200, headers = merge_headers(ctx.headers(), rule.headers), body = body }
  elseif rule.dsr then
    local ids = {}
    for id in (req.body or ""):gmatch('"id"%s*:%s*"([^"]*)"') do ids[#ids + 1] = id end
    resp = { status = 400, headers = merge_headers(ctx.headers(), rule.headers),
             body = ctx.fail(400, 1011, "Members " .. table.concat(ids, ", ")
                             .. " do not have DSR enabled") }
  elseif rule.status or rule.body then
    local status = rule.status or 200
    local body = rule.body
    if not body then
      if status == 429 then
        body = ctx.fail(429, 971, "Please wait and consider throttling your request speed")
      elseif status >= 400 then
        body = ctx.fail(status, 10001, "Emulated failure (HTTP " .. status .. ")")
      else
        body = ""
      end
    end
    resp = { status = status, headers = merge_headers(ctx.headers(), rule.headers), body = body }
  else
    resp = ctx.normal(rule)
    resp.headers = merge_headers(resp.headers, rule.headers)
    if rule.invalid_utf8 then resp.body = M.corrupt_utf8(resp.body) end
  end

  resp.chunked = rule.chunked
  resp.truncated_chunked = rule.truncated_chunked
  resp.truncate_at = rule.truncate_at
  resp.stall_at = rule.stall_at
  return resp
end

return M
