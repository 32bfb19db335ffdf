-- delete_corrections: delete the given corrections and their share of the counts.
--
-- KEYS  1 index       sorted set of corrected jobs by time (keys.FEEDBACK)
--       2 total       bytes all corrections take (keys.FEEDBACK_BYTES)
--       3 by_version  hash "<version>:<verdict>" -> corrections kept (keys.FEEDBACK_BY_VERSION)
--       then per correction: record (keys.feedback), its client's index (keys.feedback_of_client)
-- ARGV  1 JSON {} (no named values)
--       then per correction: job id
-- Returns how many of them existed.
local FIXED_KEYS, CORRECTION_KEYS = 3, 2
local index, total, by_version = unpack(KEYS, 1, FIXED_KEYS)
local n = (#KEYS - FIXED_KEYS) / CORRECTION_KEYS
-- Correction i's keys are KEYS[k + 1 .. k + CORRECTION_KEYS], k = FIXED_KEYS + (i - 1) * CORRECTION_KEYS;
-- its id is ARGV[1 + i].
local deleted = 0
for i = 1, n do
  local k = FIXED_KEYS + (i - 1) * CORRECTION_KEYS
  local record, client_index, id = KEYS[k + 1], KEYS[k + 2], ARGV[1 + i]
  local old = redis.call('HMGET', record, 'size', 'label', 'predicted', 'model_version')
  if old[1] then
    local field = old[4] .. ':' .. (old[2] == old[3] and 'confirmed' or 'corrected')
    if redis.call('HINCRBY', by_version, field, -1) <= 0 then redis.call('HDEL', by_version, field) end
    if redis.call('DECRBY', total, tonumber(old[1])) <= 0 then redis.call('DEL', total) end
    redis.call('DEL', record)
    deleted = deleted + 1
  end
  redis.call('ZREM', index, id)
  redis.call('ZREM', client_index, id)
end
return deleted
