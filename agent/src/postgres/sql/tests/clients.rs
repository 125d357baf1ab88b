//! Real client traffic: pgbench's statements and psql's `\d` catalog queries; the cost per
//! pgbench statement.

use std::time::Instant;

use super::*;

/// pgbench's statements, as PostgreSQL logged them for `pgbench -i` and runs in simple,
/// extended and prepared modes (tpcb-like and select-only).
#[test]
fn pgbench_statements() {
    let cases: &[Case] = &[
        ("BEGIN;", Transaction, &[], &[]),
        ("END;", Transaction, &[], &[]),
        (
            "SELECT abalance FROM pgbench_accounts WHERE aid = $1;",
            Select,
            &["pgbench_accounts"],
            &[],
        ),
        (
            "SELECT abalance FROM pgbench_accounts WHERE aid = 748;",
            Select,
            &["pgbench_accounts"],
            &[],
        ),
        (
            "UPDATE pgbench_accounts SET abalance = abalance + $1 WHERE aid = $2;",
            Update,
            &[],
            &["pgbench_accounts"],
        ),
        (
            "UPDATE pgbench_tellers SET tbalance = tbalance + $1 WHERE tid = $2;",
            Update,
            &[],
            &["pgbench_tellers"],
        ),
        (
            "UPDATE pgbench_branches SET bbalance = bbalance + 2714 WHERE bid = 1;",
            Update,
            &[],
            &["pgbench_branches"],
        ),
        (
            "INSERT INTO pgbench_history (tid, bid, aid, delta, mtime) VALUES ($1, $2, $3, $4, CURRENT_TIMESTAMP);",
            Insert,
            &[],
            &["pgbench_history"],
        ),
        (
            "INSERT INTO pgbench_history (tid, bid, aid, delta, mtime) VALUES (8, 1, 748, 2639, CURRENT_TIMESTAMP);",
            Insert,
            &[],
            &["pgbench_history"],
        ),
        (
            "select count(*) from pgbench_branches",
            Select,
            &["pgbench_branches"],
            &[],
        ),
        (
            "drop table if exists pgbench_accounts, pgbench_branches, pgbench_history, pgbench_tellers",
            Ddl,
            &[],
            &[
                "pgbench_accounts",
                "pgbench_branches",
                "pgbench_history",
                "pgbench_tellers",
            ],
        ),
        (
            "create table pgbench_tellers(tid int not null,bid int,tbalance int,filler char(84)) with (fillfactor=100)",
            Ddl,
            &[],
            &["pgbench_tellers"],
        ),
        (
            "truncate table pgbench_accounts, pgbench_branches",
            Truncate,
            &[],
            &["pgbench_accounts", "pgbench_branches"],
        ),
        (
            "insert into pgbench_branches(bid,bbalance) values(1,0)",
            Insert,
            &[],
            &["pgbench_branches"],
        ),
        (
            "insert into pgbench_accounts(aid,bid,abalance,filler) select aid, (aid - 1) / 100000 + 1, 0, '' from generate_series(1, 100000) as aid",
            Insert,
            &[],
            &["pgbench_accounts"],
        ),
        (
            "alter table pgbench_history add constraint pgbench_history_aid_fkey foreign key (aid) references pgbench_accounts",
            Ddl,
            &[],
            &["pgbench_history"],
        ),
        (
            "select o.n, p.partstrat, pg_catalog.count(i.inhparent) from pg_catalog.pg_class as c join pg_catalog.pg_namespace as n on (n.oid = c.relnamespace) cross join lateral (select pg_catalog.array_position(pg_catalog.current_schemas(true), n.nspname)) as o(n) left join pg_catalog.pg_partitioned_table as p on (p.partrelid = c.oid) left join pg_catalog.pg_inherits as i on (c.oid = i.inhparent) where c.relname = 'pgbench_accounts' and o.n is not null group by 1, 2 order by 1 asc limit 1",
            Select,
            &[
                "pg_catalog.pg_class",
                "pg_catalog.pg_namespace",
                "pg_catalog.pg_partitioned_table",
                "pg_catalog.pg_inherits",
            ],
            &[],
        ),
    ];
    for &(sql, class, reads, writes) in cases {
        let got = classify(sql);
        assert_eq!(got.len(), 1, "{sql}");
        check(sql, &got[0], class, reads, writes);
    }
    // The whole tpcb-like transaction sent as one simple query.
    let script = "BEGIN; UPDATE pgbench_accounts SET abalance = abalance + 1 WHERE aid = 2; \
                  SELECT abalance FROM pgbench_accounts WHERE aid = 2; \
                  INSERT INTO pgbench_history (tid, bid, aid, delta, mtime) VALUES (1, 1, 2, 1, CURRENT_TIMESTAMP); END;";
    let classes: Vec<C> = classify(script).iter().map(|c| c.class).collect();
    assert_eq!(classes, [Transaction, Update, Select, Insert, Transaction]);
}

/// psql's `\d`, `\d t`, `\d+ t`, `\dt`, `\l`, `\dn`, `\du`, `\df`, `\dv`, `\di`, `\dx` catalog
/// queries, captured with `psql -E` against PostgreSQL 15.
#[test]
fn psql_describe_queries_are_selects_on_the_catalog() {
    let queries: Vec<&str> = include_str!("../testdata/psql_describe.sql")
        .split("\n---\n")
        .map(str::trim)
        .filter(|q| !q.is_empty())
        .collect();
    assert!(queries.len() >= 15, "fixture has {} queries", queries.len());
    for sql in queries {
        let got = classify(sql);
        assert_eq!(got.len(), 1, "{sql}");
        assert_eq!(got[0].class, Select, "{sql}");
        assert!(!got[0].reads.is_empty(), "{sql}");
        assert!(got[0].writes.is_empty(), "{sql}");
        for table in &got[0].reads {
            assert!(
                table.starts_with("pg_catalog.") || table.starts_with("information_schema."),
                "{table} in {sql}"
            );
        }
    }
}

/// Cost per pgbench statement (not asserted). Run with
/// `cargo test -p tollgate --release --lib postgres::sql::tests::clients::bench -- --ignored --nocapture`.
#[test]
#[ignore = "timing, prints only"]
fn bench_pgbench_statements() {
    let statements = [
        "BEGIN;",
        "UPDATE pgbench_accounts SET abalance = abalance + $1 WHERE aid = $2;",
        "SELECT abalance FROM pgbench_accounts WHERE aid = $1;",
        "UPDATE pgbench_tellers SET tbalance = tbalance + $1 WHERE tid = $2;",
        "UPDATE pgbench_branches SET bbalance = bbalance + $1 WHERE bid = $2;",
        "INSERT INTO pgbench_history (tid, bid, aid, delta, mtime) VALUES ($1, $2, $3, $4, CURRENT_TIMESTAMP);",
        "END;",
    ];
    const ROUNDS: u32 = 20_000;
    for sql in statements {
        let start = Instant::now();
        for _ in 0..ROUNDS {
            std::hint::black_box(classify(std::hint::black_box(sql)));
        }
        let per = start.elapsed() / ROUNDS;
        println!("{per:>10.2?}  {sql}");
    }
}
