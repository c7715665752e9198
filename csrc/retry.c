/*
 * retry.c: when to try again and how long to wait, by the official SDKs'
 * rules: retry 408, 409, 429, 5xx, network errors and
 * timeouts; `x-should-retry: true|false` wins; wait what `retry-after-ms`
 * or `Retry-After` (seconds or HTTP date) says, else
 * min(0.5 * 2^n, 8) s minus up to 25 % jitter.
 */
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include "cfiam.h"

/* A decimal number (optionally with a fraction), the whole string. A
 * huge one (1e9 or more, inf from an overflow included) saturates at 1e9:
 * still a wait over 60 s, which fails at once rather than retrying. */
static int parse_seconds(const char *s, double *out) {
    char *end;
    double v;
    if (*s == '\0' || !((*s >= '0' && *s <= '9') || *s == '-' || *s == '.'))
        return 0;
    v = strtod(s, &end);
    /* trailing junk, NaN or a huge negative: the header is unusable and
     * the backoff applies, as in the SDKs */
    if (*end != '\0' || !(v > -1e9))
        return 0;
    *out = v < 1e9 ? v : 1e9;
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
