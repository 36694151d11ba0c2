-- The leaderboard cluster: a router, a node running the built-in index service as stage `rank`
-- (a ranked scoreboard kept on disk), and a game node that posts scores and reads the board.
--
--   cargo run -- run cluster-examples/leaderboard/topology.lua
--
-- Run it twice: the board survives, because the index service appends every change to its file
-- (in ./data next to this file) before it answers.

local port = os.getenv("STAGE_LEADERBOARD_PORT") or "7420"
local router = "127.0.0.1:" .. port
local data = os.getenv("STAGE_LEADERBOARD_DATA") or "data"

return {
  routers = {
    { name = "router", listen = router },
  },
  nodes = {
    { name = "board", router = { router }, stage = { rank = "index" }, ["index-dir"] = data,
      id = 1, log = "warn" },
    { name = "game", router = { router }, stage = { game = "game.lua" }, id = 2, log = "warn" },
  },
}
