//! Results: a table for people, and as the last line one JSON object for scripts.

use serde_json::Value;

/// Latency percentiles of a sample, in milliseconds.
pub fn percentile(sorted_ms: &[f64], p: f64) -> f64 {
    if sorted_ms.is_empty() {
        return 0.0;
    }
    let rank = ((p / 100.0) * (sorted_ms.len() - 1) as f64).round() as usize;
    sorted_ms[rank.min(sorted_ms.len() - 1)]
}

pub fn sorted(mut ms: Vec<f64>) -> Vec<f64> {
    ms.sort_by(f64::total_cmp);
    ms
}

/// One scenario's figures, in the order they were added.
pub struct Report {
    scenario: String,
    rows: Vec<(String, Value)>,
}

impl Report {
    pub fn new(scenario: &str) -> Report {
        Report {
            scenario: scenario.to_string(),
            rows: Vec::new(),
        }
    }

    pub fn set(&mut self, key: &str, value: impl Into<Value>) -> &mut Self {
        let value = match value.into() {
            Value::Number(n) if n.is_f64() => {
                // Three significant decimals are plenty and keep the line readable.
                let f = n.as_f64().unwrap_or(0.0);
                serde_json::json!((f * 1000.0).round() / 1000.0)
            }
            v => v,
        };
        self.rows.retain(|(k, _)| k != key);
        self.rows.push((key.to_string(), value));
        self
    }

    /// The figures as one JSON object, `scenario` first, then in the order they were set.
    pub fn json(&self) -> String {
        let mut out = format!("{{\"scenario\":{}", Value::String(self.scenario.clone()));
        for (k, v) in &self.rows {
            out.push_str(&format!(",{}:{v}", Value::String(k.clone())));
        }
        out.push('}');
        out
    }

    /// Prints the table, then the JSON line (always last).
    pub fn print(&self) {
        let width = self.rows.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
        println!("{}", self.scenario);
        println!("{}", "-".repeat(self.scenario.len()));
        for (k, v) in &self.rows {
            let shown = match v {
                Value::String(s) => s.clone(),
                v => v.to_string(),
            };
            println!("  {k:<width$}  {shown}");
        }
        println!("{}", self.json());
    }
}
