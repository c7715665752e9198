/*
 * headers.c: the few response headers cfiam reads, captured from raw
 * "Name: value" lines (libcurl's header callback, or the cosocket
 * transport's table through core.outcome). Bounded copies into the fixed
 * arrays of cfiam_resp_headers: nothing is allocated.
 */
#include <stddef.h>
#include <string.h>
#include <strings.h>
#include "cfiam.h"

static int name_is(const char *line, size_t nlen, const char *name) {
    return strlen(name) == nlen && strncasecmp(line, name, nlen) == 0;
}

/* Copies the trimmed value into a fixed field; an over-long value is
 * dropped rather than cut, so a truncated number is never misread. */
static void set_field(char *dst, size_t cap, const char *v, size_t n) {
    if (n >= cap) {
        dst[0] = '\0';
        return;
    }
    memcpy(dst, v, n);
    dst[n] = '\0';
}

/* A wait (delta-seconds or milliseconds) too long for its field: its
 * leading zeros go; a number whose whole part still does not fit is huge,
 * kept as "1e9" (retry.c saturates there: a wait over 60 s, not waited).
 * Anything else is dropped as set_field does. */
static void set_wait(char *dst, size_t cap, const char *v, size_t n) {
    size_t i;
    while (n > 1 && v[0] == '0' && v[1] >= '0' && v[1] <= '9') {
        v++;
        n--;
    }
    if (n < cap) {
        set_field(dst, cap, v, n);
        return;
    }
    for (i = 0; i < cap && v[i] >= '0' && v[i] <= '9'; i++)
        ;
    if (i == cap)
        set_field(dst, cap, "1e9", 3);
    else
        dst[0] = '\0';
}

/* A list header may come on several lines: they join with ", ". A line
 * that does not fit is dropped whole (the items before it stay). */
static void join_field(char *dst, size_t cap, const char *v, size_t n) {
    size_t have = strlen(dst), sep = have ? 2 : 0;
    if (have + sep + n >= cap)
        return;
    memcpy(dst + have, ", ", sep);
    memcpy(dst + have + sep, v, n);
    dst[have + sep + n] = '\0';
}

/* The headers kept, where, and how a value is stored. */
#define FIELD(name, member, set)                                           \
    {name, offsetof(cfiam_resp_headers, member),                           \
     sizeof(((cfiam_resp_headers *)0)->member), set}
static const struct {
    const char *name;
    size_t off, cap;
    void (*set)(char *dst, size_t cap, const char *v, size_t n);
} fields[] = {
    FIELD("cf-ray", ray_id, set_field),
    FIELD("retry-after", retry_after, set_wait),
    FIELD("retry-after-ms", retry_after_ms, set_wait),
    FIELD("x-should-retry", should_retry, set_field),
    FIELD("location", location, set_field),
    /* list headers: repeated lines join */
    FIELD("ratelimit", ratelimit, join_field),
    FIELD("ratelimit-policy", ratelimit_policy, join_field),
};

void cfiam_capture_header(cfiam_resp_headers *h, const char *line, size_t len) {
    const char *colon = memchr(line, ':', len), *v, *e;
    size_t nlen, i;
    if (colon == NULL)
        return;
    nlen = (size_t)(colon - line);
    v = colon + 1;
    e = line + len;
    while (v < e && (*v == ' ' || *v == '\t'))
        v++;
    while (e > v && (e[-1] == '\r' || e[-1] == '\n' || e[-1] == ' ' ||
                     e[-1] == '\t'))
        e--;
    for (i = 0; i < sizeof(fields) / sizeof(fields[0]); i++) {
        char *dst = (char *)h + fields[i].off;
        if (!name_is(line, nlen, fields[i].name))
            continue;
        fields[i].set(dst, fields[i].cap, v, (size_t)(e - v));
        return;
    }
}
