---@meta
-- LuaLS annotations for the router's control script (docs/router.md): the `router.*` API and
-- the event functions the script defines. The control script runs in the router, not in a
-- stage: none of the stage globals exist there, and `router` exists only there.
-- Named router_api.lua so it cannot be taken for lua/router.lua, the default control script.
-- Definitions only: the router never loads this file (see lua/types/README.md).

---A forwarding mode (docs/router.md, `--mode NAME=MODE`).
---@alias router.mode "direct"|"roundrobin"|"master"|"hash"|"random"|"broadcast"

---`on_register`'s info.
---@class router.register_info
---@field name string the stage name
---@field class integer its class number (1..255)
---@field instance integer the node's instance number
---@field node string the node's name (--name)
---@field addr string the link's peer address
---@field pid integer the node's process id

---An entry of `router.members`.
---@class router.member
---@field id integer the service id, (class << 24) | instance
---@field token integer its link's token (0: a hole)
---@field alive boolean whether its link is alive

---@class router
router = {}

---Adds or updates a member: `token` is the link's number from `on_register`; 0 keeps a hole, nil removes it.
---Raises an error for class 0 or an unknown link.
---@param service_id integer (class << 24) | instance
---@param token integer|nil link token, 0 (hole) or nil (remove)
function router.route(service_id, token) end

---Makes the member on link `token` the master of `class` (0 or nil: the lowest live id).
---@param class integer 1..255
---@param token? integer
function router.master(class, token) end

---Sets the class's forwarding mode.
---@param class integer 1..255
---@param mode router.mode
function router.mode(class, mode) end

---The class number of a stage name (created if new).
---@param name string 1..255 bytes
---@return integer class
function router.class(name) end

---The stage name of a class, or nil.
---@param class integer 1..255
---@return string?
function router.name(class) end

---The members of a class, in service-id order.
---@param class integer 1..255
---@return router.member[]
function router.members(class) end

---A log line (info, target `router.lua`): the values, tab-separated via `tostring`.
---@param ... any
function router.log(...) end

---Event: a node registered a stage. Define it in the control script.
---@param link integer the link's token
---@param service_id integer (class << 24) | instance
---@param info router.register_info
function on_register(link, service_id, info) end

---Event: a link closed (node exit, crash, malformed frame). Define it in the control script.
---@param link integer
---@param reason string
function on_close(link, reason) end

---Event: once per `--mode NAME=MODE` at start-up. Define it in the control script.
---@param name string the stage name
---@param mode router.mode the MODE given (validated at start-up)
function on_mode(name, mode) end

---Event: a node went silent for the heartbeat window. Define it in the control script.
---@param link integer
function on_silent(link) end

---Event: a silent node spoke again. Define it in the control script.
---@param link integer
function on_back(link) end
