//! Root suite: PostgreSQL through tollgate (issue 3). A real PostgreSQL 15 server per test and
//! real, unmodified clients (psql, pgbench, Python psycopg2, tokio-postgres) in an enrolled
//! cgroup, connecting without any password: tollgate logs in upstream with the policy's
//! credentials, enforces statement rules, masks rows and audits every statement. Needs root,
//! cgroup v2, bpffs, postgresql-15, postgresql-client-15, openssl and python3-psycopg2
//! (see tests/README.md).
mod harness;
mod pg;

use std::time::Duration;

use harness::{Need, NetNs};
use nix::sys::signal::Signal;
use pg::{
    Fixture, PgServer, Role, Run,
    certs::SERVER_NAME,
    conninfo, data, policy, psql, python,
    raw::Script,
    rust_client,
    server::{PG_BIN, Placement},
};
use serde_json::{Value, json};

/// The line a denial by `rule` shows in psql (VERBOSITY=verbose: with its SQLSTATE).
fn denial(rule: &str) -> String {
    format!("ERROR:  42501: tollgate: statement denied by rule \"{rule}\"")
}

/// Asserts that `r` failed with a denial naming `rule`.
fn assert_denied(r: &Run, rule: &str) {
    assert!(!r.timed_out, "timed out: {r:?}");
    assert!(
        r.stderr.contains(&denial(rule)),
        "expected {:?}: {r:?}",
        denial(rule)
    );
}

/// Lines of psql's standard output.
fn lines(r: &Run) -> Vec<&str> {
    r.stdout.lines().filter(|l| !l.is_empty()).collect()
}

/// The statements of an audit record (`sessions show --json`).
fn statements(session: &Value) -> &Vec<Value> {
    session["statements"]
        .as_array()
        .unwrap_or_else(|| panic!("no statements array: {session:#}"))
}

