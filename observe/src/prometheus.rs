//! Writing the Prometheus text format (version 0.0.4).

use std::fmt::Write;

/// The `# HELP` and `# TYPE` lines of a metric family.
pub fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

/// A label value as the text format wants it (backslash, quote and newline escaped).
pub fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(escape("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }

    #[test]
    fn a_family_has_help_then_type() {
        let mut out = String::new();
        family(&mut out, "x_total", "counter", "Things.");
        assert_eq!(out, "# HELP x_total Things.\n# TYPE x_total counter\n");
    }
}
