-- take_from_lanes: up to a batch of images' jobs from the lanes, in the order given: the first
-- lane's oldest first, then the next lane's. An entry counts as the images its job holds ('<id>' is
-- one, '<id>:<count>' a tensor job's count; see jobs/keys.py); the first entry is taken whatever it
-- holds, and taking stops at the first entry that would pass the batch, so no lane is overtaken.
--
-- KEYS  per lane: its list of entries (keys.lane)
-- ARGV  1 JSON {most: how many images at most}
-- Returns the entries taken, one list per lane, in the lanes' order (an empty list: none from that lane).
local most = cjson.decode(ARGV[1]).most
local groups, images = {}, 0
for i = 1, #KEYS do
  local want = most - images
  if want <= 0 then break end
  -- Every entry holds at least one image: no more than `want` of them can fit.
  local entries = redis.call('LRANGE', KEYS[i], 0, want - 1)
  local taken, count, full = {}, 0, false
  for _, entry in ipairs(entries) do
    local weight = tonumber(string.match(entry, ':(%d+)$') or '1')
    if images > 0 and images + weight > most then
      full = true
      break
    end
    taken[#taken + 1] = entry
    images = images + weight
    count = count + 1
  end
  if count > 0 then redis.call('LTRIM', KEYS[i], count, -1) end
  groups[i] = taken
  if full then break end
end
for i = #groups + 1, #KEYS do groups[i] = {} end
return groups
