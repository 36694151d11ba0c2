//! `stage-router`: forwards frames between stage nodes (see `stage_router`).
fn main() {
    std::process::exit(stage_router::run_cli(std::env::args_os().collect()));
}
