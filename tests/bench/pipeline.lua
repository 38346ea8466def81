-- pipeline.lua: wrk script for HTTP/1.1 pipelining. Each write carries
-- DEPTH GET requests for one path (default 16 x /hello); wrk counts the
-- requests in the buffer and reads that many responses before it writes
-- again, so req/s counts every pipelined request.
--   wrk -t1 -c64 -d10s -s tests/bench/pipeline.lua URL -- [PATH] [DEPTH]

local batch

function init(args)
  local path = args[1] or "/hello"
  local depth = tonumber(args[2] or "16")
  local reqs = {}
  for i = 1, depth do
    reqs[i] = wrk.format("GET", path)
  end
  batch = table.concat(reqs)
end

function request()
  return batch
end
