-- Publishes one message, atomically: reads or creates the topic's epoch,
-- assigns the next seq, appends to the replay window (trimmed by count and
-- age) and announces the message on the topic's channel. With an idempotency
-- key, a key the topic saw within the dedupe window answers the first
-- publish's {seq, epoch} and publishes nothing: in the same script as the
-- seq, so concurrent repeats on any node deliver once.
-- KEYS: meta, stream, dedupe hash (key -> "seq epoch"), dedupe zset (key by
-- ms). ARGV: channel, a fresh epoch (used when the topic has none), data
-- JSON, timestamp ms, event id or "", history size, history age ms, meta TTL
-- ms, idempotency key or "", dedupe window ms, dedupe max.
-- Returns {seq, epoch, repeat (0 or 1)}.
local key = ARGV[9]
if key ~= '' then
  local cutoff = tonumber(ARGV[4]) - tonumber(ARGV[10])
  for _, old in ipairs(redis.call('ZRANGEBYSCORE', KEYS[4], '-inf', '(' .. cutoff, 'LIMIT', 0, 256)) do
    redis.call('HDEL', KEYS[3], old)
    redis.call('ZREM', KEYS[4], old)
  end
  local first = redis.call('HGET', KEYS[3], key)
  if first then
    local s, e = string.match(first, '^(%d+) (.*)$')
    return {tonumber(s), e, 1}
  end
end
local epoch = redis.call('HGET', KEYS[1], 'epoch')
if not epoch then
  epoch = ARGV[2]
  redis.call('HSET', KEYS[1], 'epoch', epoch, 'seq', 0)
  redis.call('DEL', KEYS[2])
end
local seq = redis.call('HINCRBY', KEYS[1], 'seq', 1)
redis.call('PEXPIRE', KEYS[1], ARGV[8])
local size = tonumber(ARGV[6])
if size > 0 then
  redis.call('XADD', KEYS[2], 'MAXLEN', '~', size, seq .. '-0', 'd', ARGV[3], 't', ARGV[4], 'i', ARGV[5])
  local cutoff = tonumber(ARGV[4]) - tonumber(ARGV[7])
  local old = redis.call('XRANGE', KEYS[2], '-', '+', 'COUNT', 1)
  if old[1] and tonumber(old[1][2][4]) < cutoff then
    local trim = nil
    for _, e in ipairs(redis.call('XRANGE', KEYS[2], '-', '+', 'COUNT', 64)) do
      if tonumber(e[2][4]) < cutoff then trim = e[1] else break end
    end
    if trim then
      redis.call('XTRIM', KEYS[2], 'MINID', (tonumber(string.match(trim, '^(%d+)')) + 1) .. '-0')
    end
  end
  redis.call('PEXPIRE', KEYS[2], ARGV[7])
end
if key ~= '' then
  redis.call('HSET', KEYS[3], key, seq .. ' ' .. epoch)
  redis.call('ZADD', KEYS[4], ARGV[4], key)
  local over = redis.call('ZCARD', KEYS[4]) - tonumber(ARGV[11])
  if over > 0 then
    local popped = redis.call('ZPOPMIN', KEYS[4], over)
    for i = 1, #popped, 2 do redis.call('HDEL', KEYS[3], popped[i]) end
  end
  redis.call('PEXPIRE', KEYS[3], ARGV[10])
  redis.call('PEXPIRE', KEYS[4], ARGV[10])
end
local ev = ARGV[5]
if ev == '' then ev = 'null' end
redis.call('PUBLISH', ARGV[1], '{"seq":' .. seq .. ',"epoch":"' .. epoch .. '","ts":' .. ARGV[4] .. ',"ev":' .. ev .. ',"data":' .. ARGV[3] .. '}')
return {seq, epoch, 0}
