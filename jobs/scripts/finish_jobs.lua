-- finish_jobs: end each given job that has not ended yet (the first terminal status wins), and
-- let go of what it held: its image (unless the job keeps it), its place in the queued and
-- running indexes, its client's pending job and bytes (and fast-lane job), its share of the queued bytes and its place
-- in its batch's count of unfinished jobs. Each job
-- ended is counted once: by type and outcome, for the model version given, and, if a prediction,
-- in the latency bucket given; the model call is counted in the batch-size bucket given. Then the
-- ended jobs are announced with the batches they belong to (and how many jobs each has left) and
-- their records, as far as the room given allows (see FinishedNotice in jobs/records.py). Which bucket is the caller's business: the
-- script only counts. Each ended job is indexed as finished, by everyone and by its client, so
-- that the oldest can be forgotten beyond MAX_FINISHED_JOBS and MAX_FINISHED_PER_CLIENT
-- (forget_finished.lua).
--
-- Under maxmemory with noeviction, Redis refuses a script's first write that may grow memory, and
-- none after a first write that cannot (it would leave the data half written): so each job lets go
-- of what it held (ZREM, DEL) before its record is written, and a finish always completes.
--
-- KEYS  1 outcomes     hash "<type>:<status>" -> jobs ended (keys.METRICS_OUTCOMES)
--       2 predictions  hash model version -> predictions counted (keys.METRICS_PREDICTIONS)
--       3 latency      hash bucket -> predictions ended, and "sum" of seconds (keys.METRICS_LATENCY)
--       4 batch_size   hash bucket -> model calls, and "sum" of images (keys.METRICS_BATCH_SIZE)
--       5 queued       sorted set of jobs not started (keys.QUEUED_JOBS)
--       6 running      sorted set of jobs taken (keys.RUNNING_JOBS)
--       7 total_bytes  everyone's unfinished image bytes (keys.QUEUED_BYTES)
--       8 finished     sorted set of ended jobs by when (keys.FINISHED_JOBS)
--       then per job: record (keys.job), image (keys.job_image), its client's pending jobs and
--       pending bytes (keys.pending, keys.pending_bytes), its batch's unfinished jobs
--       (keys.batch_unfinished), its client's ended jobs (keys.finished_by_client), its client's
--       pending fast-lane jobs (keys.pending_fast)
-- ARGV  1 JSON {now: epoch seconds as text, channel: where to announce, room: the most record
--              bytes the announcement may carry, batch: {bucket, images} of the model call or false,
--              ttl: seconds a client's index of ended jobs lives after its last entry,
--              fast_lane: the fast lane's name (a job recorded in it counts in pending_fast)}
--       then per job: status, result JSON or '', error JSON or '', id, model version to count
--       it for or '', latency bucket or '', latency in seconds or ''
-- Returns the ids of the jobs it ended.
local FIXED_KEYS, JOB_KEYS, JOB_VALUES = 8, 7, 7
local outcomes, predictions, latency, batch_size, queued, running, total_bytes, finished =
  unpack(KEYS, 1, FIXED_KEYS)
local args = cjson.decode(ARGV[1])
local n = (#KEYS - FIXED_KEYS) / JOB_KEYS
-- Job i's keys are KEYS[k + 1 .. k + JOB_KEYS] and its values ARGV[v + 1 .. v + JOB_VALUES], where
-- k = FIXED_KEYS + (i - 1) * JOB_KEYS and v = 1 + (i - 1) * JOB_VALUES.
local ended, records, room, batches, batch_of = {}, {}, args.room, {}, {}
-- Counts are summed over the batch and written once each, after the loop.
local by_outcome, by_version, by_bucket, seconds_sum, released, freed = {}, {}, {}, 0, {}, 0
local function add(counts, key, amount) counts[key] = (counts[key] or 0) + amount end
for i = 1, n do
  local k, v = FIXED_KEYS + (i - 1) * JOB_KEYS, 1 + (i - 1) * JOB_VALUES
  local record, image, pending, pending_bytes, batch_left, by_client, pending_fast = unpack(KEYS, k + 1, k + JOB_KEYS)
  local status, result, err, id, version, bucket, seconds =
    ARGV[v + 1], ARGV[v + 2], ARGV[v + 3], ARGV[v + 4], ARGV[v + 5], ARGV[v + 6], ARGV[v + 7]
  local fields = redis.call('HMGET', record, 'status', 'type', 'client', 'keep_image', 'bytes', 'batch', 'lane')
  if fields[1] == 'queued' or fields[1] == 'running' then
    -- Free first (see above), then write.
    redis.call('ZREM', queued, id)
    redis.call('ZREM', running, id)
    if fields[4] ~= '1' then redis.call('DEL', image) end
    local update = {'status', status, 'finished_at', args.now}
    if result ~= '' then update[#update + 1] = 'result'; update[#update + 1] = result end
    if err ~= '' then update[#update + 1] = 'error'; update[#update + 1] = err end
    redis.call('HSET', record, unpack(update))
    ended[#ended + 1] = id
    redis.call('ZADD', finished, args.now, id)
    if fields[3] then
      redis.call('ZADD', by_client, args.now, id)
      redis.call('EXPIRE', by_client, args.ttl)
    end
    add(by_outcome, fields[2] .. ':' .. status, 1)
    if version ~= '' then add(by_version, version, 1) end
    if fields[2] == 'predict' and bucket ~= '' then
      add(by_bucket, bucket, 1)
      seconds_sum = seconds_sum + tonumber(seconds)
    end
    local size = tonumber(fields[5] or '0')
    if fields[3] then
      add(released, pending, 1)
      add(released, pending_bytes, size)
      if fields[7] == args.fast_lane then add(released, pending_fast, 1) end
    end
    freed = freed + size
    if fields[6] then
      add(released, batch_left, 1)
      batch_of[batch_left] = fields[6]
    end
    if room > 0 then
      local now_fields = redis.call('HGETALL', record)
      local bytes = 0
      for _, value in ipairs(now_fields) do bytes = bytes + #value end
      if bytes <= room then
        records[id] = now_fields
        room = room - bytes
      else
        room = 0  -- full: the rest are named by id, and not read for nothing
      end
    end
  end
end
for key, count in pairs(by_outcome) do redis.call('HINCRBY', outcomes, key, count) end
for key, count in pairs(by_version) do redis.call('HINCRBY', predictions, key, count) end
for key, count in pairs(by_bucket) do redis.call('HINCRBY', latency, key, count) end
if next(by_bucket) then redis.call('HINCRBYFLOAT', latency, 'sum', seconds_sum) end
for key, amount in pairs(released) do
  local left = redis.call('DECRBY', key, amount)
  if left <= 0 then redis.call('DEL', key) end
  if batch_of[key] then batches[#batches + 1] = batch_of[key] .. ':' .. math.max(left, 0) end
end
if freed > 0 and redis.call('DECRBY', total_bytes, freed) <= 0 then redis.call('DEL', total_bytes) end
if args.batch then
  redis.call('HINCRBY', batch_size, args.batch.bucket, 1)
  redis.call('HINCRBY', batch_size, 'sum', args.batch.images)
end
-- Entries older than a record's life name records already expired.
redis.call('ZREMRANGEBYSCORE', finished, '-inf', tonumber(args.now) - args.ttl)
if #ended > 0 then
  redis.call('PUBLISH', args.channel,
             table.concat(ended, ' ') .. '\n' .. table.concat(batches, ' ') .. '\n' .. cjson.encode(records))
end
return ended
