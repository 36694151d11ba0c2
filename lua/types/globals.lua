---@meta
-- LuaLS annotations for the other globals of a stage VM: `import`, `print`, `__` and
-- `_SANDBOX` (docs/scripting.md; stage-spec §5, luna-spec §5). `stage`, `thread`/`sleep`,
-- `process`, `logger`/`log4cxx` and `broker` have files of their own.
-- Definitions only: the node never loads this file (see lua/types/README.md).

---luna's module: runs the file once per VM in a table of its own (reads fall back to the
---globals, writes stay in it) and returns the table; nil (logged) when missing or failing (luna-spec §5).
---A changed file is run again in the same table.
---@param file string e.g. "lib/util.lua", found through --package
---@return table? module
function import(file) end

---Writes the values, tab-separated via `tostring`, as one line on stdout, flushed at once.
---@param ... any
function print(...) end

---The process store (stage-spec §5.4, §5.6, §6.9): values every stage and worker of the
---process share, stored serialised (reading gives a copy). `__.name = v` stores (nil deletes),
---`__[n]` is namespace n (`__[n] = nil` clears it), `pairs(__)` lists the names.
---@class stage.store
---@overload fun(name: string): any # the value
---@overload fun(name: string, value: any): any # store it; returns it
---@overload fun(name: string, update: fun(old: any): any): any # atomic read-modify-write; returns the new value
---@field [integer] stage.store namespace n (n > 0)
---@field [string] any a value, or nil

---@type stage.store
__ = {}

---Sharing rules: assign a table to `_SANDBOX[""]` (stage-spec §5).
---`{ "NAME" }` per VM read-write, `{ "*NAME" }` process-wide read-write,
---`{ NAME = v }` per VM read-only, `{ ["*NAME"] = v }` process-wide read-only.
---@alias stage.sandbox_rules table<integer|string, any>

---The sandbox: every script's `_ENV` (reads and writes go to the callback's private globals).
---@class stage.sandbox: table
---@field [""] stage.sandbox_rules assign rules to share globals

---@type stage.sandbox
_SANDBOX = {}
