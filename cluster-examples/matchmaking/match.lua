-- A matchmaker: pairs players in the order they join. Both matchmaker nodes run this script;
-- the router gives every join to the master only, so one of them pairs at a time.

local waiting = nil     -- a player waiting for an opponent
local games = 0

-- Answers the lobby's `paired` callback (the join was "match:join=paired").
stage.waitfor("join", function(player)
  if waiting == nil then
    waiting = player
    return player, "waits", stage.id()
  end
  games = games + 1
  local opponent = waiting
  waiting = nil
  return player, "plays " .. opponent .. " in game " .. stage.id() .. "." .. games, stage.id()
end)
