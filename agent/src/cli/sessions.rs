//! `tollgate sessions list|show`: the audit log, read through the agent.
use std::time::SystemTime;

use serde_json::Value;

use crate::{
    admin::{
        self, Request, Response, SessionQuery,
        protocol::{TimeError, parse_time},
    },
    cli::{EXIT_FAILURE, EXIT_NO_AGENT, EXIT_OK, ListArgs, output},
    config::Config,
};

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

/// `sessions show ID`: the session's fields, or a JSON object with `--json`.
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

/// One session as aligned `field: value` lines, known fields first.
pub fn details(session: &Value) -> String {
    let Some(obj) = session.as_object() else {
        return format!("{session}\n");
    };
    let mut keys: Vec<&str> = SHOW_ORDER
        .iter()
        .copied()
        .filter(|k| obj.contains_key(*k))
        .collect();
    let mut rest: Vec<&str> = obj
        .keys()
        .map(String::as_str)
        .filter(|k| !SHOW_ORDER.contains(k))
        .collect();
    rest.sort_unstable();
    keys.extend(rest);
    let pairs: Vec<(&str, String)> = keys
        .iter()
        .map(|k| (*k, output::cell(obj.get(*k))))
        .collect();
    output::fields(&pairs)
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
