-- beat_worker: record that a worker process is alive now, by Redis's clock (TIME): every host
-- judges the same beats, whatever its own clock says; forget the workers silent too long.
--
-- KEYS  1 workers  sorted set of worker names by last heartbeat (keys.WORKERS)
--       2 worker   this worker's hash (keys.worker)
-- ARGV  1 JSON {name: the worker's name, silence: seconds after which a worker is silent,
--              fields: {what the hash holds besides the heartbeat, as text}}
-- Returns the heartbeat's time (epoch seconds, as text).
local workers, worker = unpack(KEYS, 1, 2)
local args = cjson.decode(ARGV[1])
local time = redis.call('TIME')
local now = tonumber(time[1]) + tonumber(time[2]) / 1000000
local stamp = string.format('%.6f', now)
local fields = {'heartbeat', stamp}
for name, value in pairs(args.fields) do
  fields[#fields + 1] = name
  fields[#fields + 1] = value
end
redis.call('HSET', worker, unpack(fields))
redis.call('EXPIRE', worker, math.ceil(args.silence))
redis.call('ZADD', workers, stamp, args.name)
redis.call('ZREMRANGEBYSCORE', workers, 0, now - args.silence)
return stamp
