//! Deep, huge, random and mutated input: classification never panics or overflows the stack.

use super::super::{INLINE_TOKENS, MAX_TOKENS, lex, parse_and_walk};
use super::cases::CASES;
use super::*;

#[test]
fn deep_nesting_is_unknown_not_a_crash() {
    let deep_parens = format!("SELECT {}1{}", "(".repeat(5_000), ")".repeat(5_000));
    let deep_subqueries = format!(
        "SELECT * FROM t WHERE a IN {}1{}",
        "(SELECT ".repeat(500),
        ")".repeat(500)
    );
    for sql in [deep_parens, deep_subqueries] {
        let got = classify(&sql);
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].class, Unknown);
    }
}

/// Chains without parentheses nest without bound in the tree; above the inline size they are
/// parsed on a large stack, so classification still works (and dropping the tree does not
/// overflow the caller's stack).
#[test]
fn long_chains_classify_on_a_large_stack() {
    let plus = format!("SELECT 1{} FROM t", "+1".repeat(100_000));
    let unions = vec!["SELECT a FROM u"; 30_000].join(" UNION ");
    let ors = format!("DELETE FROM t WHERE {}", vec!["a = 1"; 50_000].join(" OR "));
    let cases: [(&str, C, &[&str], &[&str]); 3] = [
        (&plus, Select, &["t"], &[]),
        (&unions, Select, &["u"], &[]),
        (&ors, Delete, &[], &["t"]),
    ];
    for (sql, class, reads, writes) in cases {
        // Run where the stack is as small as a tokio worker's.
        let got = std::thread::Builder::new()
            .stack_size(2 << 20)
            .spawn({
                let sql = sql.to_owned();
                move || classify(&sql)
            })
            .expect("spawn")
            .join()
            .expect("no panic");
        assert_eq!(got.len(), 1);
        check(&sql[..40], &got[0], class, reads, writes);
    }
}

#[test]
fn statements_over_the_token_cap_are_unknown() {
    let huge = format!(
        "SELECT 1 FROM t WHERE a IN ({})",
        vec!["1"; MAX_TOKENS / 2 + 1].join(",")
    );
    let got = classify(&huge);
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].class, Unknown);
}

/// A small deterministic generator (xorshift) so the fuzz run is reproducible.
pub(super) struct Rng(pub(super) u64);

impl Rng {
    pub(super) fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    pub(super) fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

#[test]
fn never_panics_on_random_or_mutated_input() {
    const FRAGMENTS: &[&str] = &[
        "SELECT",
        "FROM",
        "WHERE",
        "WITH",
        "AS",
        "(",
        ")",
        ";",
        ",",
        "'",
        "\"",
        "$$",
        "$1",
        "--",
        "/*",
        "*/",
        "\n",
        "DELETE",
        "UPDATE",
        "SET",
        "INSERT",
        "INTO",
        "VALUES",
        "EXPLAIN",
        "ANALYZE",
        "COPY",
        "TO",
        "FROM STDIN",
        "PREPARE",
        "EXECUTE",
        "ONLY",
        "UNION",
        "JOIN",
        "ON",
        "RETURNING",
        "=",
        "+",
        "::",
        "[",
        "]",
        "E'",
        "U&'",
        "\\",
        "é",
        "\0",
        "t",
        "x.y",
        "1e9",
        "999999999999999999999999",
    ];
    let seeds: Vec<&str> = CASES.iter().map(|case| case.0).collect();
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut total = 0usize;
    for _ in 0..4_000 {
        let mut sql: Vec<char> = seeds[rng.below(seeds.len())].chars().collect();
        for _ in 0..=rng.below(6) {
            let at = rng.below(sql.len() + 1);
            match rng.below(4) {
                0 => sql
                    .splice(at..at, FRAGMENTS[rng.below(FRAGMENTS.len())].chars())
                    .for_each(drop),
                1 if at < sql.len() => {
                    sql.remove(at);
                }
                2 => sql.insert(at, char::from_u32(rng.below(0x3000) as u32).unwrap_or('?')),
                _ => {
                    let end = (at + rng.below(8)).min(sql.len());
                    sql.truncate(end);
                }
            }
        }
        let sql: String = sql.into_iter().collect();
        total += classify_unguarded(&sql);
    }
    // Pure noise, too.
    for _ in 0..1_000 {
        let len = rng.below(80);
        let sql: String = (0..len)
            .map(|_| FRAGMENTS[rng.below(FRAGMENTS.len())])
            .collect::<Vec<_>>()
            .join(" ");
        total += classify_unguarded(&sql);
    }
    assert!(total > 0);
}

/// `classify`, and the parse and walk of each statement again without `classify`'s
/// `catch_unwind`, so that a panic anywhere fails the test instead of turning into Unknown.
fn classify_unguarded(sql: &str) -> usize {
    let classified = classify(sql);
    if let Ok(tokens) = lex::tokenize(sql) {
        for chunk in lex::split(tokens) {
            let _ = parse_and_walk(chunk.tokens);
        }
    }
    classified.len()
}

#[test]
fn inline_limit_leaves_room_for_real_statements() {
    // A 500-row multi-row INSERT stays on the inline path and classifies normally.
    let rows = vec!["(1, 'a', 2.5)"; 500].join(", ");
    let sql = format!("INSERT INTO t (a, b, c) VALUES {rows}");
    assert!(sql.len() / 3 < INLINE_TOKENS * 4);
    let got = classify(&sql);
    check("bulk insert", &got[0], Insert, &[], &["t"]);
}
