//! `stage-node`: hosts Lua stages and links them to routers (see `stage_node`).
fn main() {
    std::process::exit(stage_node::run_cli(std::env::args_os().collect()));
}
