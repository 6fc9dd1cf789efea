-- wrk script: POSTs the SOAP body template BENCH_BODY with {{VM}} replaced, per request, by
-- the GUID of a random VM among the BENCH_VMS that the `fill` example created
-- (VM i is 00000000-0000-4000-8000-<i as 12 digits>). Prints a RESULT line.
dofile(os.getenv("BENCH_LUA") .. "/common.lua")
local template = slurp(os.getenv("BENCH_BODY"))
local vms = tonumber(os.getenv("BENCH_VMS"))

init = function(args)
  math.randomseed(os.time() + tonumber(tostring({}):sub(8), 16))
end

request = function()
  local vm = string.format("00000000-0000-4000-8000-%012d", math.random(0, vms - 1))
  return wrk.format("POST", "/wsman", soap_headers, (template:gsub("{{VM}}", vm:upper())))
end
