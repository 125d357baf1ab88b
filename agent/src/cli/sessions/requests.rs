//! The HTTP requests of a session: how the agent bounds them in a `Response::Session` and how
//! `sessions show` prints them.
use serde_json::Value;

use crate::{cli::output, store::RequestRow};

/// Field of a `Response::Session` session holding its HTTP requests (request rows in `seq`
/// order).
pub const REQUESTS: &str = "requests";
/// Field of a `Response::Session` session set to `true` when requests were left out.
pub const REQUESTS_OMITTED: &str = "requests_omitted";
/// Most requests in a `Response::Session`.
pub const MAX_SESSION_REQUESTS: u32 = 10_000;
/// Most bytes of request paths and recorded bodies in a `Response::Session`: keeps the answer
/// well below the admin socket's line limit, JSON escapes included.
pub const MAX_SESSION_REQUEST_TEXT: usize = 8 * 1024 * 1024;

/// Columns of the requests of `sessions show`.
const COLUMNS: [&str; 9] = [
    "SEQ", "STARTED", "MS", "METHOD", "STATUS", "DECISION", "RULE", "UP", "DOWN",
];
/// Characters of a path (and error, body) on its line.
const TEXT_CHARS: usize = 200;
/// Characters of the recorded headers on their line (`--json` has them whole).
const HEADER_CHARS: usize = 1000;
/// Indentation of the lines under a request's row.
const INDENT: &str = "     ";

/// `session` plus, unless there are none, the first of `requests` (in `seq` order) within
/// [`MAX_SESSION_REQUESTS`] and [`MAX_SESSION_REQUEST_TEXT`] under [`REQUESTS`], with
/// [`REQUESTS_OMITTED`] set when some did not fit.
pub fn with_requests(
    mut session: Value,
    mut requests: Vec<RequestRow>,
) -> Result<Value, serde_json::Error> {
    let mut text = 0;
    let fits = requests
        .iter()
        .take(MAX_SESSION_REQUESTS as usize)
        .take_while(|r| {
            text += r.path.len() + r.host.len() + r.body.as_ref().map_or(0, String::len);
            text += r
                .headers
                .iter()
                .flatten()
                .map(|(n, v)| n.len() + v.len())
                .sum::<usize>();
            text <= MAX_SESSION_REQUEST_TEXT
        })
        .count();
    let omitted = requests.len() > fits;
    requests.truncate(fits);
    if let Some(obj) = session.as_object_mut() {
        if !requests.is_empty() {
            obj.insert(REQUESTS.into(), serde_json::to_value(requests)?);
        }
        if omitted {
            obj.insert(REQUESTS_OMITTED.into(), true.into());
        }
    }
    Ok(session)
}

/// Requests as a table, each row followed by `host path?names`, masked counts, error, the
/// recorded headers and body on indented lines.
pub fn table(rows: &[RequestRow]) -> String {
    let dash = |o: Option<String>| o.unwrap_or_else(|| "-".to_owned());
    let cells: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            vec![
                r.seq.to_string(),
                r.started_at.clone(),
                dash(r.duration_ms.map(|ms| ms.to_string())),
                output::printable(&r.method),
                dash(r.status.map(|s| s.to_string())),
                output::printable(&r.decision),
                output::printable(&r.rule),
                r.bytes_up.to_string(),
                r.bytes_down.to_string(),
            ]
        })
        .collect();
    let table = output::table(&COLUMNS, &cells);
    let mut lines = table.lines();
    let mut out = format!("requests: {}\n", rows.len());
    if let Some(header) = lines.next() {
        out.push_str(header);
        out.push('\n');
    }
    for (row, line) in rows.iter().zip(lines) {
        out.push_str(line);
        out.push('\n');
        let mut under = |label: &str, text: &str, chars: usize| {
            out.push_str(INDENT);
            out.push_str(label);
            out.push_str(&output::one_line(text, chars));
            out.push('\n');
        };
        let query = if row.query.is_empty() {
            String::new()
        } else {
            format!("?{}", row.query.join("&"))
        };
        under("", &format!("{}{}{query}", row.host, row.path), TEXT_CHARS);
        if let Some(masked) = &row.masked {
            under("masked: ", &masked_counts(masked), TEXT_CHARS);
        }
        if let Some(error) = &row.error {
            under("error: ", error, TEXT_CHARS);
        }
        if let Some(headers) = row.headers.as_ref().filter(|h| !h.is_empty()) {
            let text: Vec<String> = headers.iter().map(|(n, v)| format!("{n}: {v}")).collect();
            under("headers: ", &text.join("; "), HEADER_CHARS);
        }
        if let Some(body) = &row.body {
            under("body: ", body, TEXT_CHARS);
        }
    }
    out
}

