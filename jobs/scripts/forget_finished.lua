-- forget_finished: delete ended jobs (the oldest, chosen by the caller) with everything kept for
-- them: the record, a kept image, their places in the finished indexes, and their batch's list once
-- every job of the batch has ended (its counter is 0 or gone: a batch is forgotten with its first
-- job forgotten, as its jobs end together). A job that has not ended is left alone. It only frees, so
-- it runs under maxmemory too.
--
-- KEYS  1 finished   sorted set of ended jobs by when (keys.FINISHED_JOBS)
--       then per job: record (keys.job), image (keys.job_image), its client's ended jobs
--       (keys.finished_by_client), its batch's list and unfinished counter (keys.batch,
--       keys.batch_unfinished)
-- ARGV  1 JSON {} (no named values)
--       then per job: id
-- Returns how many records it deleted.
local FIXED_KEYS, JOB_KEYS = 1, 5
local finished = KEYS[1]
local n = (#KEYS - FIXED_KEYS) / JOB_KEYS
local deleted = 0
for i = 1, n do
  local k = FIXED_KEYS + (i - 1) * JOB_KEYS
  local record, image, by_client, batch, batch_left = KEYS[k + 1], KEYS[k + 2], KEYS[k + 3], KEYS[k + 4], KEYS[k + 5]
  local id = ARGV[1 + i]
  local status = redis.call('HGET', record, 'status')
  if status ~= 'queued' and status ~= 'running' then
    deleted = deleted + redis.call('DEL', record)
    redis.call('DEL', image)
    if tonumber(redis.call('GET', batch_left) or '0') <= 0 then redis.call('DEL', batch, batch_left) end
    redis.call('ZREM', by_client, id)
  end
  redis.call('ZREM', finished, id)  -- an unended job has no place there
end
return deleted
