-- Shared by examples/raft_kv/bench.sh's wrk scripts: numbers the wrk threads, and prints
-- one line of figures the script parses. Latencies in microseconds.

local next_id = 1

function setup(thread)
   thread:set("id", next_id)
   next_id = next_id + 1
end

function done(summary, latency, requests)
   local e = summary.errors
   io.write(string.format(
      "RAFTBENCH requests=%d duration_us=%d p50_us=%d p99_us=%d max_us=%d "
         .. "status_errors=%d socket_errors=%d\n",
      summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
      latency.max, e.status, e.connect + e.read + e.write + e.timeout))
end

-- A 256-byte value, as the issue's figures used.
value_256 = string.rep("v", 256)
