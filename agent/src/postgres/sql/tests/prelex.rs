//! The fast literal scan: what it accepts, what it refuses, and that a string sharing a
//! remembered key classifies (and redacts) exactly as a fresh parse of that string.
use super::super::cache::{self, MAX_KEY};
use super::super::prelex::scan;
use super::super::{classify, classify_fresh};
use super::*;

fn key(sql: &str) -> Option<String> {
    scan(sql, MAX_KEY).map(|s| s.key)
}

#[test]
fn strings_that_differ_in_literal_values_share_a_key() {
    let same = [
        "SELECT abalance FROM pgbench_accounts WHERE aid = 1;",
        "SELECT abalance FROM pgbench_accounts WHERE aid = 987654321",
        "  SELECT abalance FROM pgbench_accounts WHERE aid = 0 ;  \n",
    ];
    for sql in same {
        assert_eq!(key(sql), key(same[0]), "{sql}");
    }
    assert_eq!(
        key("UPDATE t SET v = 'x', w = 'it''s; -- /* $$ \" E''' WHERE k = 7"),
        key("UPDATE t SET v = '', w = 'y' WHERE k = 70")
    );
    assert_eq!(
        scan("SELECT 'a', 1, $2 FROM \"T 1\"", MAX_KEY)
            .unwrap()
            .literals,
        2
    );
}

#[test]
fn keys_keep_everything_but_literal_values() {
    let distinct = [
        "SELECT a FROM t WHERE k = 1",
        "SELECT a FROM t WHERE k = '1'",
        "SELECT a FROM t WHERE k = $1",
        "SELECT a FROM t WHERE k ? 'x'",
        "SELECT a FROM t WHERE k = ?",
        "SELECT a FROM \"T\" WHERE k = 1",
        "SELECT a FROM t WHERE k =  1",
        "select a FROM t WHERE k = 1",
        "SELECT a FROM t1 WHERE k = 1",
        "SELECT a FROM t WHERE k = 1.5",
        "DELETE FROM t WHERE k = 1",
    ];
    let keys: Vec<String> = distinct
        .iter()
        .map(|s| key(s).unwrap_or_else(|| panic!("no key for {s}")))
        .collect();
    for (i, a) in keys.iter().enumerate() {
        for (j, b) in keys.iter().enumerate().skip(i + 1) {
            assert_ne!(a, b, "{} and {} share a key", distinct[i], distinct[j]);
        }
    }
}

#[test]
fn refuses_what_it_does_not_understand() {
    let refused = [
        "SELECT 1 -- comment",
        "SELECT /* c */ 1",
        "SELECT 'a\\'b'",
        "SELECT E'x'",
        "SELECT U&'d0061t'",
        "SELECT B'0101'",
        "SELECT $$ body $$",
        "SELECT $q$ body $q$",
        "EXPLAIN ANALYZE DELETE FROM t",
        "explain (analyze 0) delete from t",
        "SELECT 1; SELECT 2",
        "SELECT 1;;",
        "SELECT 'unterminated",
        "SELECT \"unterminated",
        "",
        "  ;  ",
    ];
    for sql in refused {
        assert_eq!(key(sql), None, "{sql:?}");
    }
    let long = format!("SELECT {} FROM t", vec!["a"; 3_000].join(", "));
    assert_eq!(key(&long), None);
}

/// Literal values a client could send, chosen to break a scan that misjudged where a literal
/// ends: quotes, comment and statement openers, dollar quotes, backslash-free escapes.
const STRING_VALUES: &[&str] = &[
    "",
    "x",
    "it''s",
    "; DROP TABLE victim; --",
    "/* ",
    "$$",
    "\"",
    "'' OR ''1''=''1",
    "explain analyze",
    "\u{e9}t\u{e9} 1",
];
const NUMBER_VALUES: &[&str] = &["0", "7", "999999999999999999"];

/// `template` with every `#S` replaced by string value `s` and every `#N` by number value `n`.
fn fill(template: &str, s: &str, n: &str) -> String {
    template.replace("#S", s).replace("#N", n)
}

