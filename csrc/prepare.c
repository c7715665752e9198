/*
 * prepare.c: one call checked and built before anything is sent. Wrong
 * Lua types raise (a programmer error, worded as the Lua helpers:
 * "bad argument to 'fname' (...)"); a bad value returns nil, err
 * (invalid_argument, quoted and scrubbed). Used by client:request,
 * client:update_members, request_many (multi.c) and the cosocket
 * transport's hooks (hooks.c), so every transport refuses alike.
 */
#include <stdio.h>
#include <string.h>
#include "cfiam.h"

static const char *const methods[] = {"GET", "POST", "PUT", "PATCH", "DELETE",
                                      NULL};

typedef struct opt_spec {
    const char *name;
    int type; /* LUA_TSTRING, ... */
} opt_spec;

static const opt_spec request_opts[] = {
    {"query", LUA_TTABLE}, {"ids", LUA_TTABLE}, {"allow_empty", LUA_TBOOLEAN},
    {"json", LUA_TSTRING}, {"decode", LUA_TSTRING}, {NULL, 0}};
static const opt_spec update_opts[] = {{"allow_empty", LUA_TBOOLEAN},
                                       {NULL, 0}};

/* allow_empty counts only when it is exactly true: "false" from a config
 * file must never empty a group. */
static int is_true(lua_State *L, int idx) {
    return lua_type(L, idx) == LUA_TBOOLEAN && lua_toboolean(L, idx);
}

/* Raises "bad argument to 'fname' (why)", worded as the Lua helpers (and
 * the same whether called as a method or on the default client). */
static int bad_opt(lua_State *L, const char *fname, const char *why) {
    return luaL_error(L, "bad argument to '%s' (%s)", fname, why);
}

/* Raises unless the argument at `idx` has Lua type `t` (no conversion: a
 * number is not an id or a path). `where` prefixes the message. */
static void check_arg(lua_State *L, int idx, int t, const char *fname,
                      const char *where, const char *what) {
    if (lua_type(L, idx) != t)
        bad_opt(L, fname, lua_pushfstring(L, "%s%s: %s expected, got %s",
                                          where, what, lua_typename(L, t),
                                          luaL_typename(L, idx)));
}

/* Raises on an unknown option name or a wrong Lua type in the options
 * table at `opts`. In a request_many call (`where` not empty) the table
 * also holds the method and the path at [1] and [2]. */
static void check_opts(lua_State *L, int opts, const opt_spec *spec,
                       const char *fname, const char *where,
                       const cfiam_client *c) {
    lua_pushnil(L);
    while (lua_next(L, opts)) {
        const char *name;
        size_t len;
        int i;
        if (*where && lua_type(L, -2) == LUA_TNUMBER &&
            (lua_tonumber(L, -2) == 1 || lua_tonumber(L, -2) == 2)) {
            lua_pop(L, 1);
            continue;
        }
        if (lua_type(L, -2) != LUA_TSTRING)
            bad_opt(L, fname, lua_pushfstring(L, "%soption names must be "
                                                 "strings", where));
        name = lua_tolstring(L, -2, &len);
        for (i = 0; spec[i].name; i++)
            if (strcmp(spec[i].name, name) == 0)
                break;
        if (spec[i].name == NULL) {
            char q[64]; /* the name may be a misplaced credential */
            cfiam_quote_arg(q, sizeof(q), name, len, c->secrets);
            bad_opt(L, fname, lua_pushfstring(L, "%sunknown option %s", where,
                                              q));
        }
        if (lua_type(L, -1) != spec[i].type)
            bad_opt(L, fname, lua_pushfstring(
                L, "%soption '%s' must be a %s, got %s", where, spec[i].name,
                lua_typename(L, spec[i].type), luaL_typename(L, -1)));
        lua_pop(L, 1);
    }
}

/* ---- client:request's arguments ------------------------------------------ */

/* The Lua-type checks of one call (raises): method, options (an empty
 * table replaces nil, in the same slot), decode, ids against json. Fills
 * rq->method and rq->decode; returns whether a body option was given. */
