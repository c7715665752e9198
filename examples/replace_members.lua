--- Replace a user group's members and print the resulting members.
--
--   lua5.4 examples/replace_members.lua ACCOUNT_ID GROUP_ID MEMBER_ID...
--
-- Credentials come from the environment, as for every cfiam call:
-- CLOUDFLARE_API_TOKEN (or CLOUDFLARE_EMAIL + CLOUDFLARE_API_KEY), and
-- CLOUDFLARE_BASE_URL to talk to something other than the real API
-- (make demo points it at the built-in emulator).
--
-- Careful: this is a replace. Members not listed are removed from the group.
local cfiam = require "cfiam"

local account, group = arg[1], arg[2]
local ids = {}
for i = 3, #arg do ids[#ids + 1] = arg[i] end

if not account or not group or #ids == 0 then
  io.stderr:write("usage: replace_members.lua ACCOUNT_ID GROUP_ID MEMBER_ID...\n")
  os.exit(2)
end

local members, err = cfiam.update_members(account, group, ids)
if not members then
  io.stderr:write(tostring(err), "\n")
  os.exit(1)
end

-- A plain text table: id, status, e-mail.
local line = ("-"):rep(32) .. "  " .. ("-"):rep(8) .. "  " .. ("-"):rep(30)
print(("%-32s  %-8s  %s"):format("id", "status", "email"))
print(line)
for _, m in ipairs(members) do
  print(("%-32s  %-8s  %s"):format(m.id, m.status or "", m.email or ""))
end
print(line)
print(("%d member%s in group %s"):format(#members, #members == 1 and "" or "s", group))
