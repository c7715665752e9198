-- examples/replace_from_emails.lua: make a group's members exactly a list
-- of e-mail addresses, safely (guards, the plan's difference written,
-- verify).
--
--   CLOUDFLARE_API_TOKEN=... lua examples/replace_from_emails.lua \
--       ACCOUNT GROUP alice@example.com bob@example.com ...
-- ACCOUNT and GROUP may also come from CFIAM_ACCOUNT and CFIAM_GROUP (then
-- every argument is an address). GROUP is an id or a group name.
local cfiam = require("cfiam")

local args = { ... }
local account = os.getenv("CFIAM_ACCOUNT") or table.remove(args, 1)
local group = os.getenv("CFIAM_GROUP") or table.remove(args, 1)
if not account or not group then
  io.stderr:write("usage: replace_from_emails.lua ACCOUNT GROUP EMAIL...\n")
  os.exit(2)
end

local function fail(err)
  io.stderr:write(tostring(err), "\n")
  os.exit(err.kind == "guard" and 2 or 1)
end

-- A name is looked up; an id is used as is.
if not cfiam.is_id(group) then
  local g, err = cfiam.find_group(account, group)
  if not g then fail(err) end
  group = g.id
end

-- Unknown addresses fail here, before anything is written.
local plan, err = cfiam.sync_members(account, group, args,
  { verify = true, max_removals = tonumber(os.getenv("MAX_REMOVALS")) })
if not plan then
  if err.plan then
    io.stderr:write(("refused or failed: %d to add, %d to remove\n")
      :format(#err.plan.add, #err.plan.remove))
  end
  fail(err)
end
for _, m in ipairs(plan.add) do print("+ " .. (m.email or m.id)) end
for _, m in ipairs(plan.remove) do print("- " .. (m.email or m.id)) end
print(("%d added, %d removed, %d kept"):format(#plan.add, #plan.remove, #plan.keep))
