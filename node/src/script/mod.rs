//! Script loading (spec §3): names to files, the `--package` search path with fail-over depths,
//! a per-process cache with hot reload, and per-VM tracking of what to reload.
//!
//! ```text
//! name "a.b+id" --split_name--> file "a/b.lua", member "id"
//! file --Scripts::get--> cached Source, or resolve(): first location where it exists and compiles
//! Watch::poll --> scripts whose file changed (new good version) since the VM ran them
//! ```
//!
//! Nothing here runs Lua code: a VM is only used to compile-check, the caller executes
//! [`Source::compile`]'s function.
//!
//! Deliberate differences from the original loader (`stage/lua.cpp:LUA__SYS::load`):
//!
//! * re-validation every [`DEFAULT_REFRESH`] (1 s) instead of `%reflush` 30 s, configurable per
//!   [`Scripts`]; a new entry also waits that interval, not a fixed 30 s;
//! * a version is its mtime **and** size (two writes in one timestamp tick are still seen);
//! * a script that does not compile keeps the last good version, for fail-over entries too;
//! * only source text is loaded (a malformed precompiled chunk could crash the VM);
//! * no zip-archive locations (`"x.zip:"`); a depth marker without a valid number is an error
//!   instead of depth 0.

mod broken;
mod cache;
mod name;
mod search;
mod source;
mod watch;

#[cfg(test)]
mod tests;

pub use cache::{Scripts, DEFAULT_REFRESH};
pub use name::split_name;
pub use search::{candidates, parse_locations, Location};
pub use source::{resolve, Source};
pub use watch::Watch;
