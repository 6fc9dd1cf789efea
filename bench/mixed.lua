-- wrk script: a mix of WS-Man calls on random VMs among BENCH_VMS (GUIDs as bench/fill makes
-- them), each body a template from bench/requests with {{VM}} replaced:
--   45% Get Msvm_SecuritySettingData, 45% GetKeyProtector, 10% SetKeyProtector (a job).
-- BENCH_DELAY_MS (default 0) pauses each connection between requests, to hold a rate.
-- Prints a RESULT line (common.lua).
dofile(os.getenv("BENCH_LUA") .. "/common.lua")
local dir = os.getenv("BENCH_REQUESTS")
local mix = {
  { weight = 45, body = slurp(dir .. "/get-ssd.xml") },
  { weight = 45, body = slurp(dir .. "/getkp.xml") },
  { weight = 10, body = slurp(dir .. "/setkp.xml") },
}
local vms = tonumber(os.getenv("BENCH_VMS"))
local pause = tonumber(os.getenv("BENCH_DELAY_MS") or "0")

init = function(args)
  math.randomseed(os.time() + tonumber(tostring({}):sub(8), 16))
end

request = function()
  local r, pick = math.random(1, 100), mix[#mix]
  for _, m in ipairs(mix) do
    if r <= m.weight then pick = m break end
    r = r - m.weight
  end
  local vm = string.format("00000000-0000-4000-8000-%012d", math.random(0, vms - 1))
  return wrk.format("POST", "/wsman", soap_headers, (pick.body:gsub("{{VM}}", vm:upper())))
end

if pause > 0 then
  delay = function() return pause end
end
