--- cfiam.core: what the Lua half of cfiam needs from the C module and the
-- README does not document (not an API: it may change in any release).
--
--   error(t)            t with the error metatable
--   idset()             an empty id set (set:add_page(page), for pagers)
--   client_methods      the clients' method table (extend adds the helpers)
--   config(client)      the client's non-secret settings
--   members_path(client, account, group)              path | nil, err
--   prepare(client, method, path, opts)               request | nil, err
--   outcome(client, decode, attempt, status, headers, body)
--   failure(client, kind, message, attempt)
--
-- luaopen_cfiam registers the table as package.loaded["cfiam.core"]; this
-- file runs only when cfiam.core is required before cfiam itself.
require("cfiam")
return package.loaded["cfiam.core"]
