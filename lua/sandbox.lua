-- The sandbox of a stage VM (stage-spec §5). Run once per VM by the node; returns the proxy
-- that is every script's _ENV, its metatable, and the metatable of private tables.
--
--   reads   _ENV.k -> the running Lua thread's private table -> the real _G -> process-wide
--   writes  _ENV.k = v -> the private table, unless a rule of _SANDBOX[""] says otherwise
--
-- Every callback starts with a fresh, empty private table (the node swaps `meta.__index`), so
-- globals set by the main script or an earlier callback are not seen by later callbacks;
-- share them with _SANDBOX[""] = { "NAME" } (this VM) or { "*NAME" } (the whole process), or
-- keep them in locals. The read path is metatable chains of plain tables: no Lua function runs
-- for an ordinary global read.

local G, store, install_caught = ...   -- the real globals; the host's functions (Rust); lua/caught.lua
local rawget, rawset, next, type, error, setmetatable, tostring =
      rawget, rawset, next, type, error, setmetatable, tostring
local coroutine = coroutine
local raw_create, raw_resume, raw_status = coroutine.create, coroutine.resume, coroutine.status

local proxy = {}                -- _ENV of every script, _SANDBOX
-- proxy's metatable; __index is the current private table. __metatable keeps scripts from
-- reaching (and breaking) the sandbox's own metatables.
local meta = { __metatable = false }
local private_meta = { __index = G, __metatable = false }

local shared = {}               -- NAME -> true: per-VM read-write, kept in G
local readonly = {}             -- NAME -> true: per-VM read-only, kept in G

-- Names the process store owns (`*NAME`) are read through G's metatable: only a global that
-- is in neither the private table nor G costs a call.
-- A table read from the process store is a copy; assigning a field of it (at any depth)
-- stores the whole root again, so `*CONFIG.limit = 5` updates CONFIG for every VM
-- (stage-spec §5.4). Two VMs changing the same root at once can lose an update: use
-- __(name, function(old) ... end) for that.
local raw_of = setmetatable({}, { __mode = "k" })   -- wrapper -> the table it wraps

-- A wrapper assigned elsewhere stores the table it stands for, not the (empty) wrapper.
local function unwrap(v)
  if type(v) == "table" then return raw_of[v] or v end
  return v
end

local function writeback(name, root)
  local function wrap(t)
    local w = setmetatable({}, {
      __index = function(_, k)
        local v = t[k]
        if type(v) == "table" then return wrap(v) end
        return v
      end,
      __newindex = function(_, k, v)
        t[k] = unwrap(v)
        store.set(name, root)
      end,
      __pairs = function() return next, t, nil end,
      __len = function() return #t end,
    })
    raw_of[w] = t
    return w
  end
  return wrap(root)
end

setmetatable(G, { __metatable = false, __index = function(_, k)
  if type(k) == "string" then
    local v = store.get(k)
    if type(v) == "table" then return writeback(k, v) end
    return v
  end
end })

local function current() return rawget(meta, "__index") end

-- _SANDBOX[""] = { "NAME", "*NAME", NAME = value, ["*NAME"] = value }
local function add_rules(rules)
  if type(rules) ~= "table" then
    error("_SANDBOX[\"\"] takes a table of rules, got " .. type(rules), 3)
  end
  for k, v in next, rules do
    if type(k) == "number" then
      if type(v) ~= "string" then error("_SANDBOX[\"\"]: names must be strings", 3) end
      if v:sub(1, 1) == "*" then
        store.share(v:sub(2))
      else
        shared[(v:gsub(":.*$", ""))] = true
      end
    elseif type(k) == "string" then
      if k:sub(1, 1) == "*" then
        store.share(k:sub(2), v, true)
      else
        local name = k:gsub("^@", "")
        rawset(G, name, v)
        readonly[name] = true
      end
    end
  end
end

meta.__newindex = function(_, k, v)
  if k == "" then return add_rules(v) end
  if readonly[k] then error("'" .. tostring(k) .. "' is read only", 2) end
  if shared[k] then return rawset(G, k, v) end
  if type(k) == "string" and store.owns(k) then return store.set(k, unwrap(v)) end
  rawset(current(), k, v)
end

meta.__pairs = function()
  -- The running thread's private globals, then the process-wide ones.
  local mine, k = current(), nil
  local process = store.list()
  local i = 0
  return function()
    if mine then
      local v
      k, v = next(mine, k)
      if k ~= nil then return k, v end
      mine = nil
    end
    i = i + 1
    local name = process[i]
    if name ~= nil then return name, store.get(name) end
  end
end

meta.__tostring = function() return "sandbox: " .. tostring(current()) end

-- A callback interrupted by its instruction budget must not be able to catch that and go on:
-- pcall, xpcall and coroutine.resume pass every other error to the script (host errors as
-- their message, lua/caught.lua), but raise this one again. The host knows whether the budget
-- is spent, whatever a handler made of the error.
local rethrow_interrupt = install_caught(G, function()
  if store.exhausted() then store.interrupt() end
end)

