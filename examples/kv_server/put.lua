-- PUT: overwrites of keys drawn at random from a fixed set of 10,000 (100-byte value).
dofile((debug.getinfo(1, "S").source:match("^@(.*/)") or "./") .. "common.lua")

function init(args)
   math.randomseed(id * 7919 + os.time())
end

function request()
   return wrk.format("PUT", "/kv/p" .. math.random(0, 9999), nil, value_100)
end
