-- Reads a topic's position, and optionally its replay and latest entry, in
-- one step. KEYS: meta, stream. ARGV: a fresh epoch, since seq or "", "1" for
-- the latest entry, history size, meta TTL ms.
-- Returns {epoch, seq, replay entries or false, latest entry or false}.
local epoch = redis.call('HGET', KEYS[1], 'epoch')
local seq = 0
if not epoch then
  epoch = ARGV[1]
  redis.call('HSET', KEYS[1], 'epoch', epoch, 'seq', 0)
  redis.call('PEXPIRE', KEYS[1], ARGV[5])
  redis.call('DEL', KEYS[2])
else
  seq = tonumber(redis.call('HGET', KEYS[1], 'seq'))
end
local replay = false
if ARGV[2] ~= '' then
  local since = tonumber(ARGV[2])
  if since < seq and seq - since <= tonumber(ARGV[4]) then
    replay = redis.call('XRANGE', KEYS[2], (since + 1) .. '-0', '+', 'COUNT', seq - since)
  end
end
local latest = false
if ARGV[3] == '1' then
  latest = redis.call('XREVRANGE', KEYS[2], '+', '-', 'COUNT', 1)
end
return {epoch, seq, replay, latest}
