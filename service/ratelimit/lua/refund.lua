-- Give one request back on each rule (the mint it paid for failed). Never moves a TAT before now.
-- KEYS[i]: bucket key.  ARGV[i]: emission interval (µs) of rule i.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
for i = 1, #KEYS do
  local tat = tonumber(redis.call('GET', KEYS[i]))
  if tat then
    local new_tat = tat - tonumber(ARGV[i])
    if new_tat <= now then
      redis.call('DEL', KEYS[i])
    else
      redis.call('SET', KEYS[i], string.format('%.0f', new_tat), 'PX', math.ceil((new_tat - now) / 1000))
    end
  end
end
return #KEYS
