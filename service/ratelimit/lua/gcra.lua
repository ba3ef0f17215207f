-- GCRA over N rules, all-or-nothing, timed by the server's clock (TIME) so replicas never skew.
-- KEYS[i]: bucket key of rule i.  ARGV[2i-1]: emission interval (µs).  ARGV[2i]: burst.
-- Stored value: the theoretical arrival time (TAT, µs). Keys expire when the bucket would be full again.
-- Returns {allowed (1|0), remaining_1, reset_us_1, retry_us_1, remaining_2, ...}.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local n = #KEYS
local allowed = 1
local tats = {}
local out = {0}
for i = 1, n do
  local interval = tonumber(ARGV[2 * i - 1])
  local burst = tonumber(ARGV[2 * i])
  local tat = tonumber(redis.call('GET', KEYS[i]) or now)
  if tat < now then tat = now end
  local tau = interval * (burst - 1)
  local new_tat = tat + interval
  if tat - now > tau then
    allowed = 0
    out[#out + 1] = 0
    out[#out + 1] = tat - now
    out[#out + 1] = tat - now - tau
  else
    tats[i] = new_tat
    out[#out + 1] = math.floor((burst * interval - (new_tat - now)) / interval)
    out[#out + 1] = new_tat - now
    out[#out + 1] = 0
  end
end
if allowed == 1 then
  for i = 1, n do
    local ttl_ms = math.ceil((tats[i] - now) / 1000)
    redis.call('SET', KEYS[i], string.format('%.0f', tats[i]), 'PX', ttl_ms)
  end
end
out[1] = allowed
return out
