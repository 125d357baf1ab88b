//! `tollgate sessions list|show`: the audit log, read through the agent.
pub mod requests;

use std::time::SystemTime;

use serde_json::Value;

use crate::{
    admin::{
        self, Request, Response, SessionQuery,
        protocol::{STATEMENTS, STATEMENTS_OMITTED, TimeError, parse_time},
    },
    cli::{EXIT_FAILURE, EXIT_NO_AGENT, EXIT_OK, ListArgs, output},
    config::Config,
    store::{RequestRow, StatementRow},
};

use requests::{REQUESTS, REQUESTS_OMITTED};

/// Columns of `sessions list`: header and session field.
const COLUMNS: [(&str, &str); 10] = [
    ("STARTED", "started_at"),
    ("ID", "id"),
    ("WORKLOAD", "workload"),
    ("DST", "dst"),
    ("TARGET", "target"),
    ("PROTO", "protocol"),
    ("DECISION", "decision"),
    ("RULE", "rule"),
    ("UP", "bytes_up"),
    ("DOWN", "bytes_down"),
];

/// Field order of `sessions show`; fields not listed follow in name order.
const SHOW_ORDER: [&str; 21] = [
    "id",
    "workload",
    "spiffe_id",
    "pid",
    "uid",
    "gid",
    "exe",
    "cgroup",
    "systemd_unit",
    "dst",
    "target",
    "protocol",
    "decision",
    "rule",
    "policy_generation",
    "bytes_up",
    "bytes_down",
    "started_at",
    "ended_at",
    "duration_ms",
    "end_reason",
];

/// `sessions list`: a table, or one JSON object per line with `--json`.
pub async fn list(config: &Config, args: &ListArgs, json: bool) -> i32 {
    let filter = match query(args, SystemTime::now()) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("tollgate sessions list: {e}");
            return EXIT_FAILURE;
        }
    };
    let sessions = match ask(config, Request::Sessions { filter }, "list").await {
        Ok(Response::Sessions { sessions }) => sessions,
        Ok(other) => return unexpected("list", &other),
        Err(code) => return code,
    };
    let text = if json {
        sessions.iter().map(|s| format!("{s}\n")).collect()
    } else if sessions.is_empty() {
        "no sessions\n".to_owned()
    } else {
        table(&sessions)
    };
    output::emit_or_fail("sessions list", &text, EXIT_OK)
}

/// Columns of the statements of `sessions show`.
const STATEMENT_COLUMNS: [&str; 7] = [
    "SEQ", "STARTED", "MS", "DECISION", "RULE", "CLASSES", "ROWS",
];

/// Characters of a statement's text (and error) on its line in `sessions show`.
const TEXT_CHARS: usize = 200;

/// Indentation of the lines under a statement's row.
const INDENT: &str = "     ";

/// `sessions show ID`: the session's fields then its statements, or a JSON object with `--json`
/// (statements in full).
pub async fn show(config: &Config, id: &str, json: bool) -> i32 {
    let req = Request::Session { id: id.to_owned() };
    let session = match ask(config, req, "show").await {
        Ok(Response::Session { session: Some(s) }) => s,
        Ok(Response::Session { session: None }) => {
            eprintln!("tollgate sessions show: no session {id}");
            return EXIT_FAILURE;
        }
        Ok(other) => return unexpected("show", &other),
        Err(code) => return code,
    };
    let text = if json {
        format!("{session}\n")
    } else {
        details(&session)
    };
    output::emit_or_fail("sessions show", &text, EXIT_OK)
}

/// The filter to send: times are checked here and sent as absolute RFC 3339 times.
pub fn query(args: &ListArgs, now: SystemTime) -> Result<SessionQuery, TimeError> {
    let absolute = |t: &Option<String>| {
        t.as_deref()
            .map(|t| parse_time(t, now).map(|t| humantime::format_rfc3339(t).to_string()))
            .transpose()
    };
    Ok(SessionQuery {
        workload: args.workload.clone(),
        since: absolute(&args.since)?,
        until: absolute(&args.until)?,
        limit: args.limit,
    })
}

