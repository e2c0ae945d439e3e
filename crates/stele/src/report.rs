//! What `stele verify` found: each discrepancy with the log and the place it concerns, and
//! the summary printed at the end (a line of text, or one line of JSON with `--json`).

use serde::Serialize;

/// Problems kept for printing; beyond this only the count grows (one early tamper can
/// misplace every later tile).
const KEPT: usize = 1_000;

#[derive(Debug, Clone, Serialize)]
pub struct Problem {
    pub log: String,
    /// `seq 5`, `tile/0/001.p/7`, `checkpoint #3 (size 120)`, …
    pub place: String,
    pub detail: String,
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "log {}, {}: {}", self.log, self.place, self.detail)
    }
}

#[derive(Debug, Default)]
pub struct Problems {
    kept: Vec<Problem>,
    total: u64,
}

impl Problems {
    pub fn add(&mut self, log: &str, place: &str, detail: impl Into<String>) {
        self.total += 1;
        if self.kept.len() < KEPT {
            self.kept.push(Problem {
                log: log.to_string(),
                place: place.to_string(),
                detail: detail.into(),
            });
        }
    }

    pub fn len(&self) -> u64 {
        self.total
    }

    /// Adds `other`'s problems after these.
    pub fn absorb(&mut self, other: Problems) {
        self.total += other.total;
        let room = KEPT.saturating_sub(self.kept.len());
        self.kept.extend(other.kept.into_iter().take(room));
    }

    pub fn is_empty(&self) -> bool {
        self.total == 0
    }
}

#[derive(Debug, Default, Serialize)]
pub struct Summary {
    pub ok: bool,
    pub logs: u64,
    pub events: u64,
    pub tiles: u64,
    pub checkpoints: u64,
    /// Inclusion proofs checked (monitor).
    #[serde(skip_serializing_if = "is_zero")]
    pub proofs: u64,
    pub problems: u64,
    /// The first problems, each as one line.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub details: Vec<String>,
    /// Facts worth knowing that are not problems.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// Prints the outcome and tells whether everything checked out.
pub fn print(problems: Problems, mut summary: Summary, json: bool) -> bool {
    summary.ok = problems.is_empty();
    summary.problems = problems.total;
    if json {
        summary.details = problems.kept.iter().map(Problem::to_string).collect();
        println!("{}", serde_json::to_string(&summary).expect("serializable"));
        return summary.ok;
    }
    for problem in &problems.kept {
        eprintln!("{problem}");
    }
    if problems.total > problems.kept.len() as u64 {
        eprintln!("… and {} more", problems.total - problems.kept.len() as u64);
    }
    for note in &summary.notes {
        eprintln!("note: {note}");
    }
    let mut counts = format!(
        "{} logs, {} events, {} tiles, {} checkpoints",
        summary.logs, summary.events, summary.tiles, summary.checkpoints
    );
    if summary.proofs > 0 {
        counts.push_str(&format!(", {} inclusion proofs", summary.proofs));
    }
    if summary.ok {
        println!("ok: verified {counts}");
    } else {
        println!("FAILED: {} problems in {counts}", summary.problems);
    }
    summary.ok
}
