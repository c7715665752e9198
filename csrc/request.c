/*
 * request.c: the request primitive every cfiam call goes through.
 *
 *   client:request(method, path [, opts]) -> result, meta | nil, err
 *   client:update_members(account, group, ids [, opts]) -> members | nil, err
 *
 * opts of request: query (table), ids (array of ids: a members body),
 * allow_empty, json (a pre-encoded body string), decode ("members"); as
 * in the Lua helpers, other names and wrong Lua types raise.
 * Steps: validate (nothing is sent on a bad argument), build the URL and
 * the body into client-owned buffers, then pace/attempt/decide/wait up to
 * max_retries times. request_many (multi.c) validates each call with the
 * same cfiam_prepare. The cosocket transport (lua/cfiam/cosocket.lua) uses
 * the same steps through core.prepare, core.outcome and core.failure
 * (require "cfiam.core"), so both transports validate, retry and fail
 * alike.
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "cfiam.h"


static const char *const methods[] = {"GET", "POST", "PUT", "PATCH", "DELETE",
                                      NULL};

/* ---- ids: validation, de-duplication and the JSON body ---------------- */

/* allow_empty counts only when it is exactly true: "false" from a config
 * file must never empty a group. */
static int is_true(lua_State *L, int idx) {
    return lua_type(L, idx) == LUA_TBOOLEAN && lua_toboolean(L, idx);
}

/* Reads element i of the ids table: a string or { id = string }. Raises
 * on other Lua types (a programmer error). */
static const char *id_at(lua_State *L, int t, size_t i, const char *where,
                         const char *what, size_t *len) {
    const char *s;
    lua_rawgeti(L, t, (int)i);
    if (lua_istable(L, -1)) {
        lua_getfield(L, -1, "id");
        lua_remove(L, -2);
    }
    if (lua_type(L, -1) != LUA_TSTRING)
        luaL_error(L, "%s%s[%d] must be a string or a table { id = string }, "
                      "got %s", where, what, (int)i, luaL_typename(L, -1));
    s = lua_tolstring(L, -1, len);
    lua_pop(L, 1); /* still anchored by the ids table */
    return s;
}

/* Validates the ids at `t` and writes `[{"id":"..."},...]` into c->body,
 * dropping duplicates (case-insensitive) and keeping first occurrences in
 * order. Returns 0, or pushes `nil, err` and returns 2. The duplicate set
 * lives in c->scratch: slots of uint32 (index + 1) then 16-byte ids. */
static int build_ids_body(lua_State *L, cfiam_client *c, int t, int allow_empty,
                          const char *where, const char *what) {
    size_t n, cap = 16, i, unique = 0, need;
    uint32_t *slots;
    unsigned char *keys;
    cfiam_id_seed seed;
    if (!lua_istable(L, t))
        luaL_error(L, "%s%s must be a table, got %s", where, what,
                   luaL_typename(L, t));
    n = cfiam_rawlen(L, t);
    {   /* a member table ({id=}) or a list with holes where the list
         * belongs: its other keys would be dropped silently */
        size_t nkeys = 0;
        lua_pushnil(L);
        while (lua_next(L, t)) {
            lua_pop(L, 1);
            nkeys++;
        }
        if (nkeys != n)
            luaL_error(L, "%s%s must be a list (keys 1 to #%s), got a table "
                          "with other keys", where, what, what);
    }
    while (cap < n * 2)
        cap *= 2;
    need = cap * sizeof(uint32_t) + n * 16;
    c->scratch.len = 0;
    c->body.len = 0;
    if (!cfiam_buf_reserve(&c->scratch, need) ||
        !cfiam_buf_reserve(&c->body, n * 42 + 2))
        return luaL_error(L, "cfiam: out of memory");
    slots = (uint32_t *)(void *)c->scratch.data;
    keys = (unsigned char *)c->scratch.data + cap * sizeof(uint32_t);
    memset(slots, 0, cap * sizeof(uint32_t));
    cfiam_id_seed_new(&seed);
    c->body.data[c->body.len++] = '[';
    for (i = 1; i <= n; i++) {
        size_t len, k;
        const char *s = id_at(L, t, i, where, what, &len);
        unsigned char *key = keys + unique * 16;
        size_t slot;
        if (!cfiam_is_id(s, len)) {
            char q[64];
            cfiam_quote_arg(q, sizeof(q), s, len, c->secrets);
            return cfiam_invalid(L, c->secrets, "%s%s[%d]: expected a "
                                 "32-character hexadecimal member id, got %s",
                                 where, what, (int)i, q);
        }
        cfiam_id_key(s, key);
        for (slot = cfiam_id_slot(key, &seed, cap); slots[slot];
             slot = (slot + 1) & (cap - 1))
            if (memcmp(keys + (slots[slot] - 1) * 16, key, 16) == 0)
                break;
        if (slots[slot])
            continue; /* a duplicate */
        slots[slot] = (uint32_t)(++unique);
        {
            char *o = c->body.data + c->body.len;
            memcpy(o, "{\"id\":\"", 7);
            for (k = 0; k < 32; k++) /* lower case, as the API writes ids */
                o[7 + k] = (char)(s[k] >= 'A' && s[k] <= 'F' ? s[k] | 0x20 : s[k]);
            memcpy(o + 39, "\"},", 3);
            c->body.len += 42;
        }
    }
    if (unique == 0 && !allow_empty)
        return cfiam_invalid(L, c->secrets, "%s%s is empty: replacing with an "
                             "empty list removes every member of the group "
                             "(pass allow_empty = true to mean that)",
                             where, what);
    if (unique > 0)
        c->body.len--; /* the last ',' */
    c->body.data[c->body.len++] = ']';
    return 0;
}