static int check_call(lua_State *L, cfiam_client *c, cfiam_request *rq,
                      int base, const char *where, const char *fname) {
    int i, opts = base + 2, has_ids, has_json;
    const char *method;
    check_arg(L, base, LUA_TSTRING, fname, where, "method");
    check_arg(L, base + 1, LUA_TSTRING, fname, where, "path");
    method = lua_tostring(L, base);
    for (i = 0; methods[i]; i++)
        if (strcmp(methods[i], method) == 0)
            break;
    if (methods[i] == NULL)
        bad_opt(L, fname, lua_pushfstring(L, "%smethod must be GET, POST, PUT, "
                                             "PATCH or DELETE", where));
    if (!lua_isnoneornil(L, opts))
        check_arg(L, opts, LUA_TTABLE, fname, where, "options");
    else {
        lua_newtable(L);
        lua_replace(L, opts);
    }
    check_opts(L, opts, request_opts, fname, where, c);
    rq->method = methods[i];
    rq->has_body = 0;
    rq->decode = CFIAM_DECODE_RAW;
    rq->want_meta = 1;
    lua_getfield(L, opts, "decode");
    if (!lua_isnil(L, -1)) {
        if (strcmp(lua_tostring(L, -1), "members") != 0)
            bad_opt(L, fname, lua_pushfstring(L, "%soption 'decode' must be "
                                                 "\"members\"", where));
        rq->decode = CFIAM_DECODE_MEMBERS;
    }
    lua_getfield(L, opts, "ids");
    lua_getfield(L, opts, "json");
    has_ids = !lua_isnil(L, -2);
    has_json = !lua_isnil(L, -1);
    lua_pop(L, 3);
    if (has_ids && has_json)
        bad_opt(L, fname, lua_pushfstring(L, "%sids and json cannot both be "
                                             "given", where));
    return has_ids || has_json;
}

/* Fills c->body from the ids or json option, if any. Returns 0, or pushes
 * nil, err and returns 2. */
static int set_body(lua_State *L, cfiam_client *c, cfiam_request *rq,
                    int opts, const char *fname, const char *where) {
    int r;
    lua_getfield(L, opts, "ids");
    if (!lua_isnil(L, -1)) {
        lua_getfield(L, opts, "allow_empty");
        r = cfiam_ids_body(L, c, lua_gettop(L) - 1, is_true(L, -1), fname,
                           where, "ids");
        if (r)
            return r;
        lua_pop(L, 2);
        rq->has_body = 1;
        return 0;
    }
    lua_pop(L, 1);
    lua_getfield(L, opts, "json");
    if (!lua_isnil(L, -1)) {
        size_t jl;
        const char *j = lua_tolstring(L, -1, &jl);
        c->body.len = 0;
        if (!cfiam_buf_append(&c->body, j, jl))
            return luaL_error(L, "cfiam: out of memory");
        rq->has_body = 1;
    }
    lua_pop(L, 1);
    return 0;
}

int cfiam_prepare(lua_State *L, cfiam_client *c, cfiam_request *rq, int base,
                  const char *where) {
    const char *fname = *where ? "request_many" : "request";
    size_t plen;
    const char *path;
    int opts = base + 2, r;
    char q[64];
    int has_body = check_call(L, c, rq, base, where, fname);
    if (c->config_error)
        return cfiam_invalid(L, c->secrets, "%s", c->config_error);
    path = lua_tolstring(L, base + 1, &plen);
    if (!cfiam_is_path(path, plen)) {
        cfiam_quote_arg(q, sizeof(q), path, plen, c->secrets);
        return cfiam_invalid(L, c->secrets, "%spath: expected '/' and URL path "
                             "characters, got %s", where, q);
    }
    if (has_body &&
        (strcmp(rq->method, "GET") == 0 || strcmp(rq->method, "DELETE") == 0))
        return cfiam_invalid(L, c->secrets, "%s%s takes no body (ids or json)",
                             where, rq->method);
    if ((r = set_body(L, c, rq, opts, fname, where)) != 0)
        return r;
    /* target = path .. query */
    lua_pushvalue(L, base + 1);
    lua_getfield(L, opts, "query");
    if (lua_istable(L, -1)) {
        int qi = lua_gettop(L);
        if ((r = cfiam_push_query(L, qi, where, c)) != 0)
            return r;
        lua_remove(L, qi);
    } else {
        lua_pop(L, 1);
        lua_pushliteral(L, "");
    }
    lua_concat(L, 2);
    return 0;
}

int cfiam_prepare_request(lua_State *L, cfiam_client *c, cfiam_request *rq) {
    lua_settop(L, 4);
    return cfiam_prepare(L, c, rq, 2, "");
}

/* ---- API paths ------------------------------------------------------------ */

