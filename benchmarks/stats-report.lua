-- SPDX-License-Identifier: MIT
-- wrk script: POSTs the report a tcp-client sends, cycling through
-- REPORTERS names (env, default 1000) so the table holds that many rows.
local reporters = tonumber(os.getenv("REPORTERS") or "1000")
local counter = 0
local headers = { ["Content-Type"] = "application/json" }
local template = '{"role":"client","name":"load-%d","machineName":"load-%d",'
  .. '"pod":"load-%d-7f9c","namespace":"bench","node":"node-1",'
  .. '"backend":"io_uring","connections":%d,"target":10000,'
  .. '"failures":{"ECONNREFUSED":3,"ETIMEDOUT":1},"drops":{"reset":2},'
  .. '"connectRate":4873.2,"latencyUs":{"p50":81,"p90":130,"p99":910,"max":4200},'
  .. '"keepalives":123456,"rssBytes":41943040,"startTime":1795760000,'
  .. '"version":"0.1.0"}'

function setup(thread)
  thread:set("offset", counter)
  counter = counter + 1
end

local n = 0
request = function()
  n = n + 1
  local id = (n * 7 + (offset or 0)) % reporters
  local body = string.format(template, id, id, id, 9000 + n % 1000)
  return wrk.format("POST", "/api/ServerStatistics", headers, body)
end

local bad = 0
response = function(status, headers, body)
  if status ~= 200 then
    bad = bad + 1
    if bad <= 3 then io.stderr:write("unexpected " .. status .. ": " .. body .. "\n") end
  end
end
