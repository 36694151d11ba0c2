---@meta
-- LuaLS annotations for `thread` and `sleep` (docs/scripting.md, stage-spec §6.11).
-- Definitions only: the node never loads this file (see lua/types/README.md).

---The handle `thread.new` returns.
---@class stage.thread_handle
---@field id string "thread:N", the callback id its messages arrive at
local handle = {}

---The forms of `stage.waitfor` with the thread's id: register `f` for what the job signals and
---returns (on the stage's main loop), `waitfor(nil)` unregisters, `waitfor(v...)` rebinds, `waitfor()` queries.
---@param f? function called as `f(bound..., values...)`
---@param ... any bound values
---@return any ...
function handle.waitfor(f, ...) end

---@class stage.threadlib
---@field id integer this OS thread's id
---@field tick number now, in seconds since the epoch (ms precision)
thread = {}

---Runs `f(...)` on a worker (main loop only); returns a handle whose `waitfor` gets its signals and results (stage-spec §6.11).
---@param f function|string a function (sent as bytecode with copies of its upvalues) or "file+member"
---@param ... any arguments
---@return stage.thread_handle
function thread.new(f, ...) end

---From inside a `thread.new` function: sends `...` to its handler on the stage's main loop (stage-spec §6.11).
---@param ... any
function thread.signal(...) end

---Blocks the calling worker for `ms` ms (at most a day); an error on a main loop (stage-spec §6.4).
---@param ms number
function sleep(ms) end
