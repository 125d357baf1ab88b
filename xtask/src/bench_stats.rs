//! Statistics and the result table of `cargo xtask bench`: medians over rounds, percentiles
//! over samples, ratios.

/// Median of `values` (mean of the two middle ones for an even count); NaN when empty.
pub fn median(values: &[f64]) -> f64 {
    let mut v: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    let mid = v.len() / 2;
    if v.len() % 2 == 1 {
        v[mid]
    } else {
        (v[mid - 1] + v[mid]) / 2.0
    }
}

/// `a` over `b`, for two series measured in the same interleaved rounds: the median of the
/// ratios round by round (each pair measured minutes apart at most, so a machine that slows down
/// between rounds moves both), or the ratio of the medians when the rounds do not pair up.
pub fn paired_ratio(a: &[f64], b: &[f64]) -> f64 {
    if a.len() == b.len() && !a.is_empty() {
        let each: Vec<f64> = a.iter().zip(b).map(|(x, y)| x / y).collect();
        median(&each)
    } else {
        median(a) / median(b)
    }
}

/// Nearest-rank percentile `p` (0..=100) of `samples`; NaN when empty.
pub fn percentile(samples: &[f64], p: f64) -> f64 {
    let mut v = samples.to_vec();
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    let rank = ((p / 100.0) * v.len() as f64).ceil() as usize;
    v[rank.clamp(1, v.len()) - 1]
}

/// One line of the comparison table.
#[derive(Debug, Clone)]
pub struct Row {
    /// What was measured, with its unit.
    pub metric: String,
    /// Without tollgate in the path (direct client, or programs detached).
    pub baseline: f64,
    /// With tollgate (intercepted client, or programs attached).
    pub tollgate: f64,
    /// Column labels of this row: (baseline, tollgate).
    pub labels: (&'static str, &'static str),
}

impl Row {
    /// `tollgate / baseline`.
    pub fn ratio(&self) -> f64 {
        self.tollgate / self.baseline
    }
}

/// The rows as an aligned text table.
pub fn render(rows: &[Row]) -> String {
    let width = rows
        .iter()
        .map(|r| r.metric.len())
        .max()
        .unwrap_or(6)
        .max(6);
    let mut out = format!(
        "{:<width$}  {:>22}  {:>22}  {:>7}\n",
        "metric", "baseline", "tollgate", "ratio"
    );
    for r in rows {
        let base = format!("{} {}", fmt_num(r.baseline), r.labels.0);
        let toll = format!("{} {}", fmt_num(r.tollgate), r.labels.1);
        out.push_str(&format!(
            "{:<width$}  {:>22}  {:>22}  {:>6.2}x\n",
            r.metric,
            base,
            toll,
            r.ratio()
        ));
    }
    out
}

/// Three significant-ish digits: 12345 → "12345", 12.345 → "12.3", 1.2345 → "1.23".
pub fn fmt_num(x: f64) -> String {
    if !x.is_finite() {
        "n/a".into()
    } else if x.abs() >= 100.0 {
        format!("{x:.0}")
    } else if x.abs() >= 10.0 {
        format!("{x:.1}")
    } else {
        format!("{x:.2}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paired_ratio_takes_the_median_round() {
        // Round 2 ran on a slower machine for both: its ratio is like the others.
        let a = [10.0, 5.0, 12.0];
        let b = [20.0, 10.0, 20.0];
        assert_eq!(paired_ratio(&a, &b), 0.5);
        // Rounds that do not pair up: ratio of the medians.
        assert_eq!(paired_ratio(&[10.0, 30.0, 20.0], &[40.0]), 0.5);
        assert!(paired_ratio(&[], &[1.0]).is_nan());
    }

    #[test]
    fn median_cases() {
        let cases: [(&[f64], f64); 4] = [
            (&[3.0, 1.0, 2.0], 2.0),
            (&[4.0, 1.0, 3.0, 2.0], 2.5),
            (&[7.0], 7.0),
            (&[f64::NAN, 5.0], 5.0),
        ];
        for (v, want) in cases {
            assert_eq!(median(v), want, "{v:?}");
        }
        assert!(median(&[]).is_nan());
    }

    #[test]
    fn percentile_cases() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        let cases = [
            (50.0, 50.0),
            (99.0, 99.0),
            (100.0, 100.0),
            (0.0, 1.0),
            (1.0, 1.0),
        ];
        for (p, want) in cases {
            assert_eq!(percentile(&v, p), want, "p{p}");
        }
        assert_eq!(percentile(&[5.0], 99.0), 5.0);
        assert!(percentile(&[], 50.0).is_nan());
    }

    #[test]
    fn fmt_num_cases() {
        let cases = [
            (12345.6, "12346"),
            (12.345, "12.3"),
            (1.2345, "1.23"),
            (f64::NAN, "n/a"),
        ];
        for (x, want) in cases {
            assert_eq!(fmt_num(x), want, "{x}");
        }
    }

    #[test]
    fn render_has_ratio() {
        let rows = [Row {
            metric: "throughput (MiB/s)".into(),
            baseline: 200.0,
            tollgate: 100.0,
            labels: ("direct", "proxied"),
        }];
        let text = render(&rows);
        assert!(text.contains("0.50x"), "{text}");
        assert!(text.contains("200 direct"), "{text}");
    }
}
