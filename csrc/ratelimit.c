/*
 * ratelimit.c: the quota headers and the pacing they drive.
 *
 *   Ratelimit: "default";r=50;t=30          r requests left, t s to reset
 *   Ratelimit-Policy: "default";q=1200;w=300  q requests per w seconds
 *
 * Both are structured-field lists: items separated by commas, each a bare
 * item (a string or a token, the limit's name) with ";key=value"
 * parameters. Unknown parameters are ignored; an item that does not parse,
 * or lacks r and t (q and w), is skipped; a header with nothing usable
 * gives no reading. Of several Ratelimit items the one with the fewest
 * requests left binds; the policy of the same name goes with it.
 *
 * Pacing (cfiam_pacer): a reading says `remaining` requests may go until
 * `reset` seconds from its arrival. Each request sent takes one; answers
 * bring fresh readings, less the requests still in flight (which the
 * server may not have counted yet). Answers to concurrent requests arrive
 * in any order, so within a reading's lifetime only a lower count and a
 * later reset are taken. When none is left the next request waits for
 * the reset. After the reset the reading has expired and the quota is
 * unknown again: request_many then sends one request and waits for its
 * answer (a probe) before sending more; answers to requests sent before
 * the expiry are not taken as news. So a client never runs into a 429 on
 * its own traffic.
 */
#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include "cfiam.h"

#define MAX_NAME 64

double cfiam_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* ---- structured-field list items -------------------------------------- */

typedef struct {
    char name[MAX_NAME]; /* "" when the bare item was not a string/token */
    double r, t, q, w;   /* -1 when absent */
} sf_item;

static int is_lcalpha(int ch) { return ch >= 'a' && ch <= 'z'; }
static int is_digit(int ch) { return ch >= '0' && ch <= '9'; }
static int is_tchar(int ch) {
    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
           is_digit(ch) || (ch && strchr("!#$%&'*+-.^_`|~:/", ch) != NULL);
}

static const char *skip_sp(const char *s, const char *e) {
    while (s < e && (*s == ' ' || *s == '\t'))
        s++;
    return s;
}

/* A quoted string: copies up to MAX_NAME - 1 bytes (longer names are cut,
 * harmless: they only pair an item with its policy). NULL when malformed. */
static const char *sf_string(const char *s, const char *e, char *out) {
    size_t n = 0;
    s++; /* the opening quote */
    while (s < e && *s != '"') {
        if (*s == '\\') {
            if (s + 1 >= e || (s[1] != '"' && s[1] != '\\'))
                return NULL;
            s++;
        } else if ((unsigned char)*s < 0x20 || (unsigned char)*s >= 0x7f) {
            return NULL;
        }
        if (n + 1 < MAX_NAME)
            out[n++] = *s;
        s++;
    }
    if (s >= e)
        return NULL;
    out[n] = '\0';
    return s + 1;
}

/* A number (an sf integer or decimal, non-negative) into *v, or any other
 * bare item skipped (*v = -1). NULL when malformed. */
static const char *sf_value(const char *s, const char *e, double *v) {
    char tmp[MAX_NAME];
    *v = -1;
    if (s < e && *s == '"')
        return sf_string(s, e, tmp);
    if (s < e && *s == '?') /* a boolean */
        return (s + 1 < e && (s[1] == '0' || s[1] == '1')) ? s + 2 : NULL;
    if (s < e && (is_digit((unsigned char)*s) || *s == '-')) {
        double x = 0, scale = 0;
        int neg = *s == '-', digits = 0;
        if (neg)
            s++;
        while (s < e && is_digit((unsigned char)*s) && digits < 15) {
            x = x * 10 + (*s++ - '0');
            digits++;
        }
        if (digits == 0 || (s < e && is_digit((unsigned char)*s)))
            return NULL; /* no digits, or too many */
        if (s < e && *s == '.') {
            s++;
            scale = 0.1;
            if (!(s < e && is_digit((unsigned char)*s)))
                return NULL;
            while (s < e && is_digit((unsigned char)*s) && scale > 1e-4) {
                x += (*s++ - '0') * scale;
                scale /= 10;
            }
            if (s < e && is_digit((unsigned char)*s))
                return NULL;
        }
        if (!neg)
            *v = x;
        return s;
    }
    if (s < e && (isalpha((unsigned char)*s) || *s == '*')) { /* a token */
        while (s < e && is_tchar((unsigned char)*s))
            s++;
        return s;
    }
    return NULL;
}

