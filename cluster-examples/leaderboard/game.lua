-- A game server: posts each player's rating to the `season1` board of the `rank` stage (the
-- index service, docs/services.md "index"), then shows the top three and the board's size.

local season = "season1"
local ratings = { alice = 1200, bob = 950, carol = 1430, dave = 800, erin = 1100 }
local unanswered = 0

local function show_board()
  -- A batch: several commands, one answer with each result under its command's key.
  stage.signal("rank:board", {
    ["forEach:" .. season] = { 1, 3 },     -- ranks 1 to 3
    ["total:" .. season .. "/"] = true,    -- members on the board
  })
end

stage.waitfor("board", function(r)
  local top = r["forEach:" .. season]
  for rank = 1, 3 do
    print(string.format("#%d %s %d", rank, top[rank].k, top[rank].i))
  end
  print("players on the board: " .. r["total:" .. season .. "/"])
end)

-- The answer to each `set`: { player = new rank }.
stage.waitfor("ranked", function(r, err)
  if r == nil then
    print("not ranked: " .. tostring(err))
    return
  end
  for player, rank in pairs(r) do
    print(player .. " is now #" .. rank)
  end
  unanswered = unanswered - 1
  if unanswered == 0 then show_board() end
end)

local function post_ratings()
  for player, rating in pairs(ratings) do
    unanswered = unanswered + 1
    stage.signal("rank:set?" .. season .. "=ranked", { [player] = { i = rating } })
  end
end

-- The board's node may register with the router after this one: ask until it answers.
local function when_ready()
  stage.signal("rank:total?" .. season .. "/=ready", true)
end

stage.waitfor("ready", function(members, err)
  if members == nil then
    stage.addtask(200, function() when_ready(); return -1 end)
    return
  end
  print("the board has " .. members .. " players; posting ratings")
  post_ratings()
end)

when_ready()
