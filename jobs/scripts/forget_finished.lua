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
local FIXED_KEYS, JOB_KEYS, CHUNK = 1, 5, 1000
local finished = KEYS[1]
local n = (#KEYS - FIXED_KEYS) / JOB_KEYS
local deleted, gone, by_client, client_keys, looked_at = 0, {}, {}, {}, {}
for i = 1, n do
  local k = FIXED_KEYS + (i - 1) * JOB_KEYS
  local record, image, client_index, batch, batch_left = KEYS[k + 1], KEYS[k + 2], KEYS[k + 3], KEYS[k + 4], KEYS[k + 5]
  local id = ARGV[1 + i]
  local status = redis.call('HGET', record, 'status')
  if status ~= 'queued' and status ~= 'running' then
    deleted = deleted + (status and 1 or 0)
    redis.call('DEL', record, image)
    if not looked_at[batch] then  -- once a call for each batch (its jobs are often forgotten together)
      looked_at[batch] = true
      if tonumber(redis.call('GET', batch_left) or '0') <= 0 then redis.call('DEL', batch, batch_left) end
    end
    local ids = by_client[client_index]
    if not ids then
      ids = {}
      by_client[client_index] = ids
      client_keys[#client_keys + 1] = client_index
    end
    ids[#ids + 1] = id
  end
  gone[#gone + 1] = id  -- an unended job has no place in the finished index either
end
-- The indexes lose their ids in one command each, a chunk at a time (unpack's limit).
local function remove(key, ids)
  for first = 1, #ids, CHUNK do redis.call('ZREM', key, unpack(ids, first, math.min(first + CHUNK - 1, #ids))) end
end
for _, key in ipairs(client_keys) do remove(key, by_client[key]) end
remove(finished, gone)
return deleted
