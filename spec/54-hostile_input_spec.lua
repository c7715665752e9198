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