/* One item with its parameters; returns where it ends (at ',' or e), or
 * NULL when malformed. */
static const char *sf_item_parse(const char *s, const char *e, sf_item *it) {
    it->name[0] = '\0';
    it->r = it->t = it->q = it->w = -1;
    if (s < e && *s == '"') {
        if ((s = sf_string(s, e, it->name)) == NULL)
            return NULL;
    } else if (s < e && (isalpha((unsigned char)*s) || *s == '*')) {
        size_t n = 0;
        while (s < e && is_tchar((unsigned char)*s)) {
            if (n + 1 < MAX_NAME)
                it->name[n++] = *s;
            s++;
        }
        it->name[n] = '\0';
    } else {
        return NULL;
    }
    for (;;) {
        char key[8];
        size_t kn = 0;
        double v = -1;
        s = skip_sp(s, e);
        if (s >= e || *s == ',')
            return s;
        if (*s != ';')
            return NULL;
        s = skip_sp(s + 1, e);
        if (!(s < e && (is_lcalpha((unsigned char)*s) || *s == '*')))
            return NULL;
        while (s < e && (is_lcalpha((unsigned char)*s) ||
                         is_digit((unsigned char)*s) || *s == '_' ||
                         *s == '-' || *s == '.' || *s == '*')) {
            if (kn + 1 < sizeof(key))
                key[kn++] = *s;
            else
                kn = sizeof(key); /* too long: no key of ours */
            s++;
        }
        if (kn >= sizeof(key))
            kn = 0;
        key[kn] = '\0';
        if (s < e && *s == '=') {
            if ((s = sf_value(s + 1, e, &v)) == NULL)
                return NULL;
        }
        if (kn == 1 && v >= 0) {
            switch (key[0]) {
            case 'r': it->r = v; break;
            case 't': it->t = v; break;
            case 'q': it->q = v; break;
            case 'w': it->w = v; break;
            default: break;
            }
        }
    }
}

/* Calls `f` for every well-formed item of the list in [s, e). A malformed
 * item is skipped up to the next comma outside a quoted string. */
static void sf_list(const char *s, void (*f)(const sf_item *, void *),
                    void *ud) {
    const char *e = s + strlen(s);
    while (s < e) {
        sf_item it;
        const char *end;
        s = skip_sp(s, e);
        end = sf_item_parse(s, e, &it);
        if (end != NULL) {
            f(&it, ud);
            s = end;
        } else {
            int quoted = 0;
            for (; s < e && (quoted || *s != ','); s++) {
                if (*s == '\\' && quoted && s + 1 < e)
                    s++;
                else if (*s == '"')
                    quoted = !quoted;
            }
        }
        if (s < e && *s == ',')
            s++;
    }
}

typedef struct {
    cfiam_rl_reading *out;
    char name[MAX_NAME];
    int named_policy; /* the policy found has the binding item's name */
} parse_state;

static void on_limit(const sf_item *it, void *ud) {
    parse_state *ps = ud;
    cfiam_rl_reading *o = ps->out;
    if (it->r < 0 || it->t < 0)
        return;
    if (!o->have || it->r < o->remaining ||
        (it->r == o->remaining && it->t > o->reset)) {
        o->have = 1;
        o->remaining = it->r;
        o->reset = it->t;
        memcpy(ps->name, it->name, sizeof(ps->name));
    }
}

static void on_policy(const sf_item *it, void *ud) {
    parse_state *ps = ud;
    cfiam_rl_reading *o = ps->out;
    int named;
    if (it->q < 0 || !(it->w > 0))
        return;
    named = o->have && strcmp(it->name, ps->name) == 0;
    if (!o->have_policy || (named && !ps->named_policy)) {
        o->have_policy = 1;
        o->limit = it->q;
        o->window = it->w;
        ps->named_policy = named;
    }
}

