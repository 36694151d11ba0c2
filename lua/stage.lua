-- Parts of the stage.* API written in Lua (run once per VM with the `stage` table).

local stage = ...
local type, pairs, select, unpack = type, pairs, select, table.unpack
local coroutine = coroutine

-- stage.call(f, args...) (stage-spec §6.7): runs f now, in a coroutine of its own (so its
-- globals are a snapshot of the caller's), with every table argument spread into its values
-- (JavaScript's apply). f may be a function, a table { fn, a, b, ... } (spread too, the first
-- value being the function) or "file+member" (loaded with stage.load).
function stage.call(f, ...)
  local args, n = {}, 0
  local function add(v) n = n + 1; args[n] = v end
  local function spread(v)
    if type(v) == "table" then
      for _, x in pairs(v) do add(x) end
    else
      add(v)
    end
  end
  if type(f) == "table" then
    local first = true
    for _, x in pairs(f) do
      if first then f, first = x, false else add(x) end
    end
  elseif type(f) == "string" then
    local name = f
    f = stage.load(name)
    if f == nil then error("stage.call: '" .. name .. "' not found", 2) end
  end
  for i = 1, select("#", ...) do spread((select(i, ...))) end
  local function finish(ok, ...)
    if not ok then error((...), 0) end
    return ...
  end
  return finish(coroutine.resume(coroutine.create(f), unpack(args, 1, n)))
end

-- stage.actor(ask_id, callback [, timeout_ms]) (the original's preload actor.lua): an object
-- whose method `ask_id` sends a request and routes its answer back:
--
--   local a = stage.actor("price", function(item, cost) print(item, cost) end)
--   a:price({ "apple" }, "apple")   -- callback("apple", <answer...>) when "price" answers,
--                                   -- callback("apple") if nothing came within 100 ms
--
-- The first argument after self is handed to the callback (tables spread, as stage.call does);
-- the rest is the request. Each request gets a temporary callback id that removes itself.
function stage.actor(ask_id, callback, timeout)
  timeout = timeout or 100
  local actor = { ask_id, callback, timeout }
  actor[ask_id] = function(_, arg, ...)
    -- The callback stays an upvalue (not a bound value, which would be a copy): it keeps
    -- its own upvalues, so it can update the caller's state.
    local id = stage.waitfor(function(a, ...)
      stage.waitfor(_WAITFOR[-1], nil)
      stage.call(callback, a, ...)
    end, arg)
    if timeout > 0 then
      stage.addtask(timeout, function(pending)
        local f, a = stage.waitfor(pending)
        if f ~= nil then
          stage.waitfor(pending, nil)
          stage.call(callback, a)
        end
        return -1
      end, id)
    end
    return stage.signal(ask_id .. "=" .. id, ...)
  end
  return stage.proxy(actor, { "actor" })
end
