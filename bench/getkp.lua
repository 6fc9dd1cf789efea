-- wrk script: GetKeyProtector over WS-Management with HTTP Basic.
-- Environment: VMSEC_AUTH (base64 user:password), VMSEC_VM (VM GUID, upper case).
local v2 = "http://schemas.microsoft.com/wbem/wsman/1/wmi/root/virtualization/v2"
local uri = v2 .. "/Msvm_SecurityService"
local ssd = '&lt;INSTANCE CLASSNAME="Msvm_SecuritySettingData"&gt;&lt;PROPERTY NAME="InstanceID" TYPE="string"&gt;&lt;VALUE&gt;Microsoft:'
  .. os.getenv("VMSEC_VM") .. '&lt;/VALUE&gt;&lt;/PROPERTY&gt;&lt;/INSTANCE&gt;'
wrk.method = "POST"
wrk.path = "/wsman"
wrk.headers["Content-Type"] = "application/soap+xml;charset=UTF-8"
wrk.headers["Authorization"] = "Basic " .. os.getenv("VMSEC_AUTH")
wrk.body = '<s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope" xmlns:a="http://schemas.xmlsoap.org/ws/2004/08/addressing" xmlns:w="http://schemas.dmtf.org/wbem/wsman/1/wsman.xsd">'
  .. '<s:Header><a:To>http://localhost/wsman</a:To><w:ResourceURI>' .. uri .. '</w:ResourceURI>'
  .. '<a:ReplyTo><a:Address>http://schemas.xmlsoap.org/ws/2004/08/addressing/role/anonymous</a:Address></a:ReplyTo>'
  .. '<a:Action>' .. uri .. '/GetKeyProtector</a:Action><w:MaxEnvelopeSize>4096000</w:MaxEnvelopeSize>'
  .. '<a:MessageID>uuid:00000000-0000-0000-0000-000000000001</a:MessageID></s:Header><s:Body>'
  .. '<p:GetKeyProtector_INPUT xmlns:p="' .. uri .. '"><p:SecuritySettingData>' .. ssd
  .. '</p:SecuritySettingData></p:GetKeyProtector_INPUT></s:Body></s:Envelope>'

done = function(summary, latency, requests)
  io.write(string.format("RESULT rps=%.0f p50_ms=%.2f p99_ms=%.2f p999_ms=%.2f errors=%d\n",
    summary.requests / (summary.duration / 1e6),
    latency:percentile(50) / 1000, latency:percentile(99) / 1000, latency:percentile(99.9) / 1000,
    summary.errors.status + summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout))
end
