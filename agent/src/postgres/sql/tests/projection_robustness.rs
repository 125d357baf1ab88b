//! Projections of deep, huge, random and mutated input: never a panic or a stack overflow, and
//! bounded work.

use std::time::{Duration, Instant};

use super::super::{Projected, lex, parse_one, project, projection};
use super::cases::CASES;
use super::robustness::Rng;

/// Runs `f` on a thread whose stack is as small as a tokio worker's.
fn on_small_stack<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    std::thread::Builder::new()
        .stack_size(2 << 20)
        .spawn(f)
        .expect("spawn")
        .join()
        .expect("no panic")
}

#[test]
fn long_chains_project_on_a_large_stack() {
    let concat = format!(
        "select upper(card_number){} from customers",
        " || card_number".repeat(60_000)
    );
    let unions = vec!["select card_number from customers"; 30_000].join(" union ");
    let ors = format!(
        "select (select 1 from t where {}) from customers",
        vec!["card_number = 'x'"; 30_000].join(" or ")
    );
    let cases = [
        (concat, vec![expr(&["card_number"])]),
        (unions, vec![expr(&["card_number"])]),
        (ors, vec![expr(&["card_number"])]),
    ];
    for (sql, want) in cases {
        let got = on_small_stack({
            let sql = sql.clone();
            move || projection(&sql)
        });
        assert_eq!(got, Some(want), "{}", &sql[..60]);
    }
}

fn expr(columns: &[&str]) -> Projected {
    Projected::Expr {
        columns: columns.iter().map(|s| (*s).to_owned()).collect(),
        whole_rows: Vec::new(),
        opaque: false,
    }
}

#[test]
fn deep_nesting_is_none_not_a_crash() {
    let deep_parens = format!(
        "select {}card_number{}",
        "(".repeat(5_000),
        ")".repeat(5_000)
    );
    let deep_subqueries = format!(
        "select {}card_number{}",
        "(select ".repeat(500),
        ")".repeat(500)
    );
    let deep_derived = format!(
        "select x from {}customers{}",
        "(select * from ".repeat(500),
        ") x".repeat(500)
    );
    for sql in [deep_parens, deep_subqueries, deep_derived] {
        let got = on_small_stack(move || projection(&sql));
        assert_eq!(got, None);
    }
}

/// Nested `WITH RECURSIVE` lists are walked to a fixed point each: the walk budget keeps that
/// from multiplying without bound.
#[test]
fn nested_recursive_withs_are_bounded() {
    let depth = 12;
    let mut sql = "select upper(card_number) c from customers".to_owned();
    for i in 0..depth {
        sql = format!(
            "with recursive a{i} as (select * from b{i}), b{i} as ({sql}) select * from a{i}"
        );
    }
    let started = Instant::now();
    let got = on_small_stack(move || projection(&sql));
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
    // Either traced to the end or given up on (`None`, which the session treats as unknown).
    if let Some(got) = got {
        assert_eq!(got, [expr(&["c", "card_number"])]);
    }
}

#[test]
fn many_subqueries_are_walked_once_each() {
    let items = vec!["(select card_number from customers)"; 3_000].join(", ");
    let sql = format!("select {items}");
    let got = projection(&sql).expect("projected");
    assert_eq!(got.len(), 3_000);
    assert!(got.iter().all(|p| *p == expr(&["card_number"])));
}

#[test]
fn never_panics_on_random_or_mutated_input() {
    const FRAGMENTS: &[&str] = &[
        "select",
        "from",
        "where",
        "with",
        "recursive",
        "as",
        "(",
        ")",
        ",",
        ";",
        "'",
        "\"",
        "*",
        "x.*",
        "t",
        "c",
        "card_number",
        "union",
        "all",
        "values",
        "returning",
        "lateral",
        "unnest(",
        "row(",
        "to_json(",
        "over",
        "window",
        "w",
        "partition by",
        "exists",
        "join",
        "using",
        "(id)",
        "natural",
        "on",
        "::",
        "[",
        "]",
        "=",
        "||",
        "case",
        "when",
        "then",
        "end",
        "$1",
        "--",
        "/*",
        "*/",
        "\n",
        "é",
        "\0",
        "1e9",
    ];
    let seeds: Vec<String> = CASES
        .iter()
        .map(|case| case.0.to_owned())
        .chain(
            super::projection::cases()
                .into_iter()
                .map(|(sql, _)| sql.to_owned()),
        )
        .collect();
    let mut rng = Rng(0x2545_f491_4f6c_dd1d);
    let mut projected = 0usize;
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
        projected += usize::from(project_unguarded(&sql));
    }
    for _ in 0..1_000 {
        let len = rng.below(60);
        let sql: String = (0..len)
            .map(|_| FRAGMENTS[rng.below(FRAGMENTS.len())])
            .collect::<Vec<_>>()
            .join(" ");
        projected += usize::from(project_unguarded(&sql));
    }
    assert!(projected > 100, "only {projected} inputs projected");
}

/// `projection`, and the parse and projection of each statement again without the guard's
/// `catch_unwind`, so that a panic anywhere fails the test.
fn project_unguarded(sql: &str) -> bool {
    let got = projection(sql);
    if let Ok(tokens) = lex::tokenize(sql) {
        for chunk in lex::split(tokens) {
            if let Some(stmt) = parse_one(chunk.tokens) {
                let _ = project(&stmt);
            }
        }
    }
    got.is_some()
}