/// Calls the agent; failures are reported on stderr and become the exit code.
async fn ask(config: &Config, req: Request, what: &str) -> Result<Response, i32> {
    match admin::call(&config.admin_socket(), &req).await {
        Ok(Response::Error { message }) => {
            eprintln!("tollgate sessions {what}: {message}");
            Err(EXIT_FAILURE)
        }
        Ok(r) => Ok(r),
        Err(e) => {
            eprintln!("tollgate sessions {what}: {e}");
            Err(EXIT_NO_AGENT)
        }
    }
}

fn unexpected(what: &str, resp: &Response) -> i32 {
    eprintln!("tollgate sessions {what}: unexpected answer from the agent: {resp:?}");
    EXIT_FAILURE
}

/// Sessions as an aligned table.
pub fn table(sessions: &[Value]) -> String {
    let headers: Vec<&str> = COLUMNS.iter().map(|(h, _)| *h).collect();
    let rows: Vec<Vec<String>> = sessions
        .iter()
        .map(|s| {
            COLUMNS
                .iter()
                .map(|(_, f)| output::cell(s.get(f)))
                .collect()
        })
        .collect();
    output::table(&headers, &rows)
}

/// One session as aligned `field: value` lines, known fields first, then its statements.
pub fn details(session: &Value) -> String {
    let Some(obj) = session.as_object() else {
        return format!("{session}\n");
    };
    let mut out = fields(obj);
    let list = match obj.get(STATEMENTS) {
        None | Some(Value::Null) => None,
        Some(Value::Array(a)) if a.is_empty() => None,
        Some(list) => Some(list),
    };
    let omitted = obj.get(STATEMENTS_OMITTED) == Some(&Value::Bool(true));
    if list.is_some() || omitted {
        out.push('\n');
    }
    if let Some(list) = list {
        match serde_json::from_value::<Vec<StatementRow>>(list.clone()) {
            Ok(rows) => out.push_str(&statements(&rows)),
            // A newer agent's rows: shown as they came rather than not at all.
            Err(_) => out.push_str(&format!("statements: {}\n", output::cell(Some(list)))),
        }
    }
    if omitted {
        out.push_str("… later statements not sent by the agent\n");
    }
    out.push_str(&requests_section(obj));
    out
}

/// The HTTP requests of a session (none for other protocols), after a blank line.
fn requests_section(obj: &serde_json::Map<String, Value>) -> String {
    let list = match obj.get(REQUESTS) {
        None | Some(Value::Null) => None,
        Some(Value::Array(a)) if a.is_empty() => None,
        Some(list) => Some(list),
    };
    let omitted = obj.get(REQUESTS_OMITTED) == Some(&Value::Bool(true));
    let mut out = String::new();
    if list.is_some() || omitted {
        out.push('\n');
    }
    if let Some(list) = list {
        match serde_json::from_value::<Vec<RequestRow>>(list.clone()) {
            Ok(rows) => out.push_str(&requests::table(&rows)),
            Err(_) => out.push_str(&format!("requests: {}\n", output::cell(Some(list)))),
        }
    }
    if omitted {
        out.push_str("… later requests not sent by the agent\n");
    }
    out
}

/// The session's own fields as `field: value` lines.
fn fields(obj: &serde_json::Map<String, Value>) -> String {
    let shown =
        |k: &str| ![STATEMENTS, STATEMENTS_OMITTED, REQUESTS, REQUESTS_OMITTED].contains(&k);
    let mut keys: Vec<&str> = SHOW_ORDER
        .iter()
        .copied()
        .filter(|k| obj.contains_key(*k))
        .collect();
    let mut rest: Vec<&str> = obj
        .keys()
        .map(String::as_str)
        .filter(|k| !SHOW_ORDER.contains(k) && shown(k))
        .collect();
    rest.sort_unstable();
    keys.extend(rest);
    let pairs: Vec<(&str, String)> = keys
        .iter()
        .map(|k| (*k, output::cell(obj.get(*k))))
        .collect();
    output::fields(&pairs)
}

