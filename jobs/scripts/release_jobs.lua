-- release_jobs: give jobs this worker took but did not finish back to the queue (status queued
-- again), and say which ids to queue again: those it released, and those still queued (taken
-- from their lane, never started). Jobs ended, or running on another worker, are left alone.
-- Each job leaves the running index before its record is written: under maxmemory a script's
-- first write may not grow memory, and after one that cannot, Redis lets it finish.
--
-- KEYS  1 queued   sorted set of jobs not started (keys.QUEUED_JOBS)
--       2 running  sorted set of jobs taken (keys.RUNNING_JOBS)
--       then per job: record (keys.job)
-- ARGV  1 JSON {worker: this worker's name}
-- The jobs queued again are scored by Redis's clock (TIME), as every "sent at" that decides a resend is.
--       then per job: id
-- Returns the ids to queue again, in the order given.
local FIXED_KEYS = 2
local queued, running = unpack(KEYS, 1, FIXED_KEYS)
local args = cjson.decode(ARGV[1])
local time = redis.call('TIME')
local now = string.format('%.6f', tonumber(time[1]) + tonumber(time[2]) / 1000000)
local n = #KEYS - FIXED_KEYS  -- job i's key is KEYS[FIXED_KEYS + i], its id ARGV[1 + i]
local released = {}
for i = 1, n do
  local record, id = KEYS[FIXED_KEYS + i], ARGV[1 + i]
  local status, worker = unpack(redis.call('HMGET', record, 'status', 'worker'))
  local mine = status == 'running' and worker == args.worker
  if mine then
    redis.call('ZREM', running, id)
    redis.call('HSET', record, 'status', 'queued')
  end
  if mine or status == 'queued' then
    redis.call('ZADD', queued, now, id)
    released[#released + 1] = id
  end
end
return released
