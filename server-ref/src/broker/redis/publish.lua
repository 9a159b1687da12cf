-- Publishes one message, atomically: reads or creates the topic's epoch,
-- assigns the next seq, appends to the replay window (trimmed by count and
-- age) and announces the message on the topic's channel.
-- KEYS: meta, stream. ARGV: channel, a fresh epoch (used when the topic has
-- none), data JSON, timestamp ms, event id or "", history size, history age
-- ms, meta TTL ms. Returns {seq, epoch}.
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
local ev = ARGV[5]
if ev == '' then ev = 'null' end
redis.call('PUBLISH', ARGV[1], '{"seq":' .. seq .. ',"epoch":"' .. epoch .. '","ts":' .. ARGV[4] .. ',"ev":' .. ev .. ',"data":' .. ARGV[3] .. '}')
return {seq, epoch}
