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

/// The example invocations of `program` in a `--help` text's "Examples:" section, split into
/// words, with trailing comments (`(…)`, `# …`) cut: each binary's tests parse every one, so
/// an example that stops being a valid command line fails a test.
pub fn help_examples(program: &str, help: &str) -> Vec<Vec<String>> {
    let Some((_, examples)) = help.split_once("Examples:") else {
        return Vec::new();
    };
    examples
        .lines()
        .filter_map(|line| {
            let line = line.trim();
            let code = line.split(['(', '#']).next().unwrap_or(line);
            let words: Vec<String> = code.split_whitespace().map(str::to_owned).collect();
            let first = words.first()?;
            (first.rsplit('/').next() == Some(program)).then_some(words)
        })
        .collect()
}

/// Parses every example of `program`'s `--help` with `A` (for the binaries' tests); panics
/// naming the first example that is not a valid command line; returns how many there are.
/// With `--config FILE` the file may supply required flags, so none is required then.
pub fn check_help_examples<A: clap::Parser>(program: &str) -> usize {
    let help = A::command().render_help().to_string();
    let examples = help_examples(program, &help);
    for words in &examples {
        let mut command = A::command();
        if words.iter().any(|w| w == "--config") {
            let ids: Vec<_> = command
                .get_arguments()
                .map(|a| a.get_id().clone())
                .collect();
            for id in ids {
                command = command.mut_arg(id, |a| a.required(false));
            }
        }
        if let Err(e) = command.try_get_matches_from(words) {
            panic!("--help example {:?} does not parse: {e}", words.join(" "));
        }
    }
    examples.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn help_examples_are_the_program_lines_without_comments() {
        let help = "Usage: x\n\nExamples:\n  x --a 1   (one)\n  make && x\n  bin/x --b # two\n";
        assert_eq!(
            help_examples("x", help),
            vec![vec!["x", "--a", "1"], vec!["bin/x", "--b"]]
        );
    }
}
