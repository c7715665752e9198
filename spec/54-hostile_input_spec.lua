-- spec/54-hostile_input_spec.lua: every committed fuzz input (seeds and the
-- regression inputs of crashes found, fuzz/corpus/) replayed through the
-- module from Lua with core.outcome, the same C that turns a libcurl
-- response into a result or an error. The fuzz harnesses check the C on its
-- own; this checks what a Lua caller gets: a result or a well-formed error,
-- never a raise, a one-line bounded message, no secret, a bounded wait.
local rel = require("helpers.reliability")
local cfiam = require("cfiam")

describe("hostile input", function()
  local c
  setup(function()
    c = cfiam.new{ api_token = rel.FUZZ_SECRET, base_url = "https://api.example.com/client/v4",
                   max_retries = 2 }
  end)
  teardown(function() c:close() end)

  it("every corpus input gives a result or a well-formed error", function()
    local results = rel.replay_corpus(c)
    assert.is_true(#results >= 20, "only " .. #results .. " corpus inputs")
    for _, r in ipairs(results) do
      if r.res ~= nil then
        assert.is_table(r.x, r.name)
        assert.is_number(r.x.status, r.name)
      else
        local err = r.x
        assert.is_table(err, r.name)
        assert.is_string(err.kind, r.name)
        assert.is_string(err.message, r.name)
        assert.is_true(#err.message <= 1023, r.name .. ": message of " .. #err.message .. " bytes")
        assert.is_nil(err.message:find("[\r\n]"), r.name)
        local s = tostring(err)
        assert.is_nil(s:find(rel.FUZZ_SECRET, 1, true), r.name .. ": " .. s)
        for _, list in ipairs({ err.errors, err.messages }) do
          for _, e in ipairs(list) do
            for _, v in pairs(e) do
              if type(v) == "string" then
                assert.is_nil(v:find(rel.FUZZ_SECRET, 1, true), r.name)
              end
            end
          end
        end
        assert.is_true(r.wait == nil or (r.wait >= 0 and r.wait <= 60), r.name)
      end
    end
  end)

  it("the regression inputs give the answers they were fixed to give", function()
    local by = {}
    for _, r in ipairs(rel.replay_corpus(c)) do by[r.name] = r end
    local overflow = by["response/regress-msg-overflow.json"]
    assert.equals("api", overflow.x.kind)
    assert.equals(1023, #overflow.x.message)
    assert.matches("%.%.%.$", overflow.x.message)
    local echo = by["response/regress-secret-echo.json"]
    assert.equals("permission", echo.x.kind)
    assert.equals("[redacted]", echo.x.ray_id)
    assert.equals("\n", by["response/regress-escape-first.json"].res)
    local cut = by["response/regress-secret-at-cut.json"]
    assert.is_nil(cut.x.message:find("fuzz-SECRET", 1, true))
    local long_wait = by["headers/retry-after-300.txt"]
    assert.equals("rate_limited", long_wait.x.kind)
    assert.equals(300, long_wait.x.retry_after)
    assert.is_nil(long_wait.wait)
    assert.is_nil(by["headers/should-retry-false.txt"].wait)
  end)
end)

-- Errors built by the Lua helpers keep the same promise as the C core's: a
-- user value is quoted bounded and escaped, a long list is named in part
-- ("and N more") with the whole of it in a field.
describe("hostile input in the helpers' messages", function()
  local emulator = require("helpers.emulator")
  local emu, ids, c
  setup(function()
    local seed
    seed, ids = emulator.seed{ members = 3, groups = { { name = "Eng", members = 2 } } }
    emu = emulator.start{ seed = seed }
    c = cfiam.new{ api_token = "test-token", base_url = emu.base_url, max_retries = 0 }
  end)
  teardown(function()
    if c then c:close() end
    if emu then emu:stop() end
  end)

  local function one_line(err)
    assert.is_string(err.message)
    assert.is_nil(err.message:find("[%c]"), err.message)
    assert.is_true(#err.message <= 1023, #err.message .. " bytes")
    assert.is_nil(tostring(err):find("[%c]"))
  end

  it("a group name with CR LF gives a one-line message", function()
    local g, err = c:find_group(ids.account, "Eng\r\nX-Injected: yes")
    assert.is_nil(g)
    assert.equals("not_found", err.kind)
    one_line(err)
    assert.matches('"Eng\\x0d\\x0aX-Injected: yes"', err.message, 1, true)
  end)

  it("a 10 MB address gives a bounded message", function()
    local huge = string.rep("a", 10 * 1024 * 1024) .. "@example.com"
    for _, call in ipairs({
      function() return c:resolve_members(ids.account, { huge }) end,
      function() return c:add_members(ids.account, ids.groups.Eng.id, { huge }) end,
      function() return c:add_members(ids.account, ids.groups.Eng.id, { "x\n" .. huge }) end,
      function() return c:resolve_members(ids.account, { "x\r" .. huge }) end,
    }) do
      local res, err = call()
      assert.is_nil(res)
      assert.equals("invalid_argument", err.kind)
      one_line(err)
      assert.is_true(#err.message < 300, #err.message .. " bytes")
    end
  end)

  it("5,000 unknown addresses: a bounded message, every address in err.unknown", function()
    local list = {}
    for i = 1, 5000 do list[i] = string.format("nobody%04d@example.com", i) end
    local res, err = c:resolve_members(ids.account, list)
    assert.is_nil(res)
    assert.equals("invalid_argument", err.kind)
    one_line(err)
    assert.matches('"nobody0005@example.com" and 4,995 more$', err.message)
    assert.equals(5000, #err.unknown)
    assert.equals("nobody5000@example.com", err.unknown[5000])
    local bad = {}
    for i = 1, 5000 do bad[i] = "not an address " .. i end
    res, err = c:add_members(ids.account, ids.groups.Eng.id, bad)
    assert.is_nil(res)
    one_line(err)
    assert.matches("and 4,995 more$", err.message)
    assert.equals(5000, #err.invalid)
  end)
end)
