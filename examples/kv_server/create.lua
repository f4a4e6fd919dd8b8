-- CREATE: a PUT of a fresh key per request (100-byte value). The run's id (the first
-- argument after `--`) and the wrk thread's number make every key unique across runs.
dofile((debug.getinfo(1, "S").source:match("^@(.*/)") or "./") .. "common.lua")

local prefix, n

function init(args)
   prefix = "/kv/c" .. (args[1] or "0") .. "-" .. id .. "-"
   n = 0
end

function request()
   n = n + 1
   return wrk.format("PUT", prefix .. n, nil, value_100)
end
