-- wrk script: POSTs the SOAP body template BENCH_BODY with {{VM}} replaced, per request, by
-- the GUID of a random VM among the BENCH_VMS that bench/fill (the `fill` example) created:
-- VM i is 00000000-0000-4000-8000-<i as 12 digits>. Prints a RESULT line like post.lua.
local f = assert(io.open(os.getenv("BENCH_BODY"), "rb"))
local template = f:read("*a")
f:close()
local vms = tonumber(os.getenv("BENCH_VMS"))
local headers = {
  ["Content-Type"] = "application/soap+xml;charset=UTF-8",
  ["Authorization"] = "Basic " .. os.getenv("BENCH_AUTH"),
}

init = function(args)
  math.randomseed(os.time() + tonumber(tostring({}):sub(8), 16))
end

request = function()
  local vm = string.format("00000000-0000-4000-8000-%012d", math.random(0, vms - 1))
  local body = template:gsub("{{VM}}", vm:upper())
  return wrk.format("POST", "/wsman", headers, body)
end

done = function(summary, latency, requests)
  io.write(string.format("RESULT rps=%.0f p50_ms=%.2f p99_ms=%.2f p999_ms=%.2f errors=%d\n",
    summary.requests / (summary.duration / 1e6),
    latency:percentile(50) / 1000, latency:percentile(99) / 1000, latency:percentile(99.9) / 1000,
    summary.errors.status + summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout))
end
