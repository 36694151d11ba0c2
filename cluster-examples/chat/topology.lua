-- The chat cluster: clients on either chat node talk in the same rooms through `route`.
--
--   cargo run -- run cluster-examples/chat/topology.lua
--   cargo run --example chat_client -- 127.0.0.1:7101 alice lobby
--   cargo run --example chat_client -- 127.0.0.1:7102 bob lobby
--
-- One router; node `route` hosts the built-in route service (docs/services.md); nodes `chat1`
-- and `chat2` run chat.lua, which listens on $STAGE_CHAT_PORT + the node id (7101 and 7102).
-- $STAGE_CHAT_ROUTER moves the router's port (the nodes inherit the environment).

local router = "127.0.0.1:" .. (os.getenv("STAGE_CHAT_ROUTER") or "7410")

return {
  routers = {
    { name = "router", listen = router },
  },
  nodes = {
    { name = "route", router = { router }, stage = { route = "route" }, id = 9, log = "warn" },
    { name = "chat1", router = { router }, stage = { chat = "chat.lua" }, id = 1, log = "warn" },
    { name = "chat2", router = { router }, stage = { chat = "chat.lua" }, id = 2, log = "warn" },
  },
}