/// `(classes, decision, rule)` of a recorded statement.
fn verdict(stmt: &Value) -> (Vec<String>, String, String) {
    let classes = stmt["classes"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|c| c.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    let s = |k: &str| stmt[k].as_str().unwrap_or("").to_owned();
    (classes, s("decision"), s("rule"))
}

/// The harness alone: the server starts, each role gets in exactly the way `pg_hba.conf`
/// says (checked with direct psql and the password, outside any workload), and the data is
/// there.
#[test]
fn harness_server_roles_and_data_work_directly() {
    let test = "harness_server_roles_and_data_work_directly";
    if pg::prerequisites(test).is_none() {
        return;
    }
    let pg = PgServer::start();
    let direct = |role: Role, sslmode: &str, password: &str| {
        psql(
            &conninfo(pg.port, role.name(), sslmode),
            &[
                "-c",
                "select current_user, ssl from pg_stat_ssl where pid = pg_backend_pid()",
            ],
        )
        .env("PGPASSWORD", password)
        .run(None)
    };
    for (role, sslmode, want) in [
        (Role::Scram, "disable", "scram_user|f"),
        (Role::Md5, "disable", "md5_user|f"),
        (Role::Tls, "require", "tls_user|t"),
    ] {
        let r = direct(role, sslmode, pg.password(role));
        assert!(r.ok(), "{} direct: {r:?}", role.name());
        assert_eq!(r.stdout.trim(), want, "{r:?}");
    }
    // tls_user has no way in without TLS; a wrong password is refused.
    let r = direct(Role::Tls, "disable", pg.password(Role::Tls));
    assert!(
        !r.ok() && r.stderr.contains("no pg_hba.conf entry") && r.stderr.contains("tls_user"),
        "{r:?}"
    );
    let r = direct(Role::Scram, "disable", "wrong");
    assert!(
        !r.ok() && r.stderr.contains("password authentication failed"),
        "{r:?}"
    );
    // Without a password, libpq gives up (-w): the server really asks for one.
    let r = psql(
        &conninfo(pg.port, "scram_user", "disable"),
        &["-c", "select 1"],
    )
    .run(None);
    assert!(
        !r.ok() && r.stderr.contains("no password supplied"),
        "{r:?}"
    );
    // md5_user's password is stored as md5, scram_user's as SCRAM.
    let stored = pg.admin_sql(
        "postgres",
        "select rolname || ':' || left(rolpassword, 3) from pg_authid \
         where rolname in ('md5_user', 'scram_user') order by rolname",
    );
    assert_eq!(stored, "md5_user:md5\nscram_user:SCR");
    // The rows: customers with Luhn-valid cards, accounts, pgbench tables owned by app.
    let cards = pg.admin_sql("orders", "select card_number from customers order by id");
    let cards: Vec<&str> = cards.lines().collect();
    assert_eq!(cards.len(), data::CUSTOMERS);
    assert!(cards.iter().all(|c| data::luhn_valid(c)), "{cards:?}");
    assert_eq!(
        cards,
        pg.customers
            .iter()
            .map(|c| c.card_number.as_str())
            .collect::<Vec<_>>()
    );
    assert_eq!(
        pg.admin_sql(
            "orders",
            "select count(*) from accounts; select count(*) from pgbench_accounts; \
             select string_agg(tableowner, ',' order by tablename) from pg_tables \
             where schemaname = 'public'"
        ),
        format!("{}\n100000\napp,app,app,app,app,app", data::ACCOUNTS)
    );
    assert!(std::path::Path::new(PG_BIN).join("postgres").is_file());
}

/// psql without any password, with sslmode disable, prefer and require (tollgate terminates
/// TLS with a leaf of its local CA) and verify-full against that CA; the server's own CA does
/// not verify tollgate's leaf. Every session is audited as the etl workload on the target.
#[test]
fn psql_sslmodes_through_tollgate_without_a_password() {
    let test = "psql_sslmodes_through_tollgate_without_a_password";
    let Some(f) = Fixture::start(test, "pg-ssl", |_| {}) else {
        return;
    };
    let query = "select current_user, current_database()";
    for (sslmode, tls) in [("disable", false), ("prefer", true), ("require", true)] {
        let r = f
            .psql(Role::Scram, sslmode, &["-c", "\\conninfo", "-c", query])
            .run(Some(&f.etl));
        assert!(r.ok(), "sslmode={sslmode}: {r:?}");
        assert!(
            r.stdout.lines().any(|l| l == "scram_user|orders"),
            "sslmode={sslmode}: {r:?}"
        );
        assert_eq!(
            r.stdout.contains("SSL connection"),
            tls,
            "sslmode={sslmode}: {r:?}"
        );
        let s = f.session_of(r.pid);
        assert_eq!(s["workload"], "etl", "{s:#}");
        assert_eq!(s["target"], policy::TARGET, "{s:#}");
        assert_eq!(s["decision"], "allow", "{s:#}");
        assert_eq!(s["protocol"], "postgres", "{s:#}");
    }

    let ca = f.agent.state_dir.join("ca").join("ca.pem");
    assert!(ca.is_file(), "no local CA at {}", ca.display());
    let full = |root: &std::path::Path| {
        let info = format!(
            "{} sslrootcert={}",
            conninfo(f.pg.port, "scram_user", "verify-full"),
            root.display()
        );
        psql(&info, &["-c", query]).run(Some(&f.etl))
    };
    let r = full(&ca);
    assert!(r.ok(), "verify-full against tollgate's CA: {r:?}");
    assert_eq!(lines(&r), ["scram_user|orders"], "{r:?}");
    // The client sees tollgate's leaf, never the server's certificate.
    let r = full(&f.pg.certs.ca);
    assert!(
        !r.ok() && r.stderr.contains("certificate verify failed"),
        "verify-full against the server's CA must fail: {r:?}"
    );
}

/// pgbench select-only runs through tollgate with the simple, extended and prepared query
/// protocols and no failed transaction (`-i` is DDL: the harness ran it directly).
#[test]
fn pgbench_select_only_simple_extended_and_prepared() {
    let test = "pgbench_select_only_simple_extended_and_prepared";
    let Some(f) = Fixture::start(test, "pg-bench", |_| {}) else {
        return;
    };
    for (mode, secs, clients) in [
        ("simple", "3", "4"),
        ("extended", "3", "1"),
        ("prepared", "2", "2"),
    ] {
        let r = f
            .pgbench(&["-n", "-S", "-T", secs, "-M", mode, "-c", clients, "-j", "2"])
            .run(Some(&f.etl));
        assert!(r.ok(), "pgbench -M {mode}: {r:?}");
        assert!(
            r.stdout
                .contains("number of failed transactions: 0 (0.000%)"),
            "pgbench -M {mode}: {r:?}"
        );
        let processed: u64 = r
            .stdout
            .lines()
            .find_map(|l| l.strip_prefix("number of transactions actually processed: "))
            .and_then(|n| n.trim().parse().ok())
            .unwrap_or_else(|| panic!("pgbench -M {mode}: no count: {r:?}"));
        assert!(processed > 0, "pgbench -M {mode}: {r:?}");
        let s = f.session_of(r.pid);
        assert_eq!(s["target"], policy::TARGET, "{s:#}");
    }
}

/// psycopg2: rows come back masked (card last4, e-mails redacted, also inside notes), and
/// `conn.cancel()` ends a `pg_sleep(30)` quickly with 57014; the connection stays usable.
#[test]
fn psycopg2_masked_rows_and_cancel() {
    let test = "psycopg2_masked_rows_and_cancel";
    let Some(f) = Fixture::start(test, "pg-psy", |_| {}) else {
        return;
    };
    let r = python(pg::py::PSYCOPG, &[&f.pg.port.to_string()]).run(Some(&f.etl));
    assert!(r.ok(), "{r:?}");
    let out = r.json();
    let want: Vec<Value> = f.pg.customers[..6]
        .iter()
        .map(|c| {
            json!([
                c.id,
                c.name,
                "[REDACTED:email]",
                c.card_last4(),
                c.notes_redacted()
            ])
        })
        .collect();
    assert_eq!(out["rows"], Value::Array(want), "{out:#}");
    assert!(out["watch_error"].is_null(), "{out:#}");
    assert_eq!(out["sleep"], "57014", "{out:#}");
    let secs = out["cancel_s"].as_f64().expect("cancel_s");
    assert!(secs < 10.0, "cancel took {secs} s: {out:#}");
    assert_eq!(out["after"], data::CUSTOMERS, "{out:#}");
}

/// The child process of [`rust_driver_simple_extended_prepared_and_binary_masking`] and
/// [`rust_driver_copy_in_through_the_extended_protocol`]: the test binary re-run in the
/// enrolled cgroup as a tokio-postgres client.
#[test]
#[ignore = "client process started by the rust_driver tests"]
fn rust_driver_child() {
    let spec = std::env::var(pg::client::CHILD_SPEC).expect("run by the rust_driver test");
    let spec: Value = serde_json::from_str(&spec).expect("spec JSON");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let out = match spec["scenario"].as_str() {
        Some("copy") => rt.block_on(pg::driver::copy_scenario(&spec)),
        _ => rt.block_on(pg::driver::scenario(&spec)),
    };
    println!("\n{out}");
}

/// tokio-postgres (binary results, always): simple protocol (text, masked); extended protocol
/// with parameters; a prepared statement run five times. With `binary_results = "refuse"`
/// (the default) every binary result on the masking target is refused with 0A000 and the
/// session goes on; with `"allow"` unmasked columns pass in binary and only the masked column
/// is refused. A card number sent as a bind parameter never reaches the audit.
#[test]
fn rust_driver_simple_extended_prepared_and_binary_masking() {
    let test = "rust_driver_simple_extended_prepared_and_binary_masking";
    let Some(mut f) = Fixture::start(test, "pg-rust", |_| {}) else {
        return;
    };
    let card = f.pg.customers[41].card_number.clone();
    let spec = json!({"port": f.pg.port, "user": "scram_user", "card": card});
    let simple: Vec<Value> = f.pg.customers[..3]
        .iter()
        .map(|c| json!([c.id.to_string(), c.card_last4(), "[REDACTED:email]"]))
        .collect();
    let simple = Value::Array(simple);

    // "refuse": no binary result at all while the target masks anything.
    let r = rust_client(&spec).run(Some(&f.etl));
    assert!(r.ok(), "{r:?}");
    let refuse = r.json();
    let out = &refuse;
    assert_eq!(out["connect"], "ok", "{out:#}");
    assert_eq!(out["simple"], simple, "{out:#}");
    for step in ["extended", "binary_masked", "after", "bind"] {
        assert_eq!(out[step]["code"], "0A000", "{step}: {out:#}");
    }
    assert_eq!(out["prepared"][4]["code"], "0A000", "{out:#}");
    assert_eq!(out["simple_after"], json!(["300"]), "{out:#}");
    let denied = json!({
        "code": "42501",
        "message": format!("tollgate: statement denied by rule \"{}\"", policy::NO_DDL)
    });
    assert_eq!(out["ddl_extended"], denied, "{out:#}");

    // "allow": binary passes for unmasked columns; the masked column is still refused.
    f.reload(|t| t.binary_results = Some("allow".into()));
    let r = rust_client(&spec).run(Some(&f.etl));
    assert!(r.ok(), "{r:?}");
    let allow = r.json();
    let out = &allow;
    assert_eq!(out["simple"], simple, "{out:#}");
    assert_eq!(out["extended"], json!([[7, 7000]]), "{out:#}");
    assert_eq!(
        out["prepared"],
        json!([1000, 2000, 3000, 4000, 5000]),
        "{out:#}"
    );
    // A masked column of a text type is the same bytes in binary: masked, not refused.
    let masked = out["binary_masked"]["rows"][0].as_str().unwrap_or_default();
    assert!(masked.starts_with("****") && masked.len() > 4, "{out:#}");
    assert_eq!(
        out["binary_email"]["rows"],
        json!(["[REDACTED:email]"]),
        "{out:#}"
    );
    assert_eq!(out["after"], data::CUSTOMERS, "{out:#}");
    assert_eq!(out["bind"], json!([42]), "{out:#}");
    assert_eq!(out["simple_after"], json!(["300"]), "{out:#}");
    assert_eq!(out["ddl_extended"], denied, "{out:#}");

    let pid = u32::try_from(out["pid"].as_u64().expect("pid")).expect("pid");
    let session = f.statements_of(pid, 7);
    let text = session.to_string();
    for c in &f.pg.customers {
        assert!(
            !text.contains(&c.card_number),
            "card in the audit: {session:#}"
        );
    }
    let stmts = statements(&session);
    let bind = stmts
        .iter()
        .find(|s| {
            s["text"]
                .as_str()
                .is_some_and(|t| t.contains("card_number = $1"))
        })
        .unwrap_or_else(|| panic!("no statement with $1: {session:#}"));
    let v = |d: &str| {
        (
            vec!["select".to_owned()],
            d.to_owned(),
            policy::READS.to_owned(),
        )
    };
    assert_eq!(verdict(bind), v("allow"), "{bind:#}");
    assert_eq!(bind["rows"], 1, "{bind:#}");

    // Without masking, binary results pass as they are, and an extended-protocol transaction
    // with a denied DROP inside cannot commit its INSERT.
    f.reload(|t| {
        t.masking = false;
        t.binary_results = None;
    });
    let r = rust_client(&spec).run(Some(&f.etl));
    assert!(r.ok(), "{r:?}");
    let plain = r.json();
    let out = &plain;
    let c1 = &f.pg.customers[0];
    assert_eq!(
        out["binary_masked"],
        json!({"rows": [c1.card_number]}),
        "{out:#}"
    );
    assert_eq!(out["extended"], json!([[7, 7000]]), "{out:#}");
    assert_eq!(out["txn"]["insert"], 1, "{out:#}");
    assert_eq!(out["txn"]["drop"], denied, "{out:#}");
    assert_eq!(out["pipeline"], json!([1000, denied, 2000]), "{out:#}");
    assert_eq!(out["simple_after"], json!(["300"]), "{out:#}");

    // Whatever the mode, nothing was dropped and the denied transactions kept nothing.
    assert_eq!(
        f.pg.admin_sql(
            "orders",
            "select count(*) from accounts; select count(*) from accounts where id = 5001"
        ),
        format!("{}\n0", data::ACCOUNTS)
    );
    // An INSERT without RETURNING has no result column: binary result formats (which
    // tokio-postgres always asks for) give nothing to mask and must not refuse it; the DROP
    // after it is then denied by its rule.
    for (mode, out) in [("refuse", &refuse), ("allow", &allow)] {
        assert_eq!(out["txn"]["insert"], 1, "{mode}: {out:#}");
        assert_eq!(out["txn"]["drop"], denied, "{mode}: {out:#}");
        assert_eq!(out["pipeline"][1], denied, "{mode}: {out:#}");
    }
    assert_eq!(allow["pipeline"], json!([1000, denied, 2000]), "{allow:#}");
    // Values the e-mail detector masks in text never pass unmasked in binary either.
    let email = &f.pg.customers[0].email;
    for (mode, out) in [("refuse", &refuse), ("allow", &allow)] {
        assert!(
            !out["binary_email"].to_string().contains(email.as_str()),
            "{mode}: {out:#}"
        );
    }
    assert_eq!(plain["binary_email"], json!({"rows": [email]}), "{plain:#}");
}

/// COPY FROM STDIN through the extended protocol (tokio-postgres `copy_in`: Bind, Execute,
/// Sync, then CopyData, CopyDone, Sync). The server ignores the Sync sent while it copies and
/// answers both with one ReadyForQuery; tollgate must owe one too, or every later response is
/// matched with the request before it (rows masked by another statement's columns, or all
/// hidden; records with another statement's text and rows). After the copy, simple and
/// extended statements are masked by their own columns and recorded in order, with their
/// rows; a copy the client fails (CopyFail) is recorded with the server's error, and the
/// session goes on in step. Last, a COPY the server fails at its Execute (no copy starts)
/// gives the driver its error and is recorded with it, and the connection still ends cleanly
/// (the Sync after that Execute is answered).
#[test]
fn rust_driver_copy_in_through_the_extended_protocol() {
    let test = "rust_driver_copy_in_through_the_extended_protocol";
    let Some(f) = Fixture::start(test, "pg-rustcopy", |t| {
        t.binary_results = Some("allow".into());
    }) else {
        return;
    };
    let spec = json!({"port": f.pg.port, "user": "scram_user", "scenario": "copy"});
    let r = rust_client(&spec).run(Some(&f.etl));
    assert!(r.ok(), "{r:?}");
    let out = r.json();
    assert_eq!(out["connect"], "ok", "{out:#}");
    assert_eq!(out["copy"], 2, "{out:#}");
    let (c1, c2) = (&f.pg.customers[0], &f.pg.customers[1]);
    assert_eq!(
        out["simple"],
        json!([
            [c1.id.to_string(), c1.card_last4()],
            [c2.id.to_string(), c2.card_last4()]
        ]),
        "{out:#}"
    );
    assert_eq!(out["extended"], json!([["copy one", 31]]), "{out:#}");
    assert_eq!(out["extended_masked"], json!([c2.card_last4()]), "{out:#}");
    let accounts = (data::ACCOUNTS + 2).to_string();
    assert_eq!(out["count"], json!([[accounts]]), "{out:#}");
    assert_eq!(out["copy_fail"], "sent", "{out:#}");
    assert_eq!(out["copy_missing"]["code"], "42703", "{out:#}");
    assert_eq!(
        out["after"],
        json!([["3001", "copy one"], ["3002", "copy two"]]),
        "{out:#}"
    );

    let pid = u32::try_from(out["pid"].as_u64().expect("pid")).expect("pid");
    let session = f.statements_of(pid, 8);
    let got = outcomes(&session);
    let copy = "copy accounts (id, owner, balance) from stdin";
    assert_eq!(
        got,
        [
            (copy, Some(2), None),
            // Literals are redacted in the audit.
            (
                "select id, card_number from customers where id <= ? order by id",
                Some(2),
                None
            ),
            (
                "select owner, balance from accounts where id = $1",
                Some(1),
                None
            ),
            (
                "select card_number from customers where id = $1",
                Some(1),
                None
            ),
            ("select count(*) from accounts", Some(1), None),
            // CopyFail: 57014, query_canceled.
            (copy, None, Some("57014")),
            (
                "select id, owner from accounts where id > ? order by id",
                Some(2),
                None
            ),
            // undefined_column, at the Execute: no copy started.
            (pg::driver::COPY_NO_SUCH_COLUMN, None, Some("42703")),
        ],
        "{session:#}"
    );
    let masked: Vec<_> = statements(&session).iter().map(|s| &s["masked"]).collect();
    let cards = |n: u64| json!({"by_column": {"card_number": n}, "by_detector": {}});
    assert_eq!(masked[1], &cards(2), "{session:#}");
    assert_eq!(masked[3], &cards(1), "{session:#}");
    assert_eq!(
        f.pg.admin_sql("orders", "select count(*) from accounts"),
        accounts
    );
}

/// The COPY FROM STDIN of the raw-protocol tests.
const COPY_ACCOUNTS: &str = "copy accounts (id, owner, balance) from stdin";
/// A row that fails that copy: its id is not an int (22P02, invalid_text_representation).
const BAD_ROW: &str = "notanumber\tx\t1\n";
/// A statement whose one result column is masked (`last4`), and its text in the audit.
const CARD_OF_1: (&str, &str) = (
    "select card_number from customers where id = 1",
    "select card_number from customers where id = ?",
);
/// A statement with nothing to mask.
const COUNT_ACCOUNTS: &str = "select count(*) from accounts";

/// Parse, Bind and Execute of `sql` on the unnamed statement and portal, then Sync (messages
/// of the scripted raw client).
fn extended_batch(sql: &str) -> Vec<Value> {
    vec![
        json!(["P", "", sql]),
        json!(["B", "", ""]),
        json!(["E", ""]),
        json!(["S"]),
    ]
}

/// Prepares `sql` as statement `name` and describes it (answered `1 t T Z`), as drivers do
/// before they bind: tollgate learns the result columns from that answer.
fn prepare(name: &str, sql: &str) -> Value {
    json!({"send": [["P", name, sql], ["D", "S", name], ["S"]]})
}

/// Bind of the prepared statement `name` to the unnamed portal, Execute, Sync (`2 D… C Z`).
fn run_prepared(name: &str) -> Vec<Value> {
    vec![json!(["B", "", name]), json!(["E", ""]), json!(["S"])]
}

/// Not even the last four digits of the first customer's card reached the client (in any
/// row, error or step of `out`).
fn assert_no_card(f: &Fixture, out: &Script) {
    let card = &f.pg.customers[0].card_number;
    assert!(
        !out.to_string().contains(&card[card.len() - 4..]),
        "a card passed: {out}"
    );
}

/// `(text, rows, SQLSTATE of the error or the whole error)` of each recorded statement.
fn outcomes(session: &Value) -> Vec<(&str, Option<u64>, Option<&str>)> {
    statements(session)
        .iter()
        .map(|s| {
            let error = s["error"]
                .as_str()
                .map(|e| e.split(':').next().unwrap_or(e));
            (s["text"].as_str().unwrap_or(""), s["rows"].as_u64(), error)
        })
        .collect()
}

/// The first steps of the failed-copy tests: prepare the select of [`CARD_OF_1`] as `card`,
/// then start the COPY through the extended protocol and wait for its CopyInResponse. Their
/// own steps follow (from [`COPY_STARTED`] on).
fn card_then_copy() -> Vec<Value> {
    vec![
        prepare("card", CARD_OF_1.0),
        json!({"until": "Z"}),
        json!({"send": extended_batch(COPY_ACCOUNTS)}),
        json!({"until": "G"}),
    ]
}

/// Index of the first step after [`card_then_copy`].
const COPY_STARTED: usize = 4;

/// What both orders of the failed-copy test must show after [`card_then_copy`]: the copy's
/// error (22P02), one ReadyForQuery, the select's answers with the card masked by its column;
/// in the audit, the failed copy, then the select with its row.
fn assert_failed_copy_then_select(f: &Fixture, out: &Script) {
    assert_eq!(out.step(1)["got"], json!(["1", "t", "T", "Z"]), "{out}");
    assert_eq!(out.step(3)["got"], json!(["1", "2", "G"]), "{out}");
    assert_eq!(out.end(), "open", "{out}");
    let card = f.pg.customers[0].card_last4();
    assert_eq!(
        out.rows_from(COPY_STARTED),
        [json!([card])],
        "the select's row: {out}"
    );
    assert_eq!(out.sqlstates_from(COPY_STARTED), ["22P02"], "{out}");
    let got = out.types_from(COPY_STARTED);
    let error = got.iter().position(|t| t == "E").unwrap_or(got.len());
    let bind = got.iter().position(|t| t == "2").unwrap_or(got.len());
    let ready = got
        .get(error..bind)
        .map_or(0, |between| between.iter().filter(|t| *t == "Z").count());
    assert_eq!(
        ready, 1,
        "ReadyForQuery between the copy's error and the select's BindComplete: {out}"
    );
    assert_eq!(got, ["E", "Z", "2", "D", "C", "Z"], "{out}");

    let session = f.statements_of(out.pid(), 2);
    assert_eq!(
        outcomes(&session),
        [
            (COPY_ACCOUNTS, None, Some("22P02")),
            (CARD_OF_1.1, Some(1), None)
        ],
        "{session:#}"
    );
    assert_eq!(
        statements(&session)[1]["masked"],
        json!({"by_column": {"card_number": 1}, "by_detector": {}}),
        "{session:#}"
    );
}

/// libpq's `PQexecParams` order: Parse, Bind, Describe of the portal, Execute and Sync in one
/// write, so the Execute goes out before the RowDescription that tells its columns comes back.
/// The rows are still masked by their own columns (the card keeps its last 4 digits, the id
/// passes), not hidden whole, and recorded with the masking counted.
#[test]
fn a_portal_described_in_the_same_batch_is_masked_by_its_columns() {
    let test = "a_portal_described_in_the_same_batch_is_masked_by_its_columns";
    let Some(f) = Fixture::start(test, "pg-execparams", |_| {}) else {
        return;
    };
    let sql = "select id, card_number from customers where id <= 2 order by id";
    let out = Script::run(
        &f,
        &json!([
            {"send": [["P", "", sql], ["B", "", ""], ["D", "P", ""], ["E", ""], ["S"]]},
            {"until": "Z"},
        ]),
    );
    assert_eq!(
        out.step(1)["got"],
        json!(["1", "2", "T", "D", "D", "C", "Z"]),
        "{out}"
    );
    let (c1, c2) = (&f.pg.customers[0], &f.pg.customers[1]);
    assert_eq!(
        out.rows_from(0),
        [
            json!([c1.id.to_string(), c1.card_last4()]),
            json!([c2.id.to_string(), c2.card_last4()])
        ],
        "{out}"
    );
    let session = f.statements_of(out.pid(), 1);
    assert_eq!(
        outcomes(&session),
        [(
            "select id, card_number from customers where id <= ? order by id",
            Some(2),
            None
        )],
        "{session:#}"
    );
    assert_eq!(
        statements(&session)[0]["masked"],
        json!({"by_column": {"card_number": 2}, "by_detector": {}}),
        "{session:#}"
    );
}

/// A session that pipelines more Executes than it may hold audit slots for
/// (`SESSION_IN_FLIGHT`, 1024) in one batch, without reading: at the cap, tollgate sends what
/// it has with a Flush and waits for results of the session's own, so one session cannot take
/// the whole in-flight budget. Every statement is answered in order and recorded, and the wait
/// is counted in `audit_session_waits`.
#[test]
fn a_long_pipeline_waits_for_its_own_results_at_the_session_cap() {
    let test = "a_long_pipeline_waits_for_its_own_results_at_the_session_cap";
    let Some(f) = Fixture::start(test, "pg-sessioncap", |_| {}) else {
        return;
    };
    const N: usize = 1500;
    let before = counter(&f, "audit_session_waits");
    let mut batch = Vec::new();
    for _ in 0..N {
        batch.extend([json!(["B", "", "count"]), json!(["E", ""])]);
    }
    batch.push(json!(["S"]));
    let out = Script::run(
        &f,
        &json!([
            prepare("count", COUNT_ACCOUNTS),
            {"until": "Z"},
            {"send": batch},
            {"until": "Z"},
        ]),
    );
    assert_eq!(out.end(), "open", "{out}");
    let got = out.types_from(2);
    let count = |t: &str| got.iter().filter(|g| *g == t).count();
    assert_eq!(
        (count("2"), count("D"), count("C"), count("E"), count("Z")),
        (N, N, N, 0, 1),
        "every Execute answered, once"
    );
    assert_eq!(got.last().map(String::as_str), Some("Z"));
    let accounts = data::ACCOUNTS.to_string();
    assert!(
        out.rows_from(2).iter().all(|r| *r == json!([accounts])),
        "rows"
    );
    let session = f.statements_of(out.pid(), N);
    let outcomes = outcomes(&session);
    assert_eq!(outcomes.len(), N, "all recorded");
    assert!(
        outcomes
            .iter()
            .all(|o| *o == (COUNT_ACCOUNTS, Some(1), None)),
        "{session:#}"
    );
    assert!(
        counter(&f, "audit_session_waits") > before,
        "the session waited at its cap"
    );
}

/// A Describe is answered after the client may have parsed or bound the name again (the
/// unnamed statement and portal are reused at every Parse and Bind). The answer describes what
/// the name meant when the Describe was sent, never what it means when the answer comes:
/// - portal: P1 B1 D(portal) E1 then P2 B2 E2 in one write: E1's computed card is masked by
///   B1's plan (with B2's, the computed column had no rule and went out in clear);
/// - statement: P1 (names) D(statement) P2 (cards) on the same name, then a Bind and Execute of
///   it once answered: P1's columns were taken for P2's statement, and the cards passed as
///   names. Now P2's columns are unknown and its values hidden whole.
#[test]
fn a_description_answers_what_the_name_meant_when_it_was_sent() {
    let test = "a_description_answers_what_the_name_meant_when_it_was_sent";
    let Some(f) = Fixture::start(test, "pg-namereuse", |_| {}) else {
        return;
    };
    let c1 = &f.pg.customers[0];
    let out = Script::run(
        &f,
        &json!([
            {"send": [
                ["P", "", "select upper(card_number) from customers where id = 1"],
                ["B", "", ""], ["D", "P", ""], ["E", ""],
                ["P", "", "select 1"], ["B", "", ""], ["E", ""], ["S"]
            ]},
            {"until": "Z"},
        ]),
    );
    assert_eq!(
        out.step(1)["got"],
        json!(["1", "2", "T", "D", "C", "1", "2", "D", "C", "Z"]),
        "{out}"
    );
    let rows = out.rows_from(0);
    assert_eq!(rows[0], json!([c1.card_last4()]), "{out}");
    // E2's portal was never described: its columns are unknown, its values hidden.
    assert_eq!(rows[1], json!(["[REDACTED]"]), "{out}");

    let out = Script::run(
        &f,
        &json!([
            {"send": [
                ["P", "", "select name from customers where id = 1"], ["D", "S", ""],
                ["P", "", "select card_number from customers where id = 1"], ["S"]
            ]},
            {"until": "Z"},
            {"send": [["B", "", ""], ["E", ""], ["S"]]},
            {"until": "Z"},
        ]),
    );
    assert_eq!(
        out.step(1)["got"],
        json!(["1", "t", "T", "1", "Z"]),
        "{out}"
    );
    assert_eq!(out.step(3)["got"], json!(["2", "D", "C", "Z"]), "{out}");
    let rows = out.rows_from(2);
    assert_ne!(rows[0], json!([c1.card_number]), "the card in clear: {out}");
    assert_eq!(rows[0], json!(["[REDACTED]"]), "{out}");
}

/// During a COPY FROM STDIN through the extended protocol the server ignores Syncs, so
/// tollgate does not forward them: one sent with the data gets no ReadyForQuery. Here a bad
/// row fails the copy (22P02) and the client's Sync sent with it stays unanswered; the client
/// then sends CopyDone, Sync and a select: exactly one ReadyForQuery comes between the copy's
/// error and the select's BindComplete (PostgreSQL alone sends two, one per Sync). The
/// select's card is masked by its own column, and the audit has the failed copy, then the
/// select with its row.
#[test]
fn a_sync_sent_during_copy_in_gets_no_ready_for_query() {
    let test = "a_sync_sent_during_copy_in_gets_no_ready_for_query";
    let Some(f) = Fixture::start(test, "pg-copysync", |_| {}) else {
        return;
    };
    let mut end_and_select = vec![json!(["c"]), json!(["S"])];
    end_and_select.extend(run_prepared("card"));
    let mut steps = card_then_copy();
    steps.extend([
        json!({"send": [["d", BAD_ROW], ["S"]]}),
        json!({"drain": 0.5}),
        json!({"send": end_and_select}),
        json!({"until": "C"}),
        json!({"until": "Z"}),
        json!({"drain": 0.3}),
    ]);
    let out = Script::run(&f, &Value::Array(steps));
    assert_failed_copy_then_select(&f, &out);
}

/// The same orders pipelined: the bad row, a Sync, CopyDone, a Sync and a select in one write,
/// while the server copies in. The server fails the copy at the bad row and answers two
/// Syncs; tollgate forwards only the one after CopyDone, so the select's responses are matched
/// with the select: its card is masked by its column and it is recorded with its row.
/// (Forwarding both Syncs, tollgate took the second ReadyForQuery for the select's and dropped
/// its entries: the select ran unrecorded, its rows hidden whole for want of columns.)
#[test]
fn a_select_pipelined_behind_a_failed_copy_is_masked_and_recorded() {
    let test = "a_select_pipelined_behind_a_failed_copy_is_masked_and_recorded";
    let Some(f) = Fixture::start(test, "pg-copypipe", |_| {}) else {
        return;
    };
    let mut rest = vec![
        json!(["d", BAD_ROW]),
        json!(["S"]),
        json!(["c"]),
        json!(["S"]),
    ];
    rest.extend(run_prepared("card"));
    let mut steps = card_then_copy();
    steps.extend([
        json!({"send": rest}),
        json!({"until": "C"}),
        json!({"until": "Z"}),
        json!({"drain": 0.3}),
    ]);
    let out = Script::run(&f, &Value::Array(steps));
    assert_failed_copy_then_select(&f, &out);
}

/// A COPY FROM STDIN whose Execute the server fails (no such column: no copy starts) is
/// answered up to its ReadyForQuery: the Sync after the Execute, which tollgate holds while a
/// copy may start, is forwarded once the error shows none did. The client does not hang, and
/// the next statement, sent after that answer or pipelined behind the failing batch, is
/// answered in order and recorded with its row.
#[test]
fn a_copy_that_never_starts_answers_its_sync() {
    let test = "a_copy_that_never_starts_answers_its_sync";
    let Some(f) = Fixture::start(test, "pg-copynone", |_| {}) else {
        return;
    };
    let missing = pg::driver::COPY_NO_SUCH_COLUMN;
    let accounts = data::ACCOUNTS.to_string();
    let audit = [
        (missing, None, Some("42703")),
        (COUNT_ACCOUNTS, Some(1), None),
    ];

    // One batch, its answer, then a simple Query.
    let out = Script::run(
        &f,
        &json!([
            {"send": extended_batch(missing)},
            {"until": "Z"},
            {"send": [["Q", COUNT_ACCOUNTS]]},
            {"until": "Z"},
        ]),
    );
    assert_eq!(out.step(1)["got"], json!(["1", "2", "E", "Z"]), "{out}");
    assert_eq!(out.sqlstates_from(0), ["42703"], "{out}");
    assert_eq!(out.step(3)["got"], json!(["T", "D", "C", "Z"]), "{out}");
    assert_eq!(out.rows_from(0), [json!([accounts])], "{out}");
    assert_eq!(out.end(), "open", "{out}");
    let session = f.statements_of(out.pid(), 2);
    assert_eq!(outcomes(&session), audit, "{session:#}");

    // The failing batch and a prepared select's batch in one write.
    let mut both = extended_batch(missing);
    both.extend(run_prepared("count"));
    let out = Script::run(
        &f,
        &json!([
            prepare("count", COUNT_ACCOUNTS),
            {"until": "Z"},
            {"send": both},
            {"until": "C"},
            {"until": "Z"},
            {"drain": 0.3},
        ]),
    );
    assert_eq!(out.step(1)["got"], json!(["1", "t", "T", "Z"]), "{out}");
    assert_eq!(
        out.types_from(2),
        ["1", "2", "E", "Z", "2", "D", "C", "Z"],
        "{out}"
    );
    assert_eq!(out.sqlstates_from(2), ["42703"], "{out}");
    assert_eq!(out.rows_from(2), [json!([accounts])], "{out}");
    assert_eq!(out.end(), "open", "{out}");
    let session = f.statements_of(out.pid(), 2);
    assert_eq!(outcomes(&session), audit, "{session:#}");
}

/// A statement the server refuses before it runs is recorded with the server's error, as a
/// failing simple Query is, never left out of the audit:
/// - at Parse: an unknown column;
/// - at Bind: a table the role has no privilege on. PostgreSQL checks privileges when the
///   portal starts, which for the unnamed portal is at Bind.
///
/// In a batch, the statements that ran before the refused one are recorded with their results.
/// Those after it are skipped by the server and not recorded.
#[test]
fn statements_the_server_refuses_before_they_run_are_recorded() {
    let test = "statements_the_server_refuses_before_they_run_are_recorded";
    let Some(f) = Fixture::start(test, "pg-refused", |_| {}) else {
        return;
    };
    // Allowed by the policy (`pgbench_*`), owned by the superuser: scram_user may not read it.
    f.pg.admin_sql("orders", "CREATE TABLE pgbench_hidden (x int)");
    let unknown_column = "select nosuchcol from accounts";
    let hidden = "select x from pgbench_hidden";
    let mut three = vec![
        json!(["P", "", COUNT_ACCOUNTS]),
        json!(["B", "", ""]),
        json!(["E", ""]),
    ];
    three.extend([
        json!(["P", "", hidden]),
        json!(["B", "", ""]),
        json!(["E", ""]),
    ]);
    three.extend(extended_batch(COUNT_ACCOUNTS));
    // An Execute that fails when it runs, then a statement the server skips.
    let divides = "select count(*) / count(*) from accounts where false";
    let mut skipped = vec![
        json!(["P", "", divides]),
        json!(["B", "", ""]),
        json!(["E", ""]),
    ];
    skipped.extend(extended_batch(COUNT_ACCOUNTS));
    let out = Script::run(
        &f,
        &json!([
            {"send": extended_batch(unknown_column)},
            {"until": "Z"},
            {"send": extended_batch(hidden)},
            {"until": "Z"},
            {"send": three},
            {"until": "Z"},
            {"send": skipped},
            {"until": "Z"},
            {"drain": 0.3},
        ]),
    );
    assert_eq!(out.step(1)["got"], json!(["E", "Z"]), "{out}");
    assert_eq!(out.step(3)["got"], json!(["1", "E", "Z"]), "{out}");
    assert_eq!(
        out.step(5)["got"],
        json!(["1", "2", "D", "C", "1", "E", "Z"]),
        "{out}"
    );
    assert_eq!(out.step(7)["got"], json!(["1", "2", "E", "Z"]), "{out}");
    assert_eq!(
        out.sqlstates_from(0),
        ["42703", "42501", "42501", "22012"],
        "{out}"
    );
    assert_eq!(out.end(), "open", "{out}");
    let session = f.statements_of(out.pid(), 5);
    assert_eq!(
        outcomes(&session),
        [
            (unknown_column, None, Some("42703")),
            (hidden, None, Some("42501")),
            (COUNT_ACCOUNTS, Some(1), None),
            (hidden, None, Some("42501")),
            (divides, None, Some("22012")),
        ],
        "the statement skipped after the failed Execute is not recorded: {session:#}"
    );
}

/// A portal outlives the Close of its statement (PostgreSQL keeps it): its Execute runs the
/// statement bound, and tollgate records it as that statement (its portal keeps what the
/// statement was).
#[test]
fn a_portal_outlives_the_close_of_its_statement() {
    let test = "a_portal_outlives_the_close_of_its_statement";
    let Some(f) = Fixture::start(test, "pg-closedstmt", |_| {}) else {
        return;
    };
    let out = Script::run(
        &f,
        &json!([
            prepare("count", COUNT_ACCOUNTS),
            {"until": "Z"},
            {"send": [["B", "held", "count"], ["C", "S", "count"], ["E", "held"], ["S"]]},
            {"until": "Z"},
        ]),
    );
    assert_eq!(
        out.step(3)["got"],
        json!(["2", "3", "D", "C", "Z"]),
        "{out}"
    );
    let session = f.statements_of(out.pid(), 1);
    assert_eq!(
        outcomes(&session),
        [(COUNT_ACCOUNTS, Some(1), None)],
        "{session:#}"
    );
}

/// A portal runs the statement it was bound to, even when the statement's name was parsed
/// again since (PostgreSQL keeps the portal): its Execute is recorded as that statement, and
/// its rows are never masked by the newer statement's columns (which read no sensitive
/// column). Without a description of the portal its values are hidden; described, they are
/// masked by its own statement's plan (a computed copy of the card: last four digits).
#[test]
fn a_portal_runs_its_statement_after_the_name_is_parsed_again() {
    let test = "a_portal_runs_its_statement_after_the_name_is_parsed_again";
    let Some(f) = Fixture::start(test, "pg-reparsed", |_| {}) else {
        return;
    };
    let card = "select upper(card_number) as c from customers where id = 1";
    let name = "select name from customers where id = 1";
    let out = Script::run(
        &f,
        &json!([
            {"send": [
                ["P", "", card], ["B", "a", ""], ["B", "b", ""], ["P", "", name], ["D", "S", ""],
                ["H"],
            ]},
            {"until": "T"},
            {"send": [["E", "a"], ["D", "P", "b"], ["E", "b"], ["S"]]},
            {"until": "Z"},
        ]),
    );
    assert_eq!(
        out.step(1)["got"],
        json!(["1", "2", "2", "1", "t", "T"]),
        "{out}"
    );
    assert_eq!(
        out.step(3)["got"],
        json!(["D", "C", "T", "D", "C", "Z"]),
        "{out}"
    );
    let customer = &f.pg.customers[0];
    let last4 = &customer.card_number[customer.card_number.len() - 4..];
    let rows = out.rows_from(2);
    assert_eq!(rows.len(), 2, "{out}");
    assert!(
        !rows[0].to_string().contains(last4),
        "undescribed, any of the card passed: {out}"
    );
    assert_eq!(rows[1], json!([customer.card_last4()]), "{out}");
    let session = f.statements_of(out.pid(), 2);
    let redacted = card.replace("= 1", "= ?");
    assert_eq!(
        outcomes(&session),
        [(&*redacted, Some(1), None), (&*redacted, Some(1), None)],
        "{session:#}"
    );
}

/// A session holds at most 10000 named prepared statements (tollgate keeps what each is): the
/// next Parse of a new name is refused (42501, rule `prepared-limit`) and recorded; once the
/// server has closed one (not before: it might skip the Close), a new one may be prepared.
#[test]
fn prepared_statements_are_bounded_per_session() {
    let test = "prepared_statements_are_bounded_per_session";
    let Some(f) = Fixture::start(test, "pg-preplimit", |_| {}) else {
        return;
    };
    let out = Script::run(
        &f,
        &json!([
            {"send": [["P", "s{i}", COUNT_ACCOUNTS]], "repeat": 10_000},
            {"send": [["S"]]},
            {"until": "Z", "within": 60},
            {"send": [["P", "one-more", COUNT_ACCOUNTS], ["S"]]},
            {"until": "Z"},
            // A Close frees room once the server has answered it (it might skip it): the
            // server keeps its CloseComplete until the Sync, after the Parse is decided.
            {"send": [["C", "S", "s0"], ["P", "one-more", COUNT_ACCOUNTS], ["S"]]},
            {"until": "Z"},
            {"send": [["P", "one-more", COUNT_ACCOUNTS], ["S"]]},
            {"until": "Z"},
        ]),
    );
    let got = out.step(2)["got"].as_array().cloned().unwrap_or_default();
    assert_eq!(got.len(), 10_001, "{}", out.step(2));
    assert!(got[..10_000].iter().all(|t| t == "1"), "{}", out.step(2));
    assert_eq!(out.step(4)["got"], json!(["E", "Z"]), "{out}");
    assert_eq!(out.sqlstates_from(3), ["42501", "42501"], "{out}");
    assert_eq!(out.step(6)["got"], json!(["3", "E", "Z"]), "{out}");
    assert_eq!(out.step(8)["got"], json!(["1", "Z"]), "{out}");
    let session = f.statements_of(out.pid(), 2);
    let (_, decision, rule) = verdict(&statements(&session)[0]);
    assert_eq!(
        (&*decision, &*rule),
        ("deny", "prepared-limit"),
        "{session:#}"
    );
}

/// Inside one transaction a session holds at most 10000 named portals: the next Bind of a new
/// name is refused (42501, rule `portal-limit`) and recorded, and the transaction fails as
/// after any error. Once it ends, so do its portals, and portals are bound again.
#[test]
fn portals_are_bounded_per_session() {
    let test = "portals_are_bounded_per_session";
    let Some(f) = Fixture::start(test, "pg-portallimit", |_| {}) else {
        return;
    };
    let out = Script::run(
        &f,
        &json!([
            prepare("count", COUNT_ACCOUNTS),
            {"until": "Z"},
            {"send": [["Q", "BEGIN"]]},
            {"until": "Z"},
            {"send": [["B", "p{i}", "count"]], "repeat": 10_000},
            {"send": [["S"]]},
            {"until": "Z", "within": 60},
            {"send": [["B", "one-more", "count"], ["S"]]},
            {"until": "Z"},
            {"send": [["Q", "ROLLBACK"], ["Q", "BEGIN"]]},
            {"until": "Z", "count": 2},
            {"send": [["B", "p0", "count"], ["C", "P", "p0"], ["B", "one-more", "count"], ["S"]]},
            {"until": "Z"},
        ]),
    );
    let got = out.step(6)["got"].as_array().cloned().unwrap_or_default();
    assert_eq!(got.len(), 10_001, "{}", out.step(6));
    assert!(got[..10_000].iter().all(|t| t == "2"), "{}", out.step(6));
    assert_eq!(out.step(8)["got"], json!(["E", "Z"]), "{out}");
    assert_eq!(out.sqlstates_from(7), ["42501"], "{out}");
    assert_eq!(out.step(12)["got"], json!(["2", "3", "2", "Z"]), "{out}");
    let session = f.statements_of(out.pid(), 4);
    let (_, decision, rule) = verdict(&statements(&session)[1]);
    assert_eq!(
        (&*decision, &*rule),
        ("deny", "portal-limit"),
        "{session:#}"
    );
}

/// Outside a transaction block a portal ends with its transaction (at the Sync): tollgate
/// forgets it then, and refuses an Execute of it later (rule `unknown-statement`). Inside a
/// transaction block it lives on to the next batch, and runs.
#[test]
fn a_portal_ends_with_its_transaction() {
    let test = "a_portal_ends_with_its_transaction";
    let Some(f) = Fixture::start(test, "pg-portalend", |_| {}) else {
        return;
    };
    let out = Script::run(
        &f,
        &json!([
            prepare("count", COUNT_ACCOUNTS),
            {"until": "Z"},
            {"send": [["B", "p", "count"], ["S"]]},
            {"until": "Z"},
            {"send": [["E", "p"], ["S"]]},
            {"until": "Z"},
            {"send": [["Q", "BEGIN"], ["B", "p", "count"], ["S"]]},
            {"until": "Z"},
            {"until": "Z"},
            {"send": [["E", "p"], ["S"]]},
            {"until": "Z"},
            {"send": [["Q", "COMMIT"]]},
            {"until": "Z"},
        ]),
    );
    assert_eq!(out.step(5)["got"], json!(["E", "Z"]), "{out}");
    assert_eq!(out.sqlstates_from(4), ["42501"], "{out}");
    assert_eq!(out.step(10)["got"], json!(["D", "C", "Z"]), "{out}");
    let session = f.statements_of(out.pid(), 4);
    let (_, _, rule) = verdict(&statements(&session)[0]);
    assert_eq!(rule, "unknown-statement", "{session:#}");
    assert_eq!(
        outcomes(&session)[2],
        (COUNT_ACCOUNTS, Some(1), None),
        "{session:#}"
    );
}

/// SQL shares names with the protocol: `DECLARE` and `CLOSE` make and drop portals,
/// `PREPARE` and `DEALLOCATE` prepared statements. A client that replaces, by SQL, a portal or
/// statement tollgate knows from its Bind or Parse (here with one whose columns need no masking)
/// would have the server run the new one under tollgate's record and columns of the old: a card
/// number passed whole. tollgate forgets such names, and an Execute of the portal, or a Bind
/// of the statement, is refused (`unknown-statement`).
#[test]
fn sql_that_replaces_a_portal_or_statement_is_not_masked_as_the_old_one() {
    let test = "sql_that_replaces_a_portal_or_statement_is_not_masked_as_the_old_one";
    let Some(f) = Fixture::start(test, "pg-sqlnames", |t| t.utility = true) else {
        return;
    };
    let harmless = "select 'nothing to mask'::text as v";
    let cursor = "DECLARE c CURSOR FOR SELECT card_number FROM customers";
    let statement = "PREPARE s AS SELECT card_number FROM customers";
    let out = Script::run(
        &f,
        &json!([
            prepare("s", harmless),
            {"until": "Z"},
            {"send": [["Q", "BEGIN"]]},
            {"until": "Z"},
            {"send": [["B", "c", "s"], ["S"]]},
            {"until": "Z"},
            {"send": [["Q", "CLOSE c"], ["Q", cursor]]},
            {"until": "Z"},
            {"until": "Z"},
            {"send": [["E", "c"], ["S"]]},
            {"until": "Z"},
            {"send": [["Q", "ROLLBACK"]]},
            {"until": "Z"},
            {"send": [["Q", "DEALLOCATE s"], ["Q", statement]]},
            {"until": "Z"},
            {"until": "Z"},
            {"send": [["B", "", "s"], ["E", ""], ["S"]]},
            {"until": "Z"},
        ]),
    );
    assert_eq!(out.end(), "open", "{out}");
    assert_no_card(&f, &out);
    assert_eq!(out.step(10)["got"], json!(["E", "Z"]), "{out}");
    assert_eq!(out.step(17)["got"], json!(["2", "E", "Z"]), "{out}");
    assert_eq!(out.sqlstates_from(0), ["42501", "42501"], "{out}");
    let session = f.statements_of(out.pid(), 8);
    let rules: Vec<String> = statements(&session).iter().map(|s| verdict(s).2).collect();
    assert_eq!(
        rules.iter().filter(|r| *r == "unknown-statement").count(),
        2,
        "{session:#}"
    );
}

/// The same through prepared statements: an Execute of a prepared `CLOSE c`, then of a
/// prepared `DECLARE c …`, replaces the portal `c` the client bound; tollgate forgets `c` at
/// those Executes, and refuses the Execute of `c`.
#[test]
fn prepared_sql_that_replaces_a_portal_is_not_masked_as_the_old_one() {
    let test = "prepared_sql_that_replaces_a_portal_is_not_masked_as_the_old_one";
    let Some(f) = Fixture::start(test, "pg-prepnames", |t| t.utility = true) else {
        return;
    };
    let out = Script::run(
        &f,
        &json!([
            {"send": [
                ["P", "s", "select 'nothing to mask'::text as v"], ["D", "S", "s"],
                ["P", "cl", "CLOSE c"],
                ["P", "d", "DECLARE c CURSOR FOR SELECT card_number FROM customers"],
                ["S"],
            ]},
            {"until": "Z"},
            {"send": [["Q", "BEGIN"]]},
            {"until": "Z"},
            {"send": [
                ["B", "c", "s"], ["B", "", "cl"], ["E", ""], ["B", "", "d"], ["E", ""], ["S"],
            ]},
            {"until": "Z"},
            {"send": [["E", "c"], ["S"]]},
            {"until": "Z"},
        ]),
    );
    assert_eq!(out.end(), "open", "{out}");
    assert_no_card(&f, &out);
    assert_eq!(
        out.step(5)["got"],
        json!(["2", "2", "C", "2", "C", "Z"]),
        "{out}"
    );
    assert_eq!(out.step(7)["got"], json!(["E", "Z"]), "{out}");
    assert_eq!(out.sqlstates_from(0), ["42501"], "{out}");
}

/// A statement replaced by SQL while a Close of it waits in a failing batch: the server skips
/// the Close, and its statement under the name is the one SQL prepared, so tollgate does not
/// put back the one it knew. A Bind of the name is refused (`unknown-statement`), and no card
/// passes under the harmless statement's columns.
#[test]
fn a_statement_replaced_by_sql_behind_a_skipped_close_is_not_put_back() {
    let test = "a_statement_replaced_by_sql_behind_a_skipped_close_is_not_put_back";
    let Some(f) = Fixture::start(test, "pg-sqlskip", |t| t.utility = true) else {
        return;
    };
    // Fails after 1 s, when tollgate has long taken in the rest of the write.
    let failing = "select pg_sleep(1), count(*) / count(*) from accounts where false";
    let out = Script::run(
        &f,
        &json!([
            prepare("s", "select 'nothing to mask'::text as v"),
            {"until": "Z"},
            {"send": [
                ["P", "", failing], ["B", "", ""], ["E", ""], ["C", "S", "s"], ["S"],
                ["Q", "DEALLOCATE s"], ["Q", "PREPARE s AS SELECT card_number FROM customers"],
            ]},
            {"until": "Z", "count": 3},
            {"send": [["B", "p", "s"], ["E", "p"], ["S"]]},
            {"until": "Z"},
        ]),
    );
    assert_eq!(out.end(), "open", "{out}");
    assert_no_card(&f, &out);
    assert_eq!(out.step(5)["got"], json!(["2", "E", "Z"]), "{out}");
    assert_eq!(out.sqlstates_from(0), ["22012", "42501"], "{out}");
}

/// PostgreSQL keeps the first 63 bytes of a statement name: a Close and a Parse of one long
/// name replace the statement of another name alike in those bytes. tollgate keys its view by
/// the same bytes, so the Bind of the first name is masked as the statement the server runs
/// (held apart, the harmless plan of the first Parse would let the card number through).
#[test]
fn a_long_name_is_the_statement_postgresql_keeps_under_its_first_63_bytes() {
    let test = "a_long_name_is_the_statement_postgresql_keeps_under_its_first_63_bytes";
    let Some(f) = Fixture::start(test, "pg-longname", |_| {}) else {
        return;
    };
    let first = format!("{}_first", "s".repeat(63));
    let second = format!("{}_second", "s".repeat(63));
    let card = "select card_number || '' as x from customers where id = 1";
    let out = Script::run(
        &f,
        &json!([
            {"send": [["P", first, "select 'nothing to mask'::text as x"], ["S"]]},
            {"until": "Z"},
            {"send": [["C", "S", second], ["P", second, card], ["S"]]},
            {"until": "Z"},
            {"send": [["B", "", first], ["D", "P", ""], ["E", ""], ["S"]]},
            {"until": "Z"},
        ]),
    );
    assert_eq!(out.end(), "open", "{out}");
    assert_eq!(out.step(3)["got"], json!(["3", "1", "Z"]), "{out}");
    assert_eq!(
        out.step(5)["got"],
        json!(["2", "T", "D", "C", "Z"]),
        "{out}"
    );
    // Masked by the card query's plan: its last four digits only.
    let c1 = &f.pg.customers[0];
    assert_eq!(out.rows_from(5), [json!([c1.card_last4()])], "{out}");
    // The one statement that ran is recorded as what the server ran.
    let session = f.statements_of(out.pid(), 1);
    let texts: Vec<&str> = statements(&session)
        .iter()
        .map(|s| s["text"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(texts.len(), 1, "{session:#}");
    assert!(texts[0].contains("card_number"), "{session:#}");
}

/// Where the 63rd byte of a longer name is not ASCII, what PostgreSQL keeps of it depends on
/// the server's encoding: the session ends.
#[test]
fn a_long_name_cut_inside_a_non_ascii_character_ends_the_session() {
    let test = "a_long_name_cut_inside_a_non_ascii_character_ends_the_session";
    let Some(f) = Fixture::start(test, "pg-longname8", |_| {}) else {
        return;
    };
    let long = format!("{}\u{e9}x", "s".repeat(62));
    let out = Script::run(
        &f,
        &json!([
            {"send": [["P", "s".repeat(63), COUNT_ACCOUNTS], ["S"]]},
            {"until": "Z"},
            {"send": [["P", long, COUNT_ACCOUNTS], ["S"]]},
            {"until": "Z"},
        ]),
    );
    assert_eq!(out.step(1)["got"], json!(["1", "Z"]), "{out}");
    assert!(
        matches!(out.end(), "eof" | "reset"),
        "the session went on: {out}"
    );
}

/// A server whose encoding converts names (LATIN1 here; EUC_JP takes `é` as three bytes, and two
/// distinct characters as one) may keep two names tollgate holds apart as one: a non-ASCII
/// statement name ends the session there. ASCII names go on, and on a UTF8 database the same
/// non-ASCII name is taken.
#[test]
fn a_non_ascii_name_on_a_server_that_converts_names_ends_the_session() {
    let test = "a_non_ascii_name_on_a_server_that_converts_names_ends_the_session";
    let Some(f) = Fixture::start(test, "pg-latin1", |_| {}) else {
        return;
    };
    f.pg.admin_sql(
        "postgres",
        "CREATE DATABASE latin1 OWNER app ENCODING 'LATIN1' LC_COLLATE 'C' LC_CTYPE 'C' \
         TEMPLATE template0",
    );
    let steps = json!([
        {"send": [["P", "s1", "select 1"], ["S"]]},
        {"until": "Z"},
        {"send": [["P", "s\u{e9}", "select 1"], ["S"]]},
        {"until": "Z"},
    ]);
    let latin1 = Script::run_on(&f, "latin1", &steps);
    assert_eq!(latin1.step(1)["got"], json!(["1", "Z"]), "{latin1}");
    assert!(
        matches!(latin1.end(), "eof" | "reset"),
        "the session went on: {latin1}"
    );
    let utf8 = Script::run(&f, &steps);
    assert_eq!(utf8.end(), "open", "{utf8}");
    assert_eq!(utf8.step(3)["got"], json!(["1", "Z"]), "{utf8}");
}

/// Creates `sneaky()`, a SQL function that turns `standard_conforming_strings` off inside the
/// server, where tollgate sees only `SELECT sneaky()`.
const SNEAKY: &str = "CREATE FUNCTION sneaky() RETURNS text LANGUAGE sql \
    AS $$ SELECT set_config('standard_conforming_strings', 'off', false) $$";

/// Creates the table `victim`, owned by the role tollgate logs in as: a `DROP TABLE victim` that
/// reaches the server succeeds.
fn create_victim(f: &Fixture) {
    f.pg.admin_sql(
        "orders",
        "CREATE TABLE victim (id int); ALTER TABLE victim OWNER TO scram_user",
    );
}

/// Asserts that `victim` is still there (`what` tells what was sent).
fn assert_victim_left(f: &Fixture, what: &dyn std::fmt::Display) {
    let left = f.pg.admin_sql(
        "orders",
        "SELECT count(*) FROM pg_class WHERE relname = 'victim'",
    );
    assert!(
        left.contains('1'),
        "the server dropped the table: {left}\n{what}"
    );
}

/// A session may not change how the server reads SQL. `SET standard_conforming_strings = off`
/// (after which `'x\''` is a whole literal to the server, so a `DROP` could sit where tollgate
/// sees a string) and `set_config('client_encoding', ...)` are unknown (denied here by
/// `no-unknown`), and the session goes on; setting the safe value is an ordinary `SET`. A
/// function that changes the setting inside the server is caught by the server's
/// ParameterStatus report: the session ends there.
#[test]
fn a_session_may_not_change_how_the_server_reads_sql() {
    let test = "a_session_may_not_change_how_the_server_reads_sql";
    let Some(f) = Fixture::start(test, "pg-reading", |_| {}) else {
        return;
    };
    f.pg.admin_sql("orders", SNEAKY);
    let out = Script::run(
        &f,
        &json!([
            {"send": [["Q", "SET standard_conforming_strings = off"]]},
            {"until": "Z"},
            {"send": [["Q", "SELECT set_config('client_encoding', 'LATIN1', false)"]]},
            {"until": "Z"},
            {"send": [["Q", "SET standard_conforming_strings = on"]]},
            {"until": "Z"},
            {"send": [["Q", "SELECT sneaky()"], ["Q", "SELECT 1"]]},
            {"until": "Z", "count": 2},
        ]),
    );
    assert_eq!(out.step(1)["got"], json!(["E", "Z"]), "{out}");
    assert_eq!(out.step(3)["got"], json!(["E", "Z"]), "{out}");
    assert_eq!(out.sqlstates_from(0)[..2], ["42501", "42501"], "{out}");
    assert_eq!(out.step(5)["got"], json!(["C", "Z"]), "{out}");
    assert!(
        matches!(out.end(), "eof" | "reset"),
        "the session went on: {out}"
    );
    assert!(
        out.step(7)["got"]
            .as_array()
            .is_none_or(|g| g.iter().filter(|t| *t == "Z").count() != 2),
        "the statement after the change was answered: {out}"
    );
    assert!(
        f.agent_log()
            .contains("standard_conforming_strings = off, which tollgate cannot follow"),
        "{}",
        f.agent_log()
    );
}

/// A statement pipelined behind a function that turns `standard_conforming_strings` off reaches
/// the server before its report of the change: text the server would then read otherwise (here a
/// literal to tollgate, a `DROP` to the server) is refused before it is sent.
#[test]
fn a_statement_pipelined_behind_a_reading_change_is_read_both_ways() {
    let test = "a_statement_pipelined_behind_a_reading_change_is_read_both_ways";
    let Some(f) = Fixture::start(test, "pg-pipeline-read", |_| {}) else {
        return;
    };
    f.pg.admin_sql("orders", SNEAKY);
    create_victim(&f);
    // Standard-conforming: a SELECT of two literals. Not: a SELECT, then `DROP TABLE victim`.
    let two_ways = r"SELECT 'a\' , $$' ; DROP TABLE victim; --$$";
    let out = Script::run(
        &f,
        &json!([
            {"send": [["Q", "SELECT sneaky()"], ["Q", two_ways]]},
            {"until": "Z", "count": 2},
        ]),
    );
    assert!(
        matches!(out.end(), "eof" | "reset"),
        "the session went on: {out}"
    );
    assert_victim_left(&f, &out);
    let session = f.statements_of(out.pid(), 2);
    let (classes, decision, _) = verdict(&statements(&session)[1]);
    assert_eq!(
        (classes, &*decision),
        (vec!["unknown".to_owned()], "deny"),
        "{session:#}"
    );
}

/// PostgreSQL takes any non-ASCII character into a dollar-quote tag, sqlparser does not: to the
/// server `$€$, '$€$` is one string and the `DROP` after it runs; to sqlparser it is a `$`, a
/// word and a string literal holding the `DROP`. Likewise a comment right after an operator.
/// Such text is refused (found in review).
#[test]
fn a_dollar_quote_tag_sqlparser_does_not_read_is_refused() {
    let test = "a_dollar_quote_tag_sqlparser_does_not_read_is_refused";
    let Some(f) = Fixture::start(test, "pg-dollar-tag", |_| {}) else {
        return;
    };
    create_victim(&f);
    for sql in [
        "SELECT $€$, '$€$; DROP TABLE victim; --'",
        // PostgreSQL ends an operator before `/*` or `--`; sqlparser reads `>/*` as one.
        "SELECT 1 >/* ' */ 0; DROP TABLE victim; -- '",
        "SELECT '{\"a\":1}'::jsonb ?-- '\n$$a$$; DROP TABLE victim; --'",
    ] {
        let out = Script::run(&f, &json!([{"send": [["Q", sql]]}, {"until": "Z"}]));
        assert_eq!(out.step(1)["got"], json!(["E", "Z"]), "{sql}: {out}");
        assert_eq!(out.sqlstates_from(0), ["42501"], "{sql}: {out}");
        assert_victim_left(&f, &format!("{sql}: {out}"));
    }
}

/// A role default that makes the server read SQL otherwise than tollgate
/// (`standard_conforming_strings = off`) is refused at login, with the reason.
#[test]
fn a_login_under_a_default_tollgate_cannot_read_is_refused() {
    let test = "a_login_under_a_default_tollgate_cannot_read_is_refused";
    let Some(f) = Fixture::start(test, "pg-scsoff", |_| {}) else {
        return;
    };
    f.pg.admin_sql(
        "orders",
        "ALTER ROLE scram_user IN DATABASE orders SET standard_conforming_strings = off",
    );
    let r = f.psql_c("SELECT 1");
    assert!(!r.ok(), "{r:?}");
    assert!(
        r.stderr
            .contains("standard_conforming_strings = off, which tollgate cannot follow"),
        "{r:?}"
    );
}

/// Startup parameters that would change who the session is (`role`) or how the server reads
/// SQL (`standard_conforming_strings` off) are refused at login, naming the parameter: PostgreSQL
/// applies them as settings before the first statement, past the policy. Others pass.
#[test]
fn startup_parameters_past_the_policy_are_refused() {
    let test = "startup_parameters_past_the_policy_are_refused";
    let Some(f) = Fixture::start(test, "pg-startup", |_| {}) else {
        return;
    };
    for (name, value) in [
        ("role", "pg_read_all_data"),
        ("standard_conforming_strings", "off"),
    ] {
        let out = Script::startup_with(&f, &json!({ name: value }));
        assert_eq!(out["startup"], json!(["E"]), "{name}: {out:#}");
        let error = &out["startup_errors"][0];
        assert_eq!(error["C"], "42501", "{name}: {out:#}");
        assert!(
            error["M"].as_str().is_some_and(|m| m.contains(name)),
            "{name}: {out:#}"
        );
    }
    let out = Script::startup_with(&f, &json!({"DateStyle": "ISO, DMY"}));
    assert_eq!(
        out["startup"].as_array().and_then(|a| a.last()),
        Some(&json!("Z")),
        "{out:#}"
    );
}

/// A whole-row reference to a table named with capitals (quoted: `"Customers"`) is masked as
/// that table's rows are: the catalog's table names are matched without case. Found in review:
/// the classifier keeps a quoted name's case, the catalog lower-cased it, and the row passed.
#[test]
fn a_whole_row_of_a_quoted_table_name_is_masked() {
    let test = "a_whole_row_of_a_quoted_table_name_is_masked";
    let Some(f) = Fixture::start(test, "pg-quoted", |_| {}) else {
        return;
    };
    // A name holding a `.` stays quoted in the classifier's output: the catalog lookup missed
    // it by splitting at every dot.
    for table in [
        "\"Customers\"",
        "\"my.Customers\"",
        "public.\"my.Customers\"",
    ] {
        f.pg.admin_sql(
            "orders",
            &format!(
                "CREATE TABLE IF NOT EXISTS {table} AS SELECT * FROM customers; \
                 GRANT SELECT ON {table} TO PUBLIC"
            ),
        );
        let r = f.psql_c(&format!("SELECT c FROM {table} c WHERE id = 1"));
        assert!(r.ok(), "{table}: {r:?}");
        let out = lines(&r);
        assert_eq!(out.len(), 1, "{table}: {r:?}");
        let card = &f.pg.customers[0].card_number;
        assert!(!out[0].contains(card.as_str()), "a card passed: {r:?}");
    }
    // PostgreSQL cuts a name to its first 63 bytes: a longer spelling reads the same table.
    let long = format!("my.{}", "x".repeat(60));
    f.pg.admin_sql(
        "orders",
        &format!(
            "CREATE TABLE \"{long}\" AS SELECT * FROM customers; GRANT SELECT ON \"{long}\" TO PUBLIC"
        ),
    );
    let r = f.psql_c(&format!("SELECT c FROM \"{long}_and_more\" c WHERE id = 1"));
    assert!(r.ok(), "{r:?}");
    let card = &f.pg.customers[0].card_number;
    assert!(!r.stdout.contains(card.as_str()), "a card passed: {r:?}");
    assert_eq!(lines(&r).len(), 1, "{r:?}");
}

/// A Parse of a name SQL prepared fails at the server (the name is in use); a Bind of the name
/// pipelined after it binds SQL's statement, which tollgate does not know. It is taken as
/// unknown: its computed column is redacted (not let through by the failed Parse's plan), and
/// its record is marked.
#[test]
fn a_bind_of_a_name_sql_prepared_behind_a_failed_parse_is_taken_as_unknown() {
    let test = "a_bind_of_a_name_sql_prepared_behind_a_failed_parse_is_taken_as_unknown";
    let Some(f) = Fixture::start(test, "pg-sqlfailed", |_| {}) else {
        return;
    };
    let sql = "PREPARE s AS SELECT card_number || '' AS x FROM customers WHERE id = 1";
    let out = Script::run(
        &f,
        &json!([
            {"send": [["Q", sql]]},
            {"until": "Z"},
            {"send": [
                ["P", "s", "select 'nothing to mask'::text as x"], ["S"],
                ["B", "", "s"], ["D", "P", ""], ["E", ""], ["S"],
            ]},
            {"until": "Z", "count": 2},
        ]),
    );
    assert_eq!(out.end(), "open", "{out}");
    assert_eq!(
        out.step(3)["got"],
        json!(["E", "Z", "2", "T", "D", "C", "Z"]),
        "{out}"
    );
    assert_eq!(out.sqlstates_from(2), ["42P05"], "{out}");
    assert_no_card(&f, &out);
    let session = f.statements_of(out.pid(), 2);
    let texts: Vec<&str> = statements(&session)
        .iter()
        .map(|s| s["text"].as_str().unwrap_or(""))
        .collect();
    assert!(texts[1].contains("what ran is not known"), "{session:#}");
}

/// A client may pipeline more batches than tollgate lets be owed at once (1024): past that its
/// Syncs wait for the server's answers, and every batch is still answered, in order.
#[test]
fn a_pipeline_longer_than_the_syncs_owed_is_answered_in_order() {
    let test = "a_pipeline_longer_than_the_syncs_owed_is_answered_in_order";
    // Without masking: no Describe is sent, and masking would hide every value.
    let Some(f) = Fixture::start(test, "pg-manysyncs", |t| t.masking = false) else {
        return;
    };
    let out = Script::run(
        &f,
        &json!([
            {"send": [["P", "", "select {i}"], ["B", "", ""], ["E", ""], ["S"]], "repeat": 3000},
            {"until": "Z", "count": 3000, "within": 60},
        ]),
    );
    let got = out.step(1)["got"].as_array().cloned().unwrap_or_default();
    let ready = got.iter().filter(|t| *t == "Z").count();
    assert_eq!(ready, 3000, "{}", out.step(1)["how"]);
    let rows: Vec<String> = out.rows_from(1).iter().map(|r| r[0].to_string()).collect();
    let want: Vec<String> = (0..3000).map(|i| format!("\"{i}\"")).collect();
    assert!(
        rows == want,
        "rows out of order or missing: {} rows",
        rows.len()
    );
}

/// An Execute whose portal has no statement tollgate let through is refused (42501, rule
/// `unknown-statement`) and recorded, never run unrecorded. Here the portal was bound, in a
/// batch sent before the error of the batch before came back, to a statement whose Close
/// tollgate had applied and the server then skipped: the server binds the statement, tollgate
/// had none. Once the error comes, the statement is known again.
#[test]
fn an_execute_without_a_known_statement_is_refused() {
    let test = "an_execute_without_a_known_statement_is_refused";
    let Some(f) = Fixture::start(test, "pg-unknownstmt", |_| {}) else {
        return;
    };
    // Fails after 1 s, when tollgate has long taken in the rest of the write.
    let failing = "select pg_sleep(1), count(*) / count(*) from accounts where false";
    let out = Script::run(
        &f,
        &json!([
            prepare("count", COUNT_ACCOUNTS),
            {"until": "Z"},
            {"send": [
                ["P", "f", failing], ["B", "", "f"], ["E", ""], ["C", "S", "count"], ["S"],
                ["B", "held", "count"], ["E", "held"], ["S"],
            ]},
            {"until": "Z"},
            {"until": "Z"},
            {"send": [["B", "", "count"], ["E", ""], ["S"]]},
            {"until": "Z"},
        ]),
    );
    assert_eq!(out.step(3)["got"], json!(["1", "2", "E", "Z"]), "{out}");
    assert_eq!(out.step(4)["got"], json!(["2", "E", "Z"]), "{out}");
    assert_eq!(out.step(6)["got"], json!(["2", "D", "C", "Z"]), "{out}");
    assert_eq!(out.sqlstates_from(0), ["22012", "42501"], "{out}");
    let session = f.statements_of(out.pid(), 3);
    let decided: Vec<(&str, &str)> = statements(&session)
        .iter()
        .map(|s| {
            (
                s["decision"].as_str().unwrap_or(""),
                s["rule"].as_str().unwrap_or(""),
            )
        })
        .collect();
    assert_eq!(
        decided,
        [
            ("allow", policy::READS),
            ("deny", "unknown-statement"),
            ("allow", policy::READS)
        ],
        "{session:#}"
    );
    assert_eq!(
        outcomes(&session)[2],
        (COUNT_ACCOUNTS, Some(1), None),
        "{session:#}"
    );
}

/// A Parse sent after the server's error, in the same batch, is skipped by the server, which
/// keeps the statement the name had. tollgate keeps it too, so a later Bind and Execute of the
/// name is recorded as the statement the server runs, not as the one it skipped.
#[test]
fn a_parse_the_server_skips_leaves_the_statement_as_it_was() {
    let test = "a_parse_the_server_skips_leaves_the_statement_as_it_was";
    let Some(f) = Fixture::start(test, "pg-skipparse", |_| {}) else {
        return;
    };
    let skipped = "select count(*) from customers";
    let out = Script::run(
        &f,
        &json!([
            {"send": [["P", "", COUNT_ACCOUNTS], ["S"]]},
            {"until": "Z"},
            // A Bind of a statement that does not exist fails the batch; its error comes first.
            {"send": [["B", "", "nope"], ["H"]]},
            {"until": "E"},
            {"send": [["P", "", skipped], ["S"]]},
            {"until": "Z"},
            {"send": [["B", "", ""], ["D", "P", ""], ["E", ""], ["S"]]},
            {"until": "Z"},
        ]),
    );
    assert_eq!(
        out.step(5)["got"],
        json!(["Z"]),
        "the Parse was skipped: {out}"
    );
    assert_eq!(
        out.step(7)["got"],
        json!(["2", "T", "D", "C", "Z"]),
        "{out}"
    );
    assert_eq!(
        out.rows_from(6),
        [json!([data::ACCOUNTS.to_string()])],
        "the server ran the first statement: {out}"
    );
    let session = f.statements_of(out.pid(), 1);
    assert_eq!(
        outcomes(&session),
        [(COUNT_ACCOUNTS, Some(1), None)],
        "{session:#}"
    );
}

/// A Parse pipelined after a statement that fails later changes nothing: the server skips it,
/// so a Bind of the name in the next batch (sent before the error came) runs the statement
/// parsed before. tollgate records that statement and masks its rows by it: a computed copy of
/// a card number is masked by its source column, not let through by the plan of the skipped
/// statement (which computes nothing sensitive).
#[test]
fn a_bind_after_a_skipped_parse_is_masked_as_what_the_server_runs() {
    let test = "a_bind_after_a_skipped_parse_is_masked_as_what_the_server_runs";
    let Some(f) = Fixture::start(test, "pg-skipmask", |_| {}) else {
        return;
    };
    let card = "select upper(card_number) as card from customers where id = 1";
    let skipped = "select 'nothing to mask' as card";
    // Fails after 1 s, when tollgate has long taken in the rest of the write.
    let failing = "select pg_sleep(1), count(*) / count(*) from accounts where false";
    let out = Script::run(
        &f,
        &json!([
            {"send": [["P", "", card], ["S"]]},
            {"until": "Z"},
            {"send": [
                ["P", "f", failing], ["B", "", "f"], ["E", ""], ["P", "", skipped], ["S"],
                ["B", "", ""], ["D", "P", ""], ["E", ""], ["S"],
            ]},
            {"until": "Z"},
            {"until": "Z"},
        ]),
    );
    assert_eq!(out.step(3)["got"], json!(["1", "2", "E", "Z"]), "{out}");
    assert_eq!(out.sqlstates_from(0), ["22012"], "{out}");
    assert_eq!(
        out.step(4)["got"],
        json!(["2", "T", "D", "C", "Z"]),
        "{out}"
    );
    let c1 = &f.pg.customers[0];
    assert_eq!(out.rows_from(4), [json!([c1.card_last4()])], "{out}");
    let session = f.statements_of(out.pid(), 2);
    assert_eq!(
        outcomes(&session),
        [
            (&*failing.replace("(1)", "(?)"), None, Some("22012")),
            (&*card.replace("= 1", "= ?"), Some(1), None),
        ],
        "{session:#}"
    );
}

/// A denied Parse of a named statement that exists leaves it as it was: the server never sees
/// that Parse, so a later Bind of the name runs the statement prepared before, and tollgate
/// records it under that statement's text.
#[test]
fn a_denied_parse_leaves_the_named_statement_as_it_was() {
    let test = "a_denied_parse_leaves_the_named_statement_as_it_was";
    let Some(f) = Fixture::start(test, "pg-reparse", |_| {}) else {
        return;
    };
    let drop = "DROP TABLE customers";
    let out = Script::run(
        &f,
        &json!([
            prepare("count", COUNT_ACCOUNTS),
            {"until": "Z"},
            {"send": [["P", "count", drop], ["S"]]},
            {"until": "Z"},
            {"send": run_prepared("count")},
            {"until": "Z"},
        ]),
    );
    assert_eq!(out.step(3)["got"], json!(["E", "Z"]), "{out}");
    assert_eq!(out.step(5)["got"], json!(["2", "D", "C", "Z"]), "{out}");
    assert_eq!(out.sqlstates_from(0), ["42501"], "{out}");
    let session = f.statements_of(out.pid(), 2);
    assert_eq!(
        outcomes(&session),
        [
            (drop, None, Some("tollgate")),
            (COUNT_ACCOUNTS, Some(1), None),
        ],
        "{session:#}"
    );
}

/// OID of `pg_backend_pid()`, called by FunctionCall in [`a_function_call_is_refused_and_recorded`].
const PG_BACKEND_PID_OID: u32 = 2026;

/// A FunctionCall message runs a function by OID, outside SQL, so no statement rule can see
/// it: tollgate refuses it (42501, rule `function-call`), records the refusal, and the session
/// goes on. Inside an extended-protocol batch that already failed the server skips it up to
/// the Sync: tollgate sends nothing for it and owes nothing, so the Sync's ReadyForQuery is the
/// only answer and the next query is answered in step (the refusal is still recorded).
#[test]
fn a_function_call_is_refused_and_recorded() {
    let test = "a_function_call_is_refused_and_recorded";
    let Some(f) = Fixture::start(test, "pg-fncall", |_| {}) else {
        return;
    };
    let drop = "DROP TABLE customers";
    let out = Script::run(
        &f,
        &json!([
            {"send": [["F", PG_BACKEND_PID_OID]]},
            {"until": "Z"},
            // The batch's error comes (Flush) before the FunctionCall is sent.
            {"send": [["P", "", drop], ["B", "", ""], ["E", ""], ["H"]]},
            {"until": "E"},
            {"send": [["F", PG_BACKEND_PID_OID], ["S"]]},
            {"until": "Z"},
            {"send": [["Q", COUNT_ACCOUNTS]]},
            {"until": "Z"},
            {"drain": 0.3},
        ]),
    );
    // Never a FunctionCallResponse ('V'): the function did not run.
    assert_eq!(out.step(1)["got"], json!(["E", "Z"]), "{out}");
    assert_eq!(out.step(3)["got"], json!(["E"]), "{out}");
    assert_eq!(out.step(5)["got"], json!(["Z"]), "{out}");
    assert_eq!(out.step(7)["got"], json!(["T", "D", "C", "Z"]), "{out}");
    assert_eq!(out.sqlstates_from(0), ["42501", "42501"], "{out}");
    assert_eq!(
        out.rows_from(0),
        [json!([data::ACCOUNTS.to_string()])],
        "{out}"
    );
    assert_eq!(out.step(8)["got"], json!([]), "{out}");
    assert_eq!(out.end(), "open", "{out}");

    let session = f.statements_of(out.pid(), 4);
    let decided: Vec<(&str, &str, &str)> = statements(&session)
        .iter()
        .map(|s| {
            let field = |k: &str| s[k].as_str().unwrap_or("");
            (field("text"), field("decision"), field("rule"))
        })
        .collect();
    let call = "function call (by OID)";
    assert_eq!(
        decided,
        [
            (call, "deny", "function-call"),
            (drop, "deny", policy::NO_DDL),
            (call, "deny", "function-call"),
            (COUNT_ACCOUNTS, "allow", policy::READS),
        ],
        "{session:#}"
    );
    // The table is intact.
    assert_eq!(
        f.pg.admin_sql("orders", "select count(*) from customers"),
        data::CUSTOMERS.to_string()
    );
}

/// What the session ended before a statement's result says in its record: it may have run.
const SESSION_ENDED: &str = "session ended before the result";

/// A message other than CopyData, CopyDone, CopyFail, Flush or Sync while the server copies in
/// (COPY FROM STDIN, by a simple Query or through the extended protocol): tollgate ends that
/// session, without forwarding it. (PostgreSQL 15 would fail the copy and end the connection
/// too, "protocol synchronization was lost", having read the message's type.) The client sees
/// the connection end, possibly after an ErrorResponse, and no row; the statement it sent is
/// not recorded as run or as possibly run; the connection's end in the audit says it came
/// during COPY; the copy added nothing and a new session works.
#[test]
fn a_query_sent_during_copy_in_ends_the_session() {
    let test = "a_query_sent_during_copy_in_ends_the_session";
    let Some(f) = Fixture::start(test, "pg-copyquery", |_| {}) else {
        return;
    };
    let cards = "select card_number from customers";
    let copy_then = |copy: Vec<Value>, started: Value, next: Vec<Value>| {
        let out = Script::run(
            &f,
            &json!([
                {"send": copy},
                {"until": "G"},
                {"send": next},
                {"drain": 2.0},
                // Only if the session is still open: does it go on in step?
                {"send": [["Q", COUNT_ACCOUNTS]]},
                {"until": "Z"},
            ]),
        );
        assert_eq!(out.step(1)["got"], started, "copy not started: {out}");
        out
    };
    let simple = copy_then(
        vec![json!(["Q", COPY_ACCOUNTS])],
        json!(["G"]),
        vec![json!(["Q", cards])],
    );
    let extended = copy_then(
        extended_batch(COPY_ACCOUNTS),
        json!(["1", "2", "G"]),
        extended_batch(cards),
    );
    for (what, out) in [("simple", &simple), ("extended", &extended)] {
        assert!(
            matches!(out.end(), "eof" | "reset"),
            "{what}: session not ended: {out}"
        );
        assert_eq!(out.rows_from(2), Vec::<Value>::new(), "{what}: {out}");

        let session = f.session_of(out.pid());
        let stmts = statements(&session);
        assert_eq!(
            stmts.first().and_then(|s| s["text"].as_str()),
            Some(COPY_ACCOUNTS),
            "{what}: {session:#}"
        );
        assert!(stmts[0]["rows"].is_null(), "{what}: {session:#}");
        let ran: Vec<_> = stmts
            .iter()
            .filter(|s| s["text"] == cards && s["decision"] == "allow")
            .filter(|s| !s["rows"].is_null() || s["error"].is_null() || s["error"] == SESSION_ENDED)
            .collect();
        assert!(
            ran.is_empty(),
            "{what}: the select recorded as (possibly) run: {session:#}"
        );
        let reason = session["end_reason"].as_str().unwrap_or("");
        assert!(
            reason.contains("during COPY"),
            "{what}: end_reason {reason:?}: {session:#}"
        );
    }

    let accounts = data::ACCOUNTS.to_string();
    let next = Script::run(
        &f,
        &json!([{"send": [["Q", COUNT_ACCOUNTS]]}, {"until": "Z"}]),
    );
    assert_eq!(next.rows_from(0), [json!([accounts])], "{next}");
    assert_eq!(next.end(), "open", "{next}");
    assert_eq!(f.pg.admin_sql("orders", COUNT_ACCOUNTS), accounts);
}

/// A statement longer than the target's `max_statement_bytes` is `unknown` without being read,
/// and denied with a message saying why; a long one under it (classified on the blocking pool,
/// since it is over 16 KiB) runs as any other.
#[test]
fn a_statement_over_max_statement_bytes_is_unknown_unread() {
    let test = "a_statement_over_max_statement_bytes_is_unknown_unread";
    let Some(f) = Fixture::start(test, "pg-long", |t| {
        t.max_statement_bytes = Some(256 << 10);
    }) else {
        return;
    };
    let insert = |from: usize, n: usize| {
        let rows: Vec<String> = (from..from + n)
            .map(|i| format!("({i}, 'owner number {i}', {i})"))
            .collect();
        format!("INSERT INTO accounts VALUES {};\n", rows.join(", "))
    };
    let under = insert(10_000, 3_000);
    assert!(
        (16 << 10..256 << 10).contains(&under.len()),
        "{}",
        under.len()
    );
    let r = f
        .psql(Role::Scram, "disable", &[])
        .stdin(&under)
        .run(Some(&f.etl));
    assert_eq!(lines(&r), ["INSERT 0 3000"], "{r:?}");

    let over = insert(20_000, 9_000);
    assert!(over.len() > 256 << 10, "{}", over.len());
    let r = f
        .psql(Role::Scram, "disable", &[])
        .stdin(&over)
        .run(Some(&f.etl));
    assert_denied(&r, policy::NO_UNKNOWN);
    let why = format!(
        "({} bytes of SQL, over the target's max_statement_bytes (262144): not read, so unknown)",
        over.len() - 1
    );
    assert!(r.stderr.contains(&why), "{r:?}");
    assert_eq!(
        f.pg.admin_sql("orders", "select count(*) from accounts where id >= 20000"),
        "0"
    );
    let session = f.statements_of(r.pid, 1);
    let stmt = &statements(&session)[0];
    assert_eq!(
        verdict(stmt),
        (
            vec!["unknown".to_owned()],
            "deny".to_owned(),
            policy::NO_UNKNOWN.to_owned()
        ),
        "{session:#}"
    );
    assert_eq!(
        stmt["text"],
        format!("[{} bytes of SQL, not read]", over.len() - 1),
        "{session:#}"
    );
}

/// A denied statement inside a transaction: BEGIN; INSERT; DROP TABLE (42501 naming the
/// rule); COMMIT reports ROLLBACK. The insert is not visible, the table still exists, and the
/// audit lists each statement with its class, decision and rule.
#[test]
fn a_denied_statement_aborts_its_transaction() {
    let test = "a_denied_statement_aborts_its_transaction";
    let Some(f) = Fixture::start(test, "pg-txn", |_| {}) else {
        return;
    };
    let r = f
        .psql(Role::Scram, "disable", &[])
        .stdin(
            "BEGIN;\n\
             INSERT INTO accounts VALUES (1001, 'txn owner', 5);\n\
             DROP TABLE accounts;\n\
             COMMIT;\n",
        )
        .run(Some(&f.etl));
    assert_denied(&r, policy::NO_DDL);
    assert_eq!(lines(&r), ["BEGIN", "INSERT 0 1", "ROLLBACK"], "{r:?}");
    assert_eq!(
        f.pg.admin_sql(
            "orders",
            "select count(*) from accounts; select count(*) from accounts where id = 1001"
        ),
        format!("{}\n0", data::ACCOUNTS)
    );

    let session = f.statements_of(r.pid, 4);
    let got: Vec<_> = statements(&session).iter().map(verdict).collect();
    let v = |class: &str, decision: &str, rule: &str| {
        (vec![class.to_owned()], decision.to_owned(), rule.to_owned())
    };
    assert_eq!(
        got,
        [
            v("transaction", "allow", policy::READS),
            v("insert", "allow", policy::WRITES),
            v("ddl", "deny", policy::NO_DDL),
            v("transaction", "allow", policy::READS),
        ],
        "{session:#}"
    );
}

/// A stalled audit store holds statements back, then refuses them (fail closed), and the
/// session goes on once the store catches up. The test locks the audit database so that the
/// writer cannot commit, while one psql session runs SELECTs. With `audit_queue = 70`, the free
/// burst of 64 slots a statement needs is gone after 7 queued records.
/// - Locked until a statement waits (less than `audit_wait`, 1.5 s): statements wait, then all
///   run.
/// - Locked for 3.2 s (less than the writer's 5 s busy timeout): a statement that waits the whole
///   1.5 s is refused with `audit-unavailable`; later ones run once the lock is gone.
///
/// Every statement is in the audit, the refused ones with the rule that refused them.
#[test]
fn a_stalled_audit_store_holds_statements_then_refuses_them() {
    let test = "a_stalled_audit_store_holds_statements_then_refuses_them";
    let config = "audit_queue = 70\naudit_wait = \"1500ms\"\n";
    let Some(f) = Fixture::start_configured(test, "pg-stall", config, |_| {}) else {
        return;
    };
    let sync = f.agent.scratch().join("sync");
    std::fs::create_dir_all(&sync).expect("sync dir");
    // Many statements per phase: the writer's first batch gathers for 5 ms before it blocks on
    // the lock, and takes every record queued meanwhile; enough must be left to fill the margin.
    let per_phase = 100;
    let mut script = String::from("SELECT 'start';\n");
    for phase in 1..=2 {
        let go = wait_for_go(&sync, &phase.to_string());
        script.push_str(&format!("\\! {go}\n"));
        for i in 1..=per_phase {
            script.push_str(&format!("SELECT {};\n", phase * 1000 + i));
        }
    }
    // The lock side runs beside psql: it waits for each phase, locks, lets psql go, unlocks.
    let db = f.agent.state_dir.join("audit.db");
    let (r, waited_in_phase_1) = std::thread::scope(|s| {
        let locker = s.spawn(|| {
            let lock_at = |phase: usize| lock_audit_at(&db, &sync, &phase.to_string());
            // Phase 1: held until a statement waits (well under audit_wait), then let go.
            let lock = lock_at(1);
            let waited = harness::poll(Duration::from_secs(1), || {
                (counter(&f, "audit_room_waits") >= 1).then_some(())
            });
            lock.execute_batch("ROLLBACK").expect("unlock audit db");
            // Phase 2: held over audit_wait, and well under the writer's 5 s busy timeout (past
            // which its batch, and the records in it, would be lost).
            let lock = lock_at(2);
            std::thread::sleep(Duration::from_millis(3200));
            lock.execute_batch("ROLLBACK").expect("unlock audit db");
            waited.is_some()
        });
        let r = f
            .psql(Role::Scram, "disable", &[])
            .stdin(&script)
            .run(Some(&f.etl));
        (r, locker.join().expect("locker thread"))
    });
    assert!(
        waited_in_phase_1,
        "no statement waited while the store was locked"
    );
    assert!(!r.timed_out, "{r:?}");

    let out = lines(&r);
    let ran = |phase: usize| {
        (1..=per_phase)
            .filter(|i| out.contains(&(phase * 1000 + i).to_string().as_str()))
            .count()
    };
    assert_eq!(
        ran(1),
        per_phase,
        "phase 1: every statement waited and ran: {r:?}"
    );
    let refused = per_phase - ran(2);
    assert!(
        (1..per_phase).contains(&refused),
        "phase 2: some statements refused, the last ones ran again ({refused}): {r:?}"
    );
    let last = (2000 + per_phase).to_string();
    assert!(
        out.contains(&last.as_str()),
        "the session goes on after the stall: {r:?}"
    );
    assert_eq!(
        r.stderr.matches(&denial("audit-unavailable")).count(),
        refused,
        "{r:?}"
    );

    let session = f.statements_of(r.pid, 1 + 2 * per_phase);
    let rules: Vec<_> = statements(&session).iter().map(verdict).collect();
    let unavailable = rules
        .iter()
        .filter(|(_, decision, rule)| decision == "deny" && rule == "audit-unavailable")
        .count();
    assert_eq!(unavailable, refused, "{session:#}");
    assert_eq!(rules.len(), 1 + 2 * per_phase, "{session:#}");
}

/// `audit_failure = "open"`: a statement that finds no room in the audit queue for the whole
/// `audit_wait` runs (never refused), with a warning; its record is queued if there is room by
/// its end. The test locks the audit database while one psql session runs SELECTs, and lets it
/// go once a statement was let through that way.
#[test]
fn an_open_store_lets_statements_through_while_it_is_behind() {
    let test = "an_open_store_lets_statements_through_while_it_is_behind";
    let config = "audit_queue = 70\naudit_wait = \"300ms\"\naudit_failure = \"open\"\n";
    let Some(f) = Fixture::start_configured(test, "pg-openbehind", config, |_| {}) else {
        return;
    };
    let sync = f.agent.scratch().join("sync");
    std::fs::create_dir_all(&sync).expect("sync dir");
    let per_phase = 100;
    let mut script = format!("SELECT 'start';\n\\! {}\n", wait_for_go(&sync, "1"));
    for i in 1..=per_phase {
        script.push_str(&format!("SELECT {};\n", 1000 + i));
    }
    let db = f.agent.state_dir.join("audit.db");
    let (r, let_through) = std::thread::scope(|s| {
        let locker = s.spawn(|| {
            let lock = lock_audit_at(&db, &sync, "1");
            // Well under the writer's 5 s busy timeout: no batch of records is lost to it.
            let let_through = harness::poll(Duration::from_secs(3), || {
                (counter(&f, "audit_unheld") >= 1).then_some(())
            });
            lock.execute_batch("ROLLBACK").expect("unlock audit db");
            let_through.is_some()
        });
        let r = f
            .psql(Role::Scram, "disable", &[])
            .stdin(&script)
            .run(Some(&f.etl));
        (r, locker.join().expect("locker thread"))
    });
    assert!(let_through, "no statement was let through unheld: {r:?}");
    assert!(!r.timed_out, "{r:?}");
    let out = lines(&r);
    let ran = (1..=per_phase)
        .filter(|i| out.contains(&(1000 + i).to_string().as_str()))
        .count();
    assert_eq!(ran, per_phase, "every statement ran: {r:?}");
    assert!(!r.stderr.contains("audit-unavailable"), "{r:?}");
    assert!(
        f.agent_log()
            .contains("work let through without a place for its record"),
        "{}",
        f.agent_log()
    );
    // What was recorded names no refusal.
    let session = f.statements_of(r.pid, 1);
    assert!(
        statements(&session)
            .iter()
            .map(verdict)
            .all(|(_, decision, _)| decision == "allow"),
        "{session:#}"
    );
}

/// `audit_failure = "open"`: a session whose connection record the audit store could not
/// commit (its database locked past the writer's 5 s busy timeout) is let through unrecorded.
/// Its statements run, and their records are never sent: they would reference a connection row
/// that does not exist, fail the foreign key, and make the writer retry its batch one record
/// at a time (each counted in `audit_failed`). A `begin` waits for its commit only once a write
/// has failed (before, it is spooled): a first session, recorded through the spool, makes the
/// writer fail; its records are kept and committed once the lock is gone.
#[test]
fn an_unrecorded_session_sends_no_statement_records() {
    let test = "an_unrecorded_session_sends_no_statement_records";
    let config = "audit_failure = \"open\"\n";
    let Some(f) = Fixture::start_configured(test, "pg-unrec", config, |_| {}) else {
        return;
    };
    let sync = f.agent.scratch().join("sync");
    std::fs::create_dir_all(&sync).expect("sync dir");
    let script = format!(
        "\\! {}\nSELECT 1;\nSELECT 2;\nSELECT 3;\n",
        wait_for_go(&sync, "1")
    );
    let lock = rusqlite::Connection::open(f.agent.state_dir.join("audit.db")).expect("open db");
    lock.execute_batch("BEGIN IMMEDIATE")
        .expect("lock audit db");
    let first = f.psql_c("SELECT 0");
    assert!(first.ok(), "{first:?}");
    let write_failed = harness::poll(Duration::from_secs(30), || {
        (counter(&f, "audit_write_errors") >= 1).then_some(())
    });
    assert!(write_failed.is_some(), "{}", f.agent_log());
    let (r, let_through, failed_then) = std::thread::scope(|s| {
        let client = s.spawn(|| {
            f.psql(Role::Scram, "disable", &[])
                .stdin(&script)
                .run(Some(&f.etl))
        });
        let let_through = harness::poll(Duration::from_secs(30), || {
            f.agent_log()
                .contains("connection let through (audit_failure = open)")
                .then_some(())
        });
        lock.execute_batch("ROLLBACK").expect("unlock audit db");
        let failed_then = counter(&f, "audit_failed");
        std::fs::write(sync.join("go1"), "").expect("go");
        (client.join().expect("psql"), let_through, failed_then)
    });
    assert!(let_through.is_some(), "never let through: {r:?}");
    assert!(r.ok() && lines(&r) == ["1", "2", "3"], "{r:?}");

    // A recorded session after it: once its statement is in, the writer has taken every
    // record sent before.
    let after = f.psql_c("SELECT 4");
    assert!(after.ok(), "{after:?}");
    f.statements_of(after.pid, 1);
    assert_eq!(
        counter(&f, "audit_failed"),
        failed_then,
        "records of the unrecorded session were sent"
    );
    assert!(
        !f.agent_log().contains("audit batch rejected"),
        "{}",
        f.agent_log()
    );
    assert!(
        f.agent.sessions().iter().all(|s| s.pid() != Some(r.pid)),
        "{}",
        f.agent.sessions_text()
    );
    // The first session's records, kept through the failed writes.
    f.statements_of(first.pid, 1);
}

/// A counter of `tollgate status --json`.
fn counter(f: &Fixture, name: &str) -> u64 {
    let status = f.agent.status();
    status["counters"][name]
        .as_u64()
        .unwrap_or_else(|| panic!("no counter {name}: {status:#}"))
}

/// Waits until the client touches `ready{phase}` in `sync`, takes an SQLite write lock on the
/// audit database `db` (the agent's writer can no longer commit), then touches `go{phase}`.
fn lock_audit_at(
    db: &std::path::Path,
    sync: &std::path::Path,
    phase: &str,
) -> rusqlite::Connection {
    let ready = sync.join(format!("ready{phase}"));
    let seen = harness::poll(Duration::from_secs(30), || ready.exists().then_some(()));
    assert!(seen.is_some(), "the client never reached phase {phase}");
    let lock = rusqlite::Connection::open(db).expect("open audit db");
    lock.execute_batch("BEGIN IMMEDIATE")
        .expect("lock audit db");
    std::fs::write(sync.join(format!("go{phase}")), "").expect("go");
    lock
}

/// The audit store stalled behind a backlog past its margin: a psql session of the etl
/// workload, connected before the lock (its record spooled, and committed within the writer's
/// 5 ms gathering window, long before the client reaches the lock point),
/// sends eleven denials once the database is locked. The writer takes the first and blocks on
/// the lock; the ten after it stay queued.
struct Stall {
    denials: std::thread::JoinHandle<Run>,
    locker: std::thread::JoinHandle<()>,
}

impl Stall {
    /// Once `after` exists in `sync` (the client under test has reached its point), locks the
    /// audit database `db`, waits for the denials, touches `go` in `sync`, and unlocks `hold`
    /// later (keep it within the writer's 5 s busy timeout).
    fn start(
        f: &Fixture,
        db: &std::path::Path,
        sync: &std::path::Path,
        (after, go): (&str, &str),
        hold: Duration,
    ) -> Stall {
        let mut script = format!(
            "\\! {}\nDROP TABLE accounts;\n\\! sleep 0.2\n",
            wait_for_go(sync, "P")
        );
        script.push_str(&"DROP TABLE accounts;\n".repeat(10));
        script.push_str(&format!("\\! touch {}\n", sync.join("doneP").display()));
        let (conninfo, etl) = (f.conninfo(Role::Scram.name(), "disable"), f.etl.clone());
        let denials =
            std::thread::spawn(move || psql(&conninfo, &[]).stdin(&script).run(Some(&etl)));
        let (db, sync) = (db.to_owned(), sync.to_owned());
        let (after, go) = (sync.join(after), sync.join(go));
        let locker = std::thread::spawn(move || {
            let seen = harness::poll(Duration::from_secs(30), || after.exists().then_some(()));
            assert!(
                seen.is_some(),
                "the client never reached {}",
                after.display()
            );
            let lock = lock_audit_at(&db, &sync, "P");
            let done = sync.join("doneP");
            let seen = harness::poll(Duration::from_secs(10), || done.exists().then_some(()));
            assert!(seen.is_some(), "psql never finished its denials");
            std::fs::write(&go, "").expect("go");
            std::thread::sleep(hold);
            lock.execute_batch("ROLLBACK").expect("unlock audit db");
        });
        Stall { denials, locker }
    }

    /// Waits for the unlock and for psql; each of its eleven statements was denied.
    fn finish(self) {
        self.locker.join().expect("locker");
        let d = self.denials.join().expect("psql");
        assert_eq!(
            d.stderr.matches(&denial(policy::NO_DDL)).count(),
            11,
            "{d:?}"
        );
    }
}

/// A shell line that touches `ready{phase}` in `sync`, then waits for `go{phase}`.
fn wait_for_go(sync: &std::path::Path, phase: &str) -> String {
    format!(
        "touch {r}; while [ ! -e {g} ]; do sleep 0.02; done",
        r = sync.join(format!("ready{phase}")).display(),
        g = sync.join(format!("go{phase}")).display()
    )
}

/// A pipelined batch through a stalled audit store, with pgbench (`\startpipeline`, extended
/// protocol): 200 SELECTs sent before any result comes back. The audit queue holds 70 records.
/// - Each statement let through holds a slot for its record, so a batch longer than the queue
///   loses no record while the writer is stuck (the audit database locked for 1 s). (When
///   statements only checked for room, all 200 went through and the records past the queue's
///   size were lost.)
/// - With the queue's backlog past its margin (denials of another session, written by nobody
///   while the database is locked), the batch's first statement waits the whole `audit_wait`
///   and is refused, which fails the batch. The server skips the rest up to the Sync, so none
///   of them waits again nor is recorded (they would flood the margin with records of
///   statements never run).
#[test]
fn a_pipelined_batch_through_a_stalled_audit_store() {
    let test = "a_pipelined_batch_through_a_stalled_audit_store";
    let config = "audit_queue = 70\naudit_wait = \"1500ms\"\n";
    let Some(f) = Fixture::start_configured(test, "pg-pipe", config, |_| {}) else {
        return;
    };
    let sync = f.agent.scratch().join("sync");
    std::fs::create_dir_all(&sync).expect("sync dir");
    let db = f.agent.state_dir.join("audit.db");
    let waits = || counter(&f, "audit_room_waits");
    let lost = || counter(&f, "audit_queue_full");
    let batch = 200;
    let pgbench = |phase: &str| {
        let mut script = format!("\\shell {}\n\\startpipeline\n", wait_for_go(&sync, phase));
        for i in 1..=batch {
            script.push_str(&format!("SELECT {i};\n"));
        }
        script.push_str("\\endpipeline\n");
        let file = sync.join(format!("batch{phase}.sql"));
        std::fs::write(&file, script).expect("pgbench script");
        let file = file.to_string_lossy();
        f.pgbench(&["-n", "-M", "extended", "-t", "1", "-f", &file])
    };

    // Phase 1: locked for 1 s (well under the writer's 5 s busy timeout).
    let locker = std::thread::spawn({
        let (db, sync) = (db.clone(), sync.clone());
        move || {
            let lock = lock_audit_at(&db, &sync, "1");
            std::thread::sleep(Duration::from_secs(1));
            lock.execute_batch("ROLLBACK").expect("unlock audit db");
        }
    });
    let r = pgbench("1").run(Some(&f.etl));
    locker.join().expect("locker");
    assert!(r.ok(), "{r:?}");
    let session = f.statements_of(r.pid, batch);
    let rules: Vec<_> = statements(&session).iter().map(verdict).collect();
    assert_eq!(rules.len(), batch, "{session:#}");
    assert!(
        rules.iter().all(|(_, decision, _)| decision == "allow"),
        "{session:#}"
    );
    assert_eq!(lost(), 0, "no record was lost to a full queue");

    // Phase 2: while pgbench waits to send its batch, the database is locked and a psql
    // session's denials fill the backlog past the margin: the first one, taken by the writer,
    // blocks it on the lock; the ten after it stay queued.
    let waits_before = waits();
    // Past audit_wait, and within the writer's 5 s busy timeout.
    let stall = Stall::start(&f, &db, &sync, ("ready2", "go2"), Duration::from_secs(2));
    let r = pgbench("2").run(Some(&f.etl));
    stall.finish();
    assert!(!r.ok() && !r.timed_out, "the batch fails: {r:?}");
    assert!(
        r.stderr
            .contains("statement denied by rule \"audit-unavailable\""),
        "{r:?}"
    );
    assert_eq!(
        waits() - waits_before,
        1,
        "one wait, then none in the failed batch"
    );
    // pgbench first opens a connection that runs nothing: wait for the one with statements.
    let session = f.statements_of(r.pid, 1);
    let rules: Vec<_> = statements(&session).iter().map(verdict).collect();
    assert_eq!(
        rules,
        [(
            vec!["select".to_owned()],
            "deny".to_owned(),
            "audit-unavailable".to_owned()
        )],
        "only the refusal that waited: {session:#}"
    );
    assert_eq!(lost(), 0, "no record was lost to a full queue");
}

/// A statement waiting for an audit slot stops waiting when the server's error fails its batch
/// meanwhile, since the server skips it anyway.
/// - The batch's first Execute (a 2 s sleep, then a division by zero) goes through while the
///   store is fine.
/// - Then the store stalls: the database is locked, and another session's denials push the
///   backlog past its margin.
/// - The next Parse waits for room. The division-by-zero error comes while it waits.
/// - The batch's ReadyForQuery comes with the error, not after `audit_wait` (4 s; the store
///   stays stalled for 3.5 s). Only the statement that ran is recorded.
#[test]
fn a_statement_waiting_for_the_audit_store_stops_when_its_batch_fails() {
    let test = "a_statement_waiting_for_the_audit_store_stops_when_its_batch_fails";
    let config = "audit_queue = 70\naudit_wait = \"4s\"\n";
    let Some(f) = Fixture::start_configured(test, "pg-waitfail", config, |_| {}) else {
        return;
    };
    let sync = f.agent.scratch().join("sync");
    std::fs::create_dir_all(&sync).expect("sync dir");
    let db = f.agent.state_dir.join("audit.db");
    // Fails when it has run for 2 s (a division by zero at the Execute, after the sleep), while
    // the next statement already waits. PostgreSQL sends an error at once, unflushed or not.
    let failing = "select pg_sleep(2), count(*) / count(*) from accounts where false";

    // Past the client's 2.5 s below, within the writer's 5 s busy timeout.
    let stall = Stall::start(&f, &db, &sync, ("sent", "go1"), Duration::from_millis(3500));
    let ready = sync.join("sent").to_string_lossy().into_owned();
    let go = sync.join("go1").to_string_lossy().into_owned();
    let out = Script::run(
        &f,
        &json!([
            // Its error comes about 2 s later, while the next Parse waits for room.
            {"send": [["P", "", failing], ["B", "", ""], ["E", ""]]},
            {"signal": ready, "wait": go},
            {"send": [["P", "", COUNT_ACCOUNTS], ["B", "", ""], ["E", ""], ["S"]]},
            {"until": "Z", "within": 2.5},
            {"drain": 0.3},
        ]),
    );
    stall.finish();
    assert_eq!(out.step(3)["got"], json!(["1", "2", "E", "Z"]), "{out}");
    assert_eq!(out.sqlstates_from(0), ["22012"], "{out}");
    assert_eq!(out.end(), "open", "{out}");
    let session = f.statements_of(out.pid(), 1);
    assert_eq!(
        outcomes(&session),
        [(&*failing.replace("(2)", "(?)"), None, Some("22012"))],
        "{session:#}"
    );
}

/// Blocked statements leave the data intact: DROP TABLE and ALTER TABLE (no-ddl), a DO block
/// (unknown: no-unknown), TRUNCATE (no rule: default-deny).
#[test]
fn blocked_ddl_leaves_the_table_intact() {
    let test = "blocked_ddl_leaves_the_table_intact";
    let Some(f) = Fixture::start(test, "pg-ddl", |_| {}) else {
        return;
    };
    for (sql, rule) in [
        ("DROP TABLE customers", policy::NO_DDL),
        (
            "ALTER TABLE customers DROP COLUMN card_number",
            policy::NO_DDL,
        ),
        (
            "DO $$ BEGIN EXECUTE 'DROP TABLE customers'; END $$",
            policy::NO_UNKNOWN,
        ),
        ("TRUNCATE customers", "default-deny"),
        // A harmless statement in the same message does not carry a denied one through.
        (
            "select count(*) from customers; DROP TABLE customers",
            policy::NO_DDL,
        ),
    ] {
        let r = f.psql_c(sql);
        assert_denied(&r, rule);
        assert_eq!(r.code, Some(1), "{sql}: {r:?}");
    }
    assert_eq!(
        f.pg.admin_sql(
            "orders",
            "select count(*), count(card_number) from customers"
        ),
        format!("{}|{}", data::CUSTOMERS, data::CUSTOMERS)
    );
    // Denials are raised by the server (a DO block): a server where PL/pgSQL is not usable
    // must still never run the denied statement.
    f.pg.admin_sql("orders", "REVOKE USAGE ON LANGUAGE plpgsql FROM PUBLIC");
    let r = f.psql_c("DROP TABLE customers");
    assert!(
        r.code == Some(1) && r.stderr.contains("ERROR:  42501: "),
        "{r:?}"
    );
    // The same role could have done it: the block is tollgate's, not the server's.
    assert_eq!(
        f.pg.admin_sql(
            "orders",
            "select pg_has_role('scram_user', tableowner, 'USAGE') from pg_tables \
             where tablename = 'customers'"
        ),
        "t"
    );
}

/// COPY both ways on a target without masking: `\copy … from stdin` adds rows, `copy … to
/// stdout` returns them.
#[test]
fn copy_in_and_out_without_masking() {
    let test = "copy_in_and_out_without_masking";
    let Some(f) = Fixture::start(test, "pg-copy", |t| t.masking = false) else {
        return;
    };
    let r = f
        .psql(Role::Scram, "disable", &[])
        .stdin(
            "\\copy accounts (id, owner, balance) from stdin\n\
             2001\tcopied one\t11\n\
             2002\tcopied two\t22\n\
             \\.\n\
             copy (select id, owner, balance from accounts where id > 2000 order by id) to stdout;\n\
             copy customers (id, card_number) to stdout;\n",
        )
        .run(Some(&f.etl));
    assert!(r.ok() && r.stderr.is_empty(), "{r:?}");
    let out = lines(&r);
    assert_eq!(
        out[..3],
        ["COPY 2", "2001\tcopied one\t11", "2002\tcopied two\t22"],
        "{r:?}"
    );
    let c = &f.pg.customers[0];
    assert_eq!(out[3], format!("{}\t{}", c.id, c.card_number), "{r:?}");
    assert_eq!(out.len(), 3 + data::CUSTOMERS, "{r:?}");
    assert_eq!(
        f.pg.admin_sql("orders", "select count(*) from accounts"),
        (data::ACCOUNTS + 2).to_string()
    );
}

/// On a target with column masking, COPY TO is refused (it could not be masked by column),
/// although a rule allows copy_to; COPY FROM still works.
#[test]
fn copy_to_is_denied_on_a_masking_target() {
    let test = "copy_to_is_denied_on_a_masking_target";
    let Some(f) = Fixture::start(test, "pg-copymask", |_| {}) else {
        return;
    };
    for sql in [
        "copy customers to stdout",
        "copy (select card_number from customers) to stdout",
        "copy accounts to stdout",
    ] {
        let r = f.psql_c(sql);
        assert_denied(&r, "copy-out-with-column-masking");
        for c in &f.pg.customers {
            assert!(!r.all().contains(&c.card_number), "{sql}: {r:?}");
        }
    }
    let r = f
        .psql(Role::Scram, "disable", &[])
        .stdin("\\copy accounts (id, owner, balance) from stdin\n3001\tin\t1\n\\.\n")
        .run(Some(&f.etl));
    assert!(r.ok() && lines(&r) == ["COPY 1"], "{r:?}");
}

/// Error text can carry row values: a cast that fails quotes the value, a `::regclass` cast
/// names it as a relation. On a target with column rules that text is withheld from the client
/// and the record, its SQLSTATE kept; tollgate's own denial keeps its text.
#[test]
fn server_errors_do_not_carry_masked_values() {
    let test = "server_errors_do_not_carry_masked_values";
    let Some(f) = Fixture::start(test, "pg-errtext", |t| t.masking = true) else {
        return;
    };
    let card = &f.pg.customers[0].card_number;
    for (sql, sqlstate) in [
        (
            "SELECT card_number::int FROM customers WHERE id = 1",
            "22003",
        ),
        (
            "SELECT card_number::regclass FROM customers WHERE id = 1",
            "42P01",
        ),
    ] {
        let r = f.psql_c(sql);
        assert!(!r.ok(), "{sql}: {r:?}");
        assert!(
            r.stderr
                .contains(&format!("ERROR:  {sqlstate}: tollgate: message withheld")),
            "{sql}: {r:?}"
        );
        assert!(
            !r.stderr.contains(card.as_str()),
            "{sql}: a card passed: {r:?}"
        );
        let session = f.statements_of(r.pid, 1);
        let error = session["statements"][0]["error"]
            .as_str()
            .unwrap_or_default();
        assert!(
            error.starts_with(sqlstate) && !error.contains(card.as_str()),
            "{sql}: {session:#}"
        );
    }
    let r = f.psql_c("DROP TABLE customers");
    assert!(
        r.stderr.contains("tollgate: statement denied by rule"),
        "{r:?}"
    );
}

/// The catalog that resolves aliases is read whatever timeouts the client's startup sets: with
/// `statement_timeout=1` and JIT forced on (which makes the catalog query take longer), the
/// client that turns them back off still cannot read a masked column through an alias.
#[test]
fn a_clients_startup_timeouts_do_not_cost_the_catalog() {
    let test = "a_clients_startup_timeouts_do_not_cost_the_catalog";
    let Some(f) = Fixture::start(test, "pg-cattime", |t| t.masking = true) else {
        return;
    };
    let params = json!({
        "statement_timeout": "1",
        "jit_above_cost": "0",
        "jit_inline_above_cost": "0",
        "jit_optimize_above_cost": "0",
    });
    let out = Script::run_with_params(
        &f,
        &params,
        &json!([
            {"send": [["Q", "SET statement_timeout = 0; SET jit = off"]]},
            {"until": "Z"},
            {"send": [["Q", "SELECT card_number AS c FROM customers WHERE id = 1"]]},
            {"until": "Z"},
        ]),
    );
    let card = &f.pg.customers[0].card_number;
    let rows = out.rows_from(2);
    assert_eq!(rows.len(), 1, "{out}");
    let value = rows[0][0].as_str().unwrap_or_default();
    assert!(
        value.ends_with(&card[card.len() - 4..]) && !value.contains(card.as_str()),
        "{out}"
    );
}

/// The catalog query resolves its operators in `pg_catalog` alone: a client whose startup
/// `search_path` puts a schema of its own first, holding an `ILIKE` operator that matches
/// nothing, still cannot read a masked column through an alias.
#[test]
fn a_clients_search_path_does_not_blind_the_catalog() {
    let test = "a_clients_search_path_does_not_blind_the_catalog";
    let Some(f) = Fixture::start(test, "pg-catpath", |t| t.masking = true) else {
        return;
    };
    f.pg.admin_sql(
        "orders",
        "CREATE SCHEMA shadow; \
         CREATE FUNCTION shadow.never(name, text) RETURNS boolean \
         LANGUAGE sql IMMUTABLE AS 'SELECT false'; \
         CREATE OPERATOR shadow.~~* (LEFTARG = name, RIGHTARG = text, FUNCTION = shadow.never); \
         GRANT USAGE ON SCHEMA shadow TO PUBLIC;",
    );
    // The premise: searched first, the shadow operator is the one an ILIKE runs.
    assert_eq!(
        f.pg.admin_sql(
            "orders",
            "SET search_path = shadow, pg_catalog; \
             SELECT count(*) FROM pg_attribute WHERE attname ILIKE 'card_number'",
        ),
        "0"
    );
    let params = json!({"search_path": "shadow, pg_catalog, public"});
    let out = Script::run_with_params(
        &f,
        &params,
        &json!([
            {"send": [["Q", "SELECT card_number AS c FROM customers WHERE id = 1"]]},
            {"until": "Z"},
        ]),
    );
    let card = &f.pg.customers[0].card_number;
    let rows = out.rows_from(0);
    assert_eq!(rows.len(), 1, "{out}");
    let value = rows[0][0].as_str().unwrap_or_default();
    assert!(
        value.ends_with(&card[card.len() - 4..]) && !value.contains(card.as_str()),
        "{out}"
    );
}

/// PostgreSQL describes a `FETCH` statement once, but a portal bound to it later takes its
/// rows' shape from the cursor as it is then: a cursor declared again over a masked column
/// must not be masked by the old description.
#[test]
fn a_fetch_statement_is_not_masked_by_a_stale_description() {
    let test = "a_fetch_statement_is_not_masked_by_a_stale_description";
    let Some(f) = Fixture::start(test, "pg-fetch", |t| {
        t.masking = true;
        t.utility = true;
    }) else {
        return;
    };
    let out = Script::run(
        &f,
        &json!([
            {"send": [["Q", "BEGIN; DECLARE c CURSOR FOR SELECT id FROM customers WHERE id = 1"]]},
            {"until": "Z"},
            {"send": [["P", "s", "FETCH ALL FROM c"], ["D", "S", "s"], ["S"]]},
            {"until": "Z"},
            {"send": [["Q", "CLOSE c"]]},
            {"until": "Z"},
            {"send": [["Q", "DECLARE c CURSOR FOR SELECT card_number FROM customers WHERE id = 1"]]},
            {"until": "Z"},
            {"send": [["B", "", "s"], ["E", ""], ["S"]]},
            {"until": "Z"},
        ]),
    );
    assert!(out.sqlstates_from(0).is_empty(), "{out}");
    let card = &f.pg.customers[0].card_number;
    let rows = out.rows_from(8);
    assert_eq!(rows.len(), 1, "{out}");
    let value = rows[0][0].as_str().unwrap_or_default();
    assert!(!value.contains(card.as_str()), "a card passed: {out}");
}

/// A reload applies to statements already prepared: a statement prepared and run under a rule
/// that a reload takes away is denied at its next Bind, on the same connection, and recorded
/// so.
#[test]
fn a_reload_applies_to_statements_already_prepared() {
    let test = "a_reload_applies_to_statements_already_prepared";
    let Some(f) = Fixture::start(test, "pg-reprepare", |_| {}) else {
        return;
    };
    let sync = f.agent.scratch().join("sync");
    std::fs::create_dir_all(&sync).expect("sync dir");
    let (ready, go) = (sync.join("ready"), sync.join("go"));
    // The rules now apply to another role only: this session's statements are no one's.
    let mut revoked = f.spec.clone();
    revoked.rule_roles = Some(vec!["someone_else".into()]);
    let out = std::thread::scope(|s| {
        s.spawn(|| {
            let deadline = std::time::Instant::now() + Duration::from_secs(20);
            while !ready.exists() && std::time::Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
            f.reload_to(&revoked);
            std::fs::write(&go, "").expect("go");
        });
        Script::run(
            &f,
            &json!([
                {"send": [["P", "s", COUNT_ACCOUNTS], ["S"]]},
                {"until": "Z"},
                {"send": [["B", "", "s"], ["E", ""], ["S"]]},
                {"until": "Z"},
                {"signal": ready.to_string_lossy(), "wait": go.to_string_lossy()},
                {"send": [["B", "", "s"], ["E", ""], ["S"]]},
                {"until": "Z"},
                // Denied again, without being decided again.
                {"send": [["B", "", "s"], ["E", ""], ["S"]]},
                {"until": "Z"},
            ]),
        )
    });
    assert_eq!(out.sqlstates_from(0), ["42501", "42501"], "{out}");
    assert_eq!(out.rows_from(0).len(), 1, "{out}");
    assert_eq!(out.end(), "open", "{out}");
    let session = f.statements_of(out.pid(), 3);
    let got: Vec<_> = statements(&session).iter().map(verdict).collect();
    assert_eq!(
        got.iter()
            .map(|(_, d, r)| (d.as_str(), r.as_str()))
            .collect::<Vec<_>>(),
        [
            ("allow", policy::READS),
            ("deny", "default-deny"),
            ("deny", "default-deny")
        ],
        "{session:#}"
    );
}

/// psql interrupted (SIGINT) during `pg_sleep(30)` sends a CancelRequest through tollgate:
/// the query ends quickly with 57014.
#[test]
fn psql_cancel_of_a_long_query() {
    let test = "psql_cancel_of_a_long_query";
    let Some(f) = Fixture::start(test, "pg-cancel", |_| {}) else {
        return;
    };
    // The session over plain TCP and over TLS to tollgate (the CancelRequest itself is sent
    // on a new, plain connection). SIGINT goes out once the server runs the query: before,
    // psql has nothing to cancel (a fixed delay can end before a loaded machine got there).
    for sslmode in ["disable", "require"] {
        let r = f
            .psql(Role::Scram, sslmode, &["-c", "select pg_sleep(30)"])
            .signal_when(f.pg.running("pg_sleep(30)"), Signal::SIGINT)
            .timeout(Duration::from_secs(40))
            .run(Some(&f.etl));
        assert!(
            r.stderr
                .contains("ERROR:  57014: canceling statement due to user request"),
            "sslmode={sslmode}: {r:?}"
        );
        let signalled = r
            .signalled
            .unwrap_or_else(|| panic!("sslmode={sslmode}: SIGINT never sent: {r:?}"));
        assert!(
            r.elapsed - signalled < Duration::from_secs(10),
            "sslmode={sslmode}: ended {:?} after SIGINT: {r:?}",
            r.elapsed - signalled
        );
    }
}

/// A statement whose session ends before its result: psql killed (SIGKILL) while the server
/// runs `pg_sleep(30)`. The statement held a slot for its record; the record is written when
/// the session ends, without a duration, with the reason as its error (it may have run).
#[test]
fn a_statement_whose_session_ends_first_is_recorded() {
    let test = "a_statement_whose_session_ends_first_is_recorded";
    let Some(f) = Fixture::start(test, "pg-ended", |_| {}) else {
        return;
    };
    let r = f
        .psql(Role::Scram, "disable", &[])
        .stdin("SELECT 1;\nSELECT pg_sleep(30);\n")
        .signal_when(f.pg.running("pg_sleep(30)"), Signal::SIGKILL)
        .timeout(Duration::from_secs(40))
        .run(Some(&f.etl));
    assert!(r.signalled.is_some() && r.code.is_none(), "{r:?}");
    let session = f.statements_of(r.pid, 2);
    let stmts = statements(&session);
    assert_eq!(stmts.len(), 2, "{session:#}");
    assert_eq!(stmts[0]["rows"], 1, "{session:#}");
    let last = &stmts[1];
    assert_eq!(last["text"], "SELECT pg_sleep(?)", "{session:#}");
    assert_eq!(verdict(last).1, "allow", "{session:#}");
    assert!(
        last["duration_ms"].is_null() && last["rows"].is_null(),
        "{session:#}"
    );
    assert_eq!(
        last["error"], "session ended before the result",
        "{session:#}"
    );
}

/// SCRAM and md5 upstream logins with credentials from root-only files; the client has none.
#[test]
fn scram_and_md5_upstream_logins() {
    let test = "scram_and_md5_upstream_logins";
    let Some(f) = Fixture::start(test, "pg-auth", |_| {}) else {
        return;
    };
    for role in [Role::Scram, Role::Md5] {
        let r = f
            .psql(
                role,
                "disable",
                &[
                    "-c",
                    "select current_user, ssl from pg_stat_ssl where pid = pg_backend_pid()",
                ],
            )
            .run(Some(&f.etl));
        assert!(r.ok(), "{}: {r:?}", role.name());
        assert_eq!(lines(&r), [format!("{}|f", role.name())], "{r:?}");
    }
    // A role without a credential in the target is refused by tollgate.
    let r = psql(
        &conninfo(f.pg.port, "postgres", "disable"),
        &["-c", "select 1"],
    )
    .run(Some(&f.etl));
    assert!(
        !r.ok() && r.stderr.contains("no credential for role"),
        "{r:?}"
    );
}

/// Rules with `roles`/`databases` pin which role and database the workload may use: other
/// logins are refused by tollgate (28000) before any upstream login.
#[test]
fn login_is_pinned_to_the_roles_and_databases_of_the_rules() {
    let test = "login_is_pinned_to_the_roles_and_databases_of_the_rules";
    let Some(f) = Fixture::start(test, "pg-pin", |t| {
        t.rule_roles = Some(vec!["scram_user".into()]);
        t.rule_databases = Some(vec!["orders".into()]);
    }) else {
        return;
    };
    let r = f.psql_c("select current_user");
    assert_eq!(lines(&r), ["scram_user"], "{r:?}");
    let r = f
        .psql(Role::Md5, "disable", &["-c", "select current_user"])
        .run(Some(&f.etl));
    assert!(
        !r.ok()
            && r.stderr.contains(
                "FATAL:  tollgate: role \"md5_user\" on database \"orders\" denied by rule \"default-deny\""
            ),
        "{r:?}"
    );
    let info =
        conninfo(f.pg.port, "scram_user", "disable").replace("dbname=orders", "dbname=postgres");
    let r = psql(&info, &["-c", "select current_user"]).run(Some(&f.etl));
    assert!(
        !r.ok()
            && r.stderr.contains(
                "FATAL:  tollgate: role \"scram_user\" on database \"postgres\" denied by rule \"default-deny\""
            ),
        "{r:?}"
    );
}

/// Upstream TLS: "require" against the server's ssl=on (tls_user, which the server admits over
/// TLS only), "verify-full" with the server's CA and name; a wrong name fails the session
/// (never downgraded), and "disable" shows that tls_user really needs TLS.
#[test]
fn upstream_tls_require_and_verify_full() {
    let test = "upstream_tls_require_and_verify_full";
    let Some(mut f) = Fixture::start(test, "pg-utls", |t| t.upstream_tls = "require".into()) else {
        return;
    };
    let query = "select current_user, ssl from pg_stat_ssl where pid = pg_backend_pid()";
    let run = |f: &Fixture, role: Role| f.psql(role, "disable", &["-c", query]).run(Some(&f.etl));
    for role in [Role::Tls, Role::Scram] {
        let r = run(&f, role);
        assert!(r.ok(), "require, {}: {r:?}", role.name());
        assert_eq!(lines(&r), [format!("{}|t", role.name())], "{r:?}");
    }

    let ca = f.pg.certs.ca.clone();
    f.reload(|t| {
        t.upstream_tls = "verify-full".into();
        t.ca_file = Some(ca.clone());
        t.server_name = Some(SERVER_NAME.into());
    });
    let r = run(&f, Role::Tls);
    assert!(r.ok(), "verify-full: {r:?}");
    assert_eq!(lines(&r), ["tls_user|t"], "{r:?}");

    // The certificate also names 127.0.0.1: verified as an IP address.
    f.reload(|t| t.server_name = Some("127.0.0.1".into()));
    let r = run(&f, Role::Tls);
    assert_eq!(lines(&r), ["tls_user|t"], "verify-full by IP: {r:?}");

    f.reload(|t| t.server_name = Some("wrong.tollgate.test".into()));
    let r = run(&f, Role::Tls);
    assert!(
        !r.ok()
            && r.stderr.contains(
                "FATAL:  tollgate: upstream TLS: invalid peer certificate: \
                 certificate not valid for name \"wrong.tollgate.test\""
            ),
        "verify-full with a wrong name must fail: {r:?}"
    );
    assert!(!r.stdout.contains("tls_user"), "{r:?}");

    f.reload(|t| {
        t.upstream_tls = "disable".into();
        t.ca_file = None;
        t.server_name = None;
    });
    let r = run(&f, Role::Tls);
    assert!(
        !r.ok() && r.stderr.contains("no pg_hba.conf entry"),
        "tls_user without upstream TLS: {r:?}"
    );
    let r = run(&f, Role::Scram);
    assert_eq!(lines(&r), ["scram_user|f"], "{r:?}");
}

/// Text-protocol rows of every customer: card numbers masked to their last four digits,
/// e-mail addresses redacted (also inside free text), nothing else changed; no real card or
/// e-mail reaches the client.
#[test]
fn masking_of_cards_and_emails_in_real_rows() {
    let test = "masking_of_cards_and_emails_in_real_rows";
    let Some(f) = Fixture::start(test, "pg-mask", |_| {}) else {
        return;
    };
    let r = f.psql_c("select id, name, email, card_number, notes from customers order by id");
    assert!(r.ok(), "{r:?}");
    let want: Vec<String> =
        f.pg.customers
            .iter()
            .map(|c| {
                format!(
                    "{}|{}|[REDACTED:email]|{}|{}",
                    c.id,
                    c.name,
                    c.card_last4(),
                    c.notes_redacted()
                )
            })
            .collect();
    assert_eq!(lines(&r), want, "{}", r.stderr);
    let all = r.all();
    for c in &f.pg.customers {
        assert!(
            !all.contains(&c.card_number),
            "card {} leaked",
            c.card_number
        );
        assert!(!all.contains(&c.email), "e-mail {} leaked", c.email);
        if let Some(e) = c.notes_email() {
            assert!(!all.contains(&e), "e-mail {e} leaked");
        }
    }
    // The audit counts what was masked: every card, every e-mail (300 columns, 100 notes).
    let session = f.statements_of(r.pid, 1);
    let stmt = &statements(&session)[0];
    assert_eq!(stmt["rows"], data::CUSTOMERS, "{stmt:#}");
    let notes =
        f.pg.customers
            .iter()
            .filter(|c| c.notes_email().is_some())
            .count();
    assert_eq!(
        stmt["masked"],
        json!({
            "by_column": {"card_number": data::CUSTOMERS},
            "by_detector": {"email": data::CUSTOMERS + notes}
        }),
        "{stmt:#}"
    );
    // Unmasked columns of other tables pass as they are.
    let r = f.psql_c("select id, owner, balance from accounts where id = 3");
    assert_eq!(lines(&r), ["3|owner 3|3000"], "{r:?}");
}

/// A malformed message (after a proper startup) ends that session only: another session that
/// was open keeps working, and new sessions work. A huge length word is refused at once.
#[test]
fn a_malformed_message_ends_only_its_session() {
    let test = "a_malformed_message_ends_only_its_session";
    let Some(f) = Fixture::start(test, "pg-garbage", |_| {}) else {
        return;
    };
    let port = f.pg.port.to_string();
    for (what, hex) in [
        ("length below 4", "5100000002deadbeefdeadbeef"),
        ("length near 2 GiB", "517ffffff0414243"),
        ("unknown type", "ff000000086a756e6b"),
    ] {
        let r = python(pg::py::RAW, &[&port, hex]).run(Some(&f.etl));
        assert!(r.ok(), "{what}: {r:?}");
        let out = r.json();
        assert_eq!(out["auth"], json!([0]), "{what}: {out:#}");
        assert_eq!(
            out["startup"].as_array().and_then(|a| a.last()),
            Some(&json!("Z")),
            "{what}: {out:#}"
        );
        assert!(
            out["end"] == "eof" || out["end"] == "ConnectionResetError",
            "{what}: session not ended: {out:#}"
        );
        assert_eq!(out["before"], data::ACCOUNTS, "{what}: {out:#}");
        assert_eq!(out["other_after"], data::ACCOUNTS, "{what}: {out:#}");
        assert_eq!(out["new_after"], data::ACCOUNTS, "{what}: {out:#}");
    }
    assert!(f.agent.cli(&["status"]).status.success(), "agent gone");
}

/// The statement audit (`sessions show ID --json`): classes, decision, rule and row counts per
/// statement; literals are redacted, so card numbers and e-mails in the SQL text never appear.
#[test]
fn statement_audit_redacts_literals_and_counts_rows() {
    let test = "statement_audit_redacts_literals_and_counts_rows";
    let Some(f) = Fixture::start(test, "pg-audit", |_| {}) else {
        return;
    };
    let c = &f.pg.customers[9];
    let script = format!(
        "select id from customers where card_number = '{}';\n\
         select count(*) from customers where email = '{}';\n\
         select id, card_number from customers where id <= 7;\n\
         update accounts set balance = 0 where id = 1;\n\
         set application_name = 'audit-test';\n",
        c.card_number, c.email
    );
    let r = f
        .psql(Role::Scram, "disable", &[])
        .stdin(&script)
        .run(Some(&f.etl));
    let first = format!("1|{}", f.pg.customers[0].card_last4());
    assert_eq!(lines(&r)[..3], ["10", "1", first.as_str()], "{r:?}");
    assert_eq!(lines(&r).len(), 2 + 7 + 1, "{r:?}");
    assert_denied(&r, "default-deny");

    let session = f.statements_of(r.pid, 5);
    let text = session.to_string();
    assert!(
        !text.contains(&c.card_number),
        "card in the audit: {session:#}"
    );
    assert!(!text.contains(&c.email), "e-mail in the audit: {session:#}");
    let stmts = statements(&session);
    let got: Vec<_> = stmts.iter().map(verdict).collect();
    let v = |class: &str, decision: &str, rule: &str| {
        (vec![class.to_owned()], decision.to_owned(), rule.to_owned())
    };
    assert_eq!(
        got,
        [
            v("select", "allow", policy::READS),
            v("select", "allow", policy::READS),
            v("select", "allow", policy::READS),
            v("update", "deny", "default-deny"),
            v("set", "allow", policy::READS),
        ],
        "{session:#}"
    );
    let rows: Vec<_> = stmts[..4].iter().map(|s| s["rows"].as_u64()).collect();
    assert_eq!(rows, [Some(1), Some(1), Some(7), None], "{session:#}");
    assert!(
        stmts[0]["text"]
            .as_str()
            .is_some_and(|t| t.contains("card_number = '?'")),
        "{session:#}"
    );
}

/// The client never sees the password: tollgate answers the startup with AuthenticationOk
/// (no password request), the password is in no byte the client receives, and neither in the
/// agent's log nor in the audit.
#[test]
fn the_client_never_sees_the_password() {
    let test = "the_client_never_sees_the_password";
    let Some(f) = Fixture::start(test, "pg-secret", |_| {}) else {
        return;
    };
    let r = python(pg::py::RAW, &[&f.pg.port.to_string(), ""]).run(Some(&f.etl));
    assert!(r.ok(), "{r:?}");
    let out = r.json();
    assert_eq!(out["auth"], json!([0]), "{out:#}");
    assert_eq!(out["reply"], json!(["T", "D", "C", "Z"]), "{out:#}");
    let received = base64_decode(out["received"].as_str().expect("received"));
    let session = f.session_of(
        out["pid"]
            .as_u64()
            .and_then(|p| u32::try_from(p).ok())
            .expect("pid"),
    );
    let log = f.agent_log();
    for role in Role::ALL {
        let pw = f.pg.password(role).as_bytes();
        assert!(
            !received.windows(pw.len()).any(|w| w == pw),
            "{} password sent to the client",
            role.name()
        );
        let pw = f.pg.password(role);
        assert!(
            !log.contains(pw),
            "{} password in the agent log",
            role.name()
        );
        assert!(
            !session.to_string().contains(pw),
            "{} password in the audit",
            role.name()
        );
    }
}

/// Minimal standard base64 decoder (the suite has no base64 crate).
fn base64_decode(text: &str) -> Vec<u8> {
    let value = |c: u8| -> u32 {
        match c {
            b'A'..=b'Z' => u32::from(c - b'A'),
            b'a'..=b'z' => u32::from(c - b'a') + 26,
            b'0'..=b'9' => u32::from(c - b'0') + 52,
            b'+' => 62,
            b'/' => 63,
            _ => panic!("not base64: {c}"),
        }
    };
    let mut out = Vec::new();
    for chunk in text.as_bytes().chunks(4) {
        let digits: Vec<u32> = chunk
            .iter()
            .filter(|&&c| c != b'=')
            .map(|&c| value(c))
            .collect();
        let mut n = 0u32;
        for (i, d) in digits.iter().enumerate() {
            n |= d << (18 - 6 * i);
        }
        let bytes = n.to_be_bytes();
        out.extend_from_slice(&bytes[1..digits.len().max(1)]);
    }
    out
}

/// Column masking cannot be sidestepped by renaming or wrapping the column: an alias, an
/// expression, a subquery or a row value of `card_number` never shows a full card number.
#[test]
fn column_masking_survives_aliases_and_expressions() {
    let test = "column_masking_survives_aliases_and_expressions";
    let Some(f) = Fixture::start(test, "pg-alias", |_| {}) else {
        return;
    };
    let c = &f.pg.customers[0];
    let mut leaks = Vec::new();
    for sql in [
        "select card_number from customers where id = 1",
        "select card_number as c from customers where id = 1",
        "select x.card_number as \"CARD\" from customers x where id = 1",
        "select upper(card_number) from customers where id = 1",
        "select card_number || '' as y from customers where id = 1",
        "select s.v from (select card_number as v from customers where id = 1) s",
        "select row(id, card_number) from customers where id = 1",
        "select string_agg(card_number, ',') from customers where id = 1",
        "select to_json(customers) from customers where id = 1",
    ] {
        let r = f.psql_c(sql);
        assert!(r.ok(), "{sql}: {r:?}");
        if r.stdout.contains(&c.card_number) {
            leaks.push(format!("{sql}  ->  {}", r.stdout.trim()));
        }
    }
    assert!(
        leaks.is_empty(),
        "full card numbers returned:\n{}",
        leaks.join("\n")
    );
}

/// The database in a second network namespace, reached over a veth pair as a remote host
/// would be: an enrolled psql gets there only through tollgate, which verifies the server's
/// certificate by name (verify-full) and masks rows; the same psql outside any workload is
/// not redirected, and the server asks it for the password it does not have.
#[test]
fn a_server_in_another_network_namespace() {
    let test = "a_server_in_another_network_namespace";
    if harness::setup(test, &[Need::Iproute2]).is_none() {
        return;
    }
    let Some(env) = pg::prerequisites(test) else {
        return;
    };
    let ns = NetNs::create(env.python3.as_deref().expect("python3"));
    let pg = PgServer::start_at(Placement {
        host: ns.peer_v4,
        clients: format!("{}/32", ns.host_v4),
        netns: Some(ns.name.clone()),
    });
    let ca = pg.certs.ca.clone();
    let f = Fixture::with_server(&env, pg, "pg-netns", |t| {
        t.upstream_tls = "verify-full".into();
        t.ca_file = Some(ca);
        t.server_name = Some(SERVER_NAME.into());
    });
    let sql = "select current_user, inet_server_addr(), inet_client_addr(), \
               (select ssl from pg_stat_ssl where pid = pg_backend_pid()), card_number \
               from customers where id = 1";
    let r = f.psql(Role::Tls, "disable", &["-c", sql]).run(Some(&f.etl));
    let card = f.pg.customers[0].card_last4();
    assert_eq!(
        lines(&r),
        [format!("tls_user|{}|{}|t|{card}", ns.peer_v4, ns.host_v4)],
        "{r:?}"
    );
    let s = f.session_of(r.pid);
    assert_eq!(s["dst"], f.pg.addr(), "{s:#}");
    assert_eq!(s["target"], policy::TARGET, "{s:#}");

    let r = psql(&f.conninfo("scram_user", "disable"), &["-c", "select 1"]).run(None);
    assert!(
        !r.ok() && r.stderr.contains("no password supplied"),
        "{r:?}"
    );
}
