//! Command-line glue shared by `stage-router` and `stage-node`: the flags of a `--config FILE`
//! merged under the command line's, the logger, and the exit code.

pub mod config;
pub mod flags;

use std::ffi::OsString;

use clap::{CommandFactory, FromArgMatches};

/// Parses `argv` (program name first, `--config FILE` expanded), starts the logger with the
/// filter `log` picks from the arguments, and runs `run`; returns the process's exit code.
pub fn run<A: CommandFactory + FromArgMatches>(
    argv: Vec<OsString>,
    log: impl Fn(&A) -> &str,
    run: impl FnOnce(A) -> Result<(), String>,
) -> i32 {
    let mut command = A::command();
    let argv = match config::expand(&command, argv) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("error: {e}");
            return 2;
        }
    };
    let args = match command
        .try_get_matches_from_mut(argv)
        .and_then(|mut m| A::from_arg_matches_mut(&mut m))
    {
        Ok(a) => a,
        Err(e) => {
            let _ = e.print();
            return e.exit_code();
        }
    };
    env_logger::Builder::new().parse_filters(log(&args)).init();
    match run(args) {
        Ok(()) => 0,
        Err(e) => {
            log::error!("{e}");
            1
        }
    }
}
