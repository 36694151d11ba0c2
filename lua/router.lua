-- stage-router's default control script.
--
-- The router calls these functions on events; the forwarding table is whatever this script
-- makes of them with router.route / router.master / router.mode. The hot path (receive, pick a
-- member, queue the bytes) never enters Lua. Copy this file and pass --script to change policy,
-- e.g. keep holes with router.route(id, 0) for fixed hashing, or choose masters by lease.

local links = {}   -- link token -> list of service ids registered through it

-- A node registered stage `info.name` as instance `info.instance`; service_id is
-- (class << 24) | instance. info = { name, class, instance, node, addr, pid }.
function on_register(link, service_id, info)
  router.route(service_id, link)
  local ids = links[link] or {}
  links[link] = ids
  ids[#ids + 1] = service_id
  router.log(string.format("registered %s:%d (service id 0x%08x) from node '%s' at %s",
    info.name, info.instance, service_id, info.node, info.addr))
end

-- A link closed (the node exited, crashed or was cut off). Dropping its ids moves their traffic
-- to the remaining members: the next round-robin turn, the next master, the next hash owner.
function on_close(link, reason)
  for _, id in ipairs(links[link] or {}) do
    router.route(id, nil)
  end
  links[link] = nil
  router.log(string.format("link %d closed: %s", link, reason))
end

-- --mode NAME=MODE on the command line.
function on_mode(name, mode)
  router.mode(router.class(name), mode)
end

-- A node has been silent for the heartbeat window (frozen, overloaded, cut off): the modes skip
-- it already; a script could also move a master here. on_back: it speaks again.
function on_silent(link)
  router.log(string.format("link %d is silent", link))
end

function on_back(link)
  router.log(string.format("link %d is back", link))
end
