//! Every documented example is run by a test (issue 8): each fenced block of README.md,
//! docs/**/*.md and the cluster examples' READMEs is either `text` (a diagram, a grammar, an
//! example's output) or names itself and the test that runs it (`name=N tested-by=T`), and
//! tests/T.rs really mentions that document and that name. `tested-by=ci` means `.ci/run`
//! runs the block's commands word for word.

mod common;
use common::markdown::{blocks, documents, root};

#[test]
fn every_block_is_text_or_run_by_a_named_test() {
    let mut problems = Vec::new();
    let ci = std::fs::read_to_string(root().join(".ci/run")).expect("read .ci/run");
    for doc in documents() {
        let mut names = std::collections::HashSet::new();
        for b in blocks(&doc) {
            let at = format!("{}:{}", b.doc, b.line);
            if b.lang == "text" {
                continue;
            }
            if b.lang.is_empty() {
                problems.push(format!(
                    "{at}: a block without a language (use `text` for one that is not an example)"
                ));
                continue;
            }
            let (Some(name), Some(test)) = (b.attr("name"), b.attr("tested-by")) else {
                problems.push(format!(
                    "{at}: `{}` block without name=… tested-by=…",
                    b.lang
                ));
                continue;
            };
            if !names.insert(name.to_owned()) {
                problems.push(format!("{at}: a second example named {name:?}"));
            }
            if test == "ci" {
                for cmd in b.code.lines().map(str::trim).filter(|l| !l.is_empty()) {
                    if !ci.lines().any(|l| l.trim() == cmd) {
                        problems.push(format!("{at}: .ci/run does not run {cmd:?}"));
                    }
                }
                continue;
            }
            let file = root().join("tests").join(format!("{test}.rs"));
            match std::fs::read_to_string(&file) {
                Ok(src) => {
                    if !src.contains(&format!("\"{doc}\"")) || !src.contains(&format!("\"{name}\""))
                    {
                        problems.push(format!(
                            "{at}: tests/{test}.rs does not mention \"{doc}\" and \"{name}\""
                        ));
                    }
                }
                Err(_) => problems.push(format!("{at}: no tests/{test}.rs")),
            }
        }
    }
    assert!(
        problems.is_empty(),
        "blocks not run by any test:\n{}",
        problems.join("\n")
    );
}

#[test]
fn blocks_are_parsed_with_their_info_string_and_output() {
    // The parser itself, on this project's README: its first `sh` block is the demo command.
    let readme = blocks("README.md");
    let demo = readme
        .iter()
        .find(|b| b.lang == "sh")
        .expect("README has a sh block");
    assert!(
        demo.code.contains("cluster-examples/hello/topology.lua"),
        "{demo:?}"
    );
}
