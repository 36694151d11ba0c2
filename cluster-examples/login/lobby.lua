-- A lobby: six players log in at once; each login holds one of the gate's `login` tickets for
-- 300 ms (the slow part: a database lookup, say), so at most two run at the same time and the
-- others wait their turn in the gate's queue, in request order.

local players = { "ann", "ben", "cat", "dan", "eve", "fay" }
local inside, most, done = 0, 0, 0

-- Runs when this player's ticket is granted (_WAITFOR is the ticket; _TICKET its handle).
stage.waitfor("login", function(player)
  inside = inside + 1
  most = math.max(most, inside)
  print(string.format("%s: logging in (%d at once)", player, inside))
  local ticket = _WAITFOR
  stage.signal(nil, 2000)                -- hold the ticket up to 2 s (the default is 1 s)
  stage.addtask(300, function()
    inside = inside - 1
    done = done + 1
    print(player .. ": logged in")
    stage.signal(ticket, 0)              -- give it back: the next waiting player gets it now
    if done == #players then
      print(string.format("all %d players logged in, at most %d at once", done, most))
    end
    return -1
  end)
end)

-- The gate was not reachable (its node not registered yet): ask again shortly.
stage.waitfor("retry", function(err, player)
  stage.addtask(200, function()
    stage.signal("ticket:login=login!retry", player)
    return -1
  end)
end)

for _, player in ipairs(players) do
  stage.signal("ticket:login=login!retry", player)
end
