---@meta
-- LuaLS annotations for `process` (docs/scripting.md Globals, stage-spec §6.11, §2.3).
-- Definitions only: the node never loads this file (see lua/types/README.md).

---The process object. Besides its named fields:
---`process["%NAME"]` reads an environment variable (assign a string to set it, nil to unset);
---`process["$NAME"]` reads value NAME of the `--lua-config` JSON object, `process["$"]` the whole
---object (assign JSON *text*: a value for NAME, an object for "$"; nil deletes).
---No other field can be assigned.
---@class stage.process
---@field id integer the OS process id
---@field tick number now, in seconds since the epoch (ms precision)
---@field args table<integer, string> the command line, `[0]` the program
---@field stage integer this node's instance number
---@field title string? the title last assigned (`${program}` in it becomes the program name)
---@field [string] any `["%NAME"]` environment variable, `["$NAME"]` / `["$"]` the --lua-config JSON
process = {}
