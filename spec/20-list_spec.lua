-- spec/20-list_spec.lua: list_members and each_member against the
-- emulator: every page of a 3000-member group, the stop rules (a short or
-- empty page, never total_count alone), max_pages, servers whose
-- total_count lies in either direction, a removal between two pages,
-- filters on the wire, failures part way, and argument errors.
local emulator = require("helpers.emulator")
local H = require("helpers.cli")

describe("list_members", function()
  local emu, ids, c, big, mid

  setup(function()
    local seed
    seed, ids = H.seed()
    emu = emulator.start{ seed = seed }
    big, mid = ids.groups.Big.id, ids.groups.Mid.id
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

  it("returns every member of a 3000-member group, 500 a page, until a page comes back empty", function()
    local list, err = c:list_members(ids.account, big)
    assert.is_nil(err)
    assert.are.equal(3000, #list)
    assert.are.same(H.sorted_ids(ids.groups.Big.member_ids), H.sorted_ids(list))
    assert.are.equal("pending", list[7].status)
    assert.are.equal(ids.groups.Big.emails[1], list[1].email)
    local reqs = H.requests(emu, "GET", H.members_pattern(big))
    -- 6 full pages reach total_count, but only the empty 7th ends the
    -- listing: total_count alone is not trusted.
    assert.are.equal(7, #reqs)
    for i, r in ipairs(reqs) do
      local q = H.query(r.query)
      assert.are.equal(tostring(i), q.page)
      assert.are.equal("500", q.per_page)
    end
  end)

  it("pages with a smaller per_page and keeps the API's order", function()
    local list, err = c:list_members(ids.account, big, { per_page = 100 })
    assert.is_nil(err)
    assert.are.equal(3000, #list)
    for i = 1, 3000 do assert.are.equal(ids.groups.Big.member_ids[i], list[i].id) end
    assert.are.equal(31, #H.requests(emu, "GET", H.members_pattern(big)))
  end)

  it("returns an empty table for an empty group after one request", function()
    local list, err = c:list_members(ids.account, ids.groups.Empty.id)
    assert.is_nil(err)
    assert.are.same({}, list)
    assert.are.equal(1, #emu:requests())
  end)

  it("stops on an empty or a short page when the server gives no total_count", function()
    local page = {}
    for i = 1, 3 do page[i] = ids.members[i] end
    emu:fault{
      { path = H.members_pattern(big), times = 1, body = H.page_body(page) },
      { path = H.members_pattern(big), times = 1, body = H.page_body({}) } }
    local list, err = c:list_members(ids.account, big, { per_page = 3 })
    assert.is_nil(err)
    assert.are.equal(3, #list)
    assert.are.equal(2, #H.requests(emu, "GET", H.members_pattern(big)))
    -- 3 of 500 asked: the last page
    emu:clear_requests()
    emu:fault{ path = H.members_pattern(big), times = 1, body = H.page_body(page) }
    list, err = c:list_members(ids.account, big)
    assert.is_nil(err)
    assert.are.equal(3, #list)
    assert.are.equal(1, #H.requests(emu, "GET", H.members_pattern(big)))
  end)

  it("reads on past a total_count that is too low, and reports the disagreement", function()
    -- Mid holds 250; the server says 200 on every page. Pages of 100: the
    -- first two reach 200, the third (50, short) shows there was more.
    emu:fault{ path = H.members_pattern(mid), method = "GET", times = -1, total_count = 200 }
    local list, err = c:list_members(ids.account, mid, { per_page = 100 })
    assert.is_nil(list)
    assert.are.equal("incomplete", err.kind)
    assert.are.equal(250, err.count)
    assert.are.equal(200, err.total_count)
    assert.matches("ended on page 3 with 250 listed, but the server's total_count says 200",
      err.message, 1, true)
    assert.are.equal(3, #H.requests(emu, "GET", H.members_pattern(mid)))
    -- the same at a page boundary: 500 claimed, 600 held, 500 a page
    emu:clear_requests()
    emu:fault{ path = H.members_pattern(big), method = "GET", times = -1, total_count = 500 }
    list, err = c:list_members(ids.account, big)
    assert.is_nil(list)
    assert.are.equal("incomplete", err.kind)
    assert.are.equal(500, err.total_count)
    assert.matches("total_count says 500", err.message, 1, true)
    -- each_member ends with the same error
    emu:fault{ path = H.members_pattern(mid), method = "GET", times = -1, total_count = 200 }
    local n, failure = 0, nil
    for m, e in c:each_member(ids.account, mid, { per_page = 100 }) do
      if m then n = n + 1 else failure = e end
    end
    assert.are.equal("incomplete", failure and failure.kind)
    assert.are.equal(200, n) -- the pages before the disagreement showed
  end)

  it("cannot see a member that a removal between two pages shifted away", function()
    -- Someone else removes member 3001 (Mid's 51st by e-mail) between pages
    -- 1 and 2: page 2 starts one later, so the 101st is never listed, while
    -- the removed one was. The counts agree (249), so nothing here can tell:
    -- this is why sync_members writes only its plan's difference
    -- (spec/52-nothing_lost_spec.lua).
    local gone = ids.members[3001].id
    local unseen = ids.members[3051].id -- 101st by e-mail
    emu:fault{ path = H.members_pattern(mid), method = "GET", query = "[?&]page=2",
      remove_member = gone }
    local list, err = c:list_members(ids.account, mid, { per_page = 100 })
    assert.is_nil(err)
    assert.are.equal(249, #list)
    local listed = {}
    for _, m in ipairs(list) do listed[m.id] = true end
    assert.is_true(listed[gone])
    assert.is_nil(listed[unseen])
    local state = H.state_members(emu, ids.account, mid)
    assert.are.equal(249, #state)
    assert.are.equal(3, #H.requests(emu, "GET", H.members_pattern(mid)))
  end)

  it("passes fuzzy_email and direction as fuzzyEmail and direction", function()
    local list, err = c:list_members(ids.account, big,
      { fuzzy_email = "USER000", direction = "desc" })
    assert.is_nil(err)
    -- user0001..user0009: total_count (3000) counts the whole group, so a
    -- filtered listing is not held to it.
    assert.are.equal(9, #list)
    assert.are.equal("user0009@example.com", list[1].email)
    local q = H.query(H.requests(emu, "GET", H.members_pattern(big))[1].query)
    assert.are.equal("USER000", q.fuzzyEmail)
    assert.are.equal("desc", q.direction)
    assert.is_nil(q.fuzzy_email)
  end)

  it("ends a listing cut short by max_pages with kind incomplete", function()
    local list, err = c:list_members(ids.account, big, { max_pages = 2 })
    assert.is_nil(list)
    assert.are.equal("incomplete", err.kind)
    assert.are.equal(1000, err.count)
    assert.are.equal(3000, err.total_count)
    assert.matches("max_pages", err.message)
    assert.matches("^cfiam incomplete: ", tostring(err))
    assert.are.equal(2, #emu:requests())
  end)

  it("reports a page that comes back empty too early (result null) as incomplete", function()
    emu:fault{
      { path = H.members_pattern(big), times = 1, delay_ms = 0 },
      { path = H.members_pattern(big), times = 1, result_null = true } }
    local list, err = c:list_members(ids.account, big)
    assert.is_nil(list)
    assert.are.equal("incomplete", err.kind)
    assert.are.equal(500, err.count)
    assert.matches("total_count says 3000", err.message)
  end)

  it("reports a server whose total_count claims more than it lists", function()
    local pages = {}
    for p = 1, 3 do
      local list = {}
      for i = (p - 1) * 100 + 1, math.min(p * 100, 250) do list[#list + 1] = ids.members[i] end
      pages[p] = list
    end
    local rules = {}
    for p = 1, 3 do
      rules[p] = { path = H.members_pattern(mid), times = 1, body = H.page_body(pages[p],
        { count = #pages[p], page = p, per_page = 100, total_count = 400 }) }
    end
    emu:fault(rules)
    local list, err = c:list_members(ids.account, mid, { per_page = 100 })
    assert.is_nil(list)
    assert.are.equal("incomplete", err.kind)
    assert.are.equal(250, err.count)
    assert.are.equal(400, err.total_count)
    assert.are.equal(3, #emu:requests()) -- the third page (50) was short
  end)

  it("counts a member once when pages shift under the listing (repeats dropped, any case)", function()
    -- page 2 starts with the last two members of page 1 again, one of them
    -- in upper case, as when members are added while a group is listed
    local m = ids.members
    local p1 = { m[1], m[2], m[3], m[4] }
    local again = { id = m[4].id:upper(), email = m[4].email, status = m[4].status }
    local p2 = { m[3], again, m[5], m[6] }
    local info = function(n, page)
      return { count = n, page = page, per_page = 4, total_count = 6 }
    end
    local p3 = H.page_body({}, info(0, 3))
    emu:fault({
      { path = H.members_pattern(mid), times = 1, body = H.page_body(p1, info(4, 1)) },
      { path = H.members_pattern(mid), times = 1, body = H.page_body(p2, info(4, 2)) },
      { path = H.members_pattern(mid), times = 1, body = p3 } })
    local list, err = c:list_members(ids.account, mid, { per_page = 4 })
    assert.is_nil(err)
    assert.are.same(H.sorted_ids({ m[1], m[2], m[3], m[4], m[5], m[6] }), H.sorted_ids(list))
    assert.are.equal(6, #list)
    assert.are.equal(3, #emu:requests()) -- 6 distinct members = total_count, then empty

    -- each_member yields each of them once too
    emu:fault({
      { path = H.members_pattern(mid), times = 1, body = H.page_body(p1, info(4, 1)) },
      { path = H.members_pattern(mid), times = 1, body = H.page_body(p2, info(4, 2)) },
      { path = H.members_pattern(mid), times = 1, body = p3 } })
    local n = 0
    for member, e in c:each_member(ids.account, mid, { per_page = 4 }) do
      assert.is_truthy(member, tostring(e))
      n = n + 1
    end
    assert.are.equal(6, n)
  end)

  it("does not trust a total_count lower than what was listed", function()
    local p1, p2 = {}, {}
    for i = 1, 100 do p1[i] = ids.members[i]; p2[i] = ids.members[100 + i] end
    emu:fault{
      { path = H.members_pattern(big), times = 1, body = H.page_body(p1,
        { count = 100, page = 1, per_page = 100, total_count = 50 }) },
      { path = H.members_pattern(big), times = 1, body = H.page_body(p2,
        { count = 100, page = 2, per_page = 100, total_count = 50 }) } }
    local list, err = c:list_members(ids.account, big, { per_page = 100 })
    assert.is_nil(list)
    assert.are.equal("incomplete", err.kind)
    assert.are.equal(200, err.count)
    assert.matches("total_count says 50", err.message)
    -- and a last page that overshoots it is incomplete too, not a list
    emu:fault{
      { path = H.members_pattern(big), times = 1, body = H.page_body(p1,
        { count = 100, page = 1, per_page = 100, total_count = 150 }) },
      { path = H.members_pattern(big), times = 1, body = H.page_body({ ids.members[300] },
        { count = 1, page = 2, per_page = 100, total_count = 150 }) } }
    list, err = c:list_members(ids.account, big, { per_page = 100 })
    assert.is_nil(list)
    assert.are.equal("incomplete", err.kind)
    assert.are.equal(101, err.count)
  end)

  it("bounds a listing that never runs out (default max_pages from total_count)", function()
    local page = { ids.members[1], ids.members[2] }
    emu:fault{ path = H.members_pattern(big), times = -1, body = H.page_body(page,
      { count = 2, page = 1, per_page = 2, total_count = 3 }) }
    local list, err = c:list_members(ids.account, big, { per_page = 2 })
    assert.is_nil(list)
    assert.are.equal("incomplete", err.kind)
    -- enough for total_count (2 pages), plus one
    assert.are.equal(3, #emu:requests())
  end)

  it("bounds a listing without total_count by an explicit max_pages", function()
    emu:fault{ path = H.members_pattern(big), times = -1,
      body = H.page_body({ ids.members[1] }) }
    local list, err = c:list_members(ids.account, big, { max_pages = 5, per_page = 1 })
    assert.is_nil(list)
    assert.are.equal("incomplete", err.kind)
    assert.are.equal(5, #emu:requests())
  end)

  it("returns the error of a page that fails part way", function()
    emu:fault{
      { path = H.members_pattern(big), times = 2, delay_ms = 0 },
      { path = H.members_pattern(big), times = 1, status = 500 } }
    local list, err = c:list_members(ids.account, big)
    assert.is_nil(list)
    assert.are.equal("server", err.kind)
    assert.are.equal(500, err.status)
    assert.are.equal(3, #emu:requests())
  end)

  it("returns not_found for an unknown group and invalid_argument for a bad id", function()
    local list, err = c:list_members(ids.account, string.rep("9", 32))
    assert.is_nil(list)
    assert.are.equal("not_found", err.kind)
    emu:clear_requests()
    list, err = c:list_members(ids.account, "not-an-id")
    assert.is_nil(list)
    assert.are.equal("invalid_argument", err.kind)
    list, err = c:list_members(ids.account, big, { per_page = 501 })
    assert.is_nil(list)
    assert.are.equal("invalid_argument", err.kind)
    list, err = c:list_members(ids.account, big, { direction = "up" })
    assert.is_nil(list)
    assert.are.equal("invalid_argument", err.kind)
    assert.are.equal(0, #emu:requests())
  end)

  it("raises on wrong Lua types and unknown options", function()
    assert.has_error(function() c:list_members(nil, big) end)
    assert.has_error(function() c:list_members(ids.account, big, { perpage = 5 }) end)
    assert.has_error(function() c:list_members(ids.account, big, { per_page = "5" }) end)
  end)

  it("is also a module-level function on the default client", function()
    local out = H.run("-", nil, { env = H.env(emu), stdin = ([[
      local cfiam = require("cfiam")
      local list, err = cfiam.list_members(%q, %q)
      io.write(list and #list or tostring(err))
    ]]):format(ids.account, big) })
    assert.are.equal(0, out.status, out.stderr)
    assert.are.equal("3000", out.stdout)
  end)
end)

describe("each_member", function()
  local emu, ids, c, big

  setup(function()
    local seed
    seed, ids = H.seed()
    emu = emulator.start{ seed = seed }
    big = ids.groups.Big.id
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

  it("yields every member, fetching page by page", function()
    local n, seen = 0, {}
    for m, err in c:each_member(ids.account, big) do
      assert.is_nil(err)
      n = n + 1
      seen[m.id] = true
      if n == 1 then assert.are.equal(1, #emu:requests()) end
      if n == 501 then assert.are.equal(2, #emu:requests()) end
    end
    assert.are.equal(3000, n)
    for _, id in ipairs(ids.groups.Big.member_ids) do assert.is_true(seen[id]) end
    assert.are.equal(7, #emu:requests()) -- the 7th, empty, ends it
  end)

  it("yields false, err once when a page fails, then stops", function()
    emu:fault{
      { path = H.members_pattern(big), times = 2, delay_ms = 0 },
      { path = H.members_pattern(big), times = 1, status = 503 } }
    local members, failures, last = 0, 0, nil
    for m, err in c:each_member(ids.account, big) do
      if m then members = members + 1 else failures = failures + 1; last = err end
    end
    assert.are.equal(1000, members)
    assert.are.equal(1, failures)
    assert.are.equal("server", last.kind)
  end)

  it("yields false, err for an incomplete listing and for invalid arguments", function()
    local results = {}
    for m, err in c:each_member(ids.account, big, { max_pages = 1 }) do
      if not m then results[#results + 1] = err.kind end
    end
    assert.are.same({ "incomplete" }, results)
    results = {}
    for m, err in c:each_member(ids.account, "bad") do
      results[#results + 1] = m == false and err.kind or "member"
    end
    assert.are.same({ "invalid_argument" }, results)
  end)
end)
