-- stage.proxy(t1, t2): change handlers around a table (stage-spec §6.8, key conversion §5.5).
--
-- This chunk returns the function the node installs as `stage.proxy` (and `bundle.proxy`).
-- It is pure Lua 5.4 and keeps no state outside the proxies it creates (plus weak caches).
--
--   local p = stage.proxy(t1 [, t2])
--
-- t1 is a table or a userdata; t2 configures the handlers:
--
--   column = F                         F(proxy, old_value, column, new_value) on every assignment
--   column = { V1, V2, ..., F1, N1, ..., F2 }
--                                      edge constants (number, string, boolean) and handlers,
--                                      F(proxy, edges, column, new_value) on an upward crossing
--   [""] = F                           handler for any key without its own entry
--   [""] = { "idx", function (k, i, t) ... end, ["*"] = F, ["#"] = F, name = F }
--                                      index id, key converter, fallback for string keys (*),
--                                      for number keys (#), per-name handlers
--   "idx" / function (k, i, t) ... end (array elements)
--                                      index id (default "proxy") / key converter
--   t2 itself a function               = [""] = F
--   t2 itself a string                 = the index id
--
-- A handler returning `false` vetoes the assignment; any other result lets it through. An error
-- in a handler does not stop the assignment: it is reported with `warn` (as the reference logs
-- it) and the value is stored.
--
-- Differences from the reference (whose proxy is a userdata):
--   * the proxy is a table with a metatable, so `type(p) == "table"`; `getmetatable(p).__name`
--     is "proxy" (tables read through it: "proxy.table"), which is how other code can tell a
--     proxy from a plain table (e.g. to refuse serialising it: proxies are VM-local);
--   * rawget/rawset/next on the proxy see an empty table; use pairs(p), p[k], p[k] = v;
--   * numeric edges compare with ordinary Lua arithmetic (the reference truncated a
--     non-integral float to 0 when comparing it with an integer edge).
--
-- Keys: a table or userdata key is first given to the proxy's key converter
-- (converter(k, index_id, t1)); a nil result means "do not store / not found". A key that is
-- then still not a string or number goes through `stage.index(k, index_id, t1)` if `stage.index`
-- is a function (or a table holding a function under the index id), else `tostring(k)`; the hook's
-- nil result again means "do not store / not found", a string or number is used as is and any
-- other result is converted with tostring. Tables read through the proxy come back wrapped the same
-- way (non-string keys converted with `stage.index`/tostring, nested tables wrapped too); a proxy
-- or wrapper stored in t1 is returned as it is. The converter and `stage.index` may raise errors;
-- those propagate to the reading / assigning code.
--
-- Other operations:
--   p[k]            t1[k] (tables wrapped as above); p[""] is t1 itself
--   p[k] = v        handler lookup: exact column (string keys), else "*" (string keys) or
--                   "#" (number keys), else ""; then the handler / edge evaluation; then t1[k] = v.
--                   While an entry's handler runs, assignments that select the same entry are
--                   stored without handlers (other entries still fire).
--   pairs(p), #p    operate on t1; ipairs(p) reads through p[i]
--   tostring(p)     "<index id up to ':'>:[<tostring(t1)>]", e.g. "proxy:[table: 0x...]"
--   p(fn)           calls fn(p), then returns t1;  p() returns t1

local type, next, pairs, ipairs, tostring, tonumber = type, next, pairs, ipairs, tostring, tonumber
local select, mathtype = select, math.type
local setmetatable, getmetatable, rawget = setmetatable, getmetatable, rawget
local pcall, xpcall, error = pcall, xpcall, error
local sort, find, sub = table.sort, string.find, string.sub

local ENV = _ENV -- globals (`stage`, `warn`, `debug`) are looked up when used, not when loaded

-- Handler errors are reported, not raised (the reference runs handlers in a protected call).
local function traceback(msg)
  local dbg = ENV.debug
  if type(dbg) == "table" and type(dbg.traceback) == "function" then
    return dbg.traceback(tostring(msg), 2)
  end
  return tostring(msg)
end

local function report(msg)
  local w = ENV.warn
  if type(w) == "function" then
    pcall(w, "stage.proxy: handler failed: ", tostring(msg))
  end
end

-- Calls a handler; returns true when it vetoed (its first result is exactly `false`).
local function invoke(f, ...)
  local ok, r = xpcall(f, traceback, ...)
  if not ok then
    report(r)
    return false
  end
  return r == false
end

-- §5.5 luaL_toindex: a key that is not a string or number goes through the `stage.index` hook
-- (or tostring). Returns nil when the key must be ignored.
local function toindex(k, i, t)
  local kt = type(k)
  if kt == "string" or kt == "number" then
    return k
  end
  local stage = ENV.stage
  local st = type(stage)
  if st == "table" or st == "userdata" then
    local f = stage.index
    if type(f) == "table" then
      f = rawget(f, i)
    end
    if type(f) == "function" then
      local r = f(k, i, t)
      local rt = type(r)
      if r == nil or rt == "string" or rt == "number" then
        return r
      end
      return tostring(r)
    end
  end
  return tostring(k)
end

-- Tables read through a proxy: wrapped so that their non-string keys are converted too.
local WRAPPERS = {} -- index id -> (weak-keyed) raw table -> wrapper
local OURS = setmetatable({}, { __mode = "k" }) -- metatables of proxies and wrappers

local function wrap(v, i)
  if type(v) ~= "table" or OURS[getmetatable(v)] then
    return v -- not a table, or already a proxy / wrapper (the reference wraps tables only)
  end
  local cache = WRAPPERS[i]
  if cache == nil then
    cache = setmetatable({}, { __mode = "k" })
    WRAPPERS[i] = cache
  end
  local w = cache[v]
  if w ~= nil then
    return w
  end
  local raw = v
  local mt = {
    __name = "proxy.table",
    __index = function(_, k)
      local key = toindex(k, i, raw)
      if key == nil then
        return nil
      end
      return wrap(raw[key], i)
    end,
    __newindex = function(_, k, value)
      local key = toindex(k, i, raw)
      if key ~= nil then
        raw[key] = value
      end
    end,
    __len = function()
      return #raw
    end,
    __pairs = function()
      return pairs(raw)
    end,
    __tostring = function()
      return tostring(raw)
    end,
  }
  OURS[mt] = true
  w = setmetatable({}, mt)
  cache[v] = w
  return w
end

-- Edge constants: does `x` reach edge `e` (x >= e for numbers, x == e otherwise)?
local function reached(e, x)
  local ev = e.v
  local et = e.t
  if et == "number" then
    local xt = type(x)
    local n
    if xt == "number" then
      n = x
    elseif xt == "string" then
      n = tonumber(x) or 0
    else
      n = 0
    end
    return n >= ev
  elseif et == "string" then
    local xt = type(x)
    if xt == "string" or xt == "number" then
      return tostring(x) == ev
    end
    return false
  else -- boolean
    return (not not x) == ev
  end
end

-- The edge walk (§6.8, reference KV::call). Returns true when a handler vetoed.
local function walk(edges, p, o, k, n)
  local ot = type(o)
  -- count < 0: "looking back" (an old value exists and nothing was collected since the last
  -- handler); 0: not looking back, nothing collected; > 0: number of collected edges.
  local count = (o == nil) and 0 or -1
  local collected = {}
  local last -- position of the last collected edge since the last handler
  local size = #edges
  for pos = 1, size do
    local e = edges[pos]
    if e.f ~= nil then
      if pos == 1 or count > 0 then
        if invoke(e.f, p, collected, k, n) then
          return true
        end
        if count > 0 then
          count = -1
          collected = {}
        end
      end
      last = nil
    elseif o == nil or e.t == ot then
      local crossed = false
      if count < 0 then
        if reached(e, o) then
          crossed = true -- already crossed before this assignment
        else
          count = 0
        end
      end
      if not crossed and reached(e, n) then
        count = count + 1
        collected[count] = e.v
        last = pos
      end
    end
  end
  -- Edges collected after the last handler go to the next handler after them (there is none
  -- once the walk is over, so this only mirrors the reference's final step).
  if count > 0 and last ~= nil then
    for pos = last + 1, size do
      local f = edges[pos].f
      if f ~= nil then
        return invoke(f, p, collected, k, n)
      end
    end
  end
  return false
end

local function packedges(list)
  local positions = {}
  for key in next, list do
    if mathtype(key) == "integer" and key > 0 then
      positions[#positions + 1] = key
    end
  end
  sort(positions)
  local edges = {}
  for _, pos in ipairs(positions) do
    local v = list[pos]
    local vt = type(v)
    if vt == "function" then
      edges[#edges + 1] = { f = v }
    elseif vt == "number" or vt == "string" or vt == "boolean" then
      edges[#edges + 1] = { t = vt, v = v }
    end
  end
  return edges
end

-- Runs an entry's handler or edge list; returns true when the assignment is vetoed.
local function evaluate(e, p, old, key, new)
  if e.f ~= nil then
    return invoke(e.f, p, old, key, new)
  elseif e.edges ~= nil then
    return walk(e.edges, p, old, key, new)
  end
  return false
end

local function configure(state, t2)
  local kv = state.kv
  local function entry(name)
    local e = kv[name]
    if e == nil then
      e = { busy = false }
      kv[name] = e
    end
    return e
  end
  local t2t = type(t2)
  if t2t == "function" then
    entry("").f = t2
    return
  elseif t2t == "string" then
    state.i = t2
    return
  elseif t2t ~= "table" then
    return
  end
  -- Array elements first (index id / key converter), then [""], then the columns: the order
  -- the reference's table walk takes (array part before hash part).
  for pos = 1, #t2 do
    local v = t2[pos]
    if type(v) == "function" then
      state.conv = v
    elseif type(v) == "string" then
      state.i = v
    end
  end
  local fallback = t2[""]
  local ft = type(fallback)
  if ft == "function" then
    entry("").f = fallback
  elseif ft == "string" then
    state.i = fallback
  elseif ft == "table" then
    for pos = 1, #fallback do
      local v = fallback[pos]
      if type(v) == "function" then
        if state.conv == nil then
          state.conv = v
        end
      elseif type(v) == "string" then
        state.i = v
      end
    end
    for name, v in next, fallback do
      if type(name) == "string" and type(v) == "function" then
        entry(name).f = v
      end
    end
  end
  for name, v in next, t2 do
    if type(name) == "string" and name ~= "" then
      local e = entry(name) -- any value claims the column (no fallback for it)
      local vt = type(v)
      if vt == "table" then
        e.edges = packedges(v)
      elseif vt == "function" then
        e.f = v
      end
    end
  end
end

local function proxy(t1, t2)
  local t1t = type(t1)
  if t1t ~= "table" and t1t ~= "userdata" then
    error(("Unsupported data types. [%s]"):format(t1t), 2)
  end
  local state = { t = t1, i = "proxy", conv = nil, kv = {} }
  configure(state, t2)

  -- the key as stored in t1, or nil when it must be ignored
  local function prepare(k)
    local conv = state.conv
    if conv ~= nil then
      local kt = type(k)
      if kt == "table" or kt == "userdata" then
        k = conv(k, state.i, t1)
        if k == nil then
          return nil
        end
      end
    end
    return toindex(k, state.i, t1)
  end

  local function lookup(key)
    local kv = state.kv
    local kt = type(key)
    local e
    if kt == "number" then
      e = kv["#"]
    elseif kt == "string" then
      e = kv[key]
      if e == nil then
        e = kv["*"]
      end
    end
    if e == nil then
      e = kv[""]
    end
    return e
  end

  local p = {}
  local mt = {
    __name = "proxy",
    __index = function(_, k)
      local key = prepare(k)
      if key == nil then
        return nil
      elseif key == "" then
        return t1
      end
      return wrap(t1[key], state.i)
    end,
    __newindex = function(self, k, v)
      local key = prepare(k)
      if key == nil then
        return
      end
      local e = lookup(key)
      if e ~= nil and not e.busy then
        local old = t1[key]
        e.busy = true
        local ok, vetoed = pcall(evaluate, e, self, old, key, v)
        e.busy = false
        if not ok then
          error(vetoed, 0)
        elseif vetoed then
          return
        end
      end
      t1[key] = v
    end,
    __len = function()
      return #t1
    end,
    __pairs = function()
      return pairs(t1)
    end,
    __call = function(self, ...)
      if select("#", ...) == 0 then
        return t1
      end
      local f = ...
      if type(f) ~= "function" then
        error("bad argument #2 (function expected)", 2)
      end
      f(self)
      return t1
    end,
    __tostring = function()
      local i = state.i
      local colon = find(i, ":", 1, true)
      if colon ~= nil then
        i = sub(i, 1, colon - 1)
      end
      return i .. ":[" .. tostring(t1) .. "]"
    end,
  }
  OURS[mt] = true
  setmetatable(p, mt)
  return p
end

return proxy
