-- Catching errors in scripts, for the node's stages and the router's control script alike.
-- Errors raised by the host's own functions (stage.signal, sleep, process, router.route, ...)
-- are host error objects; a script catches them, with pcall, xpcall (and the node's
-- coroutine.resume), as the message string a Lua library function would give, without the
-- host's traceback, so err:match works. Error values raised by Lua code pass unchanged.
--
-- Run once per VM; returns install(G, after): wraps G.pcall and G.xpcall, and returns the
-- function that settles a protected call's results (`after`, if given, runs on every failure
-- first: the node re-raises an interrupted callback's error there).

local type, tostring, select, rawset = type, tostring, select, rawset

local function plain(err)
  if type(err) ~= "userdata" then return err end
  local text = tostring(err)
  if text:match("^userdata: ") then return err end
  text = text:gsub("\nstack traceback:.*$", ""):gsub("^runtime error: ", "")
  return text
end

return function(G, after)
  local raw_pcall, raw_xpcall = G.pcall, G.xpcall
  local function settle(ok, ...)
    if ok then return ok, ... end
    if after then after() end
    return ok, plain((...)), select(2, ...)
  end
  rawset(G, "pcall", function(f, ...) return settle(raw_pcall(f, ...)) end)
  rawset(G, "xpcall", function(f, h, ...)
    return settle(raw_xpcall(f, function(e) return h(plain(e)) end, ...))
  end)
  return settle
end
