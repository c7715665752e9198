/*
 * error.c: the error value. Every runtime failure is `nil, err` where err
 * is a plain table with the "cfiam.error" metatable:
 *   kind, message, status, errors, messages, ray_id, attempts, retry_after
 * __tostring gives "cfiam <kind>: <message> (cf-ray <id>)" on one line, and
 * __concat lets "x: " .. err work. Secrets never reach these strings:
 * cfiam_error_scrub removes them from anything a server sent back.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include "cfiam.h"

static const char *const kind_names[] = {
    "invalid_argument", "auth", "permission", "not_found", "rate_limited",
    "api", "server", "timeout", "network", "tls", "invalid_response"};

/* __tostring: one line, kind first. */
static int error_tostring(lua_State *L) {
    luaL_Buffer b;
    luaL_checktype(L, 1, LUA_TTABLE);
    luaL_buffinit(L, &b);
    luaL_addstring(&b, "cfiam ");
    /* each field is pushed, then added with luaL_addvalue (balanced) */
    lua_getfield(L, 1, "kind");
    if (lua_isstring(L, -1))
        luaL_addvalue(&b);
    else {
        lua_pop(L, 1);
        luaL_addstring(&b, "error");
    }
    lua_getfield(L, 1, "message");
    if (lua_isstring(L, -1)) {
        lua_pop(L, 1);
        luaL_addstring(&b, ": ");
        lua_getfield(L, 1, "message");
        luaL_addvalue(&b);
    } else {
        lua_pop(L, 1);
    }
    lua_getfield(L, 1, "ray_id");
    if (lua_isstring(L, -1)) {
        lua_pop(L, 1);
        luaL_addstring(&b, " (cf-ray ");
        lua_getfield(L, 1, "ray_id");
        luaL_addvalue(&b);
        luaL_addstring(&b, ")");
    } else {
        lua_pop(L, 1);
    }
    luaL_pushresult(&b);
    return 1;
}

/* __concat: either operand may be the error. */
static int error_concat(lua_State *L) {
    int i;
    for (i = 1; i <= 2; i++) {
        if (lua_istable(L, i)) {
            lua_pushcfunction(L, error_tostring);
            lua_pushvalue(L, i);
            lua_call(L, 1, 1);
            lua_replace(L, i);
        } else if (!lua_isstring(L, i)) {
            return luaL_error(L, "attempt to concatenate a %s value",
                              luaL_typename(L, i));
        }
    }
    lua_concat(L, 2);
    return 1;
}

void cfiam_error_init(lua_State *L) {
    if (luaL_newmetatable(L, CFIAM_ERROR_MT)) {
        lua_pushcfunction(L, error_tostring);
        lua_setfield(L, -2, "__tostring");
        lua_pushcfunction(L, error_concat);
        lua_setfield(L, -2, "__concat");
        lua_pushliteral(L, CFIAM_ERROR_MT);
        lua_setfield(L, -2, "__name");
    }
    lua_pop(L, 1);
}

void cfiam_push_error(lua_State *L, cfiam_kind k, const char *message) {
    lua_createtable(L, 0, 8);
    lua_pushstring(L, kind_names[k]);
    lua_setfield(L, -2, "kind");
    lua_pushstring(L, message);
    lua_setfield(L, -2, "message");
    lua_newtable(L);
    lua_setfield(L, -2, "errors");
    lua_newtable(L);
    lua_setfield(L, -2, "messages");
    luaL_getmetatable(L, CFIAM_ERROR_MT);
    lua_setmetatable(L, -2);
}

int cfiam_invalid(lua_State *L, const char *const *secrets, const char *fmt,
                  ...) {
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    lua_pushnil(L);
    cfiam_push_error(L, CFIAM_E_INVALID_ARGUMENT, msg);
    lua_pushinteger(L, 0);
    lua_setfield(L, -2, "attempts");
    cfiam_error_scrub(L, -1, secrets);
    return 2;
}

/* Whether s[0..len) contains the secret. Not strstr: a server-sent
 * string may hold a NUL byte before the secret. */
