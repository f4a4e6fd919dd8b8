-- PUT /kv/{key} of a 256-byte value, keys drawn at random from 10,000 (raft_kv).
dofile((debug.getinfo(1, "S").source:match("^@(.*/)") or "./") .. "common.lua")

function init(args)
   math.randomseed(id * 7919 + os.time())
end

function request()
   return wrk.format("PUT", "/kv/k" .. math.random(0, 9999), nil, value_256)
end
