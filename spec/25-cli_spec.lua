-- spec/25-cli_spec.lua: the `cfiam` command, run as a child process
-- (bin/cfiam under the suite's interpreter) against the emulator: output,
-- --json documents, exit codes 0/1/2, help texts, the sync diff, guards,
-- --file and '-', and the confirmation (refused without a terminal;
-- CFIAM_TTY=1 stands in for one so the prompt can be answered).
local emulator = require("helpers.emulator")
local H = require("helpers.cli")

describe("cfiam command", function()
  local emu, ids, big, small, empty

  setup(function()
    local seed
    seed, ids = H.seed()
    emu = emulator.start{ seed = seed }
    big, small, empty = ids.groups.Big.id, ids.groups.Small.id, ids.groups.Empty.id
  end)

  teardown(function()
    if emu then emu:stop() end
  end)

  before_each(function()
    emu:reset()
  end)

  local function cfiam(args, opts)
    opts = opts or {}
    opts.env = opts.env or H.env(emu)
    return H.run("bin/cfiam", args, opts)
  end

  local function member(i) return ids.members[i] end

  local function lines(s)
    local out = {}
    for l in s:gmatch("([^\n]*)\n") do out[#out + 1] = l end
    return out
  end

  describe("help and usage", function()
    it("cfiam --help documents every subcommand, the environment and the exit codes", function()
      local r = cfiam({ "--help" })
      assert.are.equal(0, r.status)
      for _, s in ipairs({ "cfiam members list", "cfiam members add", "cfiam members remove",
        "cfiam members sync", "cfiam groups  list", "--json", "--dry-run", "--allow-empty",
        "--max-removals N", "--yes", "--file F", "CLOUDFLARE_API_TOKEN", "CLOUDFLARE_BASE_URL",
        "Exit status", "2  usage error" }) do
        assert.matches(s, r.stdout, 1, true)
      end
      assert.are.equal("", r.stderr)
      -- every option of members sync is in its usage lines
      local sync = r.stdout:match("cfiam members sync.-\n  cfiam groups")
      for _, s in ipairs({ "--file F", "--dry-run", "--allow-empty", "--max-removals N",
        "--replace", "--yes", "--json", "--concurrency N" }) do
        assert.matches(s, sync, 1, true)
      end
    end)

    it("plan, apply and dump --help --json give one {\"help\": ...} document", function()
      for _, cmd in ipairs({ "plan", "apply", "dump" }) do
        local r = cfiam({ cmd, "--help", "--json" })
        assert.are.equal(0, r.status, r.stderr)
        assert.matches("cfiam " .. cmd, H.json(r.stdout).help, 1, true)
      end
    end)

    it("cfiam members --help explains the subcommands and options", function()
      local r = cfiam({ "members", "--help" })
      assert.are.equal(0, r.status)
      for _, s in ipairs({ "--dry-run", "--allow-empty", "--max-removals N", "--yes",
        "--file", "standard input (-)", "+ EMAIL (ID)", "Exit status" }) do
        assert.matches(s, r.stdout, 1, true)
      end
      local r2 = cfiam({ "members", "sync", "--help" })
      assert.are.equal(0, r2.status)
      assert.are.equal(r.stdout, r2.stdout)
    end)

    it("exits 2 with a message on stderr for usage errors", function()
      for _, args in ipairs({ {}, { "teams" }, { "members" }, { "members", "move" },
        { "members", "list", ids.account }, { "members", "list", ids.account, big, "--bogus" },
        { "members", "sync", ids.account, small, "--max-removals", "many" },
        { "members", "sync", ids.account, small, "--max-removals" },
        { "members", "add", ids.account, small } }) do
        local r = cfiam(args)
        assert.are.equal(2, r.status, table.concat(args, " "))
        assert.are_not.equal("", r.stderr)
      end
      assert.are.same({}, emu:requests())
    end)

    it("refuses an over-long option or command word at once (exit 2, a bounded message)", function()
      -- argparse's "did you mean" search is quadratic in the word: 100 KB
      -- takes about 20 s; the timeout proves the refusal does not hang.
      local huge = string.rep("x", 100000)
      for _, args in ipairs({ { "--" .. huge }, { huge }, { "members", huge },
        { "members", "list", ids.account, small, "--" .. huge .. "=1" } }) do
        local r = cfiam(args, { timeout = 10 })
        assert.are.equal(2, r.status)
        local first = r.stderr:match("^[^\n]*")
        assert.matches("^cfiam: unknown %a+ ", first)
        assert.is_true(#first < 1100, #first)
      end
      assert.are.same({}, emu:requests())
    end)

    it("exits 2 without credentials", function()
      local r = cfiam({ "members", "list", ids.account, small },
        { env = { CLOUDFLARE_BASE_URL = emu.base_url } })
      assert.are.equal(2, r.status)
      assert.matches("CLOUDFLARE_API_TOKEN", r.stderr)
      assert.are.same({}, emu:requests())
    end)
  end)

  describe("members list", function()
    it("prints every member of a 3000-member group (group by name)", function()
      local r = cfiam({ "members", "list", ids.account, "Big" })
      assert.are.equal(0, r.status, r.stderr)
      local l = lines(r.stdout)
      assert.are.equal(3000, #l)
      assert.are.equal(member(1).id .. "\t" .. member(1).email .. "\taccepted", l[1])
      assert.are.equal(member(7).id .. "\t" .. member(7).email .. "\tpending", l[7])
    end)

    it("--json prints one array, [] for an empty group", function()
      local r = cfiam({ "members", "list", ids.account, small, "--json" })
      assert.are.equal(0, r.status, r.stderr)
      local doc = H.json(r.stdout)
      assert.are.same({ id = member(2).id, email = member(2).email, status = "accepted" }, doc[2])
      assert.are.equal(3, #doc)
      r = cfiam({ "members", "list", ids.account, empty, "--json" })
      assert.are.equal(0, r.status)
      assert.are.equal("[]\n", r.stdout)
    end)

    it("exits 1 on an API error or a network error, with the message on stderr", function()
      local r = cfiam({ "members", "list", ids.account, string.rep("9", 32), "--json" })
      assert.are.equal(1, r.status)
      assert.matches("^cfiam not_found: ", r.stderr)
      assert.are.equal("not_found", H.json(r.stdout).error.kind)
      r = cfiam({ "members", "list", ids.account, "No Such Group" })
      assert.are.equal(1, r.status)
      assert.matches('no user group named "No Such Group"', r.stderr, 1, true)
      r = cfiam({ "members", "list", ids.account, small }, { env = {
        CLOUDFLARE_API_TOKEN = H.TOKEN, CLOUDFLARE_BASE_URL = "http://127.0.0.1:1/client/v4" } })
      assert.are.equal(1, r.status)
      assert.matches("^cfiam network: ", r.stderr)
    end)

    it("exits 1 on an incomplete listing", function()
      emu:fault{
        { path = H.members_pattern(big), times = 1, delay_ms = 0 },
        { path = H.members_pattern(big), times = 1, result_null = true } }
      local r = cfiam({ "members", "list", ids.account, big })
      assert.are.equal(1, r.status)
      assert.matches("^cfiam incomplete: ", r.stderr)
      assert.are.equal("", r.stdout)
    end)
  end)

  describe("members add / remove", function()
    it("adds by e-mail and id, printing the members given", function()
      local r = cfiam({ "members", "add", ids.account, "Small", member(10).email:upper(),
        member(14).id })
      assert.are.equal(0, r.status, r.stderr)
      assert.matches("+ " .. member(10).email .. " (" .. member(10).id .. ")\n", r.stdout, 1, true)
      assert.matches("+ " .. member(14).email .. " (" .. member(14).id .. ") pending\n",
        r.stdout, 1, true)
      assert.matches("5 members in the group", r.stdout, 1, true)
      assert.are.equal(5, #H.state_members(emu, ids.account, small))
    end)

    it("add --json, and exit 2 for an unknown address (nothing sent)", function()
      local r = cfiam({ "members", "add", ids.account, small, member(11).id, "--json" })
      assert.are.equal(0, r.status, r.stderr)
      local doc = H.json(r.stdout)
      assert.are.same({ { id = member(11).id, email = member(11).email, status = "accepted" } },
        doc.added)
      assert.are.equal(4, #doc.members)
      emu:clear_requests()
      r = cfiam({ "members", "add", ids.account, small, "nobody@example.com" })
      assert.are.equal(2, r.status)
      assert.matches("nobody@example.com", r.stderr, 1, true)
      assert.are.same({}, H.writes(emu))
    end)

    it("removes, reporting members that were not in the group", function()
      local r = cfiam({ "members", "remove", ids.account, small, member(1).email, member(20).id })
      assert.are.equal(0, r.status, r.stderr)
      assert.are.same({ "- " .. member(1).id, "not a member: " .. member(20).id,
        "1 removed, 1 not members" }, lines(r.stdout))
      r = cfiam({ "members", "remove", ids.account, small, member(2).id, "--json" })
      assert.are.equal(0, r.status)
      assert.are.equal('{"not_members":[],"removed":["' .. member(2).id .. '"]}\n', r.stdout)
      assert.are.same({ member(3).id }, H.state_members(emu, ids.account, small))
    end)
  end)

  describe("members sync", function()
    it("--dry-run prints the diff and counts, writing nothing", function()
      local r = cfiam({ "members", "sync", ids.account, small, member(1).id, member(2).id,
        member(7).email, "--dry-run" })
      assert.are.equal(0, r.status, r.stderr)
      assert.are.same({
        "+ " .. member(7).email .. " (" .. member(7).id .. ") pending",
        "- " .. member(3).email .. " (" .. member(3).id .. ")",
        "1 to add, 1 to remove, 2 unchanged",
        "dry run: nothing written" }, lines(r.stdout))
      assert.are.same({}, H.writes(emu))
    end)

    it("refuses to write without a terminal unless --yes (exit 2)", function()
      local r = cfiam({ "members", "sync", ids.account, small, member(1).id, member(4).id })
      assert.are.equal(2, r.status)
      assert.matches("--yes", r.stderr, 1, true)
      assert.matches("1 to add, 2 to remove, 1 unchanged", r.stdout, 1, true)
      assert.are.same({}, H.writes(emu))
      r = cfiam({ "members", "sync", ids.account, small, member(1).id, member(4).id, "--yes" })
      assert.are.equal(0, r.status, r.stderr)
      assert.matches("written: 1 added, 2 removed", r.stdout, 1, true)
      assert.are.same(H.sorted_ids({ member(1).id, member(4).id }),
        H.state_members(emu, ids.account, small))
      assert.are.equal(3, #H.writes(emu)) -- POST, DELETE, DELETE
    end)

    it("asks on a terminal and writes only on yes", function()
      local args = { "members", "sync", ids.account, small, member(1).id, member(2).id }
      local env = H.env(emu, { CFIAM_TTY = "1" })
      local r = cfiam(args, { env = env, stdin = "n\n" })
      assert.are.equal(2, r.status)
      assert.matches("Apply this plan to group " .. small .. "? [y/N]", r.stderr, 1, true)
      assert.matches("not confirmed", r.stderr, 1, true)
      assert.are.same({}, H.writes(emu))
      r = cfiam(args, { env = env, stdin = "yes\n" })
      assert.are.equal(0, r.status, r.stderr)
      assert.are.same(H.sorted_ids({ member(1).id, member(2).id }),
        H.state_members(emu, ids.account, small))
    end)

    it("reads the list from --file and from standard input (-)", function()
      local file = os.tmpname()
      local f = assert(io.open(file, "w"))
      f:write("# members of Small\n", member(1).id, "\n", member(5).email:upper(), ", ",
        member(6).id, "  # the new ones\n\n")
      f:close()
      local r = cfiam({ "members", "sync", ids.account, small, "--file", file, "--yes" })
      os.remove(file)
      assert.are.equal(0, r.status, r.stderr)
      assert.are.same(H.sorted_ids({ member(1).id, member(5).id, member(6).id }),
        H.state_members(emu, ids.account, small))
      r = cfiam({ "members", "sync", ids.account, small, "-", "--yes" },
        { stdin = member(8).email .. "\n" .. member(9).email .. "\n" .. member(1).id .. "\n" })
      assert.are.equal(0, r.status, r.stderr)
      assert.are.same(H.sorted_ids({ member(1).id, member(8).id, member(9).id }),
        H.state_members(emu, ids.account, small))
      -- '-' consumed standard input: no confirmation is possible without --yes
      r = cfiam({ "members", "sync", ids.account, small, "-" },
        { env = H.env(emu, { CFIAM_TTY = "1" }), stdin = member(1).id .. "\n" })
      assert.are.equal(2, r.status)
    end)

    it("exits 2 on a guard, naming it on stderr, writing nothing", function()
      local keep = {}
      for i = 21, 3000 do keep[#keep + 1] = member(i).id end -- removes 20
      local file = os.tmpname()
      local f = assert(io.open(file, "w"))
      f:write(table.concat(keep, "\n"))
      f:close()
      local r = cfiam({ "members", "sync", ids.account, big, "--file", file, "--yes", "--json" })
      assert.are.equal(2, r.status)
      assert.matches("^cfiam guard: the plan removes 20 members", r.stderr)
      local doc = H.json(r.stdout)
      assert.are.equal("guard", doc.error.kind)
      assert.are.equal(20, #doc.error.plan.remove)
      assert.are.same({}, doc.error.plan.add)
      assert.are.same({}, H.writes(emu))
      r = cfiam({ "members", "sync", ids.account, big, "--file", file, "--yes",
        "--max-removals", "20" })
      os.remove(file)
      assert.are.equal(0, r.status, r.stderr)
      assert.are.equal(2980, #H.state_members(emu, ids.account, big))
    end)

    it("refuses to empty a group without --allow-empty", function()
      local r = cfiam({ "members", "sync", ids.account, small, "--yes" })
      assert.are.equal(2, r.status)
      assert.matches("^cfiam guard: the plan empties group", r.stderr)
      assert.are.same({}, H.writes(emu))
      r = cfiam({ "members", "sync", ids.account, small, "--yes", "--allow-empty", "--json" })
      assert.are.equal(0, r.status, r.stderr)
      local doc = H.json(r.stdout)
      assert.is_true(doc.written)
      assert.are.equal(3, #doc.remove)
      assert.are.same({}, H.state_members(emu, ids.account, small))
    end)

    it("--json prints the plan as one document with [] for empty lists", function()
      local r = cfiam({ "members", "sync", ids.account, small, member(1).id, member(2).id,
        member(3).id, "--json", "--yes" })
      assert.are.equal(0, r.status, r.stderr)
      assert.matches('"add":[]', r.stdout, 1, true)
      assert.matches('"remove":[]', r.stdout, 1, true)
      local doc = H.json(r.stdout)
      assert.are.equal(3, #doc.keep)
      assert.is_false(doc.dry_run)
      -- nothing to change: no write
      assert.is_false(doc.written)
      assert.are.same({}, H.writes(emu))
    end)

    it("--replace writes one PUT; the default writes only the plan's difference", function()
      local r = cfiam({ "members", "sync", ids.account, small, member(1).id, member(4).id,
        "--yes", "--replace" })
      assert.are.equal(0, r.status, r.stderr)
      local writes = H.writes(emu)
      assert.are.equal(1, #writes)
      assert.are.equal("PUT", writes[1].method)
      assert.are.same(H.sorted_ids({ member(1).id, member(4).id }),
        H.state_members(emu, ids.account, small))
      r = cfiam({ "members", "sync", "--help" })
      assert.matches("--replace", r.stdout, 1, true)
    end)

    it("a total_count too low never costs a member (cfiam members sync ... --max-removals 1 --yes)", function()
      -- Big holds 3000; the server says 2500. The file keeps 2..2500: one
      -- removal planned from what the listing would show.
      emu:fault{ path = H.members_pattern(big), method = "GET", times = -1, total_count = 2500 }
      local keep = {}
      for i = 2, 2500 do keep[#keep + 1] = member(i).id end
      local file = os.tmpname()
      local f = assert(io.open(file, "w"))
      f:write(table.concat(keep, "\n"))
      f:close()
      local r = cfiam({ "members", "sync", ids.account, "Big", "--file", file,
        "--max-removals", "1", "--yes" })
      os.remove(file)
      assert.are.equal(1, r.status, r.stdout)
      assert.matches("^cfiam incomplete: ", r.stderr)
      assert.are.same({}, H.writes(emu))
      assert.are.equal(3000, #H.state_members(emu, ids.account, big))
    end)

    it("exits 1 when the PUT (--replace) fails", function()
      -- 400 is not retried (the command's client keeps the default retries)
      emu:fault{ method = "PUT", times = 1, status = 400 }
      local r = cfiam({ "members", "sync", ids.account, small, member(1).id, "--yes", "--json",
        "--max-removals", "5", "--replace" })
      assert.are.equal(1, r.status)
      assert.matches("^cfiam api: ", r.stderr)
      assert.are.equal(2, #H.json(r.stdout).error.plan.remove)
      assert.are.equal(3, #H.state_members(emu, ids.account, small))
    end)
  end)

  -- --concurrency N reaches the helpers; a bad N is a usage error before
  -- anything is sent.
  describe("--concurrency", function()
    local function member_pages() return #H.requests(emu, "GET", H.members_pattern(big)) end

    it("members list fetches the pages N at a time, with the same complete result", function()
      local one = cfiam({ "members", "list", ids.account, big })
      assert.are.equal(0, one.status, one.stderr)
      local four = cfiam({ "members", "list", ids.account, big, "--concurrency", "4" })
      assert.are.equal(0, four.status, four.stderr)
      assert.are.equal(3000, #lines(four.stdout))
      assert.are.equal(one.stdout, four.stdout)
      -- page 3 fails: alone, the listing stops there; four at a time, the
      -- pages after it were already asked for
      for _, case in ipairs({ { args = {}, pages = 3 }, { args = { "--concurrency=4" }, pages = 7 } }) do
        emu:reset()
        emu:fault{ method = "GET", path = H.members_pattern(big), query = "[?&]page=3",
          times = -1, status = 400 }
        local args = { "members", "list", ids.account, big }
        for _, v in ipairs(case.args) do args[#args + 1] = v end
        local r = cfiam(args)
        assert.are.equal(1, r.status, r.stderr)
        assert.are.equal(case.pages, member_pages(), table.concat(args, " "))
      end
    end)

    it("members remove sends the removals N at a time", function()
      for _, case in ipairs({ { args = {}, deletes = 1 }, { args = { "--concurrency", "3" }, deletes = 3 } }) do
        emu:reset()
        -- the first DELETE fails: alone, the others are not sent
        emu:fault{ method = "DELETE", times = 1, status = 400 }
        local args = { "members", "remove", ids.account, small, member(1).id, member(2).id,
          member(3).id }
        for _, v in ipairs(case.args) do args[#args + 1] = v end
        local r = cfiam(args)
        assert.are.equal(1, r.status, r.stderr)
        assert.are.equal(case.deletes, #H.requests(emu, "DELETE"), table.concat(args, " "))
      end
    end)

    it("members add and sync, groups list take it", function()
      local r = cfiam({ "members", "add", ids.account, small, member(10).email, "--concurrency", "8" })
      assert.are.equal(0, r.status, r.stderr)
      r = cfiam({ "members", "sync", ids.account, small, member(1).id, "--concurrency", "64",
        "--yes", "--json" })
      assert.are.equal(0, r.status, r.stderr)
      assert.is_true(H.json(r.stdout).written)
      assert.are.same({ member(1).id }, H.state_members(emu, ids.account, small))
      r = cfiam({ "groups", "list", ids.account, "--concurrency", "2" })
      assert.are.equal(0, r.status, r.stderr)
      assert.are.equal(4, #lines(r.stdout))
    end)

    it("0, 65, x, 1.5 or no value: exit 2, one line, nothing sent", function()
      for _, verb in ipairs({ { "list" }, { "add", member(1).id }, { "remove", member(1).id },
        { "sync", member(1).id, "--yes" } }) do
        for _, n in ipairs({ "0", "65", "x", "1.5", "-1", "" }) do
          for _, json in ipairs({ false, true }) do
            local args = { "members", verb[1], ids.account, small }
            for i = 2, #verb do args[#args + 1] = verb[i] end
            args[#args + 1] = "--concurrency=" .. n
            if json then args[#args + 1] = "--json" end
            local what = table.concat(args, " ")
            local r = cfiam(args)
            assert.are.equal(2, r.status, what)
            local l = lines(r.stderr)
            assert.matches("^cfiam: %-%-concurrency: expected a whole number from 1 to 64, got",
              l[1], nil, what)
            if json then
              assert.are.equal(1, #l, what)
              assert.are.equal(l[1]:sub(8), H.json(r.stdout).error.message, what)
            else
              assert.are.same({ "(see cfiam members --help)" }, { l[2], l[3] }, what)
              assert.are.equal("", r.stdout, what)
            end
          end
        end
      end
      local r = cfiam({ "members", "list", ids.account, small, "--concurrency" })
      assert.are.equal(2, r.status)
      assert.are.equal(2, #lines(r.stderr))
      assert.are.same({}, emu:requests())
    end)
  end)

  describe("groups list", function()
    it("prints id and name per group, --name and --json", function()
      local r = cfiam({ "groups", "list", ids.account })
      assert.are.equal(0, r.status, r.stderr)
      assert.are.same({ big .. "\tBig", ids.groups.Empty.id .. "\tEmpty",
        ids.groups.Mid.id .. "\tMid", small .. "\tSmall" }, lines(r.stdout))
      r = cfiam({ "groups", "list", ids.account, "--name", "Mid", "--json" })
      assert.are.equal(0, r.status, r.stderr)
      local doc = H.json(r.stdout)
      assert.are.equal(1, #doc)
      assert.are.equal(ids.groups.Mid.id, doc[1].id)
      r = cfiam({ "groups", "list", ids.account, "--name=Nope" })
      assert.are.equal(1, r.status)
      assert.matches("^cfiam not_found: ", r.stderr)
    end)
  end)

  -- A mistake never becomes a write: an unreadable --file, an unclear
  -- answer, Ctrl-C; and the output stays machine-readable and inert.
  describe("mistakes and hostile data", function()
    local function write_file(content)
      local file = os.tmpname()
      local f = assert(io.open(file, "wb"))
      f:write(content)
      f:close()
      return file
    end

    it("--file that cannot be read is exit 2, never an empty list", function()
      local dir = os.tmpname()
      os.remove(dir)
      assert(os.execute("mkdir " .. H.shquote(dir)))
      for _, path in ipairs({ dir, dir .. "/missing.txt" }) do
        for _, json in ipairs({ false, true }) do
          local args = { "members", "sync", ids.account, small, "--file", path, "--allow-empty",
            "--yes" }
          if json then args[#args + 1] = "--json" end
          local r = cfiam(args)
          assert.are.equal(2, r.status, r.stderr)
          assert.matches("cannot read --file", r.stderr, 1, true)
          if json then assert.are.equal("usage", H.json(r.stdout).error.kind) end
        end
      end
      os.execute("rmdir " .. H.shquote(dir))
      assert.are.same({}, H.writes(emu))
      assert.are.equal(3, #H.state_members(emu, ids.account, small))
    end)

    it("input over 16 MiB (--file, -) is refused with one line, exit 2, nothing sent", function()
      local big_text = ("a@example.com\n"):rep(math.floor(16 * 1024 * 1024 / 14) + 1)
      local file = write_file(big_text)
      for _, json in ipairs({ false, true }) do
        for _, how in ipairs({ { "--file", file }, { "-" } }) do
          local args = { "members", "sync", ids.account, small, "--yes" }
          for _, w in ipairs(how) do args[#args + 1] = w end
          if json then args[#args + 1] = "--json" end
          local r = cfiam(args, { stdin = how[1] == "-" and big_text or nil })
          assert.are.equal(2, r.status, r.stderr)
          assert.matches("^cfiam: cannot read [^\n]+: larger than the 16 MiB limit\n", r.stderr)
          if json then assert.are.equal("usage", H.json(r.stdout).error.kind) end
        end
      end
      os.remove(file)
      assert.are.same({}, emu:requests())
    end)

    it("the confirmation writes only on y or yes", function()
      local args = { "members", "sync", ids.account, small, member(1).id, member(2).id }
      local env = H.env(emu, { CFIAM_TTY = "1" })
      for _, answer in ipairs({ "yabba-dabba\n", "yess\n", "ye\n", "\n", "", "n\n", "y es\n",
        "no yes\n" }) do
        local r = cfiam(args, { env = env, stdin = answer })
        assert.are.equal(2, r.status, answer)
        assert.matches("not confirmed", r.stderr, 1, true)
      end
      assert.are.same({}, H.writes(emu))
      for _, answer in ipairs({ "  YES \n", "Y\n", "\tyes" }) do
        emu:reset()
        local r = cfiam(args, { env = env, stdin = answer })
        assert.are.equal(0, r.status, r.stderr)
        assert.are.equal(1, #H.writes(emu))
      end
    end)

    it("ignores a UTF-8 byte-order mark at the start of --file", function()
      local file = write_file("\239\187\191" .. member(1).id .. "\n" .. member(2).id .. "\n"
        .. member(3).id .. "\n" .. member(4).email .. "\n")
      local r = cfiam({ "members", "sync", ids.account, small, "--file", file, "--yes" })
      os.remove(file)
      assert.are.equal(0, r.status, r.stderr)
      assert.matches("1 to add, 0 to remove, 3 unchanged", r.stdout, 1, true)
      assert.are.equal(4, #H.state_members(emu, ids.account, small))
    end)

    it("--json prints exactly one JSON document for every outcome, usage errors included", function()
      for _, args in ipairs({ {}, { "teams" }, { "members" }, { "members", "move" },
        { "members", "list", ids.account }, { "members", "list", ids.account, big, "--bogus" },
        { "members", "sync", ids.account, small, "--max-removals", "many" },
        { "members", "sync", ids.account, small, "--max-removals" },
        { "members", "add", ids.account, small }, { "groups", "list" },
        { "members", "list", ids.account, "No Such Group" } }) do
        args[#args + 1] = "--json"
        local r = cfiam(args)
        local what = table.concat(args, " ")
        assert.is_true(r.status == 1 or r.status == 2, what)
        local ok, doc = pcall(H.json, r.stdout)
        assert.is_true(ok, what .. ": not one JSON document: " .. r.stdout)
        assert.is_string(doc.error.kind, what)
        assert.is_string(doc.error.message, what)
        assert.are_not.equal("", r.stderr, what)
      end
      local r = cfiam({ "members", "list", ids.account, small, "--json" },
        { env = { CLOUDFLARE_BASE_URL = emu.base_url } })
      assert.are.equal(2, r.status)
      assert.is_string(H.json(r.stdout).error.message)
      r = cfiam({ "--help", "--json" })
      assert.are.equal(0, r.status)
      assert.matches("cfiam members sync", H.json(r.stdout).help, 1, true)
    end)

    local function groups_body(groups)
      local items = {}
      for i, g in ipairs(groups) do
        items[i] = string.format('{"id":"%s","name":"%s","policies":[],"weight":%s}', g[1],
          g[2], g[3] or "1")
      end
      return '{"success":true,"errors":[],"messages":[],"result":[' .. table.concat(items, ",")
        .. '],"result_info":{"page":1,"per_page":500,"count":' .. #groups .. ',"total_count":'
        .. #groups .. '}}'
    end

    it("--json writes numbers JSON cannot hold as null, without crashing", function()
      emu:fault{ method = "GET", path = "/iam/user_groups$", times = 1,
        body = groups_body({ { big, "Big", "1e400" }, { small, "Small", "-1e400" } }) }
      local r = cfiam({ "groups", "list", ids.account, "--json" })
      assert.are.equal(0, r.status, r.stderr)
      local doc = H.json(r.stdout)
      assert.are.equal(2, #doc)
      assert.are.equal(big, doc[1].id)
      assert.matches('"weight":null', r.stdout, 1, true)
    end)

    it("text output escapes control characters in names and e-mail addresses", function()
      emu:fault{ method = "GET", path = "/iam/user_groups$", times = 1,
        body = groups_body({ { big, "Evil\\nfake\\tline\\u001b[2J" } }) }
      local r = cfiam({ "groups", "list", ids.account })
      assert.are.equal(0, r.status, r.stderr)
      assert.are.equal(big .. "\tEvil\\x0afake\\x09line\\x1b[2J\n", r.stdout)
      -- C1 controls (8-bit CSI, NEL) and U+2028, U+2029 are line breaks or escapes too
      emu:fault{ method = "GET", path = "/iam/user_groups$", times = 1,
        body = groups_body({ { big, "Eng\\u009b31mRED\\u0085a\\u2028b\\u2029c" } }) }
      r = cfiam({ "groups", "list", ids.account })
      assert.are.equal(0, r.status, r.stderr)
      assert.are.equal(big .. "\tEng\\xc2\\x9b31mRED\\xc2\\x85a\\xe2\\x80\\xa8b\\xe2\\x80\\xa9c\n",
        r.stdout)
      emu:fault{ method = "GET", path = H.members_pattern(small), times = 1,
        body = H.page_body({ { id = member(1).id, email = "a\r\n\27]0;x\7@example.com",
          status = "accepted" } }, { page = 1, per_page = 500, count = 1, total_count = 1 }) }
      r = cfiam({ "members", "list", ids.account, small })
      assert.are.equal(0, r.status, r.stderr)
      assert.are.equal(member(1).id .. "\ta\\x0d\\x0a\\x1b]0;x\\x07@example.com\taccepted\n",
        r.stdout)
    end)

    it("odd values in an answer never crash the command: printed escaped, or one line and exit 1", function()
      local odd = '{"success":true,"errors":[],"messages":[],"result":[{"id":"' .. member(1).id
        .. '","email":true,"status":"accepted"},{"id":"X-odd\\u001b","email":{"a":1},"status":[1]}]}'
      for _, json in ipairs({ false, true }) do
        emu:fault{ method = "POST", path = H.members_pattern(small), times = 1, body = odd }
        local args = { "members", "add", ids.account, small, member(9).email }
        if json then args[#args + 1] = "--json" end
        local r = cfiam(args)
        assert.is_nil(r.stderr:find("traceback", 1, true), r.stderr)
        assert.are.equal(0, r.status, r.stderr)
        if json then
          assert.are.equal(2, #H.json(r.stdout).members)
        else
          assert.matches("2 members in the group", r.stdout, 1, true)
        end
      end
      local show = '{"success":true,"errors":[1],"messages":[],"result":{"id":"' .. small
        .. '","name":"Small","policies":[1,"x",{"access":{"a":1},"permission_groups":7}]}}'
      for _, json in ipairs({ false, true }) do
        emu:fault{ method = "GET", path = "/user_groups/" .. small .. "$", times = 1, body = show }
        local args = { "groups", "show", ids.account, small }
        if json then args[#args + 1] = "--json" end
        local r = cfiam(args)
        assert.is_nil(r.stderr:find("traceback", 1, true), r.stderr)
        assert.are.equal(0, r.status, r.stderr)
        if json then
          assert.are.equal(3, #H.json(r.stdout).group.policies)
        else
          assert.matches("policies  3", r.stdout, 1, true)
        end
      end
    end)

    it("a failure nothing foresaw ends as one line and exit 1, not a traceback", function()
      -- standard output that fails on write stands for any unexpected raise
      local err = {}
      local io_ = { stdin = io.stdin, stderr = { write = function(_, s) err[#err + 1] = s end },
        stdout = { write = function() error("stdout is broken\nsecond line") end } }
      local status = require("cfiam.cli").main({ "--help" }, io_)
      assert.are.equal(1, status)
      assert.are.equal("cfiam: unexpected failure: ", table.concat(err):match("^cfiam: [^:]+: "))
      assert.matches("stdout is broken\n$", table.concat(err))
    end)

    it("Ctrl-C stops the command at once: exit 130, one line, nothing written", function()
      for _, case in ipairs({
        -- a listing that does not answer
        { method = "GET", path = H.members_pattern(small), delay_ms = 20000, times = -1 },
        -- a 429 asking to wait 30 s before the retry
        { method = "GET", path = H.members_pattern(small), status = 429, times = -1,
          headers = { ["Retry-After"] = "30" } },
      }) do
        emu:reset()
        emu:fault(case)
        for _, json in ipairs({ false, true }) do
          emu:clear_requests()
          local args = { "members", "sync", ids.account, small, member(1).id, "--yes",
            "--allow-empty", "--max-removals", "10" }
          if json then args[#args + 1] = "--json" end
          local child = H.spawn("bin/cfiam", args, { env = H.env(emu) })
          assert.is_truthy(H.poll(function() return #H.requests(emu, "GET") > 0 end, 10),
            "the command never listed the group")
          child:signal("INT")
          local r = child:wait(10)
          assert.is_not_nil(r, "the command did not stop on SIGINT")
          assert.are.equal(130, r.status, r.stderr)
          assert.are.equal(1, #lines(r.stderr), r.stderr)
          assert.matches("^cfiam: interrupted", r.stderr)
          if json then
            assert.are.equal("interrupted", H.json(r.stdout).error.kind)
          else
            assert.are.equal("", r.stdout)
          end
          assert.are.same({}, H.writes(emu))
          assert.are.equal(3, #H.state_members(emu, ids.account, small))
        end
      end
    end)
  end)
end)
