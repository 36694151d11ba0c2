-- Stage `chat`: game clients talk in rooms across nodes (stage-spec §10 broker, §9.1 route).
--
-- Clients connect over TCP and send one BSON document per frame. A `?bson` socket hands its
-- handler the value of the document's first element (§10.2), so commands travel inside it:
--   {"chat": {"join": {"name": "alice", "room": "lobby"}}}   join a room (leaving the last one)
--   {"chat": {"say": "hello"}}                               say something to the room
--   {"chat": {"leave": ""}}                                  leave the room
-- Answers are {"v": {"joined": room}}, {"v": {"left": room}}, {"v": {"error": why}}, and what
-- anyone in the room says arrives as {"v": {"from": name, "room": room, "text": text}}.
--
-- Rooms are route names "room.<room>". This node subscribes a room while one of its clients
-- is in it; a message is broadcast to every subscriber ("route:*room.lobby"), so each chat
-- node, this one included, hands it to its own clients in that room.

-- Node N listens on $STAGE_CHAT_PORT + N (7101, 7102, ... by default).
local port = tonumber(process["%STAGE_CHAT_PORT"] or 7100) + stage.id()

-- Broker callbacks run on worker threads with fresh globals, so who is in which room lives
-- in the process store: __["chat.lobby"] = { [socket id] = true, ... }.
local function members(room, update)
  return __("chat." .. room, function(ids)
    ids = update(ids or {})
    if next(ids) then return ids end   -- nil deletes an empty room
  end)
end

-- After every change of a room's members, "sync" (un)subscribes the room on the stage's main
-- loop by the members it has by then: whatever order workers changed them in, the last word
-- sent to route is right.
stage.waitfor("sync", function(room)
  stage.signal("route:@", { ["room." .. room] = __["chat." .. room] and "deliver" or "" })
end)

-- route delivers a broadcast here (key = "route:*room.lobby!lost"): hand it to our clients.
stage.waitfor("deliver", function(key, room, from, text)
  for id in pairs(__["chat." .. room] or {}) do
    local socket = broker.f(id)
    if socket then socket.commit({ from = from, room = room, text = text }) end
  end
end)

-- Nobody took the message (route service down or unreachable): tell the speaker.
stage.waitfor("lost", function(why, room, from, text, id)
  local socket = broker.f(id)
  if socket then socket.commit({ error = "not delivered: " .. tostring(why) }) end
end)

-- Route removes subscriptions it has not heard about for 30 s: renew ours every 10 s (this
-- also subscribes them again on a route service that restarted). Once per process: a reload
-- must not add a second timer.
stage.once("chat:keepalive", function()
  stage.addtask(10000, function()
    local subs = {}
    for name in pairs(__) do
      local room = name:match("^chat%.(.+)$")
      if room then subs["room." .. room] = "deliver" end
    end
    stage.signal("route:@", next(subs) and subs or true)
  end)
end)

local function leave(socket)
  local room = socket.room
  if not room then return end
  socket.room = nil
  members(room, function(ids) ids[socket.id] = nil; return ids end)
  print(string.format("chat: %s left %s", socket.name, room))
  stage.signal("sync", room)
  return { left = room }
end

local function join(socket, name, room)
  if type(name) ~= "string" or name == "" or type(room) ~= "string"
      or not room:match("^[%w_-]+$") then
    return { error = "join with {name = text, room = letters, digits, _ or -}" }
  end
  leave(socket)
  socket.name, socket.room = name, room
  members(room, function(ids) ids[socket.id] = true; return ids end)
  -- Subscribe at once as well: what this client says next is sent after this and must find
  -- the room subscribed (subscribing twice changes nothing).
  stage.signal("route:@", { ["room." .. room] = "deliver" })
  stage.signal("sync", room)
  print(string.format("chat: %s joined %s", name, room))
  return { joined = room }
end

local function say(socket, text)
  local room = socket.room
  if not room then return { error = "join a room first" } end
  stage.signal("route:*room." .. room .. "!lost", room, socket.name, text, socket.id)
end

-- The connection's receive handler.
local function receive(socket, data)
  if type(data) ~= "table" then data = {} end
  if type(data.join) == "table" then return join(socket, data.join.name, data.join.room) end
  if type(data.say) == "string" and data.say ~= "" then return say(socket, data.say) end
  if data.leave ~= nil then return leave(socket) end
  return { error = "send {chat = {join = {name, room}}}, {chat = {say = text}} or {chat = {leave = ''}}" }
end

-- Listen once per process: a saved edit of this script runs it again (hot reload), and then
-- the listener it already has takes the new handlers for the connections that come next.
local listener = broker.f(__["chat:listener"] or 0)
if not listener then
  local why
  listener, why = broker.ready("tcp://0.0.0.0:" .. port .. "?bson", function(socket) end)
  -- broker.ready returns the listener, or an errno and why.
  if type(listener) ~= "userdata" then error("chat: cannot listen on port " .. port .. ": " .. why) end
  __["chat:listener"] = listener.id
  print(string.format("chat: node %d listening on port %d", stage.id(), port))
end
listener.receive = receive            -- connections inherit these when they are accepted
listener.close = leave                -- a client that goes away leaves its room
