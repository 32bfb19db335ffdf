-- finish_jobs: end each given job that has not ended yet (the first terminal status wins), and
-- let go of what it held: its image (unless the job keeps it), its place in the queued and
-- running indexes, its client's pending job and bytes (and fast-lane job), its share of the queued bytes and its place
-- in its batch's count of unfinished jobs. Each job
-- ended is counted once: by type and outcome, for the model version given, and, if a prediction,
-- in the latency bucket given; a failure by its reason; an expiry by its lane; a prediction that a
-- worker started, in its lane's queue-wait and service-time buckets given and in the statistics
-- of the model version given (Triton's statistics extension); the model call is counted in the
-- batch-size bucket given, and as an execution of its version. Then the
-- ended jobs are announced with the batches they belong to (and how many jobs each has left) and
-- their records, as far as the room given allows (see FinishedNotice in jobs/records.py). Which bucket is the caller's business: the
-- script only counts. Each ended job is indexed as finished, by everyone and by its client, so
-- that the oldest can be forgotten beyond MAX_FINISHED_JOBS and MAX_FINISHED_PER_CLIENT
-- (forget_finished.lua). A job holding several images (its record's 'images', a tensor job)
-- counts as that many: in the outcomes, failures and expiries, the latency, queue-wait and
-- service-time histograms, the model version's statistics (one request per image, as Triton counts
-- them) and its client's pending jobs (and pending fast-lane jobs, which count images too).
--
-- Under maxmemory with noeviction, Redis refuses a script's first write that may grow memory, and
-- none after a first write that cannot (it would leave the data half written): so the jobs let go
-- of what they held (ZREM, DEL) before any record is written, and a finish always completes.
--
-- Few commands however many jobs, and little Lua a job: each record is read (HMGET), written, and
-- read whole for the notice while it has room; every index, counter and metric takes the batch's
-- entries in one command per key (a chunk at a time), its key's text made once per call.
--
-- KEYS  1 outcomes     hash "<type>:<status>" -> jobs ended (keys.METRICS_OUTCOMES)
--       2 predictions  hash model version -> predictions counted (keys.METRICS_PREDICTIONS)
--       3 latency      hash bucket -> predictions ended, and "sum" of seconds (keys.METRICS_LATENCY)
--       4 batch_size   hash bucket -> model calls, and "sum" of images (keys.METRICS_BATCH_SIZE)
--       5 queued       sorted set of jobs not started (keys.QUEUED_JOBS)
--       6 running      sorted set of jobs taken (keys.RUNNING_JOBS)
--       7 total_bytes  everyone's unfinished image bytes (keys.QUEUED_BYTES)
--       8 finished     sorted set of ended jobs by when (keys.FINISHED_JOBS)
--       9 failures     hash "<type>:<reason>" -> jobs failed (keys.METRICS_FAILURES)
--      10 expired      hash lane -> jobs expired (keys.METRICS_EXPIRED)
--      11 queue_wait   hash "<lane>:<bucket>" -> jobs, "<lane>:sum" of seconds (keys.METRICS_QUEUE_WAIT)
--      12 service      hash "<lane>:<bucket>" -> jobs, "<lane>:sum" of seconds (keys.METRICS_SERVICE_TIME)
--      13 model_stats  hash "<version>:<figure>" -> count or nanoseconds (keys.METRICS_MODEL_STATS)
--       then per job: record (keys.job), image (keys.job_image), its client's pending jobs and
--       pending bytes (keys.pending, keys.pending_bytes), its batch's unfinished jobs
--       (keys.batch_unfinished), its client's ended jobs (keys.finished_by_client), its client's
--       pending fast-lane jobs (keys.pending_fast)
-- ARGV  1 JSON {now: epoch seconds as text, channel: where to announce, room: the most record
--              bytes the announcement may carry, batch: {bucket, images, version} of the model call
--              or false,
--              ttl: seconds a client's index of ended jobs lives after its last entry,
--              fast_lane: the fast lane's name (a job recorded in it counts in pending_fast),
--              trim: forget the finished index's entries older than ttl (the caller asks now and
--              then, not every call), count: answer how many jobs the finished indexes hold}
--       then per job: status, result JSON or '', error JSON or '', id, model version to count
--       it for or '', latency bucket or '', latency in seconds or '', predictions to count for
--       that version ('' for 1), failure reason or '',
--       then, for a job a worker started (else ''): queue-wait bucket, service-time bucket, model
--       version for the statistics, nanoseconds queued, preprocessing, in the model call, after it
-- Returns the ids of the jobs it ended; with ARGV.count, then how many jobs the finished index holds
-- and, per client of a job ended, {client's finished index, how many it holds}.
local FIXED_KEYS, JOB_KEYS, JOB_VALUES, CHUNK = 13, 7, 16, 1000
local outcomes, predictions, latency, batch_size, queued, running, total_bytes, finished, failures, expired,
  queue_wait, service, model_stats = unpack(KEYS, 1, FIXED_KEYS)
local args = cjson.decode(ARGV[1])
local n = (#KEYS - FIXED_KEYS) / JOB_KEYS
local now = args.now
-- Job i's keys are KEYS[k + 1 .. k + JOB_KEYS] and its values ARGV[v + 1 .. v + JOB_VALUES], where
-- k = FIXED_KEYS + (i - 1) * JOB_KEYS and v = 1 + (i - 1) * JOB_VALUES.
local function add(counts, key, amount) counts[key] = (counts[key] or 0) + amount end
-- One command for many items: `command key item ...` (key false: `command item ...`), a chunk at a time.
local function at_once(command, key, items)
  for first = 1, #items, CHUNK do
    local last = math.min(first + CHUNK - 1, #items)
    if key then redis.call(command, key, unpack(items, first, last)) else redis.call(command, unpack(items, first, last)) end
  end
end

-- Read: which jobs end here (the first terminal status wins; a job given twice ends once).
local found, ended, seen, was_queued, was_running, images = {}, {}, {}, {}, {}, {}
for i = 1, n do
  local k, id = FIXED_KEYS + (i - 1) * JOB_KEYS, ARGV[1 + (i - 1) * JOB_VALUES + 4]
  if not seen[id] then
    local fields = redis.call('HMGET', KEYS[k + 1], 'status', 'type', 'client', 'keep_image', 'bytes', 'batch', 'lane',
                              'images')
    local status = fields[1]
    if status == 'queued' or status == 'running' then
      seen[id] = true
      found[#found + 1] = {i, fields}
      ended[#ended + 1] = id
      -- Each index holds the jobs of its status only (start_jobs and release_jobs move them).
      if status == 'queued' then was_queued[#was_queued + 1] = id else was_running[#was_running + 1] = id end
      if fields[4] ~= '1' then images[#images + 1] = KEYS[k + 2] end
    end
  end
end
-- Free first (see above), then write.
at_once('ZREM', queued, was_queued)
at_once('ZREM', running, was_running)
at_once('DEL', false, images)

local records, room, batches, batch_of, scored = {}, args.room, {}, {}, {}
-- Counts are summed over the batch and written once each, after the loop.
local by_outcome, by_version, by_bucket, seconds_sum, released, freed = {}, {}, {}, 0, {}, 0
local by_reason, by_lane_expired, lanes, versions = {}, {}, {}, {}
local by_client_ids, client_keys = {}, {}  -- each client's finished index: its entries, in order
for _, job in ipairs(found) do
  local i, fields = job[1], job[2]
  local k, v = FIXED_KEYS + (i - 1) * JOB_KEYS, 1 + (i - 1) * JOB_VALUES
  local record, _, pending, pending_bytes, batch_left, by_client, pending_fast = unpack(KEYS, k + 1, k + JOB_KEYS)
  local status, result, err, id, version, bucket, seconds, predicted, reason = unpack(ARGV, v + 1, v + 9)
  local job_type, client, lane_field = fields[2], fields[3], fields[7]
  local weight = tonumber(fields[8] or '1')  -- a tensor job counts as the images it holds
  if result ~= '' and err ~= '' then
    redis.call('HSET', record, 'status', status, 'finished_at', now, 'result', result, 'error', err)
  elseif result ~= '' then
    redis.call('HSET', record, 'status', status, 'finished_at', now, 'result', result)
  elseif err ~= '' then
    redis.call('HSET', record, 'status', status, 'finished_at', now, 'error', err)
  else
    redis.call('HSET', record, 'status', status, 'finished_at', now)
  end
  scored[#scored + 1] = now
  scored[#scored + 1] = id
  if client then
    local entries = by_client_ids[by_client]
    if not entries then
      entries = {}
      by_client_ids[by_client] = entries
      client_keys[#client_keys + 1] = {by_client, client}
    end
    entries[#entries + 1] = now
    entries[#entries + 1] = id
  end
  add(by_outcome, job_type .. ':' .. status, weight)
  if version ~= '' then add(by_version, version, tonumber(predicted) or 1) end
  if job_type == 'predict' and bucket ~= '' then
    add(by_bucket, bucket, weight)
    seconds_sum = seconds_sum + weight * tonumber(seconds)
  end
  local lane = lane_field or job_type
  if reason ~= '' then add(by_reason, job_type .. ':' .. reason, weight) end
  if status == 'expired' then add(by_lane_expired, lane, weight) end
  local wait_bucket, service_bucket, stats_version = ARGV[v + 10], ARGV[v + 11], ARGV[v + 12]
  if wait_bucket ~= '' then
    local queue_ns, input_ns, infer_ns, output_ns =
      tonumber(ARGV[v + 13]) or 0, tonumber(ARGV[v + 14]) or 0, tonumber(ARGV[v + 15]) or 0, tonumber(ARGV[v + 16]) or 0
    local service_ns = input_ns + infer_ns + output_ns
    local sums = lanes[lane]
    if not sums then
      sums = {waits = {}, wait_sum = 0, services = {}, service_sum = 0}
      lanes[lane] = sums
    end
    add(sums.waits, wait_bucket, weight)
    sums.wait_sum = sums.wait_sum + weight * queue_ns / 1e9
    add(sums.services, service_bucket, weight)
    sums.service_sum = sums.service_sum + weight * service_ns / 1e9
    if stats_version ~= '' then
      -- Triton counts queue and compute for the requests that succeeded, a failure's whole time apart;
      -- each image of a tensor job is one request there (the model's statistics count images).
      local figures = versions[stats_version]
      if not figures then
        figures = {}
        versions[stats_version] = figures
      end
      if status == 'succeeded' then
        figures.served = true
        add(figures, 'success:count', weight)
        add(figures, 'success:ns', weight * (queue_ns + service_ns))
        add(figures, 'queue:ns', weight * queue_ns)
        add(figures, 'compute_input:ns', weight * input_ns)
        add(figures, 'compute_infer:ns', weight * infer_ns)
        add(figures, 'compute_output:ns', weight * output_ns)
      else
        add(figures, 'fail:count', weight)
        add(figures, 'fail:ns', weight * (queue_ns + service_ns))
      end
    end
  end
  local size = tonumber(fields[5] or '0')
  if client then
    add(released, pending, weight)
    add(released, pending_bytes, size)
    if lane_field == args.fast_lane then add(released, pending_fast, weight) end
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
at_once('ZADD', finished, scored)
for _, pair in ipairs(client_keys) do
  at_once('ZADD', pair[1], by_client_ids[pair[1]])
  redis.call('EXPIRE', pair[1], args.ttl)
end
for key, count in pairs(by_outcome) do redis.call('HINCRBY', outcomes, key, count) end
for key, count in pairs(by_version) do redis.call('HINCRBY', predictions, key, count) end
for key, count in pairs(by_bucket) do redis.call('HINCRBY', latency, key, count) end
if next(by_bucket) then redis.call('HINCRBYFLOAT', latency, 'sum', seconds_sum) end
for key, count in pairs(by_reason) do redis.call('HINCRBY', failures, key, count) end
for key, count in pairs(by_lane_expired) do redis.call('HINCRBY', expired, key, count) end
for lane, sums in pairs(lanes) do
  for bucket, count in pairs(sums.waits) do redis.call('HINCRBY', queue_wait, lane .. ':' .. bucket, count) end
  redis.call('HINCRBYFLOAT', queue_wait, lane .. ':sum', sums.wait_sum)
  for bucket, count in pairs(sums.services) do redis.call('HINCRBY', service, lane .. ':' .. bucket, count) end
  redis.call('HINCRBYFLOAT', service, lane .. ':sum', sums.service_sum)
end
-- Counts and nanoseconds are whole numbers: written as such (a Lua number may print as 1.5e+11).
for version, figures in pairs(versions) do
  for figure, amount in pairs(figures) do
    if figure ~= 'served' then
      redis.call('HINCRBY', model_stats, version .. ':' .. figure, string.format('%d', amount))
    end
  end
  if figures.served then
    redis.call('HSET', model_stats, version .. ':last_inference', string.format('%d', tonumber(now) * 1000))
  end
end
for key, amount in pairs(released) do
  local left = redis.call('DECRBY', key, amount)
  if batch_of[key] then
    -- A batch's counter stays at 0 (its TTL from create_jobs) until the batch is forgotten; below
    -- 0 it had expired, and DECRBY made it anew without a TTL.
    if left < 0 then redis.call('DEL', key) end
    batches[#batches + 1] = batch_of[key] .. ':' .. math.max(left, 0)
  elseif left <= 0 then
    redis.call('DEL', key)
  end
end
if freed > 0 and redis.call('DECRBY', total_bytes, freed) <= 0 then redis.call('DEL', total_bytes) end
if args.batch then
  redis.call('HINCRBY', batch_size, args.batch.bucket, 1)
  redis.call('HINCRBY', batch_size, 'sum', args.batch.images)
  if args.batch.version ~= '' then redis.call('HINCRBY', model_stats, args.batch.version .. ':executions', 1) end
end
-- Entries older than a record's life name records already expired.
if args.trim then redis.call('ZREMRANGEBYSCORE', finished, '-inf', tonumber(now) - args.ttl) end
if #ended > 0 then
  redis.call('PUBLISH', args.channel,
             table.concat(ended, ' ') .. '\n' .. table.concat(batches, ' ') .. '\n' .. cjson.encode(records))
end
if not args.count then return ended end
local counts = {}
for _, pair in ipairs(client_keys) do counts[#counts + 1] = {pair[2], redis.call('ZCARD', pair[1])} end
return {ended, redis.call('ZCARD', finished), counts}
