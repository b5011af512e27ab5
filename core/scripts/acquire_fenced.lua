-- Takes the lock and, in the same step, the next fencing token.
-- KEYS[1] lock, KEYS[2] fencing counter (<key>:fence); ARGV[1] token, ARGV[2] ttl ms (0 = none).
-- Returns the fencing token (>= 1), or 0 when the lock is held.
local ok
if tonumber(ARGV[2]) > 0 then
    ok = redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2])
else
    ok = redis.call('SET', KEYS[1], ARGV[1], 'NX')
end
if not ok then
    return 0
end
return redis.call('INCR', KEYS[2])
