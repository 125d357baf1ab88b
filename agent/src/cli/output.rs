//! Plain aligned text for humans.
use serde_json::Value;

/// A JSON value as a table cell: strings bare, `null` or missing as `-`, the rest as JSON.
pub fn cell(value: Option<&Value>) -> String {
    match value {
        None | Some(Value::Null) => "-".to_owned(),
        Some(Value::String(s)) if s.is_empty() => "-".to_owned(),
        Some(Value::String(s)) => s.replace(['\n', '\t'], " "),
        Some(v) => v.to_string(),
    }
}

/// Columns separated by two spaces, each as wide as its widest cell (the last one unpadded).
pub fn table(headers: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (w, c) in widths.iter_mut().zip(row) {
            *w = (*w).max(c.chars().count());
        }
    }
    let mut out = String::new();
    let header: Vec<String> = headers.iter().map(|h| (*h).to_owned()).collect();
    for row in std::iter::once(&header).chain(rows) {
        let last = row.len().min(widths.len()).saturating_sub(1);
        for (i, (c, w)) in row.iter().zip(&widths).enumerate() {
            if i == last {
                out.push_str(c);
            } else {
                out.push_str(c);
                out.push_str(&" ".repeat(w - c.chars().count() + 2));
            }
        }
        out.push('\n');
    }
    out
}

/// `key: value` lines with the values aligned.
pub fn fields(pairs: &[(&str, String)]) -> String {
    let width = pairs.iter().map(|(k, _)| k.chars().count()).max().unwrap_or(0);
    pairs
        .iter()
        .map(|(k, v)| {
            let pad = " ".repeat(width - k.chars().count());
            format!("{k}:{pad} {v}\n")
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn cells() {
        let cases = [
            (None, "-"),
            (Some(json!(null)), "-"),
            (Some(json!("")), "-"),
            (Some(json!("a\tb\nc")), "a b c"),
            (Some(json!(42)), "42"),
            (Some(json!(true)), "true"),
            (Some(json!(["x", 1])), r#"["x",1]"#),
        ];
        for (v, want) in cases {
            assert_eq!(cell(v.as_ref()), want, "{v:?}");
        }
    }

    #[test]
    fn table_aligns_columns() {
        let rows = vec![
            vec!["s1".to_owned(), "billing".to_owned(), "10".to_owned()],
            vec!["session-2".to_owned(), "ci".to_owned(), "7".to_owned()],
        ];
        assert_eq!(
            table(&["ID", "WORKLOAD", "UP"], &rows),
            "ID         WORKLOAD  UP\n\
             s1         billing   10\n\
             session-2  ci        7\n"
        );
        assert_eq!(table(&["ID"], &[]), "ID\n");
    }

    #[test]
    fn fields_align_values() {
        assert_eq!(
            fields(&[("ready", "yes".into()), ("fail mode", "closed".into())]),
            "ready:     yes\nfail mode: closed\n"
        );
        assert_eq!(fields(&[]), "");
    }
}
