/*
 * body.c: what a request carries besides its path, built from Lua values
 * before anything is sent: the members body `[{"id":"..."},...]` of an
 * ids list (validated, de-duplicated, lower case) and the query string.
 * The body goes into the client's buffer (c->body, reused, freed with the
 * client); the query string is a Lua string on the stack.
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "cfiam.h"

/* ---- the members body ---------------------------------------------------- */

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

/* Raises unless the table at `t` is a plain list (keys 1 to #t only, no
 * __index or __len in its metatable): a member table ({id=}) or a list with
 * holes would lose its other keys silently, and a proxy whose __index/__len
 * show Lua a list reads raw as empty. A marker metatable (lua-cjson's
 * array_mt) changes nothing and is accepted. The rule is args.check_list's.
 * Returns #t. */
static size_t list_len(lua_State *L, int t, const char *fname,
                       const char *where, const char *what) {
    size_t n, nkeys = 0;
    if (!lua_istable(L, t))
        luaL_error(L, "%s%s must be a table, got %s", where, what,
                   luaL_typename(L, t));
    if (lua_getmetatable(L, t)) {
        int proxy;
        lua_pushliteral(L, "__index");
        lua_rawget(L, -2);
        proxy = !lua_isnil(L, -1);
        lua_pushliteral(L, "__len");
        lua_rawget(L, -3);
        proxy = proxy || !lua_isnil(L, -1);
        lua_pop(L, 3);
        if (proxy)
            luaL_error(L, "bad argument to '%s' (%s%s: a plain list expected, "
                          "got a table whose metatable has __index or __len)", fname, where, what);
    }
    n = cfiam_rawlen(L, t);
    lua_pushnil(L);
    while (lua_next(L, t)) {
        lua_pop(L, 1);
        nkeys++;
    }
    if (nkeys != n)
        luaL_error(L, "%s%s must be a list (keys 1 to #%s), got a table "
                      "with other keys", where, what, what);
    return n;
}

/* The duplicate set of one body, in c->scratch: `cap` slots of uint32
 * (0 empty, else index + 1 into keys) then 16-byte keys. */
typedef struct id_table {
    uint32_t *slots;
    unsigned char *keys;
    size_t cap, n;
    cfiam_id_seed seed;
} id_table;

/* Adds the key of a valid id; 0 when it was there already. */
static int id_table_add(id_table *d, const char *id) {
    unsigned char *key = d->keys + d->n * 16;
    size_t slot;
    cfiam_id_key(id, key);
    for (slot = cfiam_id_slot(key, &d->seed, d->cap); d->slots[slot];
         slot = (slot + 1) & (d->cap - 1))
        if (memcmp(d->keys + (d->slots[slot] - 1) * 16, key, 16) == 0)
            return 0;
    d->slots[slot] = (uint32_t)(++d->n);
    return 1;
}

int cfiam_ids_body(lua_State *L, cfiam_client *c, int t, int allow_empty,
                   const char *fname, const char *where, const char *what) {
    size_t n = list_len(L, t, fname, where, what), i;
    id_table d;
    d.cap = 16;
    d.n = 0;
    while (d.cap < n * 2)
        d.cap *= 2;
    c->scratch.len = 0;
    c->body.len = 0;
    if (!cfiam_buf_reserve(&c->scratch, d.cap * sizeof(uint32_t) + n * 16) ||
        !cfiam_buf_reserve(&c->body, n * 42 + 2))
        return luaL_error(L, "cfiam: out of memory");
    d.slots = (uint32_t *)(void *)c->scratch.data;
    d.keys = (unsigned char *)c->scratch.data + d.cap * sizeof(uint32_t);
    memset(d.slots, 0, d.cap * sizeof(uint32_t));
    cfiam_id_seed_new(&d.seed);
    c->body.data[c->body.len++] = '[';
    for (i = 1; i <= n; i++) {
        size_t len;
        const char *s = id_at(L, t, i, where, what, &len);
        char *o = c->body.data + c->body.len;
        if (!cfiam_is_id(s, len)) {
            char q[64];
            cfiam_quote_arg(q, sizeof(q), s, len, c->secrets);
            return cfiam_invalid(L, c->secrets, "%s%s[%d]: expected a "
                                 "32-character hexadecimal member id, got %s",
                                 where, what, (int)i, q);
        }
        if (!id_table_add(&d, s))
            continue; /* a duplicate */
        memcpy(o, "{\"id\":\"", 7);
        cfiam_id_lower(o + 7, s);
        memcpy(o + 39, "\"},", 3);
        c->body.len += 42;
    }
    if (d.n == 0 && !allow_empty)
        return cfiam_invalid(L, c->secrets, "%s%s is empty: replacing with an "
                             "empty list removes every member of the group "
                             "(pass allow_empty = true to mean that)",
                             where, what);
    if (d.n > 0)
        c->body.len--; /* the last ',' */
    c->body.data[c->body.len++] = ']';
    return 0;
}

