//! Classifier tests: a table of statements, real client traffic (pgbench, psql `\d`),
//! robustness (deep input, fuzzing).

mod cases;
mod clients;
mod memo;
mod prelex;
mod projection;
mod projection_robustness;
mod robustness;

use super::StatementClass::{self as C, *};
use super::{Classified, classify};

/// (sql, class, reads, writes) for a string holding exactly one statement.
type Case = (
    &'static str,
    C,
    &'static [&'static str],
    &'static [&'static str],
);

fn check(sql: &str, got: &Classified, class: C, reads: &[&str], writes: &[&str]) {
    let got = (
        got.class,
        got.reads.iter().map(String::as_str).collect(),
        got.writes.iter().map(String::as_str).collect(),
    );
    let want: (C, Vec<&str>, Vec<&str>) = (class, reads.to_vec(), writes.to_vec());
    assert_eq!(got, want, "{sql}");
}

#[test]
fn classifies_the_table_of_cases() {
    let mut failures = Vec::new();
    for &(sql, class, reads, writes) in cases::CASES {
        let want = (class, reads.to_vec(), writes.to_vec());
        // A trailing semicolon and surrounding comments change nothing.
        for text in [sql.to_owned(), format!("/* c */ {sql} ; -- end\n")] {
            let got = classify(&text);
            let got: Vec<(C, Vec<&str>, Vec<&str>)> = got
                .iter()
                .map(|c| {
                    (
                        c.class,
                        c.reads.iter().map(String::as_str).collect(),
                        c.writes.iter().map(String::as_str).collect(),
                    )
                })
                .collect();
            if got != [want.clone()] {
                failures.push(format!("{text}\n   got  {got:?}\n   want {want:?}"));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn empty_input_gives_no_statement() {
    for sql in [
        "",
        "   ",
        "\n\t",
        ";",
        " ; ;; ",
        "-- only a comment",
        "/* c */ ; /* d */",
    ] {
        assert!(classify(sql).is_empty(), "{sql:?}");
    }
}

#[test]
fn multi_statement_strings_give_one_entry_each() {
    let got =
        classify("BEGIN; UPDATE a SET x = 1 WHERE id = 2; SELECT * FROM b; garbage here; COMMIT");
    let classes: Vec<C> = got.iter().map(|c| c.class).collect();
    assert_eq!(classes, [Transaction, Update, Select, Unknown, Transaction]);
    assert_eq!(got[1].writes, ["a"]);
    assert_eq!(got[2].reads, ["b"]);
    assert_eq!(got[3].text_redacted, "garbage here");

    // A semicolon inside a literal, a dollar-quoted body or parentheses does not split.
    let got = classify("SELECT ';' FROM t; DO $$ BEGIN PERFORM 1; END $$; SELECT 2");
    let classes: Vec<C> = got.iter().map(|c| c.class).collect();
    assert_eq!(classes, [Select, Unknown, Select]);
}

#[test]
fn tokenizer_failure_is_one_unknown_for_the_whole_string() {
    let got = classify("SELECT 1; SELECT 'secret password");
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].class, Unknown);
    assert!(got[0].reads.is_empty() && got[0].writes.is_empty());
    assert!(
        !got[0].text_redacted.contains("secret"),
        "{}",
        got[0].text_redacted
    );
}

#[test]
fn redaction_masks_literals_and_keeps_structure() {
    let cases = [
        (
            "SELECT * FROM users WHERE email = 'a@b.c' AND id = 42",
            "SELECT * FROM users WHERE email = '?' AND id = ?",
        ),
        (
            "ALTER ROLE app PASSWORD 'hunter2'",
            "ALTER ROLE app PASSWORD '?'",
        ),
        (
            "UPDATE t SET a = $1 WHERE id = $2",
            "UPDATE t SET a = $1 WHERE id = $2",
        ),
        (
            "INSERT INTO t VALUES (E'x\\'y', $$dollar$$, -3.5) -- note 7",
            "INSERT INTO t VALUES ('?', '?', -?)",
        ),
        ("SELEC 'not parsed' 1", "SELEC '?' ?"),
    ];
    for (sql, want) in cases {
        let got = classify(sql);
        assert_eq!(got.len(), 1, "{sql}");
        assert_eq!(got[0].text_redacted, want, "{sql}");
    }
}
