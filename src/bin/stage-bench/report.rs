//! RESULT and RATIO lines (the format of `../shared/bench/WORKLOADS.md`): `KIND key=value ...`,
//! one line per workload and system, and the field-wise median of repeated runs.

use std::fmt::Display;

/// One output line: its kind (`RESULT`, `RATIO`, `RUN`) and its fields in order.
#[derive(Clone, Debug)]
pub struct Line {
    kind: &'static str,
    fields: Vec<(String, String)>,
}

impl Line {
    pub fn new(kind: &'static str) -> Line {
        Line {
            kind,
            fields: Vec::new(),
        }
    }

    /// A RESULT line of `workload` measured on `peer`.
    pub fn result(workload: &str, peer: &str) -> Line {
        Line::new("RESULT")
            .text("workload", workload)
            .text("peer", peer)
    }

    /// Adds (or replaces) a field shown as is.
    pub fn text(mut self, key: &str, value: impl Display) -> Line {
        let value = value.to_string();
        match self.fields.iter_mut().find(|(k, _)| k == key) {
            Some((_, v)) => *v = value,
            None => self.fields.push((key.to_owned(), value)),
        }
        self
    }

    /// Adds a number with the precision its size calls for.
    pub fn num(self, key: &str, value: f64) -> Line {
        let shown = if !value.is_finite() {
            "nan".to_owned()
        } else if value.abs() >= 1000.0 || value.fract() == 0.0 {
            format!("{value:.0}")
        } else if value.abs() >= 10.0 {
            format!("{value:.1}")
        } else {
            format!("{value:.3}")
        };
        self.text(key, shown)
    }

    /// The numeric value of a field.
    pub fn get(&self, key: &str) -> Option<f64> {
        self.fields
            .iter()
            .find(|(k, _)| k == key)
            .and_then(|(_, v)| v.parse().ok())
    }

    /// The text of a field.
    pub fn get_text(&self, key: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// The same fields under another kind.
    pub fn into_kind(mut self, kind: &'static str) -> Line {
        self.kind = kind;
        self
    }

    pub fn print(&self) {
        println!("{self}");
    }
}

impl Display for Line {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.kind)?;
        for (k, v) in &self.fields {
            write!(f, " {k}={v}")?;
        }
        Ok(())
    }
}

/// The field-wise median of runs of one workload and system: numeric fields take their median,
/// others the first run's value; `runs=<n>` is added. Worst-case fields (`lost`, errors) take
/// the maximum, so one bad run shows.
pub fn median(runs: &[Line]) -> Line {
    let Some(first) = runs.first() else {
        return Line::new("RESULT");
    };
    let mut out = first.clone().into_kind("RESULT");
    for (key, _) in &first.fields {
        let mut values: Vec<f64> = runs.iter().filter_map(|l| l.get(key)).collect();
        if values.len() != runs.len() {
            continue;
        }
        let value = if WORST.contains(&key.as_str()) {
            values.iter().copied().fold(0.0, f64::max)
        } else {
            crate::procs::median(&mut values)
        };
        out = out.num(key, value);
    }
    out.num("runs", runs.len() as f64)
}

/// Fields where the worst run, not the median, is reported.
const WORST: [&str; 4] = ["lost", "duplicates", "corrupt", "router_rss_kb"];

/// Nearest-rank percentile of sorted samples: `sorted[ceil(p·n) − 1]`.
pub fn percentile(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = (p * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank() {
        let v: Vec<u64> = (1..=100).collect();
        assert_eq!(percentile(&v, 0.5), 50);
        assert_eq!(percentile(&v, 0.99), 99);
        assert_eq!(percentile(&v, 0.999), 100);
        assert_eq!(percentile(&[7], 0.5), 7);
    }

    #[test]
    fn median_of_runs_keeps_the_worst_loss() {
        let run = |rate: f64, lost: f64| {
            Line::result("w1_fanin", "stage")
                .num("msgs_per_s", rate)
                .num("lost", lost)
        };
        let m = median(&[run(3.0, 0.0), run(1.0, 2.0), run(2.0, 0.0)]);
        assert_eq!(m.get("msgs_per_s"), Some(2.0));
        assert_eq!(m.get("lost"), Some(2.0));
        assert_eq!(m.get_text("peer"), Some("stage"));
        assert_eq!(m.get("runs"), Some(3.0));
    }
}
