-- The lobby: a player joins the matchmaking every 300 ms and prints which matchmaker answered.

local joined = 0

stage.waitfor("paired", function(player, what, matcher)
  if player == nil then
    -- No matchmaker could take the join (between a master's death and the router noticing,
    -- or before any registered): the error is the second value.
    print("join failed: " .. tostring(what))
    return
  end
  print(string.format("%s %s (matchmaker on node %d)", player, what, matcher))
end)

stage.addtask(300, function()
  joined = joined + 1
  stage.signal("match:join=paired", "player" .. joined)
end)
