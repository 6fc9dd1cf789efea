-- wrk script: POSTs one RollTransportKeyRequest (file BENCH_BODY) to the KPS and prints a
-- RESULT line (common.lua).
dofile(os.getenv("BENCH_LUA") .. "/common.lua")
wrk.method = "POST"
wrk.path = "/KeyProtection/service/V2.0/rolltransportkey"
wrk.body = slurp(os.getenv("BENCH_BODY"))
wrk.headers["Content-Type"] = "application/xml; charset=utf-8"
