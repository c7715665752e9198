-- examples/add_and_remove.lua: add some members and remove others,
-- leaving everyone else alone (POST once, DELETE per member).
--
--   lua examples/add_and_remove.lua ACCOUNT GROUP_ID +alice@example.com -bob@example.com ...
-- "+x" adds x, "-x" removes x (ids or e-mail addresses). ACCOUNT and
-- GROUP_ID may also come from CFIAM_ACCOUNT and CFIAM_GROUP.
local cfiam = require("cfiam")

local args = { ... }
local account = os.getenv("CFIAM_ACCOUNT") or table.remove(args, 1)
local group = os.getenv("CFIAM_GROUP") or table.remove(args, 1)
local add, remove = {}, {}
for _, a in ipairs(args) do
  local sign, who = a:sub(1, 1), a:sub(2)
  if sign == "+" then add[#add + 1] = who
  elseif sign == "-" then remove[#remove + 1] = who end
end
if not account or not group or #add + #remove == 0 then
  io.stderr:write("usage: add_and_remove.lua ACCOUNT GROUP_ID +ADD... -REMOVE...\n")
  os.exit(2)
end

local client = cfiam.new()   -- credentials and base URL from the environment
if #add > 0 then
  local members, err = client:add_members(account, group, add)
  if not members then
    io.stderr:write(tostring(err), "\n")
    os.exit(1)
  end
  print(("added %d; the group has %d members"):format(#add, #members))
end
if #remove > 0 then
  local res, err = client:remove_members(account, group, remove)
  if not res then
    io.stderr:write(tostring(err), "\n")
    os.exit(1)
  end
  for _, id in ipairs(res.removed) do print("removed " .. id) end
  for _, id in ipairs(res.not_members) do print("not a member: " .. id) end
end
client:close()