/// Statements as a table, each row followed by its text, tables, masked counts and error on
/// indented lines of at most [`TEXT_CHARS`] characters.
pub fn statements(rows: &[StatementRow]) -> String {
    let dash = |s: String| if s.is_empty() { "-".to_owned() } else { s };
    let cells: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            vec![
                r.seq.to_string(),
                r.started_at.clone(),
                r.duration_ms
                    .map_or_else(|| "-".to_owned(), |ms| ms.to_string()),
                output::printable(&r.decision),
                output::printable(&r.rule),
                dash(output::printable(&r.classes.join(","))),
                r.rows.map_or_else(|| "-".to_owned(), |n| n.to_string()),
            ]
        })
        .collect();
    let table = output::table(&STATEMENT_COLUMNS, &cells);
    let mut lines = table.lines();
    let mut out = format!("statements: {}\n", rows.len());
    if let Some(header) = lines.next() {
        out.push_str(header);
        out.push('\n');
    }
    for (row, line) in rows.iter().zip(lines) {
        out.push_str(line);
        out.push('\n');
        let mut under = |label: &str, text: &str| {
            out.push_str(INDENT);
            out.push_str(label);
            out.push_str(&output::one_line(text, TEXT_CHARS));
            out.push('\n');
        };
        under("", &row.text);
        if !row.tables.is_empty() {
            under("tables: ", &row.tables.join(", "));
        }
        if let Some(masked) = &row.masked {
            under("masked: ", &masked_counts(masked));
        }
        if let Some(error) = &row.error {
            under("error: ", error);
        }
    }
    out
}