/// `{"by_column": {"ssn": 2}, "by_detector": {"card": 1}}` as `ssn=2 card=1`; anything else as
/// JSON.
fn masked_counts(masked: &Value) -> String {
    let Some(obj) = masked.as_object() else {
        return masked.to_string();
    };
    let mut parts = Vec::new();
    for (k, v) in obj {
        match v.as_object() {
            Some(inner) => parts.extend(inner.iter().map(|(k, v)| format!("{k}={v}"))),
            None => parts.push(format!("{k}={v}")),
        }
    }
    parts.join(" ")
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn row(seq: u32) -> RequestRow {
        RequestRow {
            seq,
            started_at: "2024-05-01T12:00:00.000001Z".into(),
            duration_ms: Some(1.5),
            method: "GET".into(),
            host: "vault.internal".into(),
            path: "/v1/secret/data/etl".into(),
            query: vec!["version".into()],
            status: Some(200),
            bytes_up: 0,
            bytes_down: 120,
            decision: "allow".into(),
            rule: "etl-reads".into(),
            masked: Some(json!({"by_column": {"ssn": 2}, "by_detector": {"card": 1}})),
            error: None,
            body: None,
            headers: Some(vec![("host".into(), "vault.internal".into())]),
        }
    }

    #[test]
    fn table_shows_each_request_with_its_details() {
        let denied = RequestRow {
            method: "DELETE".into(),
            path: "/v1/sys/seal".into(),
            query: vec![],
            status: Some(403),
            duration_ms: None,
            decision: "deny".into(),
            rule: "no-sys".into(),
            masked: None,
            error: Some("denied by rule no-sys".into()),
            body: Some("{\"a\":\n1}".into()),
            headers: Some(vec![
                ("host".into(), "vault.internal".into()),
                ("x-vault-token".into(), "[redacted]".into()),
            ]),
            ..row(2)
        };
        let text = table(&[row(1), denied]);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "requests: 2");
        let words = |l: &str| l.split_whitespace().map(str::to_owned).collect::<Vec<_>>();
        assert_eq!(
            words(lines[1]),
            [
                "SEQ", "STARTED", "MS", "METHOD", "STATUS", "DECISION", "RULE", "UP", "DOWN"
            ]
        );
        assert_eq!(
            words(lines[2]),
            [
                "1",
                "2024-05-01T12:00:00.000001Z",
                "1.5",
                "GET",
                "200",
                "allow",
                "etl-reads",
                "0",
                "120"
            ]
        );
        assert_eq!(lines[3].trim(), "vault.internal/v1/secret/data/etl?version");
        assert_eq!(lines[4].trim(), "masked: ssn=2 card=1");
        assert_eq!(lines[5].trim(), "headers: host: vault.internal");
        assert_eq!(words(lines[6])[2..5], ["-", "DELETE", "403"]);
        assert_eq!(lines[7].trim(), "vault.internal/v1/sys/seal");
        assert_eq!(lines[8].trim(), "error: denied by rule no-sys");
        assert_eq!(
            lines[9].trim(),
            "headers: host: vault.internal; x-vault-token: [redacted]"
        );
        assert!(lines[10].trim().starts_with("body: "), "{}", lines[10]);
        assert_eq!(lines.len(), 11, "{text}");
    }

    #[test]
    fn with_requests_bounds_the_answer() {
        let s = with_requests(json!({"id": "x"}), vec![]).unwrap();
        assert_eq!(s, json!({"id": "x"}));
        let s = with_requests(json!({"id": "x"}), vec![row(1), row(2)]).unwrap();
        assert_eq!(s[REQUESTS].as_array().unwrap().len(), 2);
        assert!(s.get(REQUESTS_OMITTED).is_none());
        let big = RequestRow {
            body: Some("b".repeat(MAX_SESSION_REQUEST_TEXT)),
            ..row(2)
        };
        let s = with_requests(json!({"id": "x"}), vec![row(1), big, row(3)]).unwrap();
        assert_eq!(s[REQUESTS].as_array().unwrap().len(), 1);
        assert_eq!(s[REQUESTS_OMITTED], json!(true));
    }
}
