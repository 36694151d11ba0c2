---@meta
-- LuaLS annotations for the `stage` table of a stage VM (docs/scripting.md). Definitions
-- only: the node never loads this file (see lua/types/README.md).

---A message target of `stage.signal` (docs/scripting.md, stage-spec §8). Suffixes: `=ret`
---asks for an answer at callback `ret`, `!fail` names the failure callback.
---@alias stage.target
---| string # "id", ":id" (sync), "S:id", "@id", "T:id", "T+id", "*T:id", "*id", "=T:id", "+T:id", ">NAME.cb", ">>NAME.x", "<NAME.x"
---| stage.target_table # { "T:id", key = K } / { "T:id", instance = N } / { "T:id=ret", ms }
---| stage.waitfor_info # a saved `_WAITFOR`: answers that message
---| nil # answers the message being handled (`_WAITFOR`)

---A table target (stage-spec §8.4).
---@class stage.target_table
---@field [1] string the target string
---@field [2]? integer the request's own deadline in ms
---@field [3]? integer the deadline in ms (when [2] is not one)
---@field key? integer|string hash mode key (a string is hashed with FNV-1a)
---@field instance? integer exactly the member on node N (0..16777215)

---`_WAITFOR` inside a message callback: where the message came from (docs/scripting.md).
---@class stage.waitfor_info
---@field [0] string the message id (with `=ret`)
---@field [1]? integer the sender's instance
---@field [2]? string the sender's stage (nil: nobody to answer)
---@field [-1] string the callback id that matched
---@field error? string set on a failure notice
---@field corr? integer the request's correlation number (internal, undocumented)
---@field final? boolean the message is a service's answer or notice and takes no answer (internal, undocumented)

---A callback id of `stage.waitfor`: an exact id, a group prefix ("a:b."), "@" (catch-all),
---or a hook: "on_quit_signal" (signal name) and "on_overload" (stage name).
---@alias stage.callback_id string

---A timer handle of `stage.addtask`: "task:N".
---@alias stage.task string

---A task or job function: a number `n > 0` returned runs it again after `n` ms.
---@alias stage.repeating fun(...: any): number?

---`stage.load`'s info for a script found: { depth, path, mtime }.
---@class stage.load_info
---@field [1] integer fail-over depth of the location it came from
---@field [2] string the file's path
---@field [3] integer its modification time (seconds since the epoch)

---`stage.load`'s info for a script not found: { "a/b", member }.
---@class stage.load_miss
---@field [1] string the file as searched, without ".lua"
---@field [2]? string the member asked for

---@class stage
---@field name string this stage's name (same as `_STAGE`)
stage = {}

---An optional hook of your own, not defined by the node (docs/scripting.md, stage.proxy;
---stage-spec §5.5): assign it to convert keys of `stage.proxy` tables that are not strings or
---numbers. Returns the key to use (nil: ignore the key). A table of such hooks by index id works too.
---@param k any the key
---@param index_id string the proxy's index id
---@param t table the table behind the proxy
---@return string|number|nil
function stage.index(k, index_id, t) end

---This stage's name.
---@type string
_STAGE = ""

---Inside a message callback: the message's origin (docs/scripting.md, Globals). Nil outside one.
---@type stage.waitfor_info?
_WAITFOR = nil

---Inside a callback granted by the `ticket` service: the ticket handle "@0x<handle>" (docs/services.md).
---@type string?
_TICKET = nil

---This node's instance number (docs/scripting.md, Globals).
---@return integer
function stage.id() end

---Sends `...` to a target: a stage, a member, a broadcast, an ordered lock, or an answer (stage-spec §8).
---Every value arrives as its own argument; functions travel as bytecode with copies of their upvalues.
---@param target stage.target where it goes (see the alias)
---@param ... any nil, booleans, numbers, strings, tables, functions
function stage.signal(target, ...) end

