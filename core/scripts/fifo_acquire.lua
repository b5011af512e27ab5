-- One try of a FIFO lock: join the queue (once), refresh our heartbeat, and take the lock if we
-- are at the head and it is free.
-- KEYS[1] lock, KEYS[2] queue (zset: member -> arrival number), KEYS[3] heartbeats (zset:
-- member -> deadline, server ms), KEYS[4] arrival counter, KEYS[5] fencing counter,
-- KEYS[6] our signal list.
-- ARGV[1] token, ARGV[2] member ("token:ttl:fencing"), ARGV[3] ttl ms (0 = none),
-- ARGV[4] waiter bound ms, ARGV[5] fencing (1/0).
-- Returns -1 while waiting; otherwise the lock is ours and the value is the fencing token
-- (0 without fencing).
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)

-- A waiter whose heartbeat lapsed has crashed or given up: it leaves the queue.
for _, m in ipairs(redis.call('ZRANGEBYSCORE', KEYS[3], '-inf', now)) do
    redis.call('ZREM', KEYS[2], m)
    redis.call('ZREM', KEYS[3], m)
end

-- Handed to us by the previous holder while we were not looking at our signal: the hand-off
-- lease is short (the waiter bound), so take our own.
if redis.call('GET', KEYS[1]) == ARGV[1] then
    redis.call('DEL', KEYS[6])
    if tonumber(ARGV[3]) > 0 then
        redis.call('PEXPIRE', KEYS[1], ARGV[3])
    else
        redis.call('PERSIST', KEYS[1])
    end
    if ARGV[5] == '1' then
        return tonumber(redis.call('GET', KEYS[5]) or '0')
    end
    return 0
end

if not redis.call('ZSCORE', KEYS[2], ARGV[2]) then
    -- Joining (again): a hand-off signal left from before is stale.
    redis.call('DEL', KEYS[6])
    redis.call('ZADD', KEYS[2], redis.call('INCR', KEYS[4]), ARGV[2])
end
redis.call('ZADD', KEYS[3], now + tonumber(ARGV[4]), ARGV[2])

-- The queue's keys live one waiter bound past the last try. By then every member's heartbeat
-- has lapsed, so their expiry drops only what the clean-up above would drop, and the arrival
-- counter cannot restart under a live queue; a queue that nobody uses any more (its last waiter
-- served, or all of them crashed) leaves nothing behind. The fencing counter (KEYS[5]) never
-- expires: its tokens must keep increasing.
redis.call('PEXPIRE', KEYS[2], ARGV[4])
redis.call('PEXPIRE', KEYS[3], ARGV[4])
redis.call('PEXPIRE', KEYS[4], ARGV[4])

local head = redis.call('ZRANGE', KEYS[2], 0, 0)[1]
if head ~= ARGV[2] or redis.call('EXISTS', KEYS[1]) == 1 then
    return -1
end
redis.call('ZREM', KEYS[2], ARGV[2])
redis.call('ZREM', KEYS[3], ARGV[2])
if tonumber(ARGV[3]) > 0 then
    redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[3])
else
    redis.call('SET', KEYS[1], ARGV[1])
end
if ARGV[5] == '1' then
    return redis.call('INCR', KEYS[5])
end
return 0
