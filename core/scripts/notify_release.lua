-- Releases the lock if it still holds our token and signals one waiter.
-- KEYS[1] lock, KEYS[2] signal list (<key>:signal); ARGV[1] token.
-- Waiters block in BLPOP on the signal list. A list, not a pub/sub channel: a signal sent while
-- a waiter is between its failed try and its BLPOP stays in the list and wakes it at once, so a
-- release is never missed; and one release wakes one waiter, not a herd. The list is reset to a
-- single element so releases with nobody waiting do not pile up.
-- Returns 1 when released, 0 when the lock was not ours.
if redis.call('GET', KEYS[1]) ~= ARGV[1] then
    return 0
end
redis.call('DEL', KEYS[1])
redis.call('DEL', KEYS[2])
redis.call('RPUSH', KEYS[2], '1')
redis.call('PEXPIRE', KEYS[2], 60000)
return 1
