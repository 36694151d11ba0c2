---@meta
-- LuaLS annotations for `logger` / `log4cxx` (docs/scripting.md Logging, stage-spec §6.13).
-- Definitions only: the node never loads this file (see lua/types/README.md).
--
-- Each argument goes through `tostring`, then its `%` codes: `%l` file[what:line] of the caller,
-- `%F` file, `%M` what, `%L` line, `%{NAME}` environment variable, `%8{NAME}` right-aligned in 8,
-- `%{=name:level}` logs this call as target `lua.name` at that level (prints nothing), `%%` `%`.
-- Arguments are joined with TAB; the record's target is `lua`.

---@class log4cxx
log4cxx = {}

---The same table as `log4cxx`.
---@type log4cxx
logger = log4cxx

---Logs at INFO (the original's stdout logger).
---@param ... any
function log4cxx.out(...) end

---Logs at INFO.
---@param ... any
function log4cxx.info(...) end

---Logs at WARN.
---@param ... any
function log4cxx.warn(...) end

---Logs at ERROR.
---@param ... any
function log4cxx.error(...) end

---Logs at TRACE.
---@param ... any
function log4cxx.trace(...) end

---Logs at DEBUG.
---@param ... any
function log4cxx.debug(...) end
