/*
 * fuzz/headers.c: raw response header lines into the retry decision.
 *
 * Input: byte 0 picks the HTTP status (fuzz_statuses); the rest is a header
 * block, split on '\n' (each line keeps its '\r', as libcurl hands it), fed
 * line by line to cfiam_capture_header (headers.c) as transport_curl.c's
 * on_header does (a status line resets them). Then cfiam_server_wait,
 * cfiam_status_retryable and the wait that response.c derives from them.
 * Invariants: every captured field stays NUL-terminated inside its array;
 * a Ratelimit / Ratelimit-Policy reading has no negative count or window;
 * the server wait is -1 or a number (never NaN); the decided wait is -1 or
 * within [0, CFIAM_RETRY_AFTER_CAP]: a long Retry-After gives up, it never
 * waits longer than the cap.
 */
#include <math.h>
#include "fuzz_common.h"

#define TERMINATED(f) CHECK(memchr((f), '\0', sizeof(f)) != NULL)

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size) {
    cfiam_resp_headers h;
    long status;
    size_t i, start;
    double sw, wait;
    if (size < 1)
        return 0;
    status = fuzz_status(data[0]);
    memset(&h, 0, sizeof(h));
    for (start = i = 1; i <= size; i++) {
        if (i == size || data[i] == '\n') {
            size_t len = i - start + (i < size); /* with the '\n' */
            char *line = malloc(len ? len : 1);  /* exact size for ASan */
            memcpy(line, data + start, len);
            if (len >= 5 && memcmp(line, "HTTP/", 5) == 0)
                memset(&h, 0, sizeof(h));
            else
                cfiam_capture_header(&h, line, len);
            free(line);
            start = i + 1;
        }
    }
    TERMINATED(h.ray_id);
    TERMINATED(h.retry_after);
    TERMINATED(h.retry_after_ms);
    TERMINATED(h.should_retry);
    TERMINATED(h.location);
    TERMINATED(h.ratelimit);
    TERMINATED(h.ratelimit_policy);
    {   /* the quota headers: garbage gives no reading, never a bad one */
        cfiam_rl_reading r;
        cfiam_rl_parse(&h, &r);
        if (r.have)
            CHECK(r.remaining >= 0 && r.reset >= 0 && r.remaining < 1e16);
        if (r.have_policy)
            CHECK(r.limit >= 0 && r.window > 0);
    }
    sw = cfiam_server_wait(&h, 1.7e9);
    CHECK(sw == sw);
    /* response.c's decision, for an error status */
    wait = -1;
    if (status >= 400 && cfiam_status_retryable(status, &h)) {
        if (sw > CFIAM_RETRY_AFTER_CAP)
            wait = -1;
        else
            wait = sw > 0 ? sw : cfiam_backoff(0);
    }
    CHECK(wait == -1 || (wait >= 0 && wait <= CFIAM_RETRY_AFTER_CAP));
    CHECK(cfiam_status_retryable(status, NULL) == cfiam_status_retryable(status, NULL));
    for (i = 0; i < 8; i++) {
        double b = cfiam_backoff((int)i);
        CHECK(b > 0 && b <= 8.0);
    }
    return 0;
}
