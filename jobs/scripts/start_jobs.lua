-- start_jobs: mark jobs running as this worker's and hand over their images. Taken: jobs queued,
-- and jobs running on a worker that has gone silent (its heartbeat older than the silence given).
-- A job running on a live worker is left to it. Silence is judged by Redis's clock (TIME), as the
-- heartbeats are written (beat_worker.lua), never by the caller's. A job taken over from a dead
-- worker is a suspect (it may have killed it); one taken over while it was being read alone is poison: its image is
-- not handed over again. The jobs taken leave the queued index before any record is written:
-- under maxmemory a script's first write may not grow memory, and after one that cannot, Redis
-- lets it finish, so work already accepted can always start.
--
-- KEYS  1 queued   sorted set of jobs not started (keys.QUEUED_JOBS)
--       2 running  sorted set of jobs taken (keys.RUNNING_JOBS)
--       3 workers  sorted set of workers by last heartbeat (keys.WORKERS)
--       then per job: record (keys.job), image (keys.job_image)
-- ARGV  1 JSON {worker: this worker's name, silence: seconds}
--       then per job: id
-- Returns per job: {prior status or '', client or '', lane or '', image or false, taken, suspect,
-- poison (1 or 0), model version asked for or '', read mode or '', created_at or '', batch or '',
-- started_at: this script's TIME, as a string, tensor kind or '', expired}. Expired (1): a queued
-- job whose deadline (epoch seconds, in Redis's clock: TIME) has passed; it is not taken and its
-- image is not read: the caller ends it.
local FIXED_KEYS, JOB_KEYS, CHUNK = 3, 2, 1000
local queued, running, workers = unpack(KEYS, 1, FIXED_KEYS)
local args = cjson.decode(ARGV[1])
local n = (#KEYS - FIXED_KEYS) / JOB_KEYS
-- Job i's keys are KEYS[k + 1 .. k + JOB_KEYS], where k = FIXED_KEYS + (i - 1) * JOB_KEYS; its id is ARGV[1 + i].
local time = redis.call('TIME')
local now, silence = tonumber(time[1]) + tonumber(time[2]) / 1000000, args.silence
local stamp = string.format('%.6f', now)
local answers, taken, chosen = {}, {}, {}
-- Read every job first: which to take (nothing is written yet).
for i = 1, n do
  local k = FIXED_KEYS + (i - 1) * JOB_KEYS
  local record, id = KEYS[k + 1], ARGV[1 + i]
  local fields = redis.call('HMGET', record, 'status', 'client', 'worker', 'alone', 'lane', 'version', 'read',
                            'created_at', 'batch', 'deadline', 'tensor', 'deliveries')
  local status = fields[1]
  local expired = status == 'queued' and fields[10] ~= false and tonumber(fields[10]) < now
  local take, suspect, poison = status == 'queued' and not expired, false, false
  if status == 'running' then
    local beat = redis.call('ZSCORE', workers, fields[3] or '')
    if not beat or tonumber(beat) < now - silence then
      take, suspect, poison = true, true, fields[4] == '1'
    end
  end
  if take and chosen[id] then take = false end  -- given twice: taken once
  if take then
    taken[#taken + 1] = id
    chosen[id] = i
  end
  answers[i] = {status or '', fields[2] or '', fields[5] or '', false, take and 1 or 0, suspect and 1 or 0,
                poison and 1 or 0, fields[6] or '', fields[7] or '', fields[8] or '', fields[9] or '', stamp,
                fields[11] or '', expired and 1 or 0, fields}
end
-- The taken leave the queued index (a free) before any record is written; then their records say
-- whose they are, and their images are handed over. The indexes take the ids a chunk at a time.
for first = 1, #taken, CHUNK do
  redis.call('ZREM', queued, unpack(taken, first, math.min(first + CHUNK - 1, #taken)))
end
for _, id in ipairs(taken) do
  local i = chosen[id]
  local k, answer = FIXED_KEYS + (i - 1) * JOB_KEYS, answers[i]
  local fields = answer[15]
  local deliveries = tonumber(fields[12] or '0') + 1
  redis.call('HSET', KEYS[k + 1], 'status', 'running', 'started_at', stamp, 'worker', args.worker,
             'deliveries', deliveries)
  if fields[4] then redis.call('HDEL', KEYS[k + 1], 'alone') end
  if answer[7] == 0 then answer[4] = redis.call('GET', KEYS[k + 2]) end
end
for first = 1, #taken, CHUNK do
  local scored = {}
  for j = first, math.min(first + CHUNK - 1, #taken) do
    scored[#scored + 1] = now
    scored[#scored + 1] = taken[j]
  end
  redis.call('ZADD', running, unpack(scored))
end
for i = 1, n do answers[i][15] = nil end
return answers
