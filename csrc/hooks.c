/*
 * hooks.c: the core's pieces the cosocket transport (lua/cfiam/cosocket.lua)
 * and the Lua helpers reuse, in require("cfiam.core"):
 *
 *   prepare(client, method, path [, opts])        request | nil, err
 *   update_request(client, account, group, ids [, opts])  request | nil, err
 *   path(client, kind, account [, group [, member]] [, fname])  path | nil, err
 *   outcome(client, decode, attempt, status, headers, body)
 *   failure(client, kind, message, attempt)
 *   check_open(v)   raises when v is a closed client
 *
 * A request is { method, target, headers, body, decode }: what
 * client:request and client:update_members would send, checked the same
 * way (prepare.c). outcome and failure turn what came back into the same
 * results and errors as libcurl's calls get (response.c).
 */
#include <string.h>
#include "cfiam.h"

/* The results of a preparing step that returned r: the request table
 * ({ method, target, headers, body, decode }), or nil, err. */
static int prepared(lua_State *L, cfiam_client *c, const cfiam_request *rq,
                    int r) {
    if (r)
        return r;
    cfiam_push_prepared(L, c, rq);
    return 1;
}

/* core.prepare(client, method, path [, opts]). headers is the block of
 * "Name: value\r\n" lines of the client's own headers: no Host, no
 * Content-Length, and no Accept-Encoding (libcurl adds one; the cosocket
 * transport cannot decompress). */
static int hook_prepare(lua_State *L) {
    cfiam_client *c = cfiam_check_client(L, 1);
    cfiam_request rq;
    return prepared(L, c, &rq, cfiam_prepare_request(L, c, &rq));
}

/* core.update_request(client, account, group, ids [, opts]): the PUT of
 * client:update_members, with its checks and its raises. */
static int hook_update_request(lua_State *L) {
    cfiam_client *c = cfiam_check_client(L, 1);
    cfiam_request rq;
    return prepared(L, c, &rq, cfiam_prepare_update(L, c, &rq));
}

/* The path of `kind` from the ids at 3, ..., or nil, err; a client whose
 * configuration failed gets that error, as from any call. */
static int push_path(lua_State *L, cfiam_path_kind kind, int first,
                     const char *fname) {
    cfiam_client *c = cfiam_check_client(L, 1);
    int r;
    if (c->config_error)
        return cfiam_invalid(L, c->secrets, "%s", c->config_error);
    r = cfiam_push_path(L, c, kind, first, fname);
    return r ? r : 1;
}

/* core.path(client, kind, ids... [, fname]): an API path of one of the
 * kinds below, each id checked and written in lower case. A wrong Lua type
 * raises naming `fname` (default "path"); a malformed id returns nil, err. */
static int hook_path(lua_State *L) {
    static const char *const kinds[] = {"account_members", "groups", "group",
                                        "group_members", "group_member", NULL};
    cfiam_path_kind kind = (cfiam_path_kind)luaL_checkoption(L, 2, NULL, kinds);
    const char *fname = luaL_optstring(L, 3 + cfiam_path_ids(kind), "path");
    return push_path(L, kind, 3, fname);
}

static void push_wait(lua_State *L, double wait) {
    if (wait >= 0)
        lua_pushnumber(L, wait);
    else
        lua_pushnil(L);
}

/* Captures the headers of the table at `t` ({ ["retry-after"] = "1" })
 * as the header callback does libcurl's lines. */
static void capture_table(lua_State *L, int t, cfiam_resp_headers *h) {
    memset(h, 0, sizeof(*h));
    lua_pushnil(L);
    while (lua_next(L, t)) {
        if (lua_type(L, -2) == LUA_TSTRING && lua_type(L, -1) == LUA_TSTRING) {
            size_t ll;
            const char *line;
            lua_pushvalue(L, -2);
            lua_pushliteral(L, ": ");
            lua_pushvalue(L, -3);
            lua_concat(L, 3);
            line = lua_tolstring(L, -1, &ll);
            cfiam_capture_header(h, line, ll);
            lua_pop(L, 1);
        }
        lua_pop(L, 1);
    }
}

/* core.outcome(client, decode, attempt, status, headers, body)
 *   -> result, meta | nil, err, wait, hold
 * wait: the seconds before a retry, nil for none (not retryable, or no
 * retries left); hold: that wait whether or not a retry is left (nil when
 * not retryable), which a batch holds back for after a 429 (multi.c). */
static int hook_outcome(lua_State *L) {
    cfiam_client *c = cfiam_check_client(L, 1);
    cfiam_request rq;
    cfiam_resp_headers h;
    size_t len;
    const char *body;
    int attempt = (int)luaL_checkinteger(L, 3), n;
    long status = (long)luaL_checkinteger(L, 4);
    double wait;
    luaL_checktype(L, 5, LUA_TTABLE);
    body = luaL_optlstring(L, 6, "", &len);
    lua_settop(L, 6);
    rq.method = "GET";
    rq.has_body = 0;
    rq.want_meta = 1;
    rq.decode = strcmp(luaL_checkstring(L, 2), "members") == 0
                    ? CFIAM_DECODE_MEMBERS
                    : CFIAM_DECODE_RAW;
    capture_table(L, 5, &h);
    n = cfiam_response_outcome(L, c, &rq, status, &h, body, len, attempt, &wait);
    if (n > 0)
        return n;
    lua_pushnil(L);
    lua_insert(L, -2);
    push_wait(L, attempt > c->max_retries ? -1 : wait);
    push_wait(L, wait);
    return 4;
}

/* core.failure(client, kind, message, attempt) -> nil, err, wait */
static int hook_failure(lua_State *L) {
    static const char *const kinds[] = {"timeout", "network", "tls",
                                        "invalid_response", NULL};
    static const cfiam_kind codes[] = {CFIAM_E_TIMEOUT, CFIAM_E_NETWORK,
                                       CFIAM_E_TLS, CFIAM_E_INVALID_RESPONSE};
    cfiam_client *c = cfiam_check_client(L, 1);
    int k = luaL_checkoption(L, 2, NULL, kinds);
    const char *msg = luaL_checkstring(L, 3);
    int attempt = (int)luaL_checkinteger(L, 4);
    double wait;
    lua_pushnil(L);
    cfiam_transport_outcome(L, c, codes[k], msg, attempt, &wait);
    push_wait(L, attempt > c->max_retries ? -1 : wait);
    return 3;
}

/* core.check_open(v): raises, as every method does, when v is a closed
 * client; anything else passes (the helper then finds a wrong self). */
static int hook_check_open(lua_State *L) {
    if (lua_getmetatable(L, 1)) {
        luaL_getmetatable(L, CFIAM_CLIENT_MT);
        if (lua_rawequal(L, -1, -2))
            cfiam_check_client(L, 1);
    }
    return 0;
}

void cfiam_hooks_init(lua_State *L, int core) {
    static const luaL_Reg hooks[] = {
        {"prepare", hook_prepare},
        {"update_request", hook_update_request},
        {"path", hook_path},
        {"outcome", hook_outcome},
        {"failure", hook_failure},
        {"check_open", hook_check_open},
        {NULL, NULL}};
    cfiam_add_functions(L, core, NULL, hooks);
}
