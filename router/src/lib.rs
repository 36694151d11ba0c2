//! stage-router (stub while the real one is written).
pub fn run_cli(args: Vec<std::ffi::OsString>) -> i32 {
    eprintln!("router stub {args:?}");
    0
}