-- Coroutines: each Lua thread has its own private table, a shallow copy of its creator's at
-- its first resume (userdata and threads are not copied, stage-spec §5.1).
local privates = setmetatable({}, { __mode = "k" })
local creators = setmetatable({}, { __mode = "k" })

local function private_of(co)
  local p = privates[co]
  if p == nil then
    p = setmetatable({}, private_meta)
    local from = creators[co]
    if from then
      for k, v in next, from do
        local t = type(v)
        if t ~= "userdata" and t ~= "thread" then rawset(p, k, v) end
      end
    end
    privates[co] = p
  end
  return p
end

function coroutine.create(f)
  local co = raw_create(f)
  creators[co] = current()
  return co
end

local function resumed(previous, ...)
  rawset(meta, "__index", previous)
  return ...
end

function coroutine.resume(co, ...)
  local previous = current()
  if raw_status(co) ~= "dead" then rawset(meta, "__index", private_of(co)) end
  return rethrow_interrupt(resumed(previous, raw_resume(co, ...)))
end

function coroutine.wrap(f)
  local co = coroutine.create(f)
  local function unwrap(ok, ...)
    if not ok then error((...), 2) end
    return ...
  end
  return function(...) return unwrap(coroutine.resume(co, ...)) end
end

setmetatable(proxy, meta)
rawset(G, "_SANDBOX", proxy)


-- Functions crossing to another VM (stage.submit, thread.new, messages) travel as bytecode
-- plus their upvalues; see node/src/value/function.rs for the wire form.
local getupvalue, setupvalue = debug.getupvalue, debug.setupvalue
local dump, load = string.dump, load
local ENV, SELF = "@stage.env", "@stage.self"

-- A closure's bytecode never changes: each function is dumped once (stage.submit of the same
-- function in a loop would otherwise dump it every time).
local dumps = setmetatable({}, { __mode = "k" })

local function pack(f)
  local code = dumps[f]
  if code == nil then
    code = dump(f)
    dumps[f] = code
  end
  local ups, n = {}, 0
  while true do
    local name, v = getupvalue(f, n + 1)
    if name == nil then break end
    n = n + 1
    if name == "_ENV" then
      ups[n] = { [ENV] = true }
    elseif v == f then
      ups[n] = { [SELF] = true }
    else
      local t = type(v)
      if t ~= "userdata" and t ~= "thread" then ups[n] = v end
    end
  end
  ups.n = n
  return code, ups
end

local function unpack_function(code, ups)
  local f, err = load(code, "=(received function)", "b", proxy)
  if not f then error(err, 0) end
  -- The count comes from the sender: setupvalue past the function's real upvalues sets
  -- nothing and returns nil, which ends the loop.
  for i = 1, tonumber(ups.n) or 0 do
    local v = ups[i]
    if type(v) == "table" and v[ENV] then
      v = proxy
    elseif type(v) == "table" and v[SELF] then
      v = f
    end
    if setupvalue(f, i, v) == nil then break end
  end
  return f
end

-- Scripts get a debug library without the parts that reach around the sandbox and the
-- budget (sethook, setmetatable, setupvalue, upvaluejoin, ...): the functions above keep
-- their own references.
local debug = debug
rawset(G, "debug", {
  traceback = debug.traceback, getinfo = debug.getinfo, getlocal = debug.getlocal,
  getupvalue = debug.getupvalue, upvalueid = debug.upvalueid, gethook = debug.gethook,
})

-- Finalizers run with hooks off, out of reach of the instruction budget: not allowed.
local raw_setmetatable = setmetatable
rawset(G, "setmetatable", function(t, m)
  if type(m) == "table" and rawget(m, "__gc") ~= nil then
    error("setmetatable: __gc finalizers are not allowed (they would run outside the instruction budget)", 2)
  end
  return raw_setmetatable(t, m)
end)

-- Entering a callback (node/src/sandbox.rs) in one call from the host, instead of a host round
-- trip per step: a fresh private globals table holding the name/value pairs given becomes the
-- current one; the caller's is returned, and the host puts it back once the callback is done.
local select = select
local function enter(...)
  local private = setmetatable({}, private_meta)
  for i = 1, select("#", ...), 2 do
    local k, v = select(i, ...)
    rawset(private, k, v)
  end
  local previous = rawget(meta, "__index")
  rawset(meta, "__index", private)
  return previous
end

-- The same for a message callback: its globals (`extra`, a table or nil) and its _WAITFOR.
local function enter_message(extra, key, instance, sender, matched, corr, final, err)
  local previous = enter()
  local private = rawget(meta, "__index")
  if extra then
    for k, v in next, extra do rawset(private, k, v) end
  end
  rawset(private, "_WAITFOR", { [0] = key, [1] = instance, [2] = sender, [-1] = matched,
    corr = corr, final = final, error = err })
  return previous
end

return proxy, meta, private_meta, pack, unpack_function, enter, enter_message
