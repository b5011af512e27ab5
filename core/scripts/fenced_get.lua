-- The protected resource's fenced read: a reader must show its fencing token too, so the store
-- learns of a newer holder when it reads, not only when it writes. Otherwise an older holder
-- that wakes between a newer holder's read and its write still writes (its token is the
-- highest the store has seen), and the newer holder's write of the same read value then
-- loses that update.
-- KEYS[1] data, KEYS[2] highest token seen (<data>:fence), KEYS[3] the holder that used it
-- (<data>:fence:owner); ARGV[1] token, ARGV[2] reader (the lock's token).
-- Refused, as fenced_set.lua refuses a write: an older token, or the same token from another
-- holder (after a failover lost the INCR behind it). Otherwise the token and the reader are
-- recorded as the highest seen, so an older holder's write is refused from now on.
-- Returns 0 (an integer) when refused; else the value: a bulk string, or nil when absent.
local seen = tonumber(redis.call('GET', KEYS[2]) or '0')
local token = tonumber(ARGV[1])
if token < seen then
    return 0
end
if token == seen and redis.call('GET', KEYS[3]) ~= ARGV[2] then
    return 0
end
if token > seen then
    redis.call('SET', KEYS[2], ARGV[1])
    redis.call('SET', KEYS[3], ARGV[2])
end
return redis.call('GET', KEYS[1])
