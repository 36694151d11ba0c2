---@meta broker
-- LuaLS annotations for `broker` (docs/broker.md, stage-spec §10). `broker` is a global in
-- every VM; `require("broker")` returns the same table.
-- Definitions only: the node never loads this file (see lua/types/README.md).

---A broker address: `[tcp|udp]://HOST:PORT[?FRAMING[=IN[,OUT]]][&iface=IPV4]`, FRAMING being
---`bson`, `packet`, `text` or none (raw); IN/OUT take k/m suffixes.
---@alias broker.uri string

---A raw address: the bytes of a C sockaddr_in / sockaddr_in6 / sockaddr_un (make one with `broker.aton`).
---@alias broker.addr string

---An address family: 2 (AF_INET), 10 (AF_INET6), 1 (AF_UNIX).
---@alias broker.family 2|10|1

---A receive handler: `f(socket, data [, addr])`; each value it returns is committed back.
---@alias broker.receive_handler fun(socket: broker.socket, data: any, addr?: broker.addr): any

---A close callback: `f(socket, errno)` (0: closed by `broker.close`/`socket.close()`).
---@alias broker.close_handler fun(socket: broker.socket, errno: integer)

---`socket.commit(v [, addr])` as read: queues `v`, returns the bytes queued or -1 (closed, slow
---consumer); `socket.commit()` writes what is held now. `socket:commit(v)` works too.
---@alias broker.commit_fn fun(v?: any, addr?: broker.addr): integer

---`socket.close()` as read: closes after writing what is queued.
---@alias broker.close_fn fun()

---A socket object or a socket id.
---@alias broker.target broker.socket|integer

---`broker.ntoa`'s table form.
---@class broker.addr_fields
---@field family broker.family
---@field addr string the IP address, or the UNIX path
---@field port? integer
---@field scope_id? integer IPv6 only
---@field path? string UNIX only

---Per-second input limits (`socket.limit`), with a burst of one second's worth.
---@class broker.limit
---@field messages? integer messages per second (0 or nil: no limit)
---@field bytes? integer bytes per second (0 or nil: no limit)

---A socket (docs/broker.md, The socket object). Fields other than the ones below are user
---values: any value that can be sent; nil deletes. Socket objects cannot be sent between VMs:
---pass `socket.id` and look it up with `broker.f(id)`.
---@class broker.socket
---@field [-1] broker.addr? the local address (read only)
---@field [0] integer the socket id (read only)
---@field [1] broker.addr? the peer address (read only)
---@field id integer the socket id (read only)
---@field errno integer the last socket error, e.g. why a join failed (read only)
---@field addrs { ["local"]: broker.addr?, remote: broker.addr? } (read only)
---@field commit broker.commit_fn|integer read: the commit function; write: the output interval in ms (0: at once)
---@field close broker.close_fn|broker.close_handler|{ close: broker.close_handler }? read: the close function; write: the close callback
---@field receive broker.receive_handler|{ receive: broker.receive_handler }? the receive handler
---@field expire integer? the idle timeout in ms (nil or 0: never)
---@field limit broker.limit? per-second input limits (nil: none)
---@field crypto false not supported: assigning it is an error
---@field [string] any a user value

---@class broker
broker = {}

---TCP: listens; `f(socket, addr)` runs for each new connection and returns its receive handler, or `false` to refuse it.
---UDP: `f(socket, data, addr)` is the receive handler (multicast addresses are joined).
---Returns the socket, or an errno (98 address in use, 22 bad URI) and a message.
---@param uri broker.uri
---@param f? fun(socket: broker.socket, addr_or_data: any, addr?: broker.addr): any TCP: the accept callback; UDP: the receive handler
---@return broker.socket|integer socket_or_errno
---@return string? message
function broker.ready(uri, f) end

---Connects (TCP only); `f(socket)` runs once connected; a refused or timed-out connect runs the
---socket's `close` callback with the errno (111, 110). Returns the socket at once (or errno, message for a bad URI).
---@param uri broker.uri
---@param f? fun(socket: broker.socket)
---@param timeout_ms? integer default 3000
---@return broker.socket|integer socket_or_errno
---@return string? message
function broker.join(uri, f, timeout_ms) end

---Writes what is queued (for at most 5 s), then closes; the close callback runs with errno 0.
---@param target broker.target|broker.target[] a socket, an id, or a list of them
function broker.close(target) end

---The socket object of an open socket, or nil.
---@param id integer
---@return broker.socket?
function broker.f(id) end

---Socket or id: runs its receive handler with `v` as if it had arrived (what it returns is sent);
---raw address: sends `v` as one UDP datagram; table `{socket | id | addr, ..., f}`: commits `v`
---to each, then runs `f(elapsed_seconds, v)` on a worker. Returns how many took it.
---@param target broker.target|broker.addr|table
---@param v any
---@param addr? broker.addr the sender the handler sees (socket targets)
---@return integer
function broker.signal(target, v, addr) end

---Runs `f(socket, ...)` on a worker, in turn with the socket's callbacks. False if the socket is gone.
---@param target broker.target
---@param f fun(socket: broker.socket, ...: any)|string a function or "file+member"
---@param ... any
---@return boolean
function broker.submit(target, f, ...) end

---A raw address as text: "1.2.3.4:80", "[::1]:80" or a UNIX path; with a table, fills its
---`family`, `addr`, `port`, `scope_id`, `path` and returns it. Nil and a message if `addr` is not an address.
---@param addr broker.addr
---@param t? table
---@return string|broker.addr_fields|nil
---@return string? message
function broker.ntoa(addr, t) end

---"tcp://h:p", "udp://h:p", "unix://path", "h:p" → raw address (with a table: fills it with every
---resolved address). `aton(family, {addr=, port=, ...})` builds one, `aton(family, "h:p")` takes
---the first address of that family, `aton(raw, {port = 8080})` returns a changed copy.
---Failures return nil and a message.
---@param s string|broker.addr|broker.family
---@param t? table|string
---@return broker.addr|broker.addr[]|nil
---@return string? message
---@overload fun(family: broker.family, fields: broker.addr_fields|table): broker.addr?, string?
---@overload fun(family: broker.family, text: string): broker.addr?, string?
function broker.aton(s, t) end

---`{ ifname = {raw, ...} }` for the up, non-loopback interfaces whose name contains `name`.
---@param name? string
---@return table<string, broker.addr[]>|nil
---@return string? message
function broker.ifaddr(name) end

return broker