void cfiam_rl_parse(const cfiam_resp_headers *h, cfiam_rl_reading *out) {
    parse_state ps;
    memset(out, 0, sizeof(*out));
    memset(&ps, 0, sizeof(ps));
    ps.out = out;
    sf_list(h->ratelimit, on_limit, &ps);
    sf_list(h->ratelimit_policy, on_policy, &ps);
}

/* ---- pacing ------------------------------------------------------------ */

void cfiam_pacer_note(cfiam_pacer *p, const cfiam_resp_headers *h, double now) {
    cfiam_rl_reading r;
    double left;
    if (p->stale)
        return;
    p->contacted = 1;
    cfiam_rl_parse(h, &r);
    if (!r.have)
        return;
    p->last = r;
    p->last_at = now;
    /* requests still in flight may not be in the server's count yet */
    left = r.remaining - p->inflight;
    if (left < 0)
        left = 0;
    if (!p->known) {
        p->known = 1;
        p->remaining = left;
        p->reset_at = now + r.reset;
        return;
    }
    if (left < p->remaining)
        p->remaining = left;
    if (now + r.reset > p->reset_at)
        p->reset_at = now + r.reset;
}

double cfiam_pacer_wait(cfiam_pacer *p, double now) {
    if (p->known && now >= p->reset_at) {
        p->known = 0; /* the window has reset: unknown until an answer */
        p->contacted = 0;
        p->epoch++;
    }
    if (!p->known || p->remaining >= 1)
        return 0;
    return p->reset_at - now;
}

void cfiam_pacer_sent(cfiam_pacer *p) {
    if (p->known && p->remaining >= 1)
        p->remaining -= 1;
}

static void push_count(lua_State *L, double v) {
    if (v == floor(v) && v < 9e15)
        lua_pushinteger(L, (lua_Integer)v);
    else
        lua_pushnumber(L, v);
}

void cfiam_rl_push(lua_State *L, const cfiam_rl_reading *r) {
    if (!r->have) {
        lua_pushnil(L);
        return;
    }
    lua_createtable(L, 0, 4);
    push_count(L, r->remaining);
    lua_setfield(L, -2, "remaining");
    push_count(L, r->reset);
    lua_setfield(L, -2, "reset");
    if (r->have_policy) {
        push_count(L, r->limit);
        lua_setfield(L, -2, "limit");
        push_count(L, r->window);
        lua_setfield(L, -2, "window");
    }
}

/* Pushes nil, err: rate_limited with `msg`, retry_after = wait rounded
 * up, attempts. */
static int refuse(lua_State *L, const char *msg, double wait, int attempts) {
    lua_pushnil(L);
    cfiam_push_error(L, CFIAM_E_RATE_LIMITED, msg);
    lua_pushnumber(L, ceil(wait));
    lua_setfield(L, -2, "retry_after");
    lua_pushinteger(L, attempts);
    lua_setfield(L, -2, "attempts");
    return 2;
}

int cfiam_rl_refuse(lua_State *L, double wait, int attempts) {
    char msg[200];
    snprintf(msg, sizeof(msg), "the rate-limit quota is used up until its "
             "reset in %.1f s, beyond the timeout; nothing was sent", wait);
    return refuse(L, msg, wait, attempts);
}

/* core.rate_limited(wait, attempts [, message]) -> nil, err: the same
 * refusal for the cosocket transport (its batch hold, its shared budget),
 * with the message of the libcurl path unless one is given. */
int cfiam_rl_refuse_hook(lua_State *L) {
    double wait = (double)luaL_checknumber(L, 1);
    int attempts = (int)luaL_checkinteger(L, 2);
    if (lua_isnoneornil(L, 3))
        return cfiam_rl_refuse(L, wait, attempts);
    return refuse(L, luaL_checkstring(L, 3), wait, attempts);
}