/* ---- URL --------------------------------------------------------------- */

static void add_escaped(luaL_Buffer *b, const char *s, size_t len) {
    static const char hex[] = "0123456789ABCDEF";
    size_t i;
    for (i = 0; i < len; i++) {
        unsigned char ch = (unsigned char)s[i];
        if ((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
            (ch >= '0' && ch <= '9') || ch == '-' || ch == '.' || ch == '_' ||
            ch == '~') {
            luaL_addchar(b, (char)ch);
        } else {
            luaL_addchar(b, '%');
            luaL_addchar(b, hex[ch >> 4]);
            luaL_addchar(b, hex[ch & 15]);
        }
    }
}

/* Pushes the query string ("" or "?a=1&b=x") for the table at `q`, keys
 * in sorted order so that a request is always written the same way. */
static const char *push_query(lua_State *L, int q, const char *where,
                              const cfiam_client *c) {
    int nkeys = 0, i, j, keys;
    luaL_Buffer b;
    lua_newtable(L);
    keys = lua_gettop(L);
    lua_pushnil(L);
    while (lua_next(L, q)) {
        int vt = lua_type(L, -1);
        if (lua_type(L, -2) != LUA_TSTRING)
            luaL_error(L, "%squery keys must be strings", where);
        if (vt != LUA_TSTRING && vt != LUA_TNUMBER && vt != LUA_TBOOLEAN) {
            size_t kl;
            const char *k = lua_tolstring(L, -2, &kl);
            char qk[64]; /* the key may be a misplaced token */
            cfiam_quote_arg(qk, sizeof(qk), k, kl, c->secrets);
            luaL_error(L, "%squery value %s must be a string, number or "
                          "boolean", where, qk);
        }
        lua_pop(L, 1);
        lua_pushvalue(L, -1);
        lua_rawseti(L, keys, ++nkeys);
    }
    for (i = 2; i <= nkeys; i++) { /* insertion sort: a handful of keys */
        for (j = i; j > 1; j--) {
            lua_rawgeti(L, keys, j - 1);
            lua_rawgeti(L, keys, j);
            if (strcmp(lua_tostring(L, -2), lua_tostring(L, -1)) <= 0) {
                lua_pop(L, 2);
                break;
            }
            lua_rawseti(L, keys, j - 1);
            lua_rawseti(L, keys, j);
        }
    }
    for (i = 1; i <= nkeys; i++) { /* one "?k=v" or "&k=v" piece each */
        const char *k, *v;
        size_t kl, vl;
        char num[64];
        lua_rawgeti(L, keys, i);
        lua_pushvalue(L, -1);
        lua_gettable(L, q);
        if (lua_type(L, -1) == LUA_TNUMBER) {
            double d = (double)lua_tonumber(L, -1);
            if (d == floor(d) && fabs(d) < 1e15)
                snprintf(num, sizeof(num), "%.0f", d);
            else
                snprintf(num, sizeof(num), "%.17g", d);
            v = num;
            vl = strlen(num);
        } else if (lua_type(L, -1) == LUA_TBOOLEAN) {
            v = lua_toboolean(L, -1) ? "true" : "false";
            vl = strlen(v);
        } else {
            v = lua_tolstring(L, -1, &vl);
        }
        k = lua_tolstring(L, -2, &kl);
        /* key and value stay below the buffer, which is balanced */
        luaL_buffinit(L, &b);
        luaL_addchar(&b, i == 1 ? '?' : '&');
        add_escaped(&b, k, kl);
        luaL_addchar(&b, '=');
        add_escaped(&b, v, vl);
        luaL_pushresult(&b);
        lua_replace(L, -3);
        lua_pop(L, 1);
    }
    lua_concat(L, nkeys);
    lua_remove(L, keys);
    return lua_tostring(L, -1);
}

/* ---- preparing a request ------------------------------------------------ */

typedef struct opt_spec {
    const char *name;
    int type; /* LUA_TSTRING, ... */
} opt_spec;

static const opt_spec request_opts[] = {
    {"query", LUA_TTABLE}, {"ids", LUA_TTABLE}, {"allow_empty", LUA_TBOOLEAN},
    {"json", LUA_TSTRING}, {"decode", LUA_TSTRING}, {NULL, 0}};
static const opt_spec update_opts[] = {{"allow_empty", LUA_TBOOLEAN},
                                       {NULL, 0}};

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
 * table at `opts` (a programmer error, as in the Lua helpers). In a
 * request_many call (`where` not empty) the table also holds the method
 * and the path at [1] and [2]. */
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

int cfiam_prepare(lua_State *L, cfiam_client *c, cfiam_request *rq, int base,
                  const char *where) {
    const char *fname = *where ? "request_many" : "request";
    size_t plen;
    const char *method, *path;
    int i, opts = base + 2, has_ids, has_json;
    char q[64];
    check_arg(L, base, LUA_TSTRING, fname, where, "method");
    check_arg(L, base + 1, LUA_TSTRING, fname, where, "path");
    method = lua_tostring(L, base);
    path = lua_tolstring(L, base + 1, &plen);
    for (i = 0; methods[i]; i++)
        if (strcmp(methods[i], method) == 0)
            break;
    if (methods[i] == NULL)
        bad_opt(L, fname, lua_pushfstring(L, "%smethod must be GET, POST, PUT, "
                                             "PATCH or DELETE", where));
    if (!lua_isnoneornil(L, opts))
        check_arg(L, opts, LUA_TTABLE, fname, where, "options");
    else {
        lua_newtable(L); /* in the same slot: the stack layout stays */
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
    if (c->config_error)
        return cfiam_invalid(L, c->secrets, "%s", c->config_error);
    if (!cfiam_is_path(path, plen)) {
        cfiam_quote_arg(q, sizeof(q), path, plen, c->secrets);
        return cfiam_invalid(L, c->secrets, "%spath: expected '/' and URL path "
                             "characters, got %s", where, q);
    }
    if ((has_ids || has_json) &&
        (strcmp(rq->method, "GET") == 0 || strcmp(rq->method, "DELETE") == 0))
        return cfiam_invalid(L, c->secrets, "%s%s takes no body (ids or json)",
                             where, rq->method);
    lua_getfield(L, opts, "ids");
    if (!lua_isnil(L, -1)) {
        int r;
        lua_getfield(L, opts, "allow_empty");
        r = build_ids_body(L, c, lua_gettop(L) - 1, is_true(L, -1), where,
                           "ids");
        if (r)
            return r;
        lua_pop(L, 1);
        rq->has_body = 1;
    } else {
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
    }
    lua_pop(L, 1);
    /* target = path .. query */
    lua_pushvalue(L, base + 1);
    lua_getfield(L, opts, "query");
    if (lua_istable(L, -1)) {
        int qi = lua_gettop(L);
        push_query(L, qi, where, c);
        lua_remove(L, qi);
    } else {
        lua_pop(L, 1);
        lua_pushliteral(L, "");
    }
    lua_concat(L, 2);
    return 0;
}

/* "/accounts/A/iam/user_groups/G/members", after checking both ids (a
 * wrong Lua type raises, naming `fname`). */
static int push_members_path(lua_State *L, cfiam_client *c, int a, int g,
                             const char *fname) {
    size_t al, gl;
    const char *acc, *grp;
    char q[64];
    check_arg(L, a, LUA_TSTRING, fname, "", "account");
    check_arg(L, g, LUA_TSTRING, fname, "", "group");
    acc = lua_tolstring(L, a, &al);
    grp = lua_tolstring(L, g, &gl);
    if (!cfiam_is_id(acc, al)) {
        cfiam_quote_arg(q, sizeof(q), acc, al, c->secrets);
        return cfiam_invalid(L, c->secrets, "account: expected a 32-character hexadecimal"
                                " id, got %s", q);
    }
    if (!cfiam_is_id(grp, gl)) {
        cfiam_quote_arg(q, sizeof(q), grp, gl, c->secrets);
        return cfiam_invalid(L, c->secrets, "group: expected a 32-character hexadecimal "
                                "id, got %s", q);
    }
    {   /* lower case, as the API writes ids (and as bodies are sent) */
        char path[128];
        size_t i;
        snprintf(path, sizeof(path), "/accounts/%s/iam/user_groups/%s/members",
                 acc, grp);
        for (i = 0; path[i]; i++)
            if (path[i] >= 'A' && path[i] <= 'F')
                path[i] = (char)(path[i] | 0x20);
        lua_pushstring(L, path);
    }
    return 0;
}

/* ---- the curl path ------------------------------------------------------ */

void cfiam_sleep(double s) {
    struct timespec ts;
    if (!(s > 0))
        return;
    ts.tv_sec = (time_t)s;
    ts.tv_nsec = (long)((s - (double)ts.tv_sec) * 1e9);
    while (nanosleep(&ts, &ts) != 0 && !cfiam_interrupted())
        ;
}

/* Waits until the quota lets one more request go, if that fits in the
 * timeout. Returns 0, or pushes nil, err (rate_limited) and returns 2. */
static int pace(lua_State *L, cfiam_client *c, int attempt) {
    for (;;) {
        double wait = cfiam_pacer_wait(&c->pacer, cfiam_now());
        if (wait <= 0)
            break;
        if (wait > c->timeout)
            return cfiam_rl_refuse(L, wait, attempt - 1);
        if (cfiam_interrupted()) /* the transfer then refuses to start */
            break;
        cfiam_sleep(wait);
    }
    cfiam_pacer_sent(&c->pacer);
    return 0;
}

/* Attempts, decides and waits; the target is at the top of the stack.
 * Returns the Lua results: result, meta or nil, err. */
static int perform(lua_State *L, cfiam_client *c, const cfiam_request *rq) {
    int attempt;
    lua_pushlstring(L, c->base_url, c->base_len);
    lua_insert(L, -2);
    lua_concat(L, 2);
    if (!cfiam_curl_ready(c, L))
        return luaL_error(L, "cfiam: cannot create a libcurl handle");
    for (attempt = 1;; attempt++) {
        double wait = -1;
        int n;
        CURLcode rc;
        if ((n = pace(L, c, attempt)) != 0)
            return n;
        c->pacer.inflight++;
        rc = cfiam_curl_perform(c, rq, lua_tostring(L, -1));
        c->pacer.inflight--;
        n = cfiam_curl_outcome(L, c, &c->one, rq, rc, attempt, &wait);
        if (n > 0)
            return n;
        if (wait < 0 || attempt > c->max_retries || cfiam_interrupted()) {
            lua_pushnil(L);
            lua_insert(L, -2);
            return 2;
        }
        lua_pop(L, 1);
        cfiam_sleep(wait);
    }
}

/* client:request(method, path [, opts]) */
static int client_request(lua_State *L) {
    cfiam_client *c = cfiam_check_client(L, 1);
    cfiam_request rq;
    int r;
    lua_settop(L, 4);
    if ((r = cfiam_prepare(L, c, &rq, 2, "")) != 0)
        return r;
    return perform(L, c, &rq);
}

/* client:update_members(account, group, ids [, opts]) */
static int client_update_members(lua_State *L) {
    cfiam_client *c = cfiam_check_client(L, 1);
    cfiam_request rq;
    int r, allow_empty = 0;
    lua_settop(L, 5);
    check_arg(L, 2, LUA_TSTRING, "update_members", "", "account");
    check_arg(L, 3, LUA_TSTRING, "update_members", "", "group");
    check_arg(L, 4, LUA_TTABLE, "update_members", "", "ids");
    if (!lua_isnil(L, 5)) {
        check_arg(L, 5, LUA_TTABLE, "update_members", "", "options");
        check_opts(L, 5, update_opts, "update_members", "", c);
        lua_getfield(L, 5, "allow_empty");
        allow_empty = is_true(L, -1);
        lua_pop(L, 1);
    }
    if (c->config_error)
        return cfiam_invalid(L, c->secrets, "%s", c->config_error);
    if ((r = push_members_path(L, c, 2, 3, "update_members")) != 0)
        return r;
    if ((r = build_ids_body(L, c, 4, allow_empty, "", "ids")) != 0)
        return r;
    rq.method = "PUT";
    rq.has_body = 1;
    rq.decode = CFIAM_DECODE_MEMBERS;
    rq.want_meta = 0; /* the members only: no meta table to build */
    return perform(L, c, &rq); /* members, or nil, err */
}

/* ---- the pieces the cosocket transport reuses --------------------------- */

/* core.prepare(client, method, path [, opts]) -> { method, target, headers,
 * body, decode } or nil, err. headers is the block of "Name: value\r\n"
 * lines of the client's own headers: no Host, no Content-Length, and no
 * Accept-Encoding (libcurl adds one; the cosocket transport cannot
 * decompress). */
static int client_prepare(lua_State *L) {
    cfiam_client *c = cfiam_check_client(L, 1);
    cfiam_request rq;
    int r;
    lua_settop(L, 4);
    if ((r = cfiam_prepare(L, c, &rq, 2, "")) != 0)
        return r;
    cfiam_push_prepared(L, c, &rq);
    return 1;
}

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

/* core.members_path(client, account, group) -> path | nil, err */
static int client_members_path(lua_State *L) {
    cfiam_client *c = cfiam_check_client(L, 1);
    int r;
    if (c->config_error)
        return cfiam_invalid(L, c->secrets, "%s", c->config_error);
    r = push_members_path(L, c, 2, 3, "update_members");
    return r ? r : 1;
}

static void push_wait(lua_State *L, double wait) {
    if (wait >= 0)
        lua_pushnumber(L, wait);
    else
        lua_pushnil(L);
}

/* core.outcome(client, decode, attempt, status, headers, body)
 *   -> result, meta | nil, err, wait (seconds, or nil for no retry) */
static int client_outcome(lua_State *L) {
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
    memset(&h, 0, sizeof(h));
    lua_pushnil(L);
    while (lua_next(L, 5)) { /* { ["retry-after"] = "1", ... } */
        if (lua_type(L, -2) == LUA_TSTRING && lua_type(L, -1) == LUA_TSTRING) {
            lua_pushvalue(L, -2);
            lua_pushliteral(L, ": ");
            lua_pushvalue(L, -3);
            lua_concat(L, 3);
            {
                size_t ll;
                const char *line = lua_tolstring(L, -1, &ll);
                cfiam_capture_header(&h, line, ll);
            }
            lua_pop(L, 1);
        }
        lua_pop(L, 1);
    }
    n = cfiam_response_outcome(L, c, &rq, status, &h, body, len, attempt, &wait);
    if (n > 0)
        return n;
    lua_pushnil(L);
    lua_insert(L, -2);
    push_wait(L, attempt > c->max_retries ? -1 : wait);
    return 3;
}

/* core.failure(client, kind, message, attempt) -> nil, err, wait */
static int client_failure(lua_State *L) {
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

/* cfiam.is_id(s) -> boolean */
static int module_is_id(lua_State *L) {
    size_t len;
    const char *s = lua_tolstring(L, 1, &len);
    lua_pushboolean(L, lua_type(L, 1) == LUA_TSTRING && cfiam_is_id(s, len));
    return 1;
}

int cfiam_request_init(lua_State *L, int core) {
    static const luaL_Reg client_methods[] = {
        {"request", client_request},
        {"update_members", client_update_members},
        {NULL, NULL}};
    static const luaL_Reg hooks[] = {
        {"prepare", client_prepare},
        {"members_path", client_members_path},
        {"outcome", client_outcome},
        {"failure", client_failure},
        {NULL, NULL}};
    /* cfiam.request and cfiam.update_members, on the default client, are
     * made with the helpers' by cfiam.extend. */
    static const luaL_Reg module_funcs[] = {
        {"is_id", module_is_id},
        {NULL, NULL}};
    /* module table at -1 */
    cfiam_setfuncs(L, module_funcs);
    luaL_getmetatable(L, CFIAM_CLIENT_MT);
    lua_getfield(L, -1, "__index");
    cfiam_setfuncs(L, client_methods);
    lua_pop(L, 2);
    lua_pushvalue(L, core);
    cfiam_setfuncs(L, hooks);
    lua_pop(L, 1);
    return 0;
}
