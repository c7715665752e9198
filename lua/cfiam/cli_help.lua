--- cfiam.cli_help: the `cfiam` command's help texts, one per level
-- (cfiam --help; members, groups, plan|apply|dump --help), and the hints
-- added to argparse's "too many arguments". cfiam.cli_args gives them to
-- argparse; they are printed as written here.
local _M = {}

_M.MAIN = [[
cfiam: manage Cloudflare account user-group membership

usage:
  cfiam members list    ACCOUNT GROUP            [--json] [--concurrency N]
  cfiam members add     ACCOUNT GROUP ID|EMAIL... [--json] [--concurrency N]
  cfiam members remove  ACCOUNT GROUP ID|EMAIL... [--json] [--concurrency N]
  cfiam members sync    ACCOUNT GROUP [ID|EMAIL... | --file F | -]
                        [--dry-run] [--allow-empty] [--max-removals N] [--replace]
                        [--yes] [--json] [--concurrency N]
  cfiam groups  list    ACCOUNT [--name N] [--json] [--concurrency N]
  cfiam groups  show    ACCOUNT GROUP [--json]
  cfiam groups  create  ACCOUNT NAME [--policies FILE.json] [--json]
  cfiam groups  rename  ACCOUNT GROUP NEW_NAME [--json]
  cfiam groups  delete  ACCOUNT GROUP [--force] [--yes] [--json]
  cfiam plan    FILE [--json] [--detailed-exitcode] [--group NAME]... [--concurrency N]
  cfiam apply   FILE [--yes] [--json] [--group NAME]... [--concurrency N] [--log FILE.jsonl]
  cfiam dump    ACCOUNT [GROUP...] [--json] [--concurrency N]
  cfiam --help | cfiam members --help | cfiam groups --help | cfiam plan --help

ACCOUNT is the 32-character account id. GROUP is a 32-character user group
id or a group name (looked up with an exact match). Members are given as
account-member ids or e-mail addresses (matched case-insensitively against
the account's members).

Options:
  --json             print one JSON document on standard output (also on
                     failure: {"error": {...}})
  --concurrency N    requests at a time, 1-64 (members and groups list:
                     pages, removals; default 1; plan, apply, dump: default 8)
  -h, --help         show help

Environment:
  CLOUDFLARE_API_TOKEN, or CLOUDFLARE_EMAIL and CLOUDFLARE_API_KEY
                     credentials
  CLOUDFLARE_BASE_URL
                     API base URL (default https://api.cloudflare.com/client/v4)
  CFIAM_TTY=1|0      treat standard input as a terminal (or not) for the
                     sync confirmation, instead of probing it

Exit status:
  0  success
  1  API or network error (including an incomplete listing or drift), or
     output that could not be written
  2  usage error, invalid argument, refused guard, or a sync that was not
     confirmed; the error's one-line message is on standard error
  130  interrupted (Ctrl-C): no further request was sent
]]

_M.MEMBERS = [[
usage:
  cfiam members list    ACCOUNT GROUP [--json]
      Every member of the group (all pages), one per line:
      ID<TAB>EMAIL<TAB>STATUS. --json: an array of {id, email, status}.

  cfiam members add     ACCOUNT GROUP ID|EMAIL... [--json]
      Adds the members with one request. Prints "+ EMAIL (ID)" per member
      given. --json: {"added": [...], "members": [...]} (the whole group).

  cfiam members remove  ACCOUNT GROUP ID|EMAIL... [--json]
      Removes exactly these members. A member that was not in the group is
      reported ("not a member: ID"), not an error.
      --json: {"removed": [ids], "not_members": [ids]}.

  cfiam members sync    ACCOUNT GROUP [ID|EMAIL... | --file F | -] [options]
      Makes the group's members the list given: adds (one POST) and removes
      (one DELETE each) what the plan shows, nothing else. The list
      comes from the arguments, from file F, or from standard input (-):
      ids or e-mail addresses separated by white space or commas, '#'
      starts a comment. Prints the plan as a diff first:
          + EMAIL (ID)      to add (" pending" when not yet accepted)
          - EMAIL (ID)      to remove
          N to add, N to remove, N unchanged
      then asks for confirmation when standard input is a terminal (only
      "y" or "yes" writes); without a terminal it writes only with --yes.
      A file that cannot be read is an error, never an empty list.
      --dry-run           print the plan, write nothing
      --allow-empty       allow a plan that leaves the group empty
      --max-removals N    refuse a plan that removes more than N (default 10)
      --yes, -y           write without asking
      --replace           write one PUT of the whole list instead: also
                          removes members the listing did not show
      --json              {"add", "remove", "keep", "dry_run", "written"}

  --concurrency N         every subcommand: requests at a time, 1-64
                          (default 1): pages of the listings, removals

Exit status: 0 success, 1 API or network error, 2 usage error, invalid
argument, refused guard or a sync not confirmed (message on standard error).
Credentials: CLOUDFLARE_API_TOKEN (or CLOUDFLARE_EMAIL and
CLOUDFLARE_API_KEY); CLOUDFLARE_BASE_URL for another API endpoint.
]]

_M.GROUPS = [[
usage:
  cfiam groups list ACCOUNT [--name N] [--json] [--concurrency N]
      The account's user groups, one per line: ID<TAB>NAME. --name N keeps
      the group named exactly N. --json: an array of the group objects.
      --concurrency N: pages fetched at once, 1-64 (default 1).

  cfiam groups show ACCOUNT GROUP [--json]
      The group: id, name, dates, member count and policies.
      --json: {"group": {...as the API sent it}, "members": N}.

  cfiam groups create ACCOUNT NAME [--policies FILE.json] [--json]
      Creates a group, unless one is named NAME already (a conflict, exit
      2). FILE.json holds a JSON array of policies, each {"access": "allow"
      or "deny", "permission_groups": [{"id": ...}], "resource_groups":
      [{"id": ...}]}. Prints ID<TAB>NAME. --json: the new group.

  cfiam groups rename ACCOUNT GROUP NEW_NAME [--json]
      Renames the group (its policies and members stay). NEW_NAME taken by
      another group is a conflict (exit 2). --json: the group.

  cfiam groups delete ACCOUNT GROUP [--force] [--yes] [--json]
      Prints the group (name, member count, policies), then deletes it
      after confirmation on a terminal; without a terminal only with
      --yes. A group that has members is refused unless --force: deleting
      it removes their access through it.
      --json: {"group": {...}, "members": N, "deleted": true}.

GROUP is a 32-character group id or an exact group name.
Exit status: 0 success, 1 API or network error, 2 usage error, invalid
argument, conflict, refused guard or a delete not confirmed.
]]

_M.ACCOUNT = [[
usage:
  cfiam plan  FILE [--json] [--detailed-exitcode] [--group NAME]... [--concurrency N]
      Reads the account's groups named in FILE (YAML or JSON) and the
      account's members, and prints per group the members to add (+) and to
      remove (-), pending invitees marked, then a summary line. Writes
      nothing.
      --detailed-exitcode   exit 0 when nothing would change, 2 when
                            something would, 1 on any error (usage errors
                            included)
  cfiam apply FILE [--yes] [--json] [--group NAME]... [--concurrency N] [--log FILE.jsonl]
      Makes the same plan, refuses to write anything if a group fails, an
      address is unknown or a guard trips (max_removals, allow_empty,
      protect), asks for confirmation on a terminal (--yes without one),
      then writes every group by the difference (additions in one POST, one
      DELETE per removal) and prints each group's outcome.
      --log FILE.jsonl      append one JSON line per group written
  cfiam dump  ACCOUNT [GROUP...] [--json] [--concurrency N]
      Prints a FILE for the groups as they are now (every group, or those
      named): plan reports it as no changes.

  --group NAME       only this group of FILE (repeatable)
  --concurrency N    requests at a time, 1-64 (default 8)
  --json             one JSON document on standard output

FILE:
  account: 0123456789abcdef0123456789abcdef
  defaults: { max_removals: 10, ignore_pending: false, allow_empty: false }
  protect: [ breakglass@example.com ]
  groups:
    Engineering:                 # exact name, or a 32-hex group id
      members: [ alice@example.com, 4f5f0c14a2a41d5063dd301b2f829f04 ]
    On-call: { create: true, max_removals: 2, members: [ bob@example.com ] }

Exit status: 0 success; 1 API or network error, or a group not written;
2 usage error, invalid file, unknown address, refused guard, or an apply
not confirmed (plan --detailed-exitcode: 0 no changes, 2 changes, 1 error).
]]

-- Where a word too many is usually a mistake of quoting or of form.
_M.TOO_MANY = {
  ["groups create"] = "quote a NAME with spaces",
  ["groups rename"] = "quote a NEW_NAME with spaces",
  plan = "give groups with --group NAME",
  apply = "give groups with --group NAME",
}

return _M
