-- Sets a new lease on the lock only if it still holds our token.
-- KEYS[1] lock; ARGV[1] token, ARGV[2] ttl ms (0 = never expires).
-- Returns 1 when extended, 0 when the lock was not ours.
if redis.call('GET', KEYS[1]) ~= ARGV[1] then
    return 0
end
if tonumber(ARGV[2]) > 0 then
    redis.call('PEXPIRE', KEYS[1], ARGV[2])
else
    redis.call('PERSIST', KEYS[1])
end
return 1
