-- Shared by the wrk scripts (loaded with dofile from $BENCH_LUA, which bench/lib.sh sets):
-- reading a request body, the SOAP request headers, and the RESULT line every script prints.
function slurp(path)
  local f = assert(io.open(path, "rb"))
  local s = f:read("*a")
  f:close()
  return s
end

soap_headers = {
  ["Content-Type"] = "application/soap+xml;charset=UTF-8",
  ["Authorization"] = "Basic " .. os.getenv("BENCH_AUTH"),
}

-- Non-2xx replies count as errors (wrk's summary.errors.status). With BENCH_QUANTILES set, the
-- run's request count, error count, duration (µs) and latency at 1,000 evenly spaced
-- quantiles (µs) also go to that file, so that bench/slices.py can pool runs taken in slices.
done = function(summary, latency, requests)
  local e = summary.errors
  local errors = e.status + e.connect + e.read + e.write + e.timeout
  local qfile = os.getenv("BENCH_QUANTILES")
  if qfile then
    local f = assert(io.open(qfile, "w"))
    f:write(string.format("%d %d %d", summary.requests, errors, summary.duration))
    for i = 1, 1000 do f:write(string.format(" %d", latency:percentile((i - 0.5) / 10))) end
    f:write("\n")
    f:close()
  end
  io.write(string.format("RESULT rps=%.0f p50_ms=%.2f p99_ms=%.2f p999_ms=%.2f errors=%d\n",
    summary.requests / (summary.duration / 1e6),
    latency:percentile(50) / 1000, latency:percentile(99) / 1000, latency:percentile(99.9) / 1000,
    errors))
end
