-- finish_jobs: end each given job that has not ended yet (the first terminal status wins), and
-- let go of what it held: its image (unless the job keeps it), its place in the queued and
-- running indexes, its client's pending job and bytes (and fast-lane job) and its share of the queued bytes. Each job
-- ended is counted once: by type and outcome, for the model version given, and, if a prediction,
-- in the latency bucket given; the model call is counted in the batch-size bucket given. Then the
-- ended jobs are announced with their records, as far as the room given allows (see
-- FinishedNotice in jobs/records.py). Which bucket is the caller's business: the script only counts.
--
-- KEYS  1 outcomes     hash "<type>:<status>" -> jobs ended (keys.METRICS_OUTCOMES)
--       2 predictions  hash model version -> predictions counted (keys.METRICS_PREDICTIONS)
--       3 latency      hash bucket -> predictions ended, and "sum" of seconds (keys.METRICS_LATENCY)
--       4 batch_size   hash bucket -> model calls, and "sum" of images (keys.METRICS_BATCH_SIZE)
--       5 queued       sorted set of jobs not started (keys.QUEUED_JOBS)
--       6 running      sorted set of jobs taken (keys.RUNNING_JOBS)
--       7 total_bytes  everyone's unfinished image bytes (keys.QUEUED_BYTES)
--       then per job: record (keys.job), image (keys.job_image), its client's pending jobs,
--       pending bytes and pending fast-lane jobs (keys.pending, keys.pending_bytes, keys.pending_fast)
-- ARGV  1 JSON {now: epoch seconds as text, channel: where to announce, room: the most record
--              bytes the announcement may carry, batch: {bucket, images} of the model call or false,
--              fast_lane: the fast lane's name (a job recorded in it counts in pending_fast)}
--       then per job: status, result JSON or '', error JSON or '', id, model version to count
--       it for or '', latency bucket or '', latency in seconds or ''
-- Returns the ids of the jobs it ended.
local FIXED_KEYS, JOB_KEYS, JOB_VALUES = 7, 5, 7
local outcomes, predictions, latency, batch_size, queued, running, total_bytes = unpack(KEYS, 1, FIXED_KEYS)
local args = cjson.decode(ARGV[1])
local n = (#KEYS - FIXED_KEYS) / JOB_KEYS
-- Job i's keys are KEYS[k + 1 .. k + JOB_KEYS] and its values ARGV[v + 1 .. v + JOB_VALUES], where
-- k = FIXED_KEYS + (i - 1) * JOB_KEYS and v = 1 + (i - 1) * JOB_VALUES.
local ended, records, room = {}, {}, args.room
-- Counts are summed over the batch and written once each, after the loop.
local by_outcome, by_version, by_bucket, seconds_sum, released, freed = {}, {}, {}, 0, {}, 0
local function add(counts, key, amount) counts[key] = (counts[key] or 0) + amount end
for i = 1, n do
  local k, v = FIXED_KEYS + (i - 1) * JOB_KEYS, 1 + (i - 1) * JOB_VALUES
  local record, image, pending, pending_bytes, pending_fast = unpack(KEYS, k + 1, k + JOB_KEYS)
  local status, result, err, id, version, bucket, seconds =
    ARGV[v + 1], ARGV[v + 2], ARGV[v + 3], ARGV[v + 4], ARGV[v + 5], ARGV[v + 6], ARGV[v + 7]
  local fields = redis.call('HMGET', record, 'status', 'type', 'client', 'keep_image', 'bytes', 'lane')
  if fields[1] == 'queued' or fields[1] == 'running' then
    local update = {'status', status, 'finished_at', args.now}
    if result ~= '' then update[#update + 1] = 'result'; update[#update + 1] = result end
    if err ~= '' then update[#update + 1] = 'error'; update[#update + 1] = err end
    redis.call('HSET', record, unpack(update))
    ended[#ended + 1] = id
    redis.call('ZREM', queued, id)
    redis.call('ZREM', running, id)
    if fields[4] ~= '1' then redis.call('DEL', image) end
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
      if fields[6] == args.fast_lane then add(released, pending_fast, 1) end
    end
    freed = freed + size
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
  if redis.call('DECRBY', key, amount) <= 0 then redis.call('DEL', key) end
end
if freed > 0 and redis.call('DECRBY', total_bytes, freed) <= 0 then redis.call('DEL', total_bytes) end
if args.batch then
  redis.call('HINCRBY', batch_size, args.batch.bucket, 1)
  redis.call('HINCRBY', batch_size, 'sum', args.batch.images)
end
if #ended > 0 then
  redis.call('PUBLISH', args.channel, table.concat(ended, ' ') .. '\n' .. cjson.encode(records))
end
return ended
