-- Give back what a request spent on each rule (the mint it paid for failed). Never moves a TAT before now.
-- KEYS[i]: the key of rule i; ARGV[3(i-1)+1 .. 3i]: kind (0 GCRA | 1 window), emission interval (µs, GCRA), cost.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
for i = 1, #KEYS do
  local kind = tonumber(ARGV[3 * i - 2])
  local cost = tonumber(ARGV[3 * i])
  local stored = tonumber(redis.call('GET', KEYS[i]))
  if stored then
    if kind == 0 then
      local new_tat = stored - tonumber(ARGV[3 * i - 1]) * cost
      if new_tat <= now then
        redis.call('DEL', KEYS[i])
      else
        redis.call('SET', KEYS[i], string.format('%.0f', new_tat), 'PX', math.ceil((new_tat - now) / 1000))
      end
    else
      local left = stored - cost
      if left <= 0 then
        redis.call('DEL', KEYS[i])
      else
        redis.call('SET', KEYS[i], string.format('%.0f', left), 'KEEPTTL')
      end
    end
  end
end
return #KEYS