/// `{"card": 2, "email": 1}` as `card=2 email=1`; anything else as JSON.
fn masked_counts(masked: &Value) -> String {
    match masked.as_object() {
        Some(obj) => obj
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(" "),
        None => masked.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use serde_json::json;

    use super::*;

    fn session() -> Value {
        json!({
            "zeta": 1,
            "id": "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b",
            "workload": "billing",
            "spiffe_id": "spiffe://example.org/billing",
            "pid": 4242,
            "dst": "10.0.0.5:5432",
            "target": "db",
            "protocol": "tcp",
            "decision": "allow",
            "rule": "billing-db",
            "bytes_up": 120,
            "bytes_down": null,
            "started_at": "2024-05-01T12:00:00.000001Z",
            "alpha": "x"
        })
    }

    #[test]
    fn list_table_has_the_columns_and_dashes_for_missing_values() {
        let text = table(&[session(), json!({"id": "s2", "dst": "1.2.3.4:80"})]);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3);
        let cols: Vec<&str> = lines[0].split_whitespace().collect();
        assert_eq!(
            cols,
            [
                "STARTED", "ID", "WORKLOAD", "DST", "TARGET", "PROTO", "DECISION", "RULE", "UP",
                "DOWN"
            ]
        );
        let first: Vec<&str> = lines[1].split_whitespace().collect();
        assert_eq!(
            first,
            [
                "2024-05-01T12:00:00.000001Z",
                "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b",
                "billing",
                "10.0.0.5:5432",
                "db",
                "tcp",
                "allow",
                "billing-db",
                "120",
                "-"
            ]
        );
        let second: Vec<&str> = lines[2].split_whitespace().collect();
        assert_eq!(
            second,
            ["-", "s2", "-", "1.2.3.4:80", "-", "-", "-", "-", "-", "-"]
        );
        // Columns line up: DST starts at the same offset on every line.
        let at = |l: &str, s: &str| l.find(s).unwrap();
        assert_eq!(at(lines[0], "DST"), at(lines[1], "10.0.0.5"));
        assert_eq!(at(lines[0], "DST"), at(lines[2], "1.2.3.4"));
    }

    #[test]
    fn show_lists_known_fields_first_then_the_rest_by_name() {
        let text = details(&session());
        let keys: Vec<&str> = text.lines().map(|l| l.split(':').next().unwrap()).collect();
        assert_eq!(
            keys,
            [
                "id",
                "workload",
                "spiffe_id",
                "pid",
                "dst",
                "target",
                "protocol",
                "decision",
                "rule",
                "bytes_up",
                "bytes_down",
                "started_at",
                "alpha",
                "zeta"
            ]
        );
        assert!(text.contains("bytes_down: -\n"), "{text}");
        assert!(
            text.contains("spiffe_id:  spiffe://example.org/billing\n"),
            "{text}"
        );
    }

    fn with_statements() -> Value {
        let mut s = session();
        let long = format!("insert into audit_log values ({})", "?, ".repeat(100));
        s["protocol"] = json!("postgres");
        s[STATEMENTS] = json!([
            {
                "seq": 1, "started_at": "2024-05-01T12:00:00.100000Z", "duration_ms": 1.25,
                "text": "SELECT *\n  FROM orders\tWHERE id = $1", "classes": ["select"],
                "tables": ["public.orders"], "decision": "allow", "rule": "etl-reads-orders",
                "rows": 3, "error": null, "masked": {"card_number": 3, "email": 1}
            },
            {
                "seq": 2, "started_at": "2024-05-01T12:00:01.000000Z", "duration_ms": null,
                "text": "DELETE FROM orders", "classes": ["delete"], "tables": [],
                "decision": "deny", "rule": "default-deny", "rows": null,
                "error": "permission denied: rule default-deny\u{1b}[2J", "masked": null
            },
            {
                "seq": 10, "started_at": "2024-05-01T12:00:02.000000Z", "duration_ms": 1500.0,
                "text": long, "classes": ["insert", "select"], "tables": ["audit_log"],
                "decision": "allow", "rule": "etl-writes-log", "rows": 100, "error": null,
                "masked": null
            }
        ]);
        s
    }

    #[test]
    fn show_lists_statements_in_order_after_the_session_fields() {
        let text = details(&with_statements());
        let (fields, statements) = text.split_once("\n\n").expect("a blank line between");
        let last = fields.lines().last().expect("fields");
        assert_eq!(last.split_whitespace().collect::<Vec<_>>(), ["zeta:", "1"]);
        assert!(!fields.contains("statements"), "{fields}");
        let lines: Vec<&str> = statements.lines().collect();
        let want: &[&[&str]] = &[
            &["statements:", "3"],
            &[
                "SEQ", "STARTED", "MS", "DECISION", "RULE", "CLASSES", "ROWS",
            ],
            &[
                "1",
                "2024-05-01T12:00:00.100000Z",
                "1.25",
                "allow",
                "etl-reads-orders",
                "select",
                "3",
            ],
            &["SELECT", "*", "FROM", "orders", "WHERE", "id", "=", "$1"],
            &["tables:", "public.orders"],
            &["masked:", "card_number=3", "email=1"],
            &[
                "2",
                "2024-05-01T12:00:01.000000Z",
                "-",
                "deny",
                "default-deny",
                "delete",
                "-",
            ],
            &["DELETE", "FROM", "orders"],
            &[
                "error:",
                "permission",
                "denied:",
                "rule",
                "default-deny\\u{1b}[2J",
            ],
            &[
                "10",
                "2024-05-01T12:00:02.000000Z",
                "1500",
                "allow",
                "etl-writes-log",
                "insert,select",
                "100",
            ],
        ];
        assert!(lines.len() > want.len(), "{statements}");
        for (line, want) in lines.iter().zip(want) {
            let words: Vec<&str> = line.split_whitespace().collect();
            assert_eq!(words, *want, "{statements}");
        }
        // The text of a statement sits under its row, indented, on one line.
        assert_eq!(lines[3], "     SELECT * FROM orders WHERE id = $1");
        let long = lines[10].trim_start();
        assert!(
            long.starts_with("insert into audit_log values (?, ?, "),
            "{long}"
        );
        assert!(long.ends_with('…'), "{long}");
        assert_eq!(long.chars().count(), TEXT_CHARS);
        assert_eq!(lines[11], "     tables: audit_log");
        assert_eq!(lines.len(), 12, "{statements}");
        // Rows line up under the header.
        let at = |l: &str, s: &str| l.find(s).unwrap();
        assert_eq!(at(lines[1], "RULE"), at(lines[2], "etl-reads-orders"));
        assert_eq!(at(lines[1], "RULE"), at(lines[9], "etl-writes-log"));
    }

    #[test]
    fn show_says_when_statements_were_left_out() {
        let mut s = with_statements();
        s[STATEMENTS_OMITTED] = json!(true);
        let text = details(&s);
        assert!(
            text.ends_with("… later statements not sent by the agent\n"),
            "{text}"
        );
        assert!(!text.contains("statements_omitted"), "{text}");
        let mut s = session();
        s[STATEMENTS_OMITTED] = json!(true);
        assert!(
            details(&s).ends_with("zeta:       1\n\n… later statements not sent by the agent\n"),
            "{}",
            details(&s)
        );
    }

    #[test]
    fn show_without_statements_has_no_statement_section() {
        for statements in [None, Some(json!([])), Some(json!(null))] {
            let mut s = session();
            if let Some(v) = statements {
                s[STATEMENTS] = v;
            }
            let text = details(&s);
            assert!(!text.contains("statements"), "{text}");
            assert!(!text.contains("\n\n"), "{text}");
        }
        // Rows this CLI cannot read are still shown, raw.
        let mut s = session();
        s[STATEMENTS] = json!([{"seq": 1, "novel": true}]);
        let text = details(&s);
        assert!(
            text.ends_with("\nstatements: [{\"novel\":true,\"seq\":1}]\n"),
            "{text}"
        );
    }

    #[test]
    fn show_lists_http_requests_after_the_session_fields() {
        let mut s = session();
        s[REQUESTS] = json!([{
            "seq": 1, "started_at": "2024-05-01T12:00:00.000001Z", "duration_ms": 2.0,
            "method": "GET", "host": "api.example", "path": "/v1/x", "query": ["a"],
            "status": 403, "bytes_up": 0, "bytes_down": 60, "decision": "deny",
            "rule": "no-x", "masked": null, "error": "denied by rule no-x", "body": null
        }]);
        s[REQUESTS_OMITTED] = json!(true);
        let text = details(&s);
        let (fields, requests) = text.split_once("\n\n").expect("a blank line between");
        assert!(!fields.contains("requests"), "{fields}");
        let lines: Vec<&str> = requests.lines().collect();
        assert_eq!(lines[0], "requests: 1");
        assert!(
            lines[2].split_whitespace().any(|w| w == "no-x"),
            "{requests}"
        );
        assert_eq!(lines[3].trim(), "api.example/v1/x?a");
        assert_eq!(lines[4].trim(), "error: denied by rule no-x");
        assert_eq!(lines[5], "… later requests not sent by the agent");
        // Without requests there is no section.
        assert!(!details(&session()).contains("requests"));
    }

    #[test]
    fn query_resolves_times_to_rfc3339() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let args = |since: Option<&str>, until: Option<&str>| ListArgs {
            workload: Some("w".into()),
            since: since.map(Into::into),
            until: until.map(Into::into),
            limit: Some(10),
        };
        let q = query(&args(Some("1h"), Some("2023-11-14T22:00:00Z")), now).unwrap();
        assert_eq!(q.workload.as_deref(), Some("w"));
        assert_eq!(q.limit, Some(10));
        assert_eq!(q.since.as_deref(), Some("2023-11-14T21:13:20Z"));
        assert_eq!(q.until.as_deref(), Some("2023-11-14T22:00:00Z"));
        // What is sent parses back to the same instant on the agent's side.
        assert_eq!(
            q.since_time(now).unwrap(),
            Some(now - Duration::from_secs(3600))
        );
        let none = query(&args(None, None), now).unwrap();
        assert_eq!((none.since, none.until), (None, None));
        assert!(query(&args(Some("last week"), None), now).is_err());
    }
}
