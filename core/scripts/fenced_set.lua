-- The protected resource's check: write only with a fencing token newer than any seen before,
-- or with the same token from the same writer.
-- KEYS[1] data, KEYS[2] highest token seen (<data>:fence), KEYS[3] the writer that wrote with it
-- (<data>:fence:owner); ARGV[1] token, ARGV[2] value, ARGV[3] writer ("" = not named).
-- An equal token passes only for the writer that wrote with it first: after a failover the
-- INCR that made a token may be lost, and the next holder given the same token again; it must
-- not pass for the first. A writer that is not named needs a strictly newer token.
-- Returns 1 when written, 0 when refused (a stale writer, or a second holder of the token).
local seen = tonumber(redis.call('GET', KEYS[2]) or '0')
local token = tonumber(ARGV[1])
if token < seen then
    return 0
end
if token == seen and (ARGV[3] == '' or redis.call('GET', KEYS[3]) ~= ARGV[3]) then
    return 0
end
redis.call('SET', KEYS[2], ARGV[1])
if ARGV[3] == '' then
    redis.call('DEL', KEYS[3])
else
    redis.call('SET', KEYS[3], ARGV[3])
end
redis.call('SET', KEYS[1], ARGV[2])
return 1
