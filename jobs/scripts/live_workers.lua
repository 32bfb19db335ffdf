-- live_workers: the names of the workers that beat within the silence, by Redis's clock (TIME).
--
-- KEYS  1 workers  sorted set of worker names by last heartbeat (keys.WORKERS)
-- ARGV  1 JSON {silence: seconds after which a worker is silent}
-- Returns the names, oldest beat first.
local time = redis.call('TIME')
local now = tonumber(time[1]) + tonumber(time[2]) / 1000000
return redis.call('ZRANGEBYSCORE', KEYS[1], now - cjson.decode(ARGV[1]).silence, '+inf')