/* Per kind: the ids it takes (account, group, member, in that order) and
 * what follows each of them. */
static const struct {
    int nids;
    const char *after[3];
} path_kinds[] = {
    {1, {"/members"}},                                   /* account_members */
    {1, {"/iam/user_groups"}},                           /* groups */
    {2, {"/iam/user_groups/", ""}},                      /* group */
    {2, {"/iam/user_groups/", "/members"}},              /* group_members */
    {3, {"/iam/user_groups/", "/members/", ""}},         /* group_member */
};
static const char *const id_names[] = {"account", "group", "member"};

int cfiam_path_ids(cfiam_path_kind kind) { return path_kinds[kind].nids; }

int cfiam_push_path(lua_State *L, cfiam_client *c, cfiam_path_kind kind,
                    int first, const char *fname) {
    int n = path_kinds[kind].nids, i;
    char path[160], q[64];
    size_t o;
    for (i = 0; i < n; i++) /* every type before any value */
        check_arg(L, first + i, LUA_TSTRING, fname, "", id_names[i]);
    memcpy(path, "/accounts/", 10);
    o = 10;
    for (i = 0; i < n; i++) {
        size_t len, al = strlen(path_kinds[kind].after[i]);
        const char *id = lua_tolstring(L, first + i, &len);
        if (!cfiam_is_id(id, len)) {
            cfiam_quote_arg(q, sizeof(q), id, len, c->secrets);
            return cfiam_invalid(L, c->secrets, "%s: expected a 32-character "
                                 "hexadecimal id, got %s", id_names[i], q);
        }
        cfiam_id_lower(path + o, id);
        memcpy(path + o + CFIAM_ID_LEN, path_kinds[kind].after[i], al);
        o += CFIAM_ID_LEN + al;
    }
    lua_pushlstring(L, path, o);
    return 0;
}

/* ---- client:update_members' arguments ------------------------------------- */

int cfiam_prepare_update(lua_State *L, cfiam_client *c, cfiam_request *rq) {
    static const char fname[] = "update_members";
    int r, allow_empty = 0;
    lua_settop(L, 5);
    check_arg(L, 2, LUA_TSTRING, fname, "", "account");
    check_arg(L, 3, LUA_TSTRING, fname, "", "group");
    check_arg(L, 4, LUA_TTABLE, fname, "", "ids");
    if (!lua_isnil(L, 5)) {
        check_arg(L, 5, LUA_TTABLE, fname, "", "options");
        check_opts(L, 5, update_opts, fname, "", c);
        lua_getfield(L, 5, "allow_empty");
        allow_empty = is_true(L, -1);
        lua_pop(L, 1);
    }
    if (c->config_error)
        return cfiam_invalid(L, c->secrets, "%s", c->config_error);
    r = cfiam_push_path(L, c, CFIAM_PATH_GROUP_MEMBERS, 2, fname);
    if (r == 0)
        r = cfiam_ids_body(L, c, 4, allow_empty, fname, "", "ids");
    if (r)
        return r;
    rq->method = "PUT";
    rq->has_body = 1;
    rq->decode = CFIAM_DECODE_MEMBERS;
    rq->want_meta = 0; /* the members only: no meta table to build */
    return 0;
}

/* ---- the request as the cosocket transport sends it ---------------------- */

void cfiam_push_prepared(lua_State *L, cfiam_client *c,
                         const cfiam_request *rq) {
    struct curl_slist *h;
    luaL_Buffer b;
    lua_createtable(L, 0, 6);
    lua_insert(L, -2);
    lua_setfield(L, -2, "target");
    lua_pushstring(L, rq->method);
    lua_setfield(L, -2, "method");
    lua_pushstring(L, rq->decode == CFIAM_DECODE_MEMBERS ? "members" : "raw");
    lua_setfield(L, -2, "decode");
    if (rq->has_body) {
        lua_pushlstring(L, c->body.data, c->body.len);
        lua_setfield(L, -2, "body");
    }
    luaL_buffinit(L, &b);
    for (h = rq->has_body ? c->headers : c->headers->next; h; h = h->next) {
        const char *colon = strchr(h->data, ':');
        if (colon && colon[1] == '\0')
            continue; /* "Expect:" only tells libcurl to send nothing */
        luaL_addstring(&b, h->data);
        luaL_addstring(&b, "\r\n");
    }
    luaL_pushresult(&b);
    lua_setfield(L, -2, "headers");
}
