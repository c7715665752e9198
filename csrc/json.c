/*
 * json.c: JSON text (RFC 8259) straight into Lua values, in one pass.
 *
 * Why not lua-cjson: a JSON null must become nil (lua-cjson gives the
 * cjson.null sentinel, which every caller would have to test for), strings
 * must be valid UTF-8 (lua-cjson passes any bytes through), and the tables
 * are built in one pass from the received bytes (cjson.decode needs the
 * body copied into a Lua string first: a second copy of a 100,000-member
 * answer).
 *
 * Caveats: the input is untrusted network data. Every read is bounded by
 * `end`; nesting is limited to CFIAM_JSON_MAX_DEPTH; nothing is malloc'd
 * here except through the caller's scratch buffer, so a Lua memory error
 * raised by lua_createtable and friends leaks nothing.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "cfiam.h"

typedef struct {
    lua_State *L;
    const char *p, *start, *end;
    cfiam_buf *scratch;
    const char *why; /* static reason on failure */
    int depth;
} json_parser;

/* Value types the parser reports, so that containers can skip nulls. */
enum { J_ERROR = 0, J_VALUE = 1, J_NULL = 2 };

static int fail(json_parser *j, const char *why) {
    if (j->why == NULL)
        j->why = why;
    return J_ERROR;
}

static void skip_ws(json_parser *j) {
    while (j->p < j->end &&
           (*j->p == ' ' || *j->p == '\n' || *j->p == '\r' || *j->p == '\t'))
        j->p++;
}

/* Length of the valid UTF-8 sequence at p (lead byte >= 0x80), or 0. */
static size_t utf8_len(const unsigned char *p, const unsigned char *end) {
    unsigned c = p[0];
    size_t n, i;
    unsigned cp;
    if (c >= 0xc2 && c <= 0xdf) { n = 2; cp = c & 0x1f; }
    else if (c >= 0xe0 && c <= 0xef) { n = 3; cp = c & 0x0f; }
    else if (c >= 0xf0 && c <= 0xf4) { n = 4; cp = c & 0x07; }
    else return 0;
    if ((size_t)(end - p) < n)
        return 0;
    for (i = 1; i < n; i++) {
        if ((p[i] & 0xc0) != 0x80)
            return 0;
        cp = (cp << 6) | (p[i] & 0x3f);
    }
    if ((n == 3 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))) ||
        (n == 4 && (cp < 0x10000 || cp > 0x10ffff)))
        return 0;
    return n;
}

static int hex4(const char *p, unsigned *out) {
    unsigned v = 0;
    int i;
    for (i = 0; i < 4; i++) {
        char c = p[i];
        v <<= 4;
        if (c >= '0' && c <= '9') v |= (unsigned)(c - '0');
        else if (c >= 'a' && c <= 'f') v |= (unsigned)(c - 'a' + 10);
        else if (c >= 'A' && c <= 'F') v |= (unsigned)(c - 'A' + 10);
        else return 0;
    }
    *out = v;
    return 1;
}

