//! Text that `cargo xtask bench postgres` generates: the wide table of the masking measurement,
//! the pgbench script reading it, and tollgate's policy for the bench client.
use std::{fmt::Write as _, net::SocketAddr, path::Path};

use anyhow::Context as _;

/// Columns of the wide table besides `id`: all text.
pub const WIDE_COLUMNS: usize = 20;
/// The masked column (`*card*`, style last4).
pub const CARD_COLUMN: &str = "card_number";
/// A column of e-mail addresses (found by the email detector).
pub const EMAIL_COLUMN: &str = "email";
/// Name of the workload, the targets and the rule in the bench policy.
pub const WORKLOAD: &str = "pgbench";
/// The target without masking.
pub const TARGET: &str = "bench-db";
/// The target with masking.
pub const MASKED_TARGET: &str = "bench-db-masked";

/// The pgbench script of the masking measurement.
pub const WIDE_SCRIPT: &str = "SELECT * FROM wide;\n";

/// 16 random hex digits from `/dev/urandom`.
pub fn random_hex() -> anyhow::Result<String> {
    let mut bytes = [0u8; 8];
    let mut f = std::fs::File::open("/dev/urandom").context("opening /dev/urandom")?;
    std::io::Read::read_exact(&mut f, &mut bytes).context("reading /dev/urandom")?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// The column names of the wide table after `id`.
pub fn wide_columns() -> Vec<String> {
    let mut cols = vec![
        CARD_COLUMN.to_owned(),
        EMAIL_COLUMN.to_owned(),
        "contact_note".to_owned(),
    ];
    cols.extend((cols.len() + 1..=WIDE_COLUMNS).map(|i| format!("f{i:02}")));
    cols
}

/// A Luhn-valid 16-digit card number for row `i`, grouped by four (`4000 0000 0001 2349`).
pub fn card_number(i: usize) -> String {
    let body = format!("4{:014}", i % 100_000_000_000_000);
    let digits: String = format!("{body}{}", luhn_check_digit(&body));
    let groups: Vec<&str> = (0..4).map(|g| &digits[g * 4..g * 4 + 4]).collect();
    groups.join(" ")
}

/// The digit that makes `body` + digit pass the Luhn check.
fn luhn_check_digit(body: &str) -> u32 {
    let sum: u32 = body
        .chars()
        .rev()
        .filter_map(|c| c.to_digit(10))
        .enumerate()
        .map(|(i, d)| {
            if i % 2 == 0 {
                let d = d * 2;
                if d > 9 { d - 9 } else { d }
            } else {
                d
            }
        })
        .sum();
    (10 - sum % 10) % 10
}

/// The values of row `i` (in [`wide_columns`] order).
pub fn wide_row(i: usize) -> Vec<String> {
    let mut v = vec![
        card_number(i),
        format!("customer{i}@example.com"),
        format!("call back or write to ops.{i}@shop.example.org before friday"),
    ];
    v.extend(
        (v.len() + 1..=WIDE_COLUMNS)
            .map(|c| format!("row {i} column {c}: lorem ipsum dolor sit amet")),
    );
    v
}

/// `CREATE TABLE wide` with `rows` rows, inserted 100 per statement, then `ANALYZE`.
pub fn wide_table_sql(rows: usize) -> String {
    let cols = wide_columns();
    let mut sql = String::from("DROP TABLE IF EXISTS wide;\nCREATE TABLE wide (id int PRIMARY KEY");
    for c in &cols {
        let _ = write!(sql, ", {c} text NOT NULL");
    }
    sql.push_str(");\n");
    let ids: Vec<usize> = (1..=rows).collect();
    for chunk in ids.chunks(100) {
        let _ = writeln!(sql, "INSERT INTO wide (id, {}) VALUES", cols.join(", "));
        let values: Vec<String> = chunk
            .iter()
            .map(|&i| {
                let quoted: Vec<String> = wide_row(i).iter().map(|v| quote(v)).collect();
                format!("({i}, {})", quoted.join(", "))
            })
            .collect();
        sql.push_str(&values.join(",\n"));
        sql.push_str(";\n");
    }
    sql.push_str("ANALYZE wide;\n");
    sql
}

/// A SQL string literal.
fn quote(value: &str) -> String {
    format!("'{}'", value.replace('\'', "''"))
}

/// The bench policy: the enrolled cgroup `cgroup` is workload [`WORKLOAD`]; the server at
/// `plain` is [`TARGET`] (no masking) and at `masked` [`MASKED_TARGET`] (`*card*` last4,
/// email detector redact); both log in with the password in `password_file`, without TLS on
/// either side; one statement rule allows select, set and transaction statements.
pub fn policy(cgroup: &str, plain: SocketAddr, masked: SocketAddr, password_file: &Path) -> String {
    let target = |name: &str, addr: SocketAddr, masking: bool| {
        let mut t = format!(
            "[[target]]\nname = {name:?}\nprotocol = \"postgres\"\naddresses = [\"{addr}\"]\n\
             [target.postgres]\nupstream_tls = \"disable\"\n\
             [[target.postgres.credential]]\nrole = {role:?}\npassword_file = {file:?}\n",
            role = super::server::ROLE,
            file = password_file.display().to_string(),
        );
        if masking {
            t.push_str(
                "[target.postgres.masking]\n\
                 columns = [ { name = \"*card*\", style = \"last4\" } ]\n\
                 detectors = [ { detector = \"email\", style = \"redact\" } ]\n",
            );
        }
        t.push('\n');
        t
    };
    format!(
        "# cargo xtask bench postgres: the enrolled pgbench client and its database, without and\n\
         # with masking.\n\
         [[workload]]\nname = {WORKLOAD:?}\nspiffe_id = \"spiffe://bench.tollgate/{WORKLOAD}\"\n\
         mode = \"enforce\"\n[workload.selector]\ncgroup = {cgroup:?}\n\n\
         {plain}{masked}\
         [[rule]]\nname = \"pgbench-reads\"\nworkloads = [{WORKLOAD:?}]\n\
         targets = [{TARGET:?}, {MASKED_TARGET:?}]\naction = \"allow\"\n\
         [rule.postgres]\nclasses = [\"select\", \"set\", \"transaction\"]\n",
        plain = target(TARGET, plain, false),
        masked = target(MASKED_TARGET, masked, true),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn luhn_ok(number: &str) -> bool {
        let digits: String = number.chars().filter(char::is_ascii_digit).collect();
        let (body, check) = digits.split_at(digits.len() - 1);
        check.parse::<u32>().ok() == Some(luhn_check_digit(body))
    }

    #[test]
    fn luhn_cases() {
        // Well-known test numbers.
        let cases = [
            ("411111111111111", 1),
            ("555555555555444", 4),
            ("37828224631000", 5),
        ];
        for (body, want) in cases {
            assert_eq!(luhn_check_digit(body), want, "{body}");
        }
        for i in [0, 1, 42, 999, 123_456] {
            let n = card_number(i);
            assert_eq!(n.len(), 19, "{n}");
            assert!(luhn_ok(&n), "{n}");
        }
        assert_ne!(card_number(1), card_number(2));
    }

    #[test]
    fn wide_rows_fit_the_columns() {
        let cols = wide_columns();
        assert_eq!(cols.len(), WIDE_COLUMNS);
        assert_eq!(
            (cols[0].as_str(), cols[1].as_str()),
            (CARD_COLUMN, EMAIL_COLUMN)
        );
        assert_eq!(wide_row(7).len(), WIDE_COLUMNS);
        let sql = wide_table_sql(250);
        assert_eq!(
            sql.matches("INSERT INTO wide").count(),
            3,
            "100 rows per insert"
        );
        assert!(sql.contains("(250, '4000 0000 0000 2"), "{}", &sql[..400]);
        assert!(sql.contains("customer250@example.com"));
    }

    #[test]
    fn quote_doubles_quotes() {
        assert_eq!(quote("it's"), "'it''s'");
    }

    #[test]
    fn policy_parses_and_names_both_targets() {
        let text = policy(
            "/tollgate-bench-1/pgclient",
            "127.0.0.1:5432".parse().expect("addr"),
            "127.0.0.2:5432".parse().expect("addr"),
            Path::new("/tmp/x/secrets/bench"),
        );
        let doc: toml::Value = toml::from_str(&text).expect("valid TOML");
        let targets = doc["target"].as_array().expect("targets");
        assert_eq!(targets.len(), 2);
        assert_eq!(targets[0]["addresses"][0].as_str(), Some("127.0.0.1:5432"));
        assert!(targets[0]["postgres"].get("masking").is_none());
        assert_eq!(
            targets[1]["postgres"]["masking"]["columns"][0]["name"].as_str(),
            Some("*card*")
        );
        assert_eq!(
            doc["rule"][0]["postgres"]["classes"]
                .as_array()
                .map(Vec::len),
            Some(3)
        );
        assert_eq!(
            doc["workload"][0]["selector"]["cgroup"].as_str(),
            Some("/tollgate-bench-1/pgclient")
        );
    }
}
