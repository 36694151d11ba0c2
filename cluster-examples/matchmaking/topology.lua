-- The matchmaking cluster: two matchmaker nodes behind a router in `master` mode — every join
-- goes to the master (the lowest live instance); kill it and the other takes over at once;
-- the launcher restarts the killed one, which becomes master again when it is back.
--
--   cargo run -- run cluster-examples/matchmaking/topology.lua

local port = os.getenv("STAGE_MATCH_PORT") or "7440"
local router = "127.0.0.1:" .. port

return {
  routers = {
    { name = "router", listen = router, mode = { match = "master" } },
  },
  nodes = {
    { name = "match1", router = { router }, stage = { match = "match.lua" }, id = 1, log = "warn" },
    { name = "match2", router = { router }, stage = { match = "match.lua" }, id = 2, log = "warn" },
    { name = "lobby", router = { router }, stage = { lobby = "lobby.lua" }, id = 3, log = "warn" },
  },
}
