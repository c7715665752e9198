-- spec/05-retry_spec.lua: retries: 408, 409, 429, 5xx, network errors
-- and timeouts up to max_retries; the server's retry-after-ms / Retry-After
-- (seconds or HTTP date) obeyed; x-should-retry wins; a server wait over
-- 60 s fails at once with err.retry_after. Attempts
-- are counted on the emulator's request log. Timings only prove that a wait
-- happened or that nothing hung, with generous bounds.
local core = require("helpers.core")
local emulator = require("helpers.emulator")

local A, G = core.ACCOUNT, core.GROUP
local m = core.member

describe("retries", function()
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

  local function with_client(opts, f)
    local c = core.client(emu, opts)
    local ok, e = pcall(f, c)
    c:close()
    if not ok then error(e, 0) end
  end

  it("retry 408, 409, 429 and 5xx up to max_retries, then fail with that status's kind", function()
    local kinds = { [408] = "api", [409] = "api", [429] = "rate_limited", [500] = "server",
                    [502] = "server", [503] = "server", [504] = "server", [520] = "server" }
    with_client({ max_retries = 2 }, function(c)
      for _, st in ipairs({ 408, 409, 429, 500, 502, 503, 504, 520 }) do
        emu:clear_requests()
        emu:clear_faults()
        emu:fault({ method = "PUT", status = st, times = -1, headers = { ["retry-after-ms"] = "1" } })
        local members, err = c:update_members(A, G, { m(5) })
        assert.is_nil(members)
        assert.equals(kinds[st], err.kind, st)
        assert.equals(st, err.status)
        assert.equals(3, err.attempts)
        assert.equals(3, #emu:requests())
      end
    end)
  end)

  it("a retry that succeeds returns the result; the same body is sent each time", function()
    emu:fault({ method = "PUT", status = 503, times = 2, headers = { ["retry-after-ms"] = "1" } })
    with_client({ max_retries = 2 }, function(c)
      local members, err = c:update_members(A, G, { m(5), m(6) })
      assert.is_nil(err)
      assert.equals(2, #members)
      local reqs = emu:requests()
      assert.equals(3, #reqs)
      for _, r in ipairs(reqs) do
        assert.equals('[{"id":"' .. m(5) .. '"},{"id":"' .. m(6) .. '"}]', r.body)
        assert.equals("PUT", r.method)
      end
      assert.same({ m(5), m(6) }, core.group_members(emu))
      -- meta.attempts on the generic request tells how many were needed
      emu:fault({ method = "GET", status = 500, times = 1, headers = { ["retry-after-ms"] = "1" } })
      local result, meta = c:request("GET", core.MEMBERS_PATH)
      assert.is_table(result)
      assert.equals(2, meta.attempts)
    end)
  end)

  it("retries a dropped connection (network) and succeeds", function()
    emu:fault({ method = "PUT", drop = true, times = 1 })
    with_client({ max_retries = 1 }, function(c)
      local members, err = c:update_members(A, G, { m(7) })
      assert.is_nil(err)
      assert.equals(1, #members)
      assert.same({ m(7) }, core.group_members(emu))
    end)
  end)

  it("retries connection refused up to max_retries", function()
    local c = core.client(emu, { base_url = "http://127.0.0.1:" .. core.closed_port() .. "/client/v4",
                                 max_retries = 2 })
    local secs, _, err = core.timed(c.update_members, c, A, G, { m(1) })
    assert.equals("network", err.kind)
    assert.equals(3, err.attempts)
    -- two backoff waits: about 0.5 s and 1 s, minus up to 25 % jitter
    assert.is_true(secs >= 1.0, "took " .. secs .. " s")
    assert.is_true(secs < 10, "took " .. secs .. " s")
    c:close()
  end)

  it("retries a timeout and succeeds", function()
    emu:fault({ method = "PUT", delay_ms = 2000, times = 1 })
    with_client({ max_retries = 1, timeout = 0.4 }, function(c)
      local members, err = c:update_members(A, G, { m(8) })
      assert.is_nil(err)
      assert.equals(1, #members)
      assert.equals(2, #emu:requests())
    end)
  end)

  it("without a server wait, backs off about 0.5 s before the first retry", function()
    emu:fault({ method = "PUT", status = 503, times = 1 })
    with_client({ max_retries = 1 }, function(c)
      local secs, members, err = core.timed(c.update_members, c, A, G, { m(5) })
      assert.is_nil(err)
      assert.equals(1, #members)
      assert.is_true(secs >= 0.35, "took " .. secs .. " s")
      assert.is_true(secs < 5, "took " .. secs .. " s")
    end)
  end)

  it("an unusable Retry-After falls back to the backoff", function()
    emu:fault({ method = "PUT", status = 429, times = 1, headers = { ["Retry-After"] = "soon" } })
    with_client({ max_retries = 1 }, function(c)
      local secs, members, err = core.timed(c.update_members, c, A, G, { m(5) })
      assert.is_nil(err)
      assert.equals(1, #members)
      assert.is_true(secs >= 0.35 and secs < 5, "took " .. secs .. " s")
    end)
  end)

  describe("server-given waits", function()
    it("Retry-After in seconds is waited", function()
      emu:fault({ method = "PUT", status = 429, times = 1, headers = { ["Retry-After"] = "1" } })
      with_client({ max_retries = 1 }, function(c)
        local secs, members, err = core.timed(c.update_members, c, A, G, { m(5) })
        assert.is_nil(err)
        assert.equals(1, #members)
        assert.is_true(secs >= 0.95, "took " .. secs .. " s")
        assert.is_true(secs < 6, "took " .. secs .. " s")
        assert.equals(2, #emu:requests())
      end)
    end)

    it("Retry-After with a fraction of a second is waited", function()
      emu:fault({ method = "PUT", status = 503, times = 1, headers = { ["Retry-After"] = "0.3" } })
      with_client({ max_retries = 1 }, function(c)
        local secs, _, err = core.timed(c.update_members, c, A, G, { m(5) })
        assert.is_nil(err)
        assert.is_true(secs >= 0.28 and secs < 5, "took " .. secs .. " s")
      end)
    end)

    it("retry-after-ms is waited", function()
      emu:fault({ method = "PUT", status = 429, times = 1, headers = { ["retry-after-ms"] = "300" } })
      with_client({ max_retries = 1 }, function(c)
        local secs, _, err = core.timed(c.update_members, c, A, G, { m(5) })
        assert.is_nil(err)
        assert.is_true(secs >= 0.28 and secs < 5, "took " .. secs .. " s")
      end)
    end)

    it("retry-after-ms wins over Retry-After", function()
      emu:fault({ method = "PUT", status = 429, times = 1,
                  headers = { ["retry-after-ms"] = "50", ["Retry-After"] = "300" } })
      with_client({ max_retries = 1 }, function(c)
        local secs, members, err = core.timed(c.update_members, c, A, G, { m(5) })
        assert.is_nil(err)
        assert.equals(1, #members)
        assert.is_true(secs < 5, "took " .. secs .. " s")
        assert.equals(2, #emu:requests())
      end)
    end)

    it("a Retry-After that is no usable number (a negative infinity) is unusable: the backoff applies", function()
      emu:fault({ method = "PUT", status = 503, times = 1, headers = { ["Retry-After"] = "-1e400" } })
      with_client({ max_retries = 1 }, function(c)
        local secs, members, err = core.timed(c.update_members, c, A, G, { m(5) })
        assert.is_nil(err)
        assert.equals(1, #members)
        assert.equals(2, #emu:requests())
        assert.is_true(secs < 5, "took " .. secs .. " s")
      end)
    end)

    it("Retry-After as an HTTP date is waited until that time", function()
      local at = os.time() + 2
      emu:fault({ method = "PUT", status = 503, times = 1,
                  headers = { ["Retry-After"] = os.date("!%a, %d %b %Y %H:%M:%S GMT", at) } })
      with_client({ max_retries = 1 }, function(c)
        local secs, members, err = core.timed(c.update_members, c, A, G, { m(5) })
        assert.is_nil(err)
        assert.equals(1, #members)
        -- whole-second resolution: between 1 and 2 s from now
        assert.is_true(secs >= 0.9, "took " .. secs .. " s")
        assert.is_true(secs < 8, "took " .. secs .. " s")
        assert.is_true(os.time() >= at - 1)
      end)
    end)

    it("a wait over 60 s is not waited: fails at once with err.retry_after (seconds)", function()
      emu:fault({ method = "PUT", status = 429, times = -1, headers = { ["Retry-After"] = "300" } })
      with_client({ max_retries = 2 }, function(c)
        local secs, members, err = core.timed(c.update_members, c, A, G, { m(5) })
        assert.is_nil(members)
        assert.equals("rate_limited", err.kind)
        assert.equals(429, err.status)
        assert.equals(300, err.retry_after)
        assert.equals(1, err.attempts)
        assert.equals(1, #emu:requests())
        assert.is_true(secs < 5, "took " .. secs .. " s")
      end)
    end)

    it("a Retry-After of 1e9 s or more (or beyond a double) is a wait over 60 s: fails at once", function()
      for _, case in ipairs({ { ["Retry-After"] = "1000000000" }, { ["Retry-After"] = "1e400" },
        { ["Retry-After"] = "99999999999999999999" }, { ["retry-after-ms"] = "1e15" },
        { ["Retry-After"] = "1" .. string.rep("0", 99) } }) do
        emu:clear_requests()
        emu:fault({ method = "PUT", status = 429, headers = case })
        with_client({ max_retries = 2 }, function(c)
          local members, err = c:update_members(A, G, { m(5) })
          assert.is_nil(members)
          assert.equals("rate_limited", err.kind)
          assert.is_true(err.retry_after >= 1e6, tostring(err.retry_after))
          assert.equals(1, err.attempts)
          assert.equals(1, #emu:requests())
        end)
      end
    end)

    it("the same for 5xx, for retry-after-ms, and for an HTTP date ten minutes away", function()
      local cases = {
        { status = 503, headers = { ["Retry-After"] = "120" }, kind = "server", wait = 120 },
        { status = 429, headers = { ["retry-after-ms"] = "90000" }, kind = "rate_limited", wait = 90 },
        { status = 429, headers = { ["Retry-After"] = os.date("!%a, %d %b %Y %H:%M:%S GMT", os.time() + 600) },
          kind = "rate_limited", wait = 600 },
      }
      with_client({ max_retries = 2 }, function(c)
        for _, case in ipairs(cases) do
          emu:clear_requests()
          emu:fault({ method = "PUT", status = case.status, headers = case.headers })
          local secs, _, err = core.timed(c.update_members, c, A, G, { m(5) })
          assert.equals(case.kind, err.kind)
          assert.is_true(math.abs(err.retry_after - case.wait) <= 2, tostring(err.retry_after))
          assert.equals(1, err.attempts)
          assert.equals(1, #emu:requests())
          assert.is_true(secs < 5, "took " .. secs .. " s")
        end
      end)
    end)
  end)

  describe("x-should-retry", function()
    it("false forbids retrying a retryable status", function()
      emu:fault({ method = "PUT", status = 503, times = -1, headers = { ["x-should-retry"] = "false" } })
      with_client({ max_retries = 2 }, function(c)
        local _, err = c:update_members(A, G, { m(5) })
        assert.equals("server", err.kind)
        assert.equals(1, err.attempts)
        assert.equals(1, #emu:requests())
      end)
    end)

    it("true forces a retry of a status that is not retried by default", function()
      emu:fault({ method = "PUT", status = 400, times = 1,
                  headers = { ["x-should-retry"] = "true", ["retry-after-ms"] = "1" } })
      with_client({ max_retries = 1 }, function(c)
        local members, err = c:update_members(A, G, { m(5) })
        assert.is_nil(err)
        assert.equals(1, #members)
        assert.equals(2, #emu:requests())
      end)
    end)

    it("true still stops at max_retries", function()
      emu:fault({ method = "PUT", status = 404, times = -1,
                  headers = { ["x-should-retry"] = "true", ["retry-after-ms"] = "1" } })
      with_client({ max_retries = 2 }, function(c)
        local _, err = c:update_members(A, G, { m(5) })
        assert.equals("not_found", err.kind)
        assert.equals(3, err.attempts)
        assert.equals(3, #emu:requests())
      end)
    end)
  end)

  it("does not retry other 4xx (400, 401, 403, 404, 405, 415, 422)", function()
    with_client({ max_retries = 3 }, function(c)
      for _, st in ipairs({ 400, 401, 403, 404, 405, 415, 422 }) do
        emu:clear_requests()
        emu:fault({ method = "PUT", status = st, headers = { ["retry-after-ms"] = "1" } })
        local _, err = c:update_members(A, G, { m(5) })
        assert.equals(st, err.status)
        assert.equals(1, err.attempts)
        assert.equals(1, #emu:requests())
      end
    end)
  end)

  it("does not retry a success:false in a 200 or an invalid response", function()
    with_client({ max_retries = 3 }, function(c)
      emu:fault({ method = "PUT", status = 200, body = "not json" })
      local _, err = c:update_members(A, G, { m(5) })
      assert.equals("invalid_response", err.kind)
      emu:fault({ method = "PUT", status = 200,
        body = '{"success":false,"errors":[{"code":1,"message":"x"}],"messages":[],"result":null}' })
      _, err = c:update_members(A, G, { m(5) })
      assert.equals("api", err.kind)
      assert.equals(2, #emu:requests())
    end)
  end)

  it("max_retries = 0 makes exactly one attempt", function()
    -- a fresh client each time: libcurl itself re-sends once when a REUSED
    -- keep-alive connection closes without any answer (a stale connection)
    for _, rule in ipairs({ { method = "PUT", status = 503, times = -1 },
                            { method = "PUT", status = 429, times = -1 },
                            { method = "PUT", drop = true, times = -1 } }) do
      emu:clear_faults()
      emu:clear_requests()
      emu:fault(rule)
      with_client({ max_retries = 0 }, function(c)
        local secs, members, err = core.timed(c.update_members, c, A, G, { m(5) })
        assert.is_nil(members)
        assert.equals(1, err.attempts)
        assert.equals(1, #emu:requests())
        assert.is_true(secs < 2, "took " .. secs .. " s")
      end)
    end
  end)

  it("the default is 2 retries (3 attempts)", function()
    emu:fault({ method = "PUT", status = 500, times = -1, headers = { ["retry-after-ms"] = "1" } })
    local c = core.client(emu, { max_retries = false })
    local _, err = c:update_members(A, G, { m(5) })
    assert.equals("server", err.kind)
    assert.equals(3, err.attempts)
    assert.equals(3, #emu:requests())
    c:close()
  end)
end)
