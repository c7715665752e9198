--- Every ```lua block of README.md runs: each one in a child interpreter
-- (the suite's, through the real C module) against the emulator, reset to
-- its --demo state before each block, with CLOUDFLARE_API_TOKEN and
-- CLOUDFLARE_BASE_URL pointing at it. A block passes when it exits without
-- an error, so a block should check what it gets (`if not x then
-- error(tostring(err)) end`, `assert(...)`).
--
-- The names the README's blocks use without defining them (the reader's
-- own ids) are defined first, from the demo seed (emulator/main.lua):
--   account_id      0123456789abcdef0123456789abcdef
--   user_group_id   e0000000000000000000000000000001 (Engineering: alice,
--   group_id        bob, carol)
--
-- Blocks fenced as anything else (sh, nginx, none) are not run, except the
-- sh block of "The API emulator": its lines after the emulator's start run
-- in a shell from the checkout, against the suite's emulator. A block can
-- declare more in HTML comments (invisible in the rendered README) on the
-- lines right before its fence:
--   <!-- readme-test: skip WHY -->        not run; shown as pending with WHY
--   <!-- readme-test: setup LUA -->       a line of Lua run first, in the same
--                                         chunk (its locals are visible)
--   <!-- readme-test: expect TEXT -->     the output must contain TEXT
local core = require("helpers.core")
local emulator = require("helpers.emulator")

local PRELUDE = table.concat({
  'local account_id = "0123456789abcdef0123456789abcdef"',
  'local user_group_id = "e0000000000000000000000000000001"',
  "local group_id = user_group_id",
}, "; ")

--- The README's fenced blocks: { lang, first (line number of the fence),
-- code, heading, skip, setup = { lines }, expect = { texts } }.
local function blocks(path)
  local out, heading, pending = {}, "", {}
  local cur
  local n = 0
  for line in io.lines(path) do
    n = n + 1
    if cur then
      if line:match("^```%s*$") then
        out[#out + 1] = cur
        cur = nil
      else
        cur.lines[#cur.lines + 1] = line
      end
    else
      local lang = line:match("^```(%S*)")
      local kind, arg = line:match("^<!%-%- readme%-test: (%a+)%s*(.-)%s*%-%->$")
      if lang then
        cur = { lang = lang, first = n, lines = {}, heading = heading, setup = {}, expect = {} }
        for _, d in ipairs(pending) do
          if d.kind == "skip" then cur.skip = d.arg ~= "" and d.arg or "skipped"
          elseif d.kind == "setup" then cur.setup[#cur.setup + 1] = d.arg
          elseif d.kind == "expect" then cur.expect[#cur.expect + 1] = d.arg
          else error(("README.md:%d: unknown readme-test directive %q"):format(n, d.kind)) end
        end
        pending = {}
      elseif kind then
        pending[#pending + 1] = { kind = kind, arg = arg }
      else
        pending = {}
        heading = line:match("^#+%s+(.*)") or heading
      end
    end
  end
  assert(cur == nil, "README.md: a code block is not closed")
  for _, b in ipairs(out) do b.code = table.concat(b.lines, "\n") end
  return out
end

describe("README.md", function()
  local all = blocks("README.md")
  local lua_blocks = {}
  for _, b in ipairs(all) do
    if b.lang == "lua" then lua_blocks[#lua_blocks + 1] = b end
  end

  it("has Lua blocks to run (the extraction found them)", function()
    assert.is_true(#lua_blocks >= 1)
  end)

  local emu, demo
  setup(function()
    emu = emulator.start{ args = { "--demo" } }
    demo = emu:state()
  end)
  teardown(function()
    if emu then emu:stop() end
  end)

  it("the emulator section's shell lines run as written from a fresh checkout", function()
    local block
    for _, b in ipairs(all) do
      if b.lang == "sh" and b.heading == "The API emulator" then block = block or b end
    end
    assert.is_table(block, "no sh block under The API emulator")
    -- the suite's emulator stands in for the one the block starts; the
    -- build is the suite's (make test builds build/5.4 first)
    local script, started = {}, false
    for _, line in ipairs(block.lines) do
      if line:match("^lua5%.4 emulator/main%.lua ") then started = true
      elseif not line:match("^make%f[%s]") and not line:match("^sleep ") then
        script[#script + 1] = (line:gsub("http://127%.0%.0%.1:8787/client/v4", emu.base_url))
      end
    end
    assert.is_true(started, "the block does not start the emulator")
    emu:reset(demo)
    local p = assert(io.popen("env -i PATH=/usr/local/bin:/usr/bin:/bin sh -c "
      .. core.shquote(table.concat(script, "\n")) .. " 2>&1; echo \"exit $?\""))
    local out = p:read("*a")
    p:close()
    assert.matches("exit 0\n$", out)
    assert.matches("\talice@example.com\taccepted\n", out)
  end)

  for _, b in ipairs(lua_blocks) do
    local name = ("the Lua block at line %d (%s) runs"):format(b.first, b.heading)
    if b.skip then
      pending(name .. ": " .. b.skip)
    else
      it(name, function()
        emu:reset(demo)
        -- prelude and setup on the first line, so that line k of the chunk
        -- is README line b.first + k - 1
        local chunk = PRELUDE .. "; " .. table.concat(b.setup, "; ") .. "\n" .. b.code
        local out, ok = core.child({ CLOUDFLARE_API_TOKEN = "demo-token",
          CLOUDFLARE_BASE_URL = emu.base_url }, chunk)
        out = out:gsub("%(command line%):(%d+)", function(k)
          return "README.md:" .. (b.first + tonumber(k) - 1)
        end)
        assert.is_true(ok, "the block failed:\n" .. out)
        for _, text in ipairs(b.expect) do
          assert.matches(text, out, 1, true)
        end
      end)
    end
  end
end)
