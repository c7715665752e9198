-- spec/08-ratelimit_spec.lua: the Ratelimit / Ratelimit-Policy headers
-- (structured-field lists; garbage ignored without failing the call),
-- meta.ratelimit and client:ratelimit(), and pacing: a client that knows
-- its remaining quota never sends beyond it, so the emulator's quota
-- (--quota 20/10) never answers it with a 429; a wait longer than the
-- timeout fails at once, unsent.
local core = require("helpers.core")
local emulator = require("helpers.emulator")
local http = require("socket.http")

local MEMBERS = core.MEMBERS_PATH

describe("rate-limit headers", function()
  local emu

  setup(function()
    emu = emulator.start({ seed = core.seed() })
  end)

  teardown(function()
    if emu then emu:stop() end
  end)

  before_each(function()
    emu:reset(core.seed())
  end)

  -- The reading a response with these headers gives (meta.ratelimit).
  local function reading(headers)
    emu:clear_faults()
    emu:fault({ method = "GET", headers = headers, times = 1 })
    local c = core.client(emu)
    local result, meta = c:request("GET", MEMBERS)
    local latest = c:ratelimit()
    c:close()
    assert.is_table(result) -- never a failure, whatever the headers say
    return meta.ratelimit, latest
  end

  it("reads Cloudflare's headers into meta.ratelimit and client:ratelimit()", function()
    local rl, latest = reading({ Ratelimit = '"default";r=50;t=30',
                                 ["Ratelimit-Policy"] = '"default";q=1200;w=300' })
    assert.same({ remaining = 50, reset = 30, limit = 1200, window = 300 }, rl)
    assert.same({ remaining = 50, limit = 1200, window = 300 },
                { remaining = latest.remaining, limit = latest.limit, window = latest.window })
    assert.is_true(latest.reset <= 30 and latest.reset >= 29)
  end)

  it("of several items the one with the fewest requests left binds, with its policy", function()
    local rl = reading({ Ratelimit = '"default";r=50;t=30, "burst";r=5;t=1',
                         ["Ratelimit-Policy"] = '"default";q=1200;w=300, "burst";q=10;w=1' })
    assert.same({ remaining = 5, reset = 1, limit = 10, window = 1 }, rl)
    -- a policy of another name still gives the quota when none matches
    rl = reading({ Ratelimit = 'default;r=7;t=3', ["Ratelimit-Policy"] = '"burst";q=100;w=60' })
    assert.same({ remaining = 7, reset = 3, limit = 100, window = 60 }, rl)
  end)

  it("ignores unknown parameters, and skips malformed items but keeps the good ones", function()
    assert.same({ remaining = 7, reset = 3 },
      (reading({ Ratelimit = '"default";x="a;b,c";r=7;flag;t=3;z=?1;y=1.5' })))
    assert.same({ remaining = 9, reset = 2 },
      (reading({ Ratelimit = '@@@, "bad";r==1;t=1, "default";r=9;t=2' })))
    assert.same({ remaining = 4, reset = 8 },
      (reading({ Ratelimit = '"a";r=abc;t=3, "b";r=4;t=8' })))
  end)

  it("garbage gives no reading and never fails the call", function()
    local garbage = { 'r=5', ';;;', '"default";r=-1;t=3', '"default";r=5',
                      '"default";t=5', string.rep("x", 300), '"unterminated;r=1;t=1',
                      '"default";r=99999999999999999999;t=1', '\1\2\3', '' }
    for _, g in ipairs(garbage) do
      local rl = reading({ Ratelimit = g, ["Ratelimit-Policy"] = g })
      assert.is_nil(rl, g)
    end
    -- a policy alone is no reading either
    assert.is_nil((reading({ ["Ratelimit-Policy"] = '"default";q=1200;w=300' })))
    assert.is_nil((reading({})))
  end)

  it("no reading before any answer", function()
    local c = core.client(emu)
    assert.is_nil(c:ratelimit())
    c:close()
  end)
end)

describe("pacing by the quota", function()
  local emu

  setup(function()
    emu = emulator.start({ seed = core.seed(), args = { "--quota", "20/10" } })
  end)

  teardown(function()
    if emu then emu:stop() end
  end)

  before_each(function()
    emu:reset(core.seed()) -- also starts a fresh quota window
  end)

  it("the emulator's quota does answer 429 beyond 20 requests (for a client that does not pace)", function()
    local codes = {}
    for i = 1, 21 do
      local _, code, headers = http.request(emu.base_url .. MEMBERS)
      codes[i] = code
      if i == 1 then
        assert.equals('"default";q=20;w=10', headers["ratelimit-policy"])
        assert.matches('^"default";r=19;t=%d+$', headers["ratelimit"])
      end
    end
    assert.equals(401, codes[20]) -- no token: counted all the same
    assert.equals(429, codes[21])
    assert.equals(1, emu:stats().rate_limited)
  end)

  it("30 calls one after another within a quota of 20 per 10 s: all succeed, no 429", function()
    local c = core.client(emu, { timeout = 15 })
    local elapsed = core.timed(function()
      for i = 1, 30 do
        local res, err = c:request("GET", MEMBERS)
        assert(res, i .. ": " .. tostring(err))
      end
    end)
    c:close()
    local st = emu:stats()
    assert.equals(0, st.rate_limited)
    assert.equals(30, st.requests)
    assert.is_true(elapsed > 5, "waited for the window: " .. elapsed) -- about one window
  end)

  it("30 calls through request_many within a quota of 20 per 10 s: all succeed, no 429", function()
    local c = core.client(emu, { timeout = 15 })
    local calls = {}
    for i = 1, 30 do calls[i] = { "GET", MEMBERS } end
    local elapsed, out = core.timed(function() return c:request_many(calls, { concurrency = 8 }) end)
    c:close()
    for i = 1, 30 do assert.is_nil(out[i].err, i) end
    local st = emu:stats()
    assert.equals(0, st.rate_limited)
    assert.equals(30, st.requests)
    assert.is_true(elapsed > 5, "waited for the window: " .. elapsed)
  end)

  it("a wait beyond the timeout fails at once with rate_limited and retry_after, nothing sent", function()
    emu:admin("POST", "/quota", { limit = 3, window = 30 })
    local c = core.client(emu, { timeout = 2 })
    for i = 1, 3 do assert(c:request("GET", MEMBERS), i) end
    local elapsed, res, err = core.timed(function() return c:request("GET", MEMBERS) end)
    assert.is_nil(res)
    assert.equals("rate_limited", err.kind)
    assert.equals(0, err.attempts)
    assert.is_true(err.retry_after > 20 and err.retry_after <= 30, err.retry_after)
    assert.matches("nothing was sent", err.message)
    assert.is_true(elapsed < 2, "did not wait")
    -- the same through request_many, and update_members
    local out = c:request_many({ { "GET", MEMBERS }, { "GET", MEMBERS } })
    assert.equals("rate_limited", out[1].err.kind)
    assert.equals("rate_limited", out[2].err.kind)
    local members
    members, err = c:update_members(core.ACCOUNT, core.GROUP, { core.member(1) })
    assert.is_nil(members)
    assert.equals("rate_limited", err.kind)
    c:close()
    local st = emu:stats()
    assert.equals(3, st.requests)
    assert.equals(0, st.rate_limited)
    emu:admin("POST", "/quota", { limit = 20, window = 10 })
  end)
end)
