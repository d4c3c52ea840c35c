-- wrk script: POST real request bodies, one JSON body per line of a file, in turn.
--
--   XSTILTS_WRK_BODIES=bodies.jsonl XSTILTS_WRK_PATH=/v1/models/NAME/predict \
--     wrk -t1 -c32 -d30s --latency -s xstilts/bench/post.lua http://127.0.0.1:8000
--
-- XSTILTS_WRK_RATE (requests/s over all connections) adds an exponential think time per connection so that the
-- connections together offer about that rate (XSTILTS_WRK_CONNECTIONS must then equal -c); without it every
-- connection sends its next request as soon as the last is answered (saturation).
-- The last line printed is "XSTILTS_WRK {json}" with counts and latency percentiles in microseconds.

local bodies_file = os.getenv("XSTILTS_WRK_BODIES")
local path = os.getenv("XSTILTS_WRK_PATH") or "/v1/models/model/predict"
local rate = tonumber(os.getenv("XSTILTS_WRK_RATE") or "0")
local connections = tonumber(os.getenv("XSTILTS_WRK_CONNECTIONS") or "1")
local authorization = os.getenv("XSTILTS_WRK_AUTHORIZATION")

local threads = {}
local next_id = 0

function setup(thread)
  thread:set("id", next_id)
  next_id = next_id + 1
  table.insert(threads, thread)
end

local bodies = {}
local counter = 0

function init(args)
  for line in io.lines(bodies_file) do
    if #line > 0 then bodies[#bodies + 1] = line end
  end
  counter = (id or 0) * 7919 -- threads start at different bodies
  math.randomseed(1000 + (id or 0))
  wrk.method = "POST"
  wrk.headers["Content-Type"] = "application/json"
  if authorization then wrk.headers["Authorization"] = authorization end
end

function request()
  counter = counter + 1
  return wrk.format(nil, path, nil, bodies[(counter % #bodies) + 1])
end

function delay()
  if rate <= 0 then return 0 end
  local mean_ms = 1000 * connections / rate
  return -math.log(1 - math.random()) * mean_ms
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'XSTILTS_WRK {"requests": %d, "duration_us": %d, "bytes": %d, "non_2xx": %d, "connect_errors": %d, '
      .. '"read_errors": %d, "write_errors": %d, "timeouts": %d, "latency_us": {"p50": %d, "p90": %d, '
      .. '"p99": %d, "max": %d, "mean": %.1f}}\n',
    summary.requests, summary.duration, summary.bytes, e.status, e.connect, e.read, e.write, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max, latency.mean))
end
