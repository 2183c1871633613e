-- wrk script for task bench:http: PUT (store) tokens for a random seeded
-- user, as pgbench's upsert script writes a random seeded user. The body
-- has the shape of the seeding's (tests/benchhttp putBody): an access and a
-- refresh token of realistic length, new at every request, valid 8 hours
-- and 6 months.
-- tests/benchhttp sets the environment: BENCH_FIRST_USER, BENCH_USERS,
-- BENCH_PROVIDER, BENCH_CREDENTIAL.
local first = tonumber(os.getenv("BENCH_FIRST_USER"))
local count = tonumber(os.getenv("BENCH_USERS"))
local provider = os.getenv("BENCH_PROVIDER")
local headers = {
  ["Authorization"] = "Bearer " .. os.getenv("BENCH_CREDENTIAL"),
  ["Content-Type"] = "application/json",
}

local threads = 0
function setup(thread)
  thread:set("id", threads)
  threads = threads + 1
end

local n = 0
function init(args)
  math.randomseed(os.time() * 1000 + id)
end

function request()
  local user = first + math.random(0, count - 1)
  n = n + 1
  local gen = id .. "x" .. n
  local body = '{"access_token":"glpat-' .. gen .. '-' .. user .. '-0123456789abcdef",' ..
    '"refresh_token":"glrt-' .. gen .. '-' .. user .. '-0123456789abcdef","expires_in":28800,"refresh_token_expires_in":15897600}'
  return wrk.format("PUT", "/v1/users/" .. user .. "/providers/" .. provider .. "/tokens", headers, body)
end