static int contains(const char *s, size_t len, const char *secret) {
    size_t n = strlen(secret), i;
    if (n == 0 || n > len)
        return 0;
    for (i = 0; i + n <= len; i++)
        if (s[i] == secret[0] && memcmp(s + i, secret, n) == 0)
            return 1;
    return 0;
}

/* Quotes a bad argument for a message, or "[redacted]" when it holds a
 * secret (a token passed in the wrong place): the quote is cut at 40 bytes,
 * and a cut token would escape the later scrub. */
void cfiam_quote_arg(char *out, size_t cap, const char *s, size_t len,
                     const char *const *secrets) {
    int k;
    for (k = 0; secrets && secrets[k]; k++) {
        if (contains(s, len, secrets[k])) {
            snprintf(out, cap, "[redacted]");
            return;
        }
    }
    cfiam_quote(out, cap, s, len);
}

/* Replaces the string at the top of the stack by a copy without secrets. */
void cfiam_scrub_top(lua_State *L, const char *const *secrets) {
    size_t len, i;
    const char *s = lua_tolstring(L, -1, &len);
    int k, found = 0;
    luaL_Buffer b;
    if (secrets == NULL)
        return;
    for (k = 0; secrets[k]; k++)
        if (contains(s, len, secrets[k]))
            found = 1;
    if (!found)
        return;
    luaL_buffinit(L, &b); /* the original string stays below the buffer */
    for (i = 0; i < len;) {
        int hit = 0;
        for (k = 0; secrets[k]; k++) {
            size_t n = strlen(secrets[k]);
            if (n && n <= len - i && memcmp(s + i, secrets[k], n) == 0) {
                luaL_addstring(&b, "[redacted]");
                i += n;
                hit = 1;
                break;
            }
        }
        if (!hit)
            luaL_addchar(&b, s[i++]);
    }
    luaL_pushresult(&b);
    lua_remove(L, -2);
}

static void scrub_field(lua_State *L, int t, const char *field,
                        const char *const *secrets) {
    lua_getfield(L, t, field);
    if (lua_type(L, -1) == LUA_TSTRING) {
        cfiam_scrub_top(L, secrets);
        lua_setfield(L, t, field);
    } else {
        lua_pop(L, 1);
    }
}

/* Every string value, at any depth: servers echo input in message,
 * error_chain[i].message, documentation_url, source.pointer... */
static void scrub_values(lua_State *L, int t, const char *const *secrets,
                         int depth) {
    if (depth > CFIAM_JSON_MAX_DEPTH + 1 || !lua_checkstack(L, 6))
        return;
    lua_pushnil(L);
    while (lua_next(L, t)) {
        if (lua_type(L, -1) == LUA_TSTRING) {
            cfiam_scrub_top(L, secrets);
            lua_pushvalue(L, -2);
            lua_insert(L, -2);
            lua_rawset(L, t); /* an existing key: allowed during lua_next */
        } else {
            if (lua_istable(L, -1))
                scrub_values(L, lua_gettop(L), secrets, depth + 1);
            lua_pop(L, 1);
        }
    }
}

void cfiam_scrub_table(lua_State *L, int idx, const char *const *secrets) {
    idx = cfiam_absindex(L, idx);
    if (secrets == NULL || secrets[0] == NULL || !lua_istable(L, idx))
        return;
    scrub_values(L, idx, secrets, 0);
}

static void scrub_list(lua_State *L, int t, const char *field,
                       const char *const *secrets) {
    lua_getfield(L, t, field);
    if (lua_istable(L, -1))
        scrub_values(L, lua_gettop(L), secrets, 0);
    lua_pop(L, 1);
}

void cfiam_error_scrub(lua_State *L, int idx, const char *const *secrets) {
    idx = cfiam_absindex(L, idx);
    if (secrets == NULL || secrets[0] == NULL)
        return;
    scrub_field(L, idx, "message", secrets);
    scrub_field(L, idx, "ray_id", secrets); /* a cf-ray header echoing it */
    scrub_list(L, idx, "errors", secrets);
    scrub_list(L, idx, "messages", secrets);
}
