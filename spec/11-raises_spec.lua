-- spec/11-raises_spec.lua: a wrong Lua type or a wrong option name raises
-- an error that names the caller's file and line (not a file of cfiam),
-- for the C methods and every Lua helper alike, as client methods and as
-- module-level functions, for cfiam.configure, and for a closed client
-- whatever method it is used through, and sends nothing. Each
-- case calls the method from a line of this file (not as a tail call), so
-- the position the message carries can be checked.
local emulator = require("helpers.emulator")
local H = require("helpers.cli")
local cfiam = require("cfiam")

describe("raises name the caller's line", function()
  local emu, ids, c

  setup(function()
    local seed
    seed, ids = H.seed()
    emu = emulator.start{ seed = seed }
  end)

  teardown(function()
    if emu then emu:stop() end
  end)

  before_each(function()
    emu:reset()
    c = H.client(emu)
  end)

  after_each(function()
    if c then c:close() end
  end)

  local here = debug.getinfo(1, "S").short_src

  local G = "00000000000000000000000000000000"
  local cases = {
    { "request", function(x) local r = x:request("GET", "/accounts", { bogus = 1 }) return r end },
    { "update_members", function(x) local r = x:update_members(ids.account, G, 7) return r end },
    { "request_many", function(x) local r = x:request_many({}, { bogus = 1 }) return r end },
    { "list_members", function(x) local r = x:list_members(ids.account, G, { bogus = 1 }) return r end },
    { "each_member", function(x) local r = x:each_member(ids.account, G, { bogus = 1 }) return r end },
    { "add_members", function(x) local r = x:add_members(ids.account, G, 7) return r end },
    { "remove_members", function(x) local r = x:remove_members(ids.account, G, 7) return r end },
    { "plan_members", function(x) local r = x:plan_members(ids.account, G, 7) return r end },
    { "sync_members", function(x) local r = x:sync_members(ids.account, G, 7) return r end },
    { "apply_plan", function(x) local r = x:apply_plan(ids.account, G, 7) return r end },
    { "resolve_members", function(x) local r = x:resolve_members(ids.account, 7) return r end },
    { "list_groups", function(x) local r = x:list_groups(ids.account, { bogus = 1 }) return r end },
    { "find_group", function(x) local r = x:find_group(ids.account, 7) return r end },
    { "get_group", function(x) local r = x:get_group(ids.account, 7) return r end },
    { "create_group", function(x) local r = x:create_group(ids.account, 7) return r end },
    { "update_group", function(x) local r = x:update_group(ids.account, 7, {}) return r end },
    { "delete_group", function(x) local r = x:delete_group(ids.account, 7) return r end },
    { "plan_account", function(x) local r = x:plan_account(7) return r end },
    { "plan_account groups", function(x)
      local r = x:plan_account({ account = ids.account, groups = {} }, { groups = { 7 } }) return r end },
    { "apply_account", function(x) local r = x:apply_account(7) return r end },
    { "apply_account option", function(x)
      local r = x:apply_account({ account = ids.account, groups = {} }, { colour = 1 }) return r end },
    { "dump_account", function(x) local r = x:dump_account(ids.account, { groups = { 7 } }) return r end },
    -- the module-level functions, on the default client
    { "cfiam.request", function() local r = cfiam.request("GET", "/accounts", { bogus = 1 }) return r end },
    { "cfiam.update_members", function() local r = cfiam.update_members(ids.account, G, 7) return r end },
    { "cfiam.request_many", function() local r = cfiam.request_many({ { "GET" } }) return r end },
    { "cfiam.list_members", function() local r = cfiam.list_members(ids.account, 7) return r end },
    { "cfiam.configure", function() local r = cfiam.configure{ bogus = 1 } return r end,
      "cfiam.new: unknown option 'bogus'" },
    { "cfiam.configure type", function() local r = cfiam.configure(7) return r end, "bad argument" },
  }
  -- a closed client, in the C methods and through every kind of helper
  local CLOSED = "cfiam: attempt to use a closed client"
  for _, name in ipairs({ "request", "list_members", "each_member", "sync_members", "remove_members",
    "resolve_members", "list_groups", "find_group", "plan_account", "apply_account", "dump_account" }) do
    cases[#cases + 1] = { "closed client: " .. name, function(x)
      x:close()
      local r = x[name](x, ids.account, G, { ids.account }) return r end, CLOSED }
  end

  for _, case in ipairs(cases) do
    it(case[1], function()
      local f = case[2]
      local ok, msg = pcall(f, c)
      assert.is_false(ok)
      assert.is_string(msg)
      assert.matches(case[3] or "bad argument", msg, 1, true)
      -- the position is the line of the call, inside the case's function
      local file, line = msg:match("^(.-):(%d+): ")
      local info = debug.getinfo(f, "S")
      assert.are.equal(here, file, msg)
      assert.is_true(tonumber(line) >= info.linedefined
        and tonumber(line) <= info.lastlinedefined, msg)
      assert.are.equal(0, #H.writes(emu))
    end)
  end
end)
