/*
 * retry.c: when to try again and how long to wait, by the official SDKs'
 * rules: retry 408, 409, 429, 5xx, network errors and
 * timeouts; `x-should-retry: true|false` wins; wait what `retry-after-ms`
 * or `Retry-After` (seconds or HTTP date) says, else
 * min(0.5 * 2^n, 8) s minus up to 25 % jitter.
 *
 * Also the capture of the few response headers cfiam reads, from raw
 * header lines: all bounded copies into fixed arrays.
 */
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
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

void cfiam_capture_header(cfiam_resp_headers *h, const char *line, size_t len) {
    const char *colon = memchr(line, ':', len), *v, *e;
    size_t nlen;
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
    if (name_is(line, nlen, "cf-ray"))
        set_field(h->ray_id, sizeof(h->ray_id), v, (size_t)(e - v));
    else if (name_is(line, nlen, "retry-after"))
        set_field(h->retry_after, sizeof(h->retry_after), v, (size_t)(e - v));
    else if (name_is(line, nlen, "retry-after-ms"))
        set_field(h->retry_after_ms, sizeof(h->retry_after_ms), v,
                  (size_t)(e - v));
    else if (name_is(line, nlen, "x-should-retry"))
        set_field(h->should_retry, sizeof(h->should_retry), v, (size_t)(e - v));
    else if (name_is(line, nlen, "location"))
        set_field(h->location, sizeof(h->location), v, (size_t)(e - v));
    else if (name_is(line, nlen, "ratelimit"))
        join_field(h->ratelimit, sizeof(h->ratelimit), v, (size_t)(e - v));
    else if (name_is(line, nlen, "ratelimit-policy"))
        join_field(h->ratelimit_policy, sizeof(h->ratelimit_policy), v,
                   (size_t)(e - v));
}

/* A decimal number (optionally with a fraction), the whole string. */
static int parse_seconds(const char *s, double *out) {
    char *end;
    double v;
    if (*s == '\0' || !((*s >= '0' && *s <= '9') || *s == '-' || *s == '.'))
        return 0;
    v = strtod(s, &end);
    /* trailing junk, NaN, or beyond any sensible wait (inf included): the
     * header is unusable and the backoff applies, as in the SDKs */
    if (*end != '\0' || !(v > -1e9 && v < 1e9))
        return 0;
    *out = v;
    return 1;
}

double cfiam_server_wait(const cfiam_resp_headers *h, double now) {
    double v;
    if (h->retry_after_ms[0] && parse_seconds(h->retry_after_ms, &v))
        return v / 1000.0;
    if (h->retry_after[0]) {
        time_t t;
        if (parse_seconds(h->retry_after, &v))
            return v;
        /* curl_getdate takes RFC 1123 and the other HTTP date forms */
        t = curl_getdate(h->retry_after, NULL);
        if (t != (time_t)-1)
            return (double)t - now;
    }
    return -1;
}

/* Jitter needs no quality, only not to touch the host's rand() state. */
static double jitter(void) {
    static unsigned long long x = 0x9e3779b97f4a7c15ULL;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return (double)(x >> 11) / 9007199254740992.0; /* [0, 1) */
}

double cfiam_backoff(int retries_taken) {
    double d = 0.5;
    int i;
    for (i = 0; i < retries_taken && d < 8.0; i++)
        d *= 2;
    if (d > 8.0)
        d = 8.0;
    return d * (1.0 - 0.25 * jitter());
}

int cfiam_status_retryable(long status, const cfiam_resp_headers *h) {
    if (h != NULL && strcasecmp(h->should_retry, "true") == 0)
        return 1;
    if (h != NULL && strcasecmp(h->should_retry, "false") == 0)
        return 0;
    return status == 408 || status == 409 || status == 429 || status >= 500;
}
