-- spec/helpers/load_child.lua: one of the processes of spec/53-load_spec.lua.
--   <lua> spec/helpers/load_child.lua BASE_URL TOKEN ACCOUNT GROUP ROUNDS ID1,ID2,...
-- Replaces the group's members ROUNDS times with a different subset of the
-- ids each time, checks every answer (the members the API says the group
-- now has) and lists the group after each write; prints "ok <rounds>
-- <last set>" at the end, or "fail <why>" at the first wrong answer.
local cfiam = require("cfiam")

local base_url, token, account, group, rounds, list = ...
rounds = tonumber(rounds)
local all = {}
for id in list:gmatch("[^,]+") do all[#all + 1] = id end

local function sorted_ids(members)
  local out = {}
  for i, m in ipairs(members) do out[i] = type(m) == "table" and m.id or m end
  table.sort(out)
  return table.concat(out, ",")
end

local c = cfiam.new{ api_token = token, base_url = base_url, max_retries = 3, timeout = 10 }
local last
for r = 1, rounds do
  -- round r: every id whose position is not a multiple of (r % 4 + 2)
  local set = {}
  for i, id in ipairs(all) do
    if i % (r % 4 + 2) ~= 0 then set[#set + 1] = id end
  end
  local members, err = c:update_members(account, group, set)
  if not members then
    print("fail PUT round " .. r .. ": " .. tostring(err))
    os.exit(1)
  end
  local want = sorted_ids(set)
  if sorted_ids(members) ~= want then
    print("fail PUT round " .. r .. ": answered " .. sorted_ids(members))
    os.exit(1)
  end
  local listed
  listed, err = c:list_members(account, group)
  if not listed then
    print("fail list round " .. r .. ": " .. tostring(err))
    os.exit(1)
  end
  if sorted_ids(listed) ~= want then
    print("fail list round " .. r .. ": listed " .. sorted_ids(listed))
    os.exit(1)
  end
  last = want
end
c:close()
print("ok " .. rounds .. " " .. last)
