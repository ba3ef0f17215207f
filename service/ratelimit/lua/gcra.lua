-- One request's admission in one round trip, timed by the server's clock (TIME) so replicas never skew:
-- blocks first, then every rule, all-or-nothing.
-- ARGV[1]: number of block keys B.  ARGV[2]: 1 = charge, 0 = peek (report only, write nothing).
-- KEYS[1..B]: block keys; any that exists refuses the request.
-- KEYS[B+i]: the key of rule i; ARGV[3+4(i-1) .. 6+4(i-1)]: kind, a, b, cost.
--   kind 0, GCRA:   a = emission interval (µs), b = burst (units). Stored: the theoretical arrival time (µs).
--   kind 1, window: a = limit (units), b = the window's end (µs since the epoch). Stored: units used.
-- A rule passes if spending `cost` more units keeps it within its burst/limit. Keys expire when a GCRA bucket
-- would be full again, or when the window ends.
-- Returns {allowed (1|0), remaining_1, reset_us_1, retry_us_1, remaining_2, ...}
--      or {2, i, ttl_ms} when block key i is in force.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local nb = tonumber(ARGV[1])
for i = 1, nb do
  local ttl = redis.call('PTTL', KEYS[i])
  if ttl ~= -2 then
    return {2, i, ttl}
  end
end
local charge = ARGV[2] == '1'
local allowed = 1
local writes = {}
local out = {0}
for i = nb + 1, #KEYS do
  local j = 3 + 4 * (i - nb - 1)
  local kind = tonumber(ARGV[j])
  local a = tonumber(ARGV[j + 1])
  local b = tonumber(ARGV[j + 2])
  local cost = tonumber(ARGV[j + 3])
  if kind == 0 then
    local tat = tonumber(redis.call('GET', KEYS[i]) or now)
    if tat < now then tat = now end
    local new_tat = tat + a * cost
    local over = new_tat - now - b * a
    if over > 0 then
      allowed = 0
      out[#out + 1] = math.max(0, math.floor((b * a - (tat - now)) / a))
      out[#out + 1] = tat - now
      out[#out + 1] = over
    else
      writes[#writes + 1] = {KEYS[i], new_tat, math.ceil((new_tat - now) / 1000)}
      out[#out + 1] = math.floor((b * a - (new_tat - now)) / a)
      out[#out + 1] = new_tat - now
      out[#out + 1] = 0
    end
  else
    local used = tonumber(redis.call('GET', KEYS[i]) or 0)
    local left = math.max(1, b - now)
    if used + cost > a then
      allowed = 0
      out[#out + 1] = math.max(0, a - used)
      out[#out + 1] = left
      out[#out + 1] = left
    else
      writes[#writes + 1] = {KEYS[i], used + cost, math.ceil(left / 1000)}
      out[#out + 1] = a - used - cost
      out[#out + 1] = left
      out[#out + 1] = 0
    end
  end
end
if allowed == 1 and charge then
  for _, w in ipairs(writes) do
    if w[3] > 0 then
      redis.call('SET', w[1], string.format('%.0f', w[2]), 'PX', w[3])
    end
  end
end
out[1] = allowed
return out
