-- examples/plan_dry_run.lua: show what a sync would change, writing
-- nothing (and which guard would refuse it).
--
--   lua examples/plan_dry_run.lua ACCOUNT GROUP_ID ID|EMAIL...
-- ACCOUNT and GROUP_ID may also come from CFIAM_ACCOUNT and CFIAM_GROUP.
local cfiam = require("cfiam")

local args = { ... }
local account = os.getenv("CFIAM_ACCOUNT") or table.remove(args, 1)
local group = os.getenv("CFIAM_GROUP") or table.remove(args, 1)
if not account or not group then
  io.stderr:write("usage: plan_dry_run.lua ACCOUNT GROUP_ID ID|EMAIL...\n")
  os.exit(2)
end

local plan, err = cfiam.sync_members(account, group, args, { dry_run = true })
local refused = nil
if not plan then
  -- A guard still hands back the plan it refused.
  if err.kind ~= "guard" then
    io.stderr:write(tostring(err), "\n")
    os.exit(1)
  end
  plan, refused = err.plan, err
end
for _, m in ipairs(plan.add) do
  print(("+ %s (%s)%s"):format(m.email or "?", m.id, m.status == "pending" and " pending" or ""))
end
for _, m in ipairs(plan.remove) do print(("- %s (%s)"):format(m.email or "?", m.id)) end
print(("%d to add, %d to remove, %d unchanged"):format(#plan.add, #plan.remove, #plan.keep))
if refused then
  print("a sync would be refused: " .. refused.message)
end