#[test]
fn a_key_hit_classifies_and_redacts_as_a_fresh_parse() {
    // Templates whose literals the scan finds and sqlparser agrees on (checked below), with
    // shapes no other test uses so that the first string of each is a miss.
    let templates = [
        "SELECT prelex_a.x FROM prelex_a WHERE prelex_a.k = #N AND prelex_a.v <> '#S';",
        "UPDATE prelex_b SET v = '#S' WHERE id = #N",
        "DELETE FROM prelex_c WHERE note = '#S' OR id IN (#N, #N)",
        "INSERT INTO prelex_d (a, b) VALUES ('#S', #N) RETURNING a",
        "WITH d AS (DELETE FROM prelex_e WHERE id = #N RETURNING *) SELECT * FROM d WHERE d.s = '#S'",
        "SELECT \"Prelex F\".x FROM \"Prelex F\" WHERE y = $1 AND z = '#S' LIMIT #N",
        "SET application_name = '#S'",
    ];
    for template in templates {
        let first = fill(template, "first", "1");
        let scanned = scan(&first, MAX_KEY).unwrap_or_else(|| panic!("no key for {first}"));
        let fresh = classify_fresh(&first);
        assert_eq!(classify(&first), fresh, "{first}");
        assert!(
            cache::literal_shape(&scanned.key).is_some(),
            "the full path did not agree with the scan of {first}"
        );
        for s in STRING_VALUES {
            for n in NUMBER_VALUES {
                let sql = fill(template, s, n);
                let scanned_too = scan(&sql, MAX_KEY).unwrap_or_else(|| panic!("no key: {sql}"));
                assert_eq!(scanned_too.key, scanned.key, "{sql}");
                // A hit in the memo by key, which must equal a fresh parse of this string.
                assert_eq!(classify(&sql), classify_fresh(&sql), "{sql}");
            }
        }
    }
}

#[test]
fn a_scan_the_full_path_disagrees_with_is_not_remembered() {
    // `1e3` and `1.5` are one literal each to sqlparser, not to the scan; the scan keeps them as
    // text, so the counts differ and the key is never remembered.
    for sql in [
        "SELECT prelex_g.a FROM prelex_g WHERE b = 1e3",
        "SELECT prelex_g.a FROM prelex_g WHERE b = 1.5 AND c = 'x'",
    ] {
        let scanned = scan(sql, MAX_KEY).expect("scans");
        assert_eq!(classify(sql), classify_fresh(sql), "{sql}");
        assert!(cache::literal_shape(&scanned.key).is_none(), "{sql}");
    }
}

#[test]
fn every_case_of_the_table_classifies_alike_through_the_scan() {
    // Twice each: the second call is a hit in whichever memo applies.
    for &(sql, class, reads, writes) in super::cases::CASES {
        for _ in 0..2 {
            let got = classify(sql);
            assert_eq!(got, classify_fresh(sql), "{sql}");
            if let [one] = &*got {
                check(sql, one, class, reads, writes);
            }
        }
    }
}

#[test]
fn a_literal_read_as_a_name_or_an_overlong_number_never_comes_from_a_memo() {
    // sqlparser accepts a string where PostgreSQL wants a name, and reads some numbers into u64:
    // such a literal's value could decide the class or tables, so these statements are Unknown
    // (a string as a name, a parameter's included) or never memoized (long numbers).
    // Found in review; each pair shares a prefix so that the first string primes the memos.
    for (a, b) in [
        ("DROP TABLE 'prelex_h'", "DROP TABLE 'accounts'"),
        ("SET 'prelex_i' = 1", "SET 'role' = 1"),
        (
            "SELECT CAST(a AS varchar(10)) FROM prelex_j",
            "SELECT CAST(a AS varchar(99999999999999999999)) FROM prelex_j",
        ),
        ("SELECT (1", "SELECT (2;"),
    ] {
        assert_eq!(classify(a), classify_fresh(a), "{a}");
        assert_eq!(classify(b), classify_fresh(b), "{b}");
    }
    assert_eq!(classify("DROP TABLE 'accounts'")[0].class, C::Unknown);
    assert_eq!(classify("SELECT * FROM 'accounts'")[0].class, C::Unknown);
    // A string-named parameter could be a role one (Dcl) or one that changes how the server
    // reads SQL (`sql::reading`): Unknown.
    assert_eq!(classify("SET 'prelex_k' = 1")[0].class, C::Unknown);
    assert_eq!(key("SELECT (2;"), None);
    assert_eq!(key("SELECT 1234567890123456789"), None);
    assert!(key("SELECT 123456789012345678").is_some());
}
