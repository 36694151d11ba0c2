-- The hello cluster: one router and two nodes that signal each other and reply.
--
--   cargo run -- run cluster-examples/hello/topology.lua
--
-- A topology file is Lua returning { routers = {...}, nodes = {...} }. Every key of an entry
-- except `name` becomes a command-line flag of `stage router` / `stage node` (see
-- `stage-router --help`, `stage-node --help`). Scripts are found next to this file.

local port = os.getenv("STAGE_HELLO_PORT") or "7400"
local router = "127.0.0.1:" .. port

return {
  routers = {
    { name = "router", listen = router },
  },
  nodes = {
    { name = "alpha", router = { router }, stage = { ping = "ping.lua" }, id = 1, log = "warn" },
    { name = "beta",  router = { router }, stage = { pong = "pong.lua" }, id = 2, log = "warn" },
  },
}