---Registers, replaces, queries or removes a message callback (stage-spec §6.6).
---@param id stage.callback_id the callback id
---@param f function called as `f(bound..., values...)`
---@param ... any bound values, copied when bound
---@return string id
---@overload fun(f: function, ...: any): string # generated 16-character id
---@overload fun(n: integer, f: function, ...: any): string # generated id of n characters (4..64)
---@overload fun(id: stage.callback_id, f: nil) # unregister
---@overload fun(id: stage.callback_id): function?, any # the callback and its bound values (several as one table)
---@overload fun(id: stage.callback_id, ...: any): string # replace the bound values of an existing id
---@overload fun(): table<string, any> # { id = bound, ... } of every registration
function stage.waitfor(id, f, ...) end

---Runs `f(...)` after `ms` ms on the stage's thread; returns a handle (stage-spec §6.3).
---The first result decides: `n > 0` runs again after n ms, `n <= 0` stops, none repeats the interval.
---@param ms number delay in ms (0: next turn)
---@param f stage.repeating the task
---@param ... any arguments, copied when added
---@return stage.task handle
---@overload fun(f: stage.repeating, ...: any): stage.task # at the next turn
---@overload fun(handle: stage.task, cancel: nil): boolean # cancel; whether it existed
---@overload fun(handle: stage.task, ms: number, f?: stage.repeating): boolean # run next in ms, then every ms
---@overload fun(handle: stage.task, f: stage.repeating): boolean # replace the function
function stage.addtask(ms, f, ...) end

---Runs `f(...)` on a worker thread, in a VM of its own (stage-spec §6.4).
---A number returned re-runs it that many ms later. Jobs with the same non-zero key run one at a time, in order.
---@param f function|string a function (sent as bytecode with copies of its upvalues) or "file+member"
---@param ... any arguments
---@overload fun(key: integer, f: function|string, ...: any)
function stage.submit(f, ...) end

---Runs script "a.b" (file a/b.lua, every call) and returns its result, or `result.member` for "a.b+member" (stage-spec §6.2).
---@param name string "a.b" or "a.b+member", found through --package
---@param f? fun(result: any, info: stage.load_info|stage.load_miss): any called with the result (nil and a miss info when not found)
---@return any
function stage.load(name, f) end

---Like `stage.load`, once per VM (`package.loaded`); `f` gets a nil info when cached (stage-spec §6.2).
---@param name string "a.b" or "a.b+member"
---@param f? fun(result: any, info: stage.load_info|stage.load_miss|nil): any
---@return any
function stage.require(name, f) end

---Runs `f` once per process (any stage, any thread); `stage.once(key, nil)` forgets `key` (stage-spec §6.1).
---@param key string a non-string key is the key ""
---@param f function|nil nil forgets the key
function stage.once(key, f) end

---Runs `f` now in a coroutine of its own, with table arguments spread into their values (stage-spec §6.7).
---@param f function|table|string a function, `{fn, a, b}` or "file+member"
---@param ... any arguments (tables are spread)
---@return any ...
function stage.call(f, ...) end

---The process store: the same as `__(name [, value | function])` (stage-spec §6.9).
---@param name string
---@param value? any|fun(old: any): any a value to store, or an atomic update function
---@return any value the value (the new one after a store or update)
function stage.v(name, value) end

---Watches assignments to `t`: per-column handlers, `[""]` for any key, edge lists (stage-spec §6.8).
---A handler returning `false` vetoes the assignment.
---@param t table|userdata the table watched
---@param handlers? table|function|string `{ col = f(p, old, k, new) }`, `{ col = { 10, 20, f1, 50, f2 } }`, `{ [""] = f }`; a function = `[""]`, a string = the index id
---@return table proxy
function stage.proxy(t, handlers) end

---An object whose method `actor:<ask_id>(arg, ...)` sends `...` to `ask_id` and calls
---`callback(arg..., answer...)`, or `callback(arg...)` after the timeout (stage-spec §6.8, §12).
---@param ask_id string the target asked
---@param callback function gets the spread `arg` and the answer
---@param timeout_ms? integer default 100
---@return table actor
function stage.actor(ask_id, callback, timeout_ms) end
