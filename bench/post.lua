-- wrk script: POSTs one SOAP body (file BENCH_BODY) with Basic auth (BENCH_AUTH, base64
-- user:password) and prints a RESULT line. The same script drives vmsec and nginx.
dofile(os.getenv("BENCH_LUA") .. "/common.lua")
wrk.method = "POST"
wrk.path = "/wsman"
wrk.body = slurp(os.getenv("BENCH_BODY"))
for k, v in pairs(soap_headers) do wrk.headers[k] = v end
