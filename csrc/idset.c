/*
 * idset.c: a set of member ids for paged listings, so that a member seen
 * on an earlier page (pages shift when the group changes while it is
 * listed) is counted once. In C because a 20,000-member listing would
 * otherwise spend more time lower-casing ids and filling a Lua table than
 * in libcurl and the JSON decoder.
 *
 *   set = require("cfiam.core").idset()
 *   kept, bad = set:add_page(page)
 *
 * add_page drops the members of `page` (an array of tables with a string
 * `id`) that the set already holds, compacting the array in place, and
 * adds the others; it returns how many it kept, or nil and the index of
 * an item without a string id. 32-hex ids are kept as 16 bytes in an open
 * addressing table (compared case-insensitively); any other id goes to a
 * Lua table in the set's user value, as given.
 *
 * Memory: slots and keys live in Lua userdata blocks anchored in the set's
 * user value (fields 1 and 2), not in malloc'd memory, so that the garbage
 * collector sees their size: a script listing many groups frees them as
 * promptly as the tables it lists.
 */
#include <stdint.h>
#include <string.h>
#include "cfiam.h"

#define CFIAM_IDSET_MT "cfiam.idset"

typedef struct {
    uint32_t *slots;     /* 0 = empty, else index + 1 into keys */
    unsigned char *keys; /* 16 bytes per id */
    size_t cap, n, keycap;
    cfiam_id_seed seed;  /* this set's own hash key */
} idset;

/* A new zeroed block, anchored as uservalue[field] of the set at index 1
 * (the previous block there becomes garbage). May raise: nothing here is
 * malloc'd, so nothing leaks. */
static void *new_block(lua_State *L, int field, size_t size) {
    void *p;
    cfiam_getuservalue(L, 1);
    p = lua_newuserdata(L, size);
    memset(p, 0, size);
    lua_rawseti(L, -2, field);
    lua_pop(L, 1);
    return p;
}

/* Makes room for one more id. */
static void reserve(lua_State *L, idset *s) {
    if (s->n + 1 > s->keycap) {
        size_t kc = s->keycap ? s->keycap * 2 : 64;
        unsigned char *k = new_block(L, 2, kc * 16);
        if (s->n)
            memcpy(k, s->keys, s->n * 16);
        s->keys = k;
        s->keycap = kc;
    }
    if ((s->n + 1) * 2 > s->cap) { /* rehash at half full */
        size_t cap = s->cap ? s->cap * 2 : 128, i;
        s->slots = new_block(L, 1, cap * sizeof(uint32_t));
        s->cap = cap;
        for (i = 0; i < s->n; i++) {
            size_t j = cfiam_id_slot(s->keys + i * 16, &s->seed, cap);
            while (s->slots[j])
                j = (j + 1) & (cap - 1);
            s->slots[j] = (uint32_t)(i + 1);
        }
    }
}

/* 1 when the 32-hex id was already in the set, else adds it and returns 0.
 * The set is at stack index 1. */
static int seen_hex(lua_State *L, idset *s, const char *id) {
    unsigned char key[16];
    size_t j;
    cfiam_id_key(id, key);
    reserve(L, s);
    for (j = cfiam_id_slot(key, &s->seed, s->cap); s->slots[j]; j = (j + 1) & (s->cap - 1))
        if (memcmp(s->keys + (s->slots[j] - 1) * 16, key, 16) == 0)
            return 1;
    memcpy(s->keys + s->n * 16, key, 16);
    s->slots[j] = (uint32_t)(++s->n);
    return 0;
}

/* set:add_page(page) -> kept | nil, index of an item without a string id */
static int idset_add_page(lua_State *L) {
    idset *s = luaL_checkudata(L, 1, CFIAM_IDSET_MT);
    size_t n, i, w = 0;
    luaL_checktype(L, 2, LUA_TTABLE);
    lua_settop(L, 2);
    cfiam_getuservalue(L, 1); /* 3: ids that are not 32 hex */
    n = cfiam_rawlen(L, 2);
    for (i = 1; i <= n; i++) {
        size_t len;
        const char *id;
        int dup;
        lua_rawgeti(L, 2, (int)i);       /* 4: the item */
        if (lua_istable(L, 4))
            lua_getfield(L, 4, "id");    /* 5 */
        else
            lua_pushnil(L);
        if (lua_type(L, 5) != LUA_TSTRING) {
            lua_pushnil(L);
            lua_pushinteger(L, (lua_Integer)i);
            return 2;
        }
        id = lua_tolstring(L, 5, &len);
        if (cfiam_is_id(id, len)) {
            dup = seen_hex(L, s, id);
        } else {
            lua_pushvalue(L, 5);
            lua_rawget(L, 3);
            dup = !lua_isnil(L, -1);
            lua_pop(L, 1);
            if (!dup) {
                lua_pushvalue(L, 5);
                lua_pushboolean(L, 1);
                lua_rawset(L, 3);
            }
        }
        lua_pop(L, 1); /* the id */
        if (!dup && ++w != i)
            lua_rawseti(L, 2, (int)w); /* move the item down */
        else
            lua_pop(L, 1);
    }
    for (i = w + 1; i <= n; i++) { /* clear the tail */
        lua_pushnil(L);
        lua_rawseti(L, 2, (int)i);
    }
    lua_pushinteger(L, (lua_Integer)w);
    return 1;
}

/* core.idset() -> an empty set */
static int idset_new(lua_State *L) {
    idset *s = lua_newuserdata(L, sizeof(*s));
    memset(s, 0, sizeof(*s));
    cfiam_id_seed_new(&s->seed);
    luaL_getmetatable(L, CFIAM_IDSET_MT);
    lua_setmetatable(L, -2);
    lua_newtable(L);
    cfiam_setuservalue(L, -2);
    return 1;
}

void cfiam_idset_init(lua_State *L) {
    luaL_newmetatable(L, CFIAM_IDSET_MT);
    lua_newtable(L);
    lua_pushcfunction(L, idset_add_page);
    lua_setfield(L, -2, "add_page");
    lua_setfield(L, -2, "__index");
    lua_pop(L, 1);
    lua_pushcfunction(L, idset_new); /* the core table below */
    lua_setfield(L, -2, "idset");
}
