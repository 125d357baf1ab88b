//! The classification memo: a hit gives what a fresh parse gives, and what must not be
//! memoized is not.
use super::super::{cache, classify, classify_fresh, lex};
use super::*;

fn key(sql: &str) -> Option<String> {
    let tokens = lex::tokenize(sql).expect("tokenizes");
    let chunks = lex::split(tokens);
    assert_eq!(chunks.len(), 1, "{sql}");
    lex::cache_key(&chunks[0].tokens, cache::MAX_KEY)
}

#[test]
fn statements_that_differ_in_literals_share_a_key() {
    assert_eq!(
        key("SELECT abalance FROM a WHERE aid = 1"),
        key("SELECT  abalance\n FROM a WHERE aid = 987654 /* c */ ")
    );
    assert_eq!(
        key("UPDATE t SET v = 'x' WHERE k = E'y'"),
        key("UPDATE t SET v = 'zzz' WHERE k = E'w'")
    );
}

#[test]
fn keys_keep_everything_but_literal_values() {
    // A literal's kind is kept, and so is every non-literal token: the marker (NUL-led) can
    // equal no token text, so the `?` operator is not mistaken for a blanked literal.
    let distinct = [
        "SELECT a FROM t WHERE k = 1",
        "SELECT a FROM t WHERE k = '1'",
        "SELECT a FROM t WHERE k = E'1'",
        "SELECT a FROM t WHERE k = $1",
        "SELECT a FROM t WHERE k ? 'x'",
        "SELECT a FROM \"T\" WHERE k = 1",
        "DELETE FROM t WHERE k = 1",
    ];
    let keys: Vec<_> = distinct
        .iter()
        .map(|s| key(s).expect("has a key"))
        .collect();
    for (i, a) in keys.iter().enumerate() {
        for (j, b) in keys.iter().enumerate().skip(i + 1) {
            assert_ne!(a, b, "{} and {} share a key", distinct[i], distinct[j]);
        }
    }
}

#[test]
fn explain_and_oversized_statements_have_no_key() {
    // The ANALYZE option's value decides whether the statement runs.
    assert_eq!(key("EXPLAIN (ANALYZE 0) DELETE FROM t"), None);
    assert_eq!(key("explain analyze select 1"), None);
    let long = format!("SELECT {} FROM t", vec!["a"; 3_000].join(", "));
    assert_eq!(key(&long), None);
}

#[test]
fn a_memo_hit_classifies_as_a_fresh_parse() {
    // Shapes no other test uses, so that the second call of each pair is a hit.
    let pairs = [
        (
            "SELECT memo_a.x FROM memo_a JOIN memo_b ON memo_a.id = memo_b.id WHERE memo_b.k = 1",
            "SELECT memo_a.x FROM memo_a JOIN memo_b ON memo_a.id = memo_b.id WHERE memo_b.k = 2",
        ),
        (
            "WITH d AS (DELETE FROM memo_c WHERE id = 5 RETURNING *) SELECT * FROM d",
            "WITH d AS (DELETE FROM memo_c WHERE id = 6 RETURNING *) SELECT * FROM d",
        ),
        (
            "DO $$ BEGIN PERFORM 1; END $$",
            "DO $$ BEGIN DROP TABLE memo_d; END $$",
        ),
    ];
    for (first, second) in pairs {
        let a = classify(first);
        let b = classify(second);
        assert_eq!(a.len(), 1);
        assert_eq!(
            (a[0].class, &a[0].reads, &a[0].writes),
            (b[0].class, &b[0].reads, &b[0].writes),
            "{second}"
        );
        assert_eq!(
            b[0].text_redacted,
            lex::redact(&lex::split(lex::tokenize(second).unwrap()).remove(0).tokens)
        );
    }
    let d = classify("WITH d AS (DELETE FROM memo_c WHERE id = 7 RETURNING *) SELECT * FROM d");
    check("memo", &d[0], C::Delete, &["memo_c"], &["memo_c"]);
    assert_eq!(classify("DO $$ x $$")[0].class, C::Unknown);
    assert!(cache::shapes() > 0);
    // The exact string again: the memo by text answers, with the same result.
    for (first, second) in pairs {
        assert_eq!(classify(first), classify_fresh(first));
        assert_eq!(classify(second), classify_fresh(second));
    }
}

#[test]
fn explain_analyze_is_classified_by_its_option_value_every_time() {
    assert_eq!(
        classify("EXPLAIN (ANALYZE false) DELETE FROM memo_e")[0].class,
        C::Utility
    );
    assert_eq!(
        classify("EXPLAIN (ANALYZE 1) DELETE FROM memo_e")[0].class,
        C::DeleteNoWhere
    );
    assert_eq!(
        classify("EXPLAIN (ANALYZE 'off') DELETE FROM memo_e")[0].class,
        C::Utility
    );
    assert_eq!(
        classify("EXPLAIN (ANALYZE 'on') DELETE FROM memo_e")[0].class,
        C::DeleteNoWhere
    );
}
