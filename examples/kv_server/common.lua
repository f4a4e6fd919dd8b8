-- Shared by the kv_server bench scripts (examples/kv_server/bench.sh): numbers the wrk
-- threads, and prints one line of figures the script parses, with p99.9 (which wrk's own
-- --latency table lacks). Latencies are in microseconds.

local next_id = 1

function setup(thread)
   thread:set("id", next_id)
   next_id = next_id + 1
end

function done(summary, latency, requests)
   local e = summary.errors
   io.write(string.format(
      "KVBENCH requests=%d duration_us=%d mean_us=%.1f p50_us=%d p99_us=%d p999_us=%d "
         .. "max_us=%d status_errors=%d socket_errors=%d\n",
      summary.requests, summary.duration, latency.mean,
      latency:percentile(50), latency:percentile(99), latency:percentile(99.9),
      latency.max, e.status, e.connect + e.read + e.write + e.timeout))
end

-- A 100-byte value, as the issue's figures used.
value_100 = string.rep("v", 100)
