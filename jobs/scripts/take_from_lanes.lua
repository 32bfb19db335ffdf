-- take_from_lanes: up to a batch of job ids from the lanes, in the order given: the first lane's
-- oldest first, then the next lane's.
--
-- KEYS  per lane: its list of ids (keys.lane)
-- ARGV  1 JSON {most: how many ids at most}
-- Returns the ids taken (none: an empty list).
local most = cjson.decode(ARGV[1]).most
local taken = {}
for i = 1, #KEYS do
  local want = most - #taken
  if want <= 0 then break end
  local got = redis.call('LPOP', KEYS[i], want)
  if got then
    for _, id in ipairs(got) do taken[#taken + 1] = id end
  end
end
return taken
