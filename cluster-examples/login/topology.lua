-- The login cluster: a gate node runs the built-in ticket service with at most two concurrent
-- logins (`--ticket login=2`); a lobby node lets six players in at once and the gate queues
-- all but two of them.
--
--   cargo run -- run cluster-examples/login/topology.lua

local port = os.getenv("STAGE_LOGIN_PORT") or "7430"
local router = "127.0.0.1:" .. port

return {
  routers = {
    { name = "router", listen = router },
  },
  nodes = {
    { name = "gate", router = { router }, stage = { ticket = "ticket" }, ticket = { login = 2 },
      id = 1, log = "warn" },
    { name = "lobby", router = { router }, stage = { lobby = "lobby.lua" }, id = 2, log = "warn" },
  },
}
