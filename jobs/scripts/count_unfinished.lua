-- count_unfinished: how many of the given jobs have not ended (a missing record has ended: it expired).
--
-- KEYS  per job: record (keys.job)
-- ARGV  1 JSON {} (no named values)
-- Returns the count.
local n = 0
for i = 1, #KEYS do
  local status = redis.call('HGET', KEYS[i], 'status')
  if status == 'queued' or status == 'running' then n = n + 1 end
end
return n
