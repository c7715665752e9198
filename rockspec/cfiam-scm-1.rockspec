-- cfiam: Cloudflare account user-group membership from Lua.
-- `luarocks make rockspec/cfiam-scm-1.rockspec` builds and installs from a
-- checkout; add `--deps-mode none` where lua-cjson comes from the system.
rockspec_format = "3.0"
package = "cfiam"
version = "scm-1"
source = {
  url = "git+https://example.invalid/cfiam.git",
}
description = {
  summary = "Manage Cloudflare account user-group membership from Lua",
  detailed = [[
A C module (libcurl) whose update_members(account, group, ids) replaces a
Cloudflare user group's members, with Lua helpers on top: paged listing,
plans, guarded sync, e-mail resolution, groups, a cfiam command, and a
non-blocking transport for OpenResty.]],
  license = "MIT",
  labels = { "cloudflare", "iam", "openresty", "curl" },
}
dependencies = {
  "lua >= 5.1",
  "lua-cjson",
}
-- lyaml (Debian lua-yaml) is needed only to read desired-state files
-- (cfiam.load_desired on a path, `cfiam plan` and `cfiam apply`); it is
-- loaded when first used, so the library and the other commands run
-- without it. argparse (Debian lua-argparse) is needed only by the cfiam
-- command, which parses its arguments with it; the library never loads it.
external_dependencies = {
  CURL = { library = "curl" },
}
build = {
  type = "builtin",
  modules = {
    cfiam = {
      sources = {
        "csrc/body.c", "csrc/buf.c", "csrc/cfiam.c", "csrc/client.c", "csrc/error.c",
        "csrc/headers.c", "csrc/hooks.c", "csrc/idhash.c", "csrc/idset.c",
        "csrc/json.c", "csrc/multi.c", "csrc/prepare.c", "csrc/ratelimit.c",
        "csrc/request.c", "csrc/response.c", "csrc/retry.c",
        "csrc/transport_curl.c", "csrc/validate.c",
      },
      libraries = { "curl" },
      incdirs = { "$(CURL_INCDIR)" },
      libdirs = { "$(CURL_LIBDIR)" },
    },
    ["cfiam.extend"] = "lua/cfiam/extend.lua",
    ["cfiam.core"] = "lua/cfiam/core.lua",
    ["cfiam.transport"] = "lua/cfiam/transport.lua",
    ["cfiam.cosocket"] = "lua/cfiam/cosocket.lua",
    ["cfiam.members"] = "lua/cfiam/members.lua",
    ["cfiam.resolve"] = "lua/cfiam/resolve.lua",
    ["cfiam.args"] = "lua/cfiam/args.lua",
    ["cfiam.pager"] = "lua/cfiam/pager.lua",
    ["cfiam.ids"] = "lua/cfiam/ids.lua",
    ["cfiam.groups"] = "lua/cfiam/groups.lua",
    ["cfiam.cli"] = "lua/cfiam/cli.lua",
    ["cfiam.desired"] = "lua/cfiam/desired.lua",
    ["cfiam.account"] = "lua/cfiam/account.lua",
    ["cfiam.cli_account"] = "lua/cfiam/cli_account.lua",
    ["cfiam.cli_out"] = "lua/cfiam/cli_out.lua",
    ["cfiam.cli_args"] = "lua/cfiam/cli_args.lua",
    ["cfiam.cli_help"] = "lua/cfiam/cli_help.lua",
  },
  install = {
    bin = { cfiam = "bin/cfiam" },
  },
}
test_dependencies = { "busted" }
test = { type = "busted" }
