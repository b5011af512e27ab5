-- Leaves the queue and, if we hold the lock, hands it to the first live waiter: the lock is set
-- to the waiter's token here, in the same script, and the waiter's signal list gets the fencing
-- token, so the waiter holds the lock as soon as its BLPOP returns.
-- KEYS[1] lock, KEYS[2] queue, KEYS[3] heartbeats, KEYS[4] fencing counter.
-- ARGV[1] token, ARGV[2] our member, ARGV[3] signal-list prefix (<key>:signal:),
-- ARGV[4] waiter bound ms. The handed-over lease is at most the bound: a waiter that crashed
-- just before its turn holds the lock no longer than that; a live one extends it at once.
-- The waiter's signal list is named from its token, so it cannot be declared in KEYS: this
-- script is for a standalone server, not a cluster.
-- Returns 1 when we held the lock (now released or handed on), 0 otherwise.
redis.call('ZREM', KEYS[2], ARGV[2])
redis.call('ZREM', KEYS[3], ARGV[2])
if redis.call('GET', KEYS[1]) ~= ARGV[1] then
    return 0
end
redis.call('DEL', KEYS[1])

local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
for _, m in ipairs(redis.call('ZRANGEBYSCORE', KEYS[3], '-inf', now)) do
    redis.call('ZREM', KEYS[2], m)
    redis.call('ZREM', KEYS[3], m)
end

local next = redis.call('ZRANGE', KEYS[2], 0, 0)[1]
if not next then
    return 1
end
local token, ttl, fencing = string.match(next, '^([^:]+):(%d+):([01])$')
redis.call('ZREM', KEYS[2], next)
redis.call('ZREM', KEYS[3], next)
local lease = tonumber(ttl)
if lease == 0 or lease > tonumber(ARGV[4]) then
    lease = tonumber(ARGV[4])
end
redis.call('SET', KEYS[1], token, 'PX', lease)
local fence = 0
if fencing == '1' then
    fence = redis.call('INCR', KEYS[4])
end
local signal = ARGV[3] .. token
redis.call('RPUSH', signal, fence)
redis.call('PEXPIRE', signal, 60000)
return 1
