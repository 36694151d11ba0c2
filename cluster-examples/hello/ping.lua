-- Stage `ping` (node alpha): says hello to `pong` every second and prints the answers.

local count = 0

-- pong's callback returns values; they come back here as separate arguments.
stage.waitfor("reply", function(n, text)
  print(string.format("ping: pong answered hello #%d: %s", n, text))
end)

-- Runs instead of `reply` when the hello found no live `pong` (the router NACKed it).
stage.waitfor("unreachable", function(err, n)
  print(string.format("ping: hello #%d not delivered (%s); retrying", n, err))
end)

-- pong signals us too; whatever we return goes back to the callback it named.
stage.waitfor("news", function(headline)
  print("ping: news from pong: " .. headline)
  return "thanks for the news"
end)

stage.addtask(1000, function()
  count = count + 1
  print(string.format("ping: hello #%d", count))
  stage.signal("pong:hello=reply!unreachable", count, "from " .. _STAGE .. " on node " .. stage.id())
end)
