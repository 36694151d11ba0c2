//! The broker: client-facing TCP and UDP sockets for Lua (`broker.*`, stage-spec §10).

pub mod framing;
