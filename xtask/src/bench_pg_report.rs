//! The tables `cargo xtask bench postgres` prints: a title, column labels, and rows of a label
//! and one cell per column, right-aligned.

/// One table.
#[derive(Debug, Clone, Default)]
pub struct Table {
    /// Printed above it.
    pub title: String,
    /// Column labels (after the row label column).
    pub columns: Vec<String>,
    /// (row label, cells).
    pub rows: Vec<(String, Vec<String>)>,
}

impl Table {
    /// An empty table with `columns`.
    pub fn new(title: impl Into<String>, columns: &[&str]) -> Table {
        Table {
            title: title.into(),
            columns: columns.iter().map(|c| (*c).to_owned()).collect(),
            rows: Vec::new(),
        }
    }

    /// Adds a row.
    pub fn row(&mut self, label: impl Into<String>, cells: Vec<String>) {
        self.rows.push((label.into(), cells));
    }

    /// The table as aligned text.
    pub fn render(&self) -> String {
        let label_width = self
            .rows
            .iter()
            .map(|(l, _)| l.chars().count())
            .max()
            .unwrap_or(0);
        let width = |i: usize| {
            self.rows
                .iter()
                .filter_map(|(_, c)| c.get(i))
                .chain(self.columns.get(i))
                .map(|s| s.chars().count())
                .max()
                .unwrap_or(0)
                .max(9)
        };
        let widths: Vec<usize> = (0..self.columns.len()).map(width).collect();
        let line = |label: &str, cells: &[String]| {
            let mut s = format!("  {label:<label_width$}");
            for (i, w) in widths.iter().enumerate() {
                let cell = cells.get(i).map_or("", String::as_str);
                s.push_str(&format!("  {cell:>w$}"));
            }
            s.trim_end().to_owned() + "\n"
        };
        let mut out = format!("{}\n", self.title);
        out.push_str(&line("", &self.columns));
        for (label, cells) in &self.rows {
            out.push_str(&line(label, cells));
        }
        out
    }
}

/// `x` as a ratio: `0.53x`; `n/a` when not finite.
pub fn ratio(x: f64) -> String {
    if x.is_finite() {
        format!("{x:.2}x")
    } else {
        "n/a".into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn render_aligns_columns() {
        let mut t = Table::new("TPS", &["direct", "tollgate"]);
        t.row("simple", vec!["21508".into(), "9000".into()]);
        t.row("extended ratio", vec!["1.00x".into(), "0.42x".into()]);
        let text = t.render();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "TPS");
        assert_eq!(lines.len(), 4, "{text}");
        // Every cell line ends at the same column.
        let ends: Vec<usize> = lines[1..].iter().map(|l| l.len()).collect();
        assert!(ends.iter().all(|&e| e == ends[0]), "{text}");
        assert!(lines[2].starts_with("  simple  "), "{text}");
        assert!(lines[3].ends_with("0.42x"), "{text}");
    }

    #[test]
    fn ratio_cases() {
        assert_eq!(ratio(0.5), "0.50x");
        assert_eq!(ratio(f64::NAN), "n/a");
        assert_eq!(ratio(f64::INFINITY), "n/a");
    }
}