static int put_utf8(cfiam_buf *b, unsigned cp) {
    char u[4];
    size_t n;
    if (cp < 0x80) { u[0] = (char)cp; n = 1; }
    else if (cp < 0x800) {
        u[0] = (char)(0xc0 | (cp >> 6)); u[1] = (char)(0x80 | (cp & 0x3f)); n = 2;
    } else if (cp < 0x10000) {
        u[0] = (char)(0xe0 | (cp >> 12)); u[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
        u[2] = (char)(0x80 | (cp & 0x3f)); n = 3;
    } else {
        u[0] = (char)(0xf0 | (cp >> 18)); u[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
        u[2] = (char)(0x80 | ((cp >> 6) & 0x3f)); u[3] = (char)(0x80 | (cp & 0x3f)); n = 4;
    }
    return cfiam_buf_append(b, u, n);
}

/* Length of the unescaped character at p (neither '"' nor '\\'), or 0
 * after fail(): a control character or invalid UTF-8. */
static size_t plain_len(json_parser *j, const char *p) {
    unsigned char c = (unsigned char)*p;
    size_t n;
    if (c < 0x20) {
        fail(j, "control character in string");
        return 0;
    }
    if (c < 0x80)
        return 1;
    n = utf8_len((const unsigned char *)p, (const unsigned char *)j->end);
    if (n == 0) {
        j->p = p;
        fail(j, "invalid UTF-8 in string");
    }
    return n;
}

/* Decodes the escape at p (on the backslash, with at least one byte after
 * it) into *cp, a surrogate pair into one code point. Returns its length,
 * or 0 after fail(). */
static size_t unescape(json_parser *j, const char *p, unsigned *cp) {
    const char *q = p + 2;
    switch (p[1]) {
    case '"': case '\\': case '/': *cp = (unsigned char)p[1]; return 2;
    case 'b': *cp = '\b'; return 2;
    case 'f': *cp = '\f'; return 2;
    case 'n': *cp = '\n'; return 2;
    case 'r': *cp = '\r'; return 2;
    case 't': *cp = '\t'; return 2;
    case 'u': break;
    default: fail(j, "invalid escape"); return 0;
    }
    if (j->end - q < 4 || !hex4(q, cp)) {
        fail(j, "invalid \\u escape");
        return 0;
    }
    q += 4;
    if (*cp >= 0xd800 && *cp <= 0xdbff) {
        unsigned lo;
        if (j->end - q < 6 || q[0] != '\\' || q[1] != 'u' ||
            !hex4(q + 2, &lo) || lo < 0xdc00 || lo > 0xdfff) {
            fail(j, "invalid surrogate pair");
            return 0;
        }
        *cp = 0x10000 + ((*cp - 0xd800) << 10) + (lo - 0xdc00);
        q += 6;
    } else if (*cp >= 0xdc00 && *cp <= 0xdfff) {
        fail(j, "invalid surrogate pair");
        return 0;
    }
    return (size_t)(q - p);
}

/* The slow path of a string that has escapes: [s, p) is plain, p is on
 * the first backslash. Unescapes into the caller's scratch buffer, then
 * pushes the result. */
static int parse_escaped(json_parser *j, const char *s, const char *p) {
    cfiam_buf *b = j->scratch;
    b->len = 0;
    if (!cfiam_buf_append(b, s, (size_t)(p - s)))
        return fail(j, "out of memory");
    while (p < j->end) {
        size_t n;
        if (*p == '"') {
            lua_pushlstring(j->L, b->data, b->len);
            j->p = p + 1;
            return J_VALUE;
        }
        if (*p == '\\') {
            unsigned cp;
            if (j->end - p < 2)
                break;
            if ((n = unescape(j, p, &cp)) == 0)
                return J_ERROR;
            if (!put_utf8(b, cp))
                return fail(j, "out of memory");
        } else {
            if ((n = plain_len(j, p)) == 0)
                return J_ERROR;
            if (!cfiam_buf_append(b, p, n))
                return fail(j, "out of memory");
        }
        p += n;
    }
    return fail(j, "unterminated string");
}

/* Parses a string at j->p (on the opening quote) and pushes it. The common
 * case, no escapes, is pushed straight from the input. */
static int parse_string(json_parser *j) {
    const char *s = ++j->p, *p = s;
    for (;;) {
        size_t n;
        if (p >= j->end)
            return fail(j, "unterminated string");
        if (*p == '"') {
            lua_pushlstring(j->L, s, (size_t)(p - s));
            j->p = p + 1;
            return J_VALUE;
        }
        if (*p == '\\')
            return parse_escaped(j, s, p);
        if ((n = plain_len(j, p)) == 0)
            return J_ERROR;
        p += n;
    }
}

static int parse_number(json_parser *j) {
    const char *p = j->p, *s = p;
    int integral = 1;
    char tmp[64];
    size_t n;
    if (p < j->end && *p == '-')
        p++;
    if (p >= j->end)
        return fail(j, "invalid number");
    if (*p == '0') {
        p++;
    } else if (*p >= '1' && *p <= '9') {
        while (p < j->end && *p >= '0' && *p <= '9') p++;
    } else {
        return fail(j, "invalid value");
    }
    if (p < j->end && *p == '.') {
        integral = 0;
        p++;
        if (p >= j->end || *p < '0' || *p > '9')
            return fail(j, "invalid number");
        while (p < j->end && *p >= '0' && *p <= '9') p++;
    }
    if (p < j->end && (*p == 'e' || *p == 'E')) {
        integral = 0;
        p++;
        if (p < j->end && (*p == '+' || *p == '-')) p++;
        if (p >= j->end || *p < '0' || *p > '9')
            return fail(j, "invalid number");
        while (p < j->end && *p >= '0' && *p <= '9') p++;
    }
    n = (size_t)(p - s);
    if (n >= sizeof(tmp))
        return fail(j, "number too long");
    memcpy(tmp, s, n);
    tmp[n] = '\0';
#if CFIAM_HAVE_INTEGERS
    /* 18 digits always fit in a 64-bit lua_Integer. */
    if (integral && n <= (size_t)(tmp[0] == '-' ? 19 : 18)) {
        lua_pushinteger(j->L, (lua_Integer)strtoll(tmp, NULL, 10));
        j->p = p;
        return J_VALUE;
    }
#else
    (void)integral;
#endif
    lua_pushnumber(j->L, (lua_Number)strtod(tmp, NULL));
    j->p = p;
    return J_VALUE;
}

static int parse_value(json_parser *j);

/* Enters an array or object at j->p and pushes its table. Returns 1 when
 * it is empty (its `close` read), 0 when items follow, -1 after fail(). */
static int open_container(json_parser *j, char close, int nrec) {
    if (++j->depth > CFIAM_JSON_MAX_DEPTH) {
        fail(j, "nesting too deep");
        return -1;
    }
    j->p++;
    lua_createtable(j->L, 0, nrec);
    skip_ws(j);
    if (j->p < j->end && *j->p == close) {
        j->p++;
        j->depth--;
        return 1;
    }
    return 0;
}

/* After an item: 1 when ',' (another follows), 0 when `close` ended the
 * container, -1 after fail(). */
static int next_item(json_parser *j, char close, const char *unterminated,
                     const char *expected) {
    skip_ws(j);
    if (j->p >= j->end) {
        fail(j, unterminated);
        return -1;
    }
    if (*j->p == ',' || *j->p == close) {
        j->p++;
        if (j->p[-1] == ',')
            return 1;
        j->depth--;
        return 0;
    }
    fail(j, expected);
    return -1;
}

static int parse_array(json_parser *j) {
    lua_Integer i = 0;
    int more = open_container(j, ']', 0);
    if (more != 0)
        return more > 0 ? J_VALUE : J_ERROR;
    do {
        int t = parse_value(j);
        if (t == J_ERROR)
            return J_ERROR;
        i++; /* a null leaves a hole, as nil does */
        if (t == J_VALUE)
            lua_rawseti(j->L, -2, (int)i);
    } while ((more = next_item(j, ']', "unterminated array",
                               "expected ',' or ']'")) > 0);
    return more == 0 ? J_VALUE : J_ERROR;
}

/* One "key": value pair of an object, set in the table at -1 (a null
 * leaves the key absent). */
static int parse_member(json_parser *j) {
    lua_State *L = j->L;
    int t;
    skip_ws(j);
    if (j->p >= j->end || *j->p != '"')
        return fail(j, "expected a string key");
    if (parse_string(j) == J_ERROR)
        return J_ERROR;
    skip_ws(j);
    if (j->p >= j->end || *j->p != ':') {
        lua_pop(L, 1);
        return fail(j, "expected ':'");
    }
    j->p++;
    t = parse_value(j);
    if (t == J_ERROR) {
        lua_pop(L, 1);
        return J_ERROR;
    }
    if (t == J_VALUE)
        lua_rawset(L, -3);
    else
        lua_pop(L, 1);
    return J_VALUE;
}

static int parse_object(json_parser *j) {
    int more = open_container(j, '}', 4);
    if (more != 0)
        return more > 0 ? J_VALUE : J_ERROR;
    do {
        if (parse_member(j) == J_ERROR)
            return J_ERROR;
    } while ((more = next_item(j, '}', "unterminated object",
                               "expected ',' or '}'")) > 0);
    return more == 0 ? J_VALUE : J_ERROR;
}

static int literal(json_parser *j, const char *word, size_t n) {
    if ((size_t)(j->end - j->p) < n || memcmp(j->p, word, n) != 0)
        return 0;
    j->p += n;
    return 1;
}

static int parse_value(json_parser *j) {
    skip_ws(j);
    if (j->p >= j->end)
        return fail(j, "unexpected end of input");
    if (!lua_checkstack(j->L, 4))
        return fail(j, "nesting too deep");
    switch (*j->p) {
    case '{': return parse_object(j);
    case '[': return parse_array(j);
    case '"': return parse_string(j);
    case 't':
        if (!literal(j, "true", 4)) return fail(j, "invalid value");
        lua_pushboolean(j->L, 1);
        return J_VALUE;
    case 'f':
        if (!literal(j, "false", 5)) return fail(j, "invalid value");
        lua_pushboolean(j->L, 0);
        return J_VALUE;
    case 'n':
        if (!literal(j, "null", 4)) return fail(j, "invalid value");
        return J_NULL;
    default:
        return parse_number(j);
    }
}

int cfiam_json_decode(lua_State *L, const char *s, size_t len,
                      cfiam_buf *scratch, char *why, size_t whylen) {
    json_parser j;
    int top = lua_gettop(L), t;
    j.L = L;
    j.p = j.start = s;
    j.end = s + len;
    j.scratch = scratch;
    j.why = NULL;
    j.depth = 0;
    t = parse_value(&j);
    if (t != J_ERROR) {
        skip_ws(&j);
        if (j.p != j.end)
            t = fail(&j, "trailing characters after the JSON value");
    }
    if (t == J_ERROR) {
        lua_settop(L, top);
        if (why && whylen)
            snprintf(why, whylen, "%s at byte %lu", j.why,
                     (unsigned long)(j.p - j.start));
        return 0;
    }
    if (t == J_NULL)
        lua_pushnil(L);
    return 1;
}
