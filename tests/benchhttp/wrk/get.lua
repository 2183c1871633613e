-- wrk script for task bench:http: GET a valid token of a random seeded
-- user, as pgbench's GetAuthTokens script reads a random seeded user.
-- tests/benchhttp sets the environment: BENCH_FIRST_USER, BENCH_USERS,
-- BENCH_PROVIDER, BENCH_CREDENTIAL.
local first = tonumber(os.getenv("BENCH_FIRST_USER"))
local count = tonumber(os.getenv("BENCH_USERS"))
local provider = os.getenv("BENCH_PROVIDER")
local headers = { ["Authorization"] = "Bearer " .. os.getenv("BENCH_CREDENTIAL") }

local threads = 0
function setup(thread)
  thread:set("id", threads)
  threads = threads + 1
end

function init(args)
  -- Each thread has its own Lua state: seed each differently.
  math.randomseed(os.time() * 1000 + id)
end

function request()
  local user = first + math.random(0, count - 1)
  return wrk.format("GET", "/v1/users/" .. user .. "/providers/" .. provider .. "/tokens", headers)
end
