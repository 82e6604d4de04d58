-- wrk script of the Mashpipe endpoint and webhook benchmarks.
-- Prints one line "MASHPIPE_WRK {json}" at the end with the counts and latency percentiles
-- (microseconds). Optional environment: WRK_METHOD, WRK_BODY, WRK_CONTENT_TYPE (a POST body).
-- No response() callback: it would make wrk parse every answer for Lua (~15% slower). A wrk run
-- is bounded by its duration (-d) and its connections (-c); the count follows from both.

local method = os.getenv("WRK_METHOD")
local body = os.getenv("WRK_BODY")
local content_type = os.getenv("WRK_CONTENT_TYPE")
if method then wrk.method = method end
if body then wrk.body = body end
if content_type then wrk.headers["Content-Type"] = content_type end

function done(summary, latency, requests)
  local errors = summary.errors
  io.write(string.format(
    'MASHPIPE_WRK {"requests":%d,"duration_us":%d,"bytes":%d,' ..
    '"connect_errors":%d,"read_errors":%d,"write_errors":%d,"status_errors":%d,"timeouts":%d,' ..
    '"p50_us":%d,"p90_us":%d,"p99_us":%d,"max_us":%d,"mean_us":%.1f}\n',
    summary.requests, summary.duration, summary.bytes,
    errors.connect, errors.read, errors.write, errors.status, errors.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max, latency.mean))
end
