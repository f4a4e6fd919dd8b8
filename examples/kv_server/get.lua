-- GET of one key (`/kv/g`, written by bench.sh before the runs): no log write, no fsync.
dofile((debug.getinfo(1, "S").source:match("^@(.*/)") or "./") .. "common.lua")

wrk.method = "GET"
wrk.path = "/kv/g"
