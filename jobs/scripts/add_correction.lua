-- add_correction: keep a correction of a job's prediction, replacing the job's earlier one (if
-- any), unless its client is at its quota or the corrections' total size would pass the cap; keep
-- the counts per model version, each client's index and the received-corrections metric.
--
-- KEYS  1 record      the correction's hash (keys.feedback)
--       2 index       sorted set of corrected jobs by time (keys.FEEDBACK)
--       3 total       bytes all corrections take (keys.FEEDBACK_BYTES)
--       4 by_version  hash "<version>:<verdict>" -> corrections kept (keys.FEEDBACK_BY_VERSION)
--       5 received    hash "<version>:<verdict>" -> corrections received (keys.METRICS_FEEDBACK)
--       6 mine        the jobs this client corrected (keys.feedback_of_client)
--       7 theirs      the jobs the earlier correction's client corrected (keys.feedback_of_client)
-- ARGV  1 JSON {job_id, label: the label given, predicted: the label the model said (both as
--              text), model_version: text ('' for none), created_at: epoch seconds as text,
--              size: the bytes this correction counts for, cap: the most bytes in all (0: none),
--              client: who gives it, earlier_client: who gave the earlier one as the caller
--              read it ('' for none), quota: corrections one client may keep (0: no limit)}
--       2 pixels: the 28x28 bytes the network saw
-- Returns {'ok', 1 if it replaced one else 0}; or, writing nothing, {'quota', kept, quota},
-- {'full', bytes used, cap}, or {'moved', 0, 0} when the earlier correction's client is not the
-- one the caller read (another correction came in between: read again and retry).
local record, index, total, by_version, received, mine, theirs = unpack(KEYS, 1, 7)
local args = cjson.decode(ARGV[1])
local pixels = ARGV[2]
local old = redis.call('HMGET', record, 'size', 'label', 'predicted', 'model_version', 'client')
local earlier_client = old[5] or ''
if old[1] and earlier_client ~= args.earlier_client then return {'moved', 0, 0} end
local own = old[1] and earlier_client == args.client  -- a replacement of its own takes no more quota
if args.quota > 0 and not own then
  local kept = redis.call('ZCARD', mine)
  if kept >= args.quota then return {'quota', kept, args.quota} end
end
local used = tonumber(redis.call('GET', total) or '0') - tonumber(old[1] or '0')
if args.cap > 0 and used + args.size > args.cap then return {'full', used, args.cap} end
local function verdict(label, predicted) return label == predicted and 'confirmed' or 'corrected' end
if old[1] then
  local field = old[4] .. ':' .. verdict(old[2], old[3])
  if redis.call('HINCRBY', by_version, field, -1) <= 0 then redis.call('HDEL', by_version, field) end
  if not own then redis.call('ZREM', theirs, args.job_id) end
end
redis.call('HSET', record, 'job_id', args.job_id, 'label', args.label, 'predicted', args.predicted,
           'model_version', args.model_version, 'created_at', args.created_at, 'pixels', pixels,
           'size', args.size, 'client', args.client)
redis.call('ZADD', index, args.created_at, args.job_id)
redis.call('ZADD', mine, args.created_at, args.job_id)
redis.call('SET', total, used + args.size)
local field = args.model_version .. ':' .. verdict(args.label, args.predicted)
redis.call('HINCRBY', by_version, field, 1)
redis.call('HINCRBY', received, field, 1)
if old[1] then return {'ok', 1} end
return {'ok', 0}
