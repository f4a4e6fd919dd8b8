-- etcd 3.4's v3 JSON gateway: POST /v3/kv/put {"key": base64, "value": base64}, the same
-- 10,000 keys and 256-byte value as put_raft_kv.lua.
-- The thread numbering and the figures line of kv_server's bench (examples/kv_server/common.lua).
dofile((debug.getinfo(1, "S").source:match("^@(.*/)") or "./") .. "../kv_server/common.lua")

-- A 256-byte value, as issue 21's figures used.
value_256 = string.rep("v", 256)

local b64chars = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"

local function base64(data)
   return ((data:gsub(".", function(x)
      local r, b = "", x:byte()
      for i = 8, 1, -1 do r = r .. (b % 2 ^ i - b % 2 ^ (i - 1) > 0 and "1" or "0") end
      return r
   end) .. "0000"):gsub("%d%d%d?%d?%d?%d?", function(x)
      if #x < 6 then return "" end
      local c = 0
      for i = 1, 6 do c = c + (x:sub(i, i) == "1" and 2 ^ (6 - i) or 0) end
      return b64chars:sub(c + 1, c + 1)
   end) .. ({ "", "==", "=" })[#data % 3 + 1])
end

local value_b64
local keys = {}

function init(args)
   math.randomseed(id * 7919 + os.time())
   value_b64 = base64(value_256)
   for i = 0, 9999 do keys[i] = base64("k" .. i) end
end

function request()
   local body = '{"key":"' .. keys[math.random(0, 9999)] .. '","value":"' .. value_b64 .. '"}'
   return wrk.format("POST", "/v3/kv/put", { ["Content-Type"] = "application/json" }, body)
end
