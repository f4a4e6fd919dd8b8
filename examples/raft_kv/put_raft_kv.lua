-- PUT /kv/{key} of a 256-byte value, keys drawn at random from 10,000 (raft_kv).
-- The thread numbering and the figures line of kv_server's bench (examples/kv_server/common.lua).
dofile((debug.getinfo(1, "S").source:match("^@(.*/)") or "./") .. "../kv_server/common.lua")

-- A 256-byte value, as issue 21's figures used.
value_256 = string.rep("v", 256)

function init(args)
   math.randomseed(id * 7919 + os.time())
end

function request()
   return wrk.format("PUT", "/kv/k" .. math.random(0, 9999), nil, value_256)
end
