//! Latency histograms and the one-line JSON report every scenario prints.
//!
//! Latencies are recorded in microseconds into an HDR histogram (3 significant digits, up to
//! 10 minutes) so percentiles are exact to 0.1% without keeping every sample.

use hdrhistogram::Histogram;
use serde_json::{json, Value};

/// A latency histogram in microseconds.
pub struct Latency(Histogram<u64>);

impl Default for Latency {
    fn default() -> Self {
        // 1 µs .. 600 s at 3 significant digits is a valid configuration.
        Latency(Histogram::new_with_bounds(1, 600_000_000, 3).expect("valid histogram bounds"))
    }
}

impl Latency {
    /// Record one latency in microseconds (clamped into the histogram's range).
    pub fn record(&mut self, micros: u64) {
        self.0.saturating_record(micros.max(1));
    }

    /// p50, p90, p99, p99.9 and max, in microseconds, as JSON fields.
    pub fn summary(&self) -> Value {
        let h = &self.0;
        if h.is_empty() {
            return json!({"samples": 0});
        }
        json!({
            "samples": h.len(),
            "p50_us": h.value_at_quantile(0.50),
            "p90_us": h.value_at_quantile(0.90),
            "p99_us": h.value_at_quantile(0.99),
            "p999_us": h.value_at_quantile(0.999),
            "max_us": h.max(),
            "mean_us": (h.mean() * 10.0).round() / 10.0,
        })
    }

    /// `p50 … p99 … max` in milliseconds, for the human line.
    pub fn human(&self) -> String {
        let h = &self.0;
        let ms = |v: u64| v as f64 / 1000.0;
        format!(
            "p50 {:.3} ms, p90 {:.3} ms, p99 {:.3} ms, p99.9 {:.3} ms, max {:.3} ms",
            ms(h.value_at_quantile(0.50)),
            ms(h.value_at_quantile(0.90)),
            ms(h.value_at_quantile(0.99)),
            ms(h.value_at_quantile(0.999)),
            ms(h.max())
        )
    }
}

/// Print the machine-readable line (prefixed `RESULT `) and the human line.
pub fn emit(result: &Value, human: &str) {
    println!("RESULT {result}");
    println!("{human}");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_come_from_samples() {
        let mut l = Latency::default();
        for v in 1..=1000 {
            l.record(v);
        }
        let s = l.summary();
        assert_eq!(s["samples"], 1000);
        assert_eq!(s["max_us"], 1000);
        assert_eq!(s["p50_us"], 500);
    }
}