/* ---- the query string ---------------------------------------------------- */

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

/* Pushes a list of the string keys of the query table at `q`, sorted so
 * that a request is always written the same way. Raises on a key that is
 * not a string or a value that is not a string, number or boolean. */
static int push_sorted_keys(lua_State *L, int q, const char *where,
                            const cfiam_client *c) {
    int nkeys = 0, i, j, keys;
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
    return nkeys;
}

/* A number's text: an integer as an integer; a float with an integral
 * value below 1e21 without a fraction; another float in the fewest
 * significant digits (14 to 17) that read back as the same double, so
 * 0.1 is "0.1", not "0.10000000000000001". `num` holds at least 32 bytes.
 * Returns 0 for NaN and infinities, which have no place in a query. */
static int number_text(lua_State *L, int idx, char *num, size_t cap) {
    double d;
    int prec;
#if LUA_VERSION_NUM >= 503
    if (lua_isinteger(L, idx)) {
        snprintf(num, cap, LUA_INTEGER_FMT, (LUA_INTEGER)lua_tointeger(L, idx));
        return 1;
    }
#endif
    d = (double)lua_tonumber(L, idx);
    if (d != d || d - d != 0) /* NaN, or inf - inf (NaN) */
        return 0;
    if (d == 0)
        d = 0; /* -0 */
    if (d == floor(d) && fabs(d) < 1e21) {
        snprintf(num, cap, "%.0f", d);
        return 1;
    }
    for (prec = 14; prec < 17; prec++) {
        snprintf(num, cap, "%.*g", prec, d);
        if (strtod(num, NULL) == d)
            return 1;
    }
    snprintf(num, cap, "%.17g", d);
    return 1;
}

/* The text of the query value at the top: numbers by number_text,
 * booleans as words. Returns NULL for a NaN or infinite number. */
static const char *value_text(lua_State *L, char *num, size_t cap,
                              size_t *len) {
    const char *v;
    if (lua_type(L, -1) == LUA_TNUMBER) {
        if (!number_text(L, -1, num, cap))
            return NULL;
        v = num;
    } else if (lua_type(L, -1) == LUA_TBOOLEAN) {
        v = lua_toboolean(L, -1) ? "true" : "false";
    } else {
        return lua_tolstring(L, -1, len);
    }
    *len = strlen(v);
    return v;
}

int cfiam_push_query(lua_State *L, int q, const char *where,
                     const cfiam_client *c) {
    int nkeys = push_sorted_keys(L, q, where, c), keys = lua_gettop(L), i;
    luaL_Buffer b;
    for (i = 1; i <= nkeys; i++) { /* one "?k=v" or "&k=v" piece each */
        const char *k, *v;
        size_t kl, vl;
        char num[64];
        lua_rawgeti(L, keys, i);
        lua_pushvalue(L, -1);
        lua_gettable(L, q);
        v = value_text(L, num, sizeof(num), &vl);
        k = lua_tolstring(L, -2, &kl);
        if (v == NULL) {
            double d = (double)lua_tonumber(L, -1);
            char qk[64]; /* the key may be a misplaced token */
            cfiam_quote_arg(qk, sizeof(qk), k, kl, c->secrets);
            return cfiam_invalid(L, c->secrets, "%squery value %s: expected a "
                                 "finite number, got %s", where, qk,
                                 d != d ? "nan" : d > 0 ? "inf" : "-inf");
        }
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
    return 0;
}
