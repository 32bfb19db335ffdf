-- create_jobs: record new queued jobs (and their images) if the client's outstanding work allows,
-- and index them; for predictions, put them in a lane in the same step. Concurrent submissions
-- cannot overshoot a limit, and no prediction is recorded without its place in a lane. The limits on
-- work count images: a job holding several (a tensor job, jobs/tensors.py) counts as that many.
--
-- KEYS  1 queued         sorted set of jobs not started (keys.QUEUED_JOBS)
--       2 recent         sorted set of jobs by creation (keys.RECENT_JOBS)
--       3 batch          list of the request's ids (keys.batch), if fields.batch
--       4 pending        the client's unfinished jobs (keys.pending), if fields.client
--       5 pending_bytes  the client's unfinished image bytes (keys.pending_bytes), if fields.client
--       6 total_bytes    everyone's unfinished image bytes (keys.QUEUED_BYTES)
--       7 fast_lane      list of ids (keys.lane), if ARGV.lanes
--       8 bulk_lane      list of ids (keys.lane), if ARGV.lanes
--       9 batch_left     counter of the batch's unfinished jobs (keys.batch_unfinished), if fields.batch
--      10 pending_fast   the client's unfinished images in the fast lane (keys.pending_fast), if fields.client
--       then per job: record (keys.job), image (keys.job_image)
-- ARGV  1 JSON {ttl: seconds, recent_kept: jobs kept in recent,
--              listed: index the jobs in recent (the jobs page), images: images each job holds
--              (above 1, written in the record as 'images' and in the lane entry as '<id>:<images>'),
--              limits: {jobs, bytes, total_bytes} (0: none),
--              lanes: {fast, bulk, fast_pending: most jobs the client may have pending for the
--                      fast lane, priority: 0 (by backlog), 1 (fast, within fast_pending of the
--                      client's jobs in the fast lane) or more (bulk)} or false (the caller queues them),
--              fields: {name: text} written in every record: created_at (epoch seconds as
--                      text) scores the jobs, batch (if any) keeps their ids as KEYS[3],
--                      client (if any) counts them in KEYS[4] and KEYS[5],
--              timeout_ms: the jobs' deadline is this many ms from now in Redis's clock (TIME),
--              written as 'deadline' (epoch seconds); 0: none}
--       then per job: id, image bytes ('' for none)
-- Returns {'ok', the lane or ''}, or, writing nothing, {the limit passed, outstanding now, the limit}.
local FIXED_KEYS, JOB_KEYS, JOB_VALUES, CHUNK = 10, 2, 2, 1000
local queued, recent, batch, pending, pending_bytes, total_bytes, fast_lane, bulk_lane, batch_left, pending_fast =
  unpack(KEYS, 1, FIXED_KEYS)
local args = cjson.decode(ARGV[1])
local client, batch_id, now = args.fields.client, args.fields.batch, args.fields.created_at
local n = (#KEYS - FIXED_KEYS) / JOB_KEYS
-- Job i's keys are KEYS[k + 1 .. k + JOB_KEYS] and its values ARGV[v + 1 .. v + JOB_VALUES], where
-- k = FIXED_KEYS + (i - 1) * JOB_KEYS and v = 1 + (i - 1) * JOB_VALUES.

local limits = args.limits
local weight = args.images
local images = n * weight
local entry_suffix = weight ~= 1 and (':' .. weight) or ''
local size = 0
for i = 1, n do size = size + #ARGV[1 + (i - 1) * JOB_VALUES + 2] end
if client then
  local jobs_now = tonumber(redis.call('GET', pending) or '0')
  if limits.jobs > 0 and jobs_now + images > limits.jobs then return {'jobs', jobs_now, limits.jobs} end
  local bytes_now = tonumber(redis.call('GET', pending_bytes) or '0')
  if limits.bytes > 0 and size > 0 and bytes_now + size > limits.bytes then
    return {'bytes', bytes_now, limits.bytes}
  end
end
local total_now = tonumber(redis.call('GET', total_bytes) or '0')
if limits.total_bytes > 0 and size > 0 and total_now + size > limits.total_bytes then
  return {'total_bytes', total_now, limits.total_bytes}
end

-- A client with little outstanding goes in the fast lane; one with a backlog, in the bulk lane.
-- Priority 1 goes in the fast lane ahead of the client's own backlog, but never takes the client's
-- images in the fast lane past fast_pending (a tensor job counts its images, as pending does); priority 2 and beyond go in the bulk lane.
local lane, lane_key = '', false
if args.lanes then
  local fast, priority = true, args.lanes.priority
  if priority >= 2 then
    fast = false
  elseif client then
    local counted = priority == 1 and pending_fast or pending
    fast = tonumber(redis.call('GET', counted) or '0') + images <= args.lanes.fast_pending
  end
  lane, lane_key = args.lanes.fast, fast_lane
  if not fast then lane, lane_key = args.lanes.bulk, bulk_lane end
end

local shared = {}
if lane_key then shared = {'lane', lane} end
if weight ~= 1 then
  shared[#shared + 1] = 'images'
  shared[#shared + 1] = weight
end
if args.timeout_ms > 0 then
  local time = redis.call('TIME')
  shared[#shared + 1] = 'deadline'
  shared[#shared + 1] = string.format('%.3f', tonumber(time[1]) + tonumber(time[2]) / 1e6 + args.timeout_ms / 1000)
end
for name, value in pairs(args.fields) do
  shared[#shared + 1] = name
  shared[#shared + 1] = value
end
for i = 1, n do
  local k, v = FIXED_KEYS + (i - 1) * JOB_KEYS, 1 + (i - 1) * JOB_VALUES
  local record, image_key, id, image = KEYS[k + 1], KEYS[k + 2], ARGV[v + 1], ARGV[v + 2]
  redis.call('HSET', record, 'id', id, 'bytes', #image, unpack(shared))
  redis.call('EXPIRE', record, args.ttl)
  if image ~= '' then redis.call('SET', image_key, image, 'EX', args.ttl) end
end
-- The indexes and lists take the request's ids in a few commands, a chunk at a time (unpack's limit).
for first = 1, n, CHUNK do
  local ids, entries, scored = {}, {}, {}
  for i = first, math.min(first + CHUNK - 1, n) do
    local id = ARGV[1 + (i - 1) * JOB_VALUES + 1]
    ids[#ids + 1] = id
    entries[#entries + 1] = id .. entry_suffix
    scored[#scored + 1] = now
    scored[#scored + 1] = id
  end
  redis.call('ZADD', queued, unpack(scored))
  if args.listed then redis.call('ZADD', recent, unpack(scored)) end
  if batch_id then redis.call('RPUSH', batch, unpack(ids)) end
  if lane_key then redis.call('RPUSH', lane_key, unpack(entries)) end
end
if args.listed then redis.call('ZREMRANGEBYRANK', recent, 0, -args.recent_kept - 1) end
if batch_id then
  redis.call('EXPIRE', batch, args.ttl)
  redis.call('SET', batch_left, n, 'EX', args.ttl)
end
if client then
  redis.call('INCRBY', pending, images)
  redis.call('EXPIRE', pending, args.ttl)
  if lane_key == fast_lane then
    redis.call('INCRBY', pending_fast, images)
    redis.call('EXPIRE', pending_fast, args.ttl)
  end
  redis.call('INCRBY', pending_bytes, size)
  redis.call('EXPIRE', pending_bytes, args.ttl)
end
redis.call('INCRBY', total_bytes, size)
redis.call('EXPIRE', total_bytes, args.ttl)
return {'ok', lane}
