-- The protected resource's check: write only if no newer fencing token has written before.
-- KEYS[1] data, KEYS[2] highest token seen (<data>:fence); ARGV[1] token, ARGV[2] value.
-- Returns 1 when written, 0 when the token is older than one already seen (stale writer).
local seen = tonumber(redis.call('GET', KEYS[2]) or '0')
local token = tonumber(ARGV[1])
if token < seen then
    return 0
end
redis.call('SET', KEYS[2], ARGV[1])
redis.call('SET', KEYS[1], ARGV[2])
return 1
