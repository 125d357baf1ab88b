//! Plain aligned text for humans, and writing to stdout.
use std::io::{self, Write};

use serde_json::Value;

/// Writes `text` to stdout. A closed pipe (`tollgate sessions list | head`) is not an error.
pub fn emit(text: &str) -> io::Result<()> {
    let mut out = io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => Ok(()),
        other => other,
    }
}

/// [`emit`], reporting a failure on stderr as `tollgate <what>: …`; returns the exit code.
pub fn emit_or_fail(what: &str, text: &str, code: i32) -> i32 {
    match emit(text) {
        Ok(()) => code,
        Err(e) => {
            eprintln!("tollgate {what}: cannot write output: {e}");
            super::EXIT_FAILURE
        }
    }
}

/// An error and its causes on one line, `outer: cause: cause`. A cause whose text the line
/// already holds is skipped: many errors quote their source in their own message and also name
/// it as their source, which `{:#}` would print twice.
pub fn error_chain(e: &anyhow::Error) -> String {
    let mut out = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if out.contains(&text) {
            continue;
        }
        if !out.is_empty() {
            out.push_str(": ");
        }
        out.push_str(&text);
    }
    out
}

/// A JSON value as a table cell: strings bare (on one line, see [`printable`]), `null` or
/// missing as `-`, the rest as JSON.
pub fn cell(value: Option<&Value>) -> String {
    match value {
        None | Some(Value::Null) => "-".to_owned(),
        Some(Value::String(s)) if s.is_empty() => "-".to_owned(),
        Some(Value::String(s)) => printable(s),
        Some(v) => v.to_string(),
    }
}

/// `text` safe for a terminal, on one line: `\n`, `\r` and `\t` become spaces, other control
/// characters (an escape sequence in a recorded statement or path) are shown escaped.
pub fn printable(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '\n' | '\r' | '\t' => out.push(' '),
            c if c.is_control() => out.extend(c.escape_default()),
            c => out.push(c),
        }
    }
    out
}

/// `text` as one [`printable`] line of at most `max` characters: runs of whitespace become one
/// space, and a longer text is cut and ends with `…` (`max` counts it; at least 1).
pub fn one_line(text: &str, max: usize) -> String {
    let line = printable(&text.split_whitespace().collect::<Vec<_>>().join(" "));
    if line.chars().count() <= max {
        return line;
    }
    let mut cut: String = line.chars().take(max.saturating_sub(1)).collect();
    cut.push('…');
    cut
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
    let width = pairs
        .iter()
        .map(|(k, _)| k.chars().count())
        .max()
        .unwrap_or(0);
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
            (Some(json!("a\r\nb")), "a  b"),
            (Some(json!("\u{1b}[31mred\u{7}")), "\\u{1b}[31mred\\u{7}"),
            (Some(json!("ümlaut")), "ümlaut"),
            (Some(json!(42)), "42"),
            (Some(json!(true)), "true"),
            (Some(json!(["x", 1])), r#"["x",1]"#),
        ];
        for (v, want) in cases {
            assert_eq!(cell(v.as_ref()), want, "{v:?}");
        }
    }

    #[test]
    fn one_line_cases() {
        // (text, max, want)
        let cases = [
            ("select 1", 200, "select 1"),
            (
                "  select\n  *\tfrom t\r\n where x = ?  ",
                200,
                "select * from t where x = ?",
            ),
            ("select 12345", 8, "select …"),
            ("select 1", 8, "select 1"),
            ("日本語のテキスト", 4, "日本語…"),
            ("a\u{1b}b", 200, "a\\u{1b}b"),
            ("", 10, ""),
        ];
        for (text, max, want) in cases {
            assert_eq!(one_line(text, max), want, "{text:?} / {max}");
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
