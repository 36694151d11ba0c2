//! The fenced code blocks of the project's Markdown, so tests can run the examples the docs
//! show. An example's info string names it and the test that runs it:
//!
//! ````text
//! ```lua name=signal tested-by=api_stage
//! stage.signal("pong:hello", 1)
//! ```
//!
//! ```text output
//! hello 1
//! ```
//! ````
//!
//! A `text output` block right after an example is what the example prints. Blocks of language
//! `text` (diagrams, grammars, outputs) are not examples. `tests/doc_blocks.rs` holds every other
//! block to its `tested-by` file.

use std::path::{Path, PathBuf};

/// One fenced block.
#[derive(Debug, Clone)]
pub struct Block {
    /// The document, relative to the repository root (`docs/scripting.md`).
    pub doc: String,
    /// 1-based line of the opening fence.
    pub line: usize,
    /// First word of the info string (`lua`, `sh`, `text`); empty when there is none.
    pub lang: String,
    /// The other words of the info string: `key=value` pairs and bare flags (`output`).
    pub words: Vec<String>,
    /// The block's text, with a final newline.
    pub code: String,
    /// The `text output` block right after this one, if any.
    pub output: Option<String>,
}

impl Block {
    /// The value of `key=value` in the info string.
    pub fn attr(&self, key: &str) -> Option<&str> {
        self.words
            .iter()
            .find_map(|w| w.strip_prefix(key).and_then(|r| r.strip_prefix('=')))
    }

    /// Whether the info string holds the bare word `flag`.
    pub fn has(&self, flag: &str) -> bool {
        self.words.iter().any(|w| w == flag)
    }

    /// The expected output's non-empty lines (panics when the example has no output block).
    pub fn output_lines(&self) -> Vec<String> {
        let out = self.output.as_ref().unwrap_or_else(|| {
            panic!(
                "{}:{}: example has no `text output` block after it",
                self.doc, self.line
            )
        });
        out.lines()
            .filter(|l| !l.trim().is_empty())
            .map(str::to_owned)
            .collect()
    }
}

/// The repository root.
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Every document whose blocks are held to a test: README.md, docs/**/*.md and the
/// cluster examples' READMEs, relative to the root, sorted.
pub fn documents() -> Vec<String> {
    let root = root();
    let mut docs = vec!["README.md".to_owned()];
    collect_md(&root, Path::new("docs"), &mut docs);
    if let Ok(entries) = std::fs::read_dir(root.join("cluster-examples")) {
        for e in entries.flatten() {
            let readme = Path::new("cluster-examples")
                .join(e.file_name())
                .join("README.md");
            if root.join(&readme).is_file() {
                docs.push(readme.to_string_lossy().into_owned());
            }
        }
    }
    docs.sort();
    docs
}

fn collect_md(root: &Path, rel: &Path, out: &mut Vec<String>) {
    let Ok(entries) = std::fs::read_dir(root.join(rel)) else {
        return;
    };
    for e in entries.flatten() {
        let path = rel.join(e.file_name());
        if e.path().is_dir() {
            collect_md(root, &path, out);
        } else if path.extension().is_some_and(|x| x == "md") {
            out.push(path.to_string_lossy().into_owned());
        }
    }
}

/// The fenced blocks of `doc` (relative to the root), in order.
pub fn blocks(doc: &str) -> Vec<Block> {
    let text = std::fs::read_to_string(root().join(doc))
        .unwrap_or_else(|e| panic!("cannot read {doc}: {e}"));
    let mut blocks: Vec<Block> = Vec::new();
    let mut lines = text.lines().enumerate();
    while let Some((n, line)) = lines.next() {
        let trimmed = line.trim_start();
        let Some(fence) = fence_of(trimmed) else {
            continue;
        };
        let indent = line.len() - trimmed.len();
        let mut words = trimmed[fence.len()..].split_whitespace().map(str::to_owned);
        let lang = words.next().unwrap_or_default();
        let mut code = String::new();
        for (_, body) in lines.by_ref() {
            if body.trim() == fence {
                break;
            }
            // Blocks inside list items are indented; the indentation is not part of the code.
            code.push_str(body.get(indent..).unwrap_or(body.trim_start()));
            code.push('\n');
        }
        blocks.push(Block {
            doc: doc.to_owned(),
            line: n + 1,
            lang,
            words: words.collect(),
            code,
            output: None,
        });
    }
    // Attach each `text output` block to the example before it.
    for i in 1..blocks.len() {
        if blocks[i].lang == "text" && blocks[i].has("output") {
            let out = blocks[i].code.clone();
            blocks[i - 1].output = Some(out);
        }
    }
    blocks
}

/// The opening fence at the start of `line` (three or more backticks), if any.
fn fence_of(line: &str) -> Option<&str> {
    let n = line.bytes().take_while(|&b| b == b'`').count();
    (n >= 3).then(|| &line[..n])
}

/// The example `name` of `doc`; panics naming the document when there is none.
pub fn example(doc: &str, name: &str) -> Block {
    blocks(doc)
        .into_iter()
        .find(|b| b.attr("name") == Some(name))
        .unwrap_or_else(|| panic!("{doc} has no example named {name:?}"))
}

/// Whether `lines` holds `expected` in order (each an exact line, others may come between).
pub fn in_order(lines: &[String], expected: &[String]) -> bool {
    let mut it = lines.iter();
    expected.iter().all(|e| it.any(|l| l == e))
}
