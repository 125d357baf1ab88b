//! Projections: what each result column is computed from, and the mask decision on it.

use super::super::{Projected, expr_needs_mask, per_field, projection};

fn col() -> Projected {
    Projected::Column
}

fn star() -> Projected {
    Projected::Star
}

fn expr(columns: &[&str], whole_rows: &[&str], opaque: bool) -> Projected {
    Projected::Expr {
        columns: columns.iter().map(|s| (*s).to_owned()).collect(),
        whole_rows: whole_rows.iter().map(|s| (*s).to_owned()).collect(),
        opaque,
    }
}

fn cols(columns: &[&str]) -> Projected {
    expr(columns, &[], false)
}

fn rows(whole_rows: &[&str]) -> Projected {
    expr(&[], whole_rows, false)
}

fn expr_star(columns: &[&str], whole_rows: &[&str], opaque: bool) -> Projected {
    Projected::ExprStar {
        columns: columns.iter().map(|s| (*s).to_owned()).collect(),
        whole_rows: whole_rows.iter().map(|s| (*s).to_owned()).collect(),
        opaque,
    }
}

#[rustfmt::skip]
pub(super) fn cases() -> Vec<(&'static str, Vec<Projected>)> {
    vec![
        // --- plain columns: the session resolves them through RowDescription ---
        ("select id, card_number from customers", vec![col(), col()]),
        ("select x.card_number as n, (id) from customers x", vec![col(), col()]),
        ("select public.customers.card_number from public.customers", vec![col()]),
        ("select n from (select card_number n from customers) s", vec![col()]),
        ("select s.n from (select card_number from customers) s(n)", vec![col()]),
        ("with w as (select card_number from customers) select card_number from w", vec![col()]),
        ("select * from customers", vec![star()]),
        ("select *, c.* from customers c, orders o", vec![star()]),
        // --- the leaks: expression columns ---
        ("select upper(card_number) from customers", vec![cols(&["card_number"])]),
        ("select card_number || '' from customers", vec![cols(&["card_number"])]),
        ("select row(id, card_number) from customers", vec![cols(&["id", "card_number"])]),
        ("select string_agg(card_number, ',') from customers", vec![cols(&["card_number"])]),
        ("select to_json(customers) from customers", vec![rows(&["customers"])]),
        ("select c from customers c", vec![rows(&["customers"])]),
        ("select to_json(x.*), row(x.*) from customers x", vec![rows(&["customers"]), rows(&["customers"])]),
        ("select json_agg(c) from public.customers c", vec![rows(&["public.customers"])]),
        ("select coalesce(card_number, '') from customers", vec![cols(&["card_number"])]),
        ("select card_number::bigint, cast(card_number as text) from customers", vec![cols(&["card_number"]), cols(&["card_number"])]),
        (
            "select case when id > 1 then card_number else 'n/a' end from customers",
            vec![cols(&["id", "card_number"])],
        ),
        ("select case kind when 1 then 'a' end from customers", vec![cols(&["kind"])]),
        ("select (select card_number from customers limit 1)", vec![cols(&["card_number"])]),
        (
            "select (select upper(o.card) from orders o where o.cid = c.id) from customers c",
            vec![cols(&["card", "cid", "id"])],
        ),
        ("select array(select card_number from customers)", vec![cols(&["card_number"])]),
        ("select (c).card_number from customers c", vec![cols(&["card_number"])]),
        ("select upper(C.Card_Number), lower(\"Card\") from customers c", vec![cols(&["card_number"]), cols(&["Card"])]),
        (
            "select sum(id) over (partition by card_number order by name) from customers",
            vec![cols(&["id", "card_number", "name"])],
        ),
        (
            "select sum(id) over w from customers window w as (partition by card_number)",
            vec![cols(&["id", "card_number"])],
        ),
        (
            "select count(*) filter (where card_number like '4%') from customers",
            vec![cols(&["card_number"])],
        ),
        // The select list of EXISTS carries no data; its WHERE does count.
        ("select exists(select * from customers)", vec![cols(&[])]),
        (
            "select exists(select card_number from customers where card_number like '4%')",
            vec![cols(&["card_number"])],
        ),
        // --- negatives ---
        ("select count(*) from customers", vec![cols(&[])]),
        ("select id + 1 from customers", vec![cols(&["id"])]),
        ("select 1", vec![cols(&[])]),
        ("select $1::int, now()", vec![cols(&[]), cols(&[])]),
        // --- derived tables and CTEs: traced through their output columns ---
        ("select upper(n) from (select card_number n from customers) s", vec![cols(&["n", "card_number"])]),
        ("select s.u from (select upper(card_number) u from customers) s", vec![cols(&["u", "card_number"])]),
        ("select upper(a) from (select card_number from customers) x(a)", vec![cols(&["a", "card_number"])]),
        ("select x from (select id, card_number from customers) x", vec![cols(&["id", "card_number"])]),
        ("select to_json(x) from (select * from customers) x", vec![rows(&["customers"])]),
        (
            "with w as (select upper(card_number) c from customers) select c from w",
            vec![cols(&["c", "card_number"])],
        ),
        (
            "with w as (select upper(card_number) c from customers) select c || '' from w",
            vec![cols(&["c", "card_number"])],
        ),
        (
            "with w(c) as (select card_number || '' from customers) select w.c from w",
            vec![cols(&["c", "card_number"])],
        ),
        (
            "with a as (select 1 k), b as (select upper(card_number) k from customers) select k from b",
            vec![cols(&["k", "card_number"])],
        ),
        // An unnamed output column is `?column?`: a reference to another name misses it.
        ("select x.id from (select id, card_number || '' from customers) x", vec![col()]),
        (
            "select \"?column?\" from (select id, card_number || '' from customers) x",
            vec![cols(&["?column?", "card_number"])],
        ),
        ("select * from (select id, upper(card_number) u from customers) x", vec![col(), cols(&["card_number"])]),
        (
            "with w as (select id, upper(card_number) from customers) select w.*, 1 from w",
            vec![col(), cols(&["card_number"]), cols(&[])],
        ),
        ("select * from (select * from customers) x", vec![star()]),
        ("select l.u from customers c, lateral (select upper(c.card_number) u) l", vec![cols(&["u", "card_number"])]),
        ("select l.* from customers c, lateral (select upper(c.card_number) u) l", vec![cols(&["card_number"])]),
        ("select upper(x) from customers c, lateral (select c.card_number) s(x)", vec![cols(&["x", "card_number"])]),
        // A CTE name qualified is a table, and an inner WITH shadows an outer one.
        (
            "with customers as (select 1 id) select to_json(c) from public.customers c",
            vec![rows(&["public.customers"])],
        ),
        (
            "with x as (select upper(card_number) c from customers) select (with x as (select 1 c) select c from x)",
            vec![cols(&["c"])],
        ),
        // Recursive: the anchor's columns flow through the recursive reference.
        (
            "with recursive r(n, c) as (select 1, card_number from customers union all select n + 1, c from r where n < 3) select upper(c) from r",
            vec![cols(&["c", "card_number"])],
        ),
        // A forward reference inside WITH RECURSIVE is resolved on a later pass.
        (
            "with recursive a as (select * from b), b as (select upper(card_number) u from customers) select u || '' from a",
            vec![cols(&["u", "card_number"])],
        ),
        // --- set operations: PostgreSQL reports table OID 0 for every column ---
        ("select id from customers union select card_number from customers", vec![cols(&["id", "card_number"])]),
        (
            "select id, name from a union all select 1, x from b except select c, d from e",
            vec![cols(&["id", "c"]), cols(&["name", "x", "d"])],
        ),
        ("(select card_number from customers) union (select 'x')", vec![cols(&["card_number"])]),
        ("select * from customers union all select * from pub", vec![expr_star(&[], &["customers", "pub"], false)]),
        (
            "with a as (select id from customers union select card_number from customers) select id from a",
            vec![cols(&["id", "card_number"])],
        ),
        // --- VALUES ---
        ("values (1, 'a'), (2, 'b')", vec![cols(&[]), cols(&[])]),
        ("values ((select card_number from customers limit 1))", vec![cols(&["card_number"])]),
        ("select column1 from (values ('x')) v", vec![cols(&["column1"])]),
        // --- functions in FROM ---
        (
            "select u, upper(u) from customers c, lateral unnest(array[c.card_number]) u",
            vec![cols(&["card_number"]), cols(&["card_number"])],
        ),
        (
            "select * from customers c, lateral unnest(array[c.card_number]) u",
            vec![star(), expr_star(&["card_number"], &[], false)],
        ),
        (
            "select value from customers c, jsonb_each_text(c.profile)",
            vec![cols(&["value", "profile"])],
        ),
        ("select g from generate_series(1, 3) g", vec![cols(&[])]),
        ("select id from customers, generate_series(1, 3) g", vec![col()]),
        ("select f from my_func() f", vec![expr(&[], &["f"], true)]),
        ("select f.x from my_func() f", vec![expr(&["x"], &[], true)]),
        ("select * from my_func(1)", vec![expr_star(&[], &[], true)]),
        // --- joins ---
        (
            "select * from customers join (select id, upper(card_number) u from customers) x using (id)",
            vec![expr_star(&["id", "card_number"], &["customers"], false)],
        ),
        ("select * from customers join orders using (id)", vec![star()]),
        ("select j from (customers c join orders o on o.cid = c.id) as j", vec![rows(&["customers", "orders"])]),
        // --- RETURNING ---
        (
            "insert into customers values (1, 'a', 'x') returning id, upper(card_number)",
            vec![col(), cols(&["card_number"])],
        ),
        (
            "update customers c set name = 'x' from pub p where p.id = c.id returning c.card_number, p.x || c.name",
            vec![col(), cols(&["x", "name"])],
        ),
        ("delete from customers returning *", vec![star()]),
        ("delete from only customers returning to_json(customers)", vec![rows(&["customers"])]),
        (
            "with d as (select 1) insert into t select * from d returning t",
            vec![rows(&["t"])],
        ),
    ]
}

#[test]
fn projects_the_table_of_cases() {
    let mut failures = Vec::new();
    for (sql, want) in cases() {
        // A trailing semicolon and comments change nothing.
        for text in [sql.to_owned(), format!("/* c */ {sql} ; -- end\n")] {
            let got = projection(&text);
            if got.as_ref() != Some(&want) {
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
fn statements_without_a_modeled_result_set_are_none() {
    for sql in [
        "",
        "explain select upper(card_number) from customers",
        "explain analyze select 1",
        "set search_path = x",
        "show search_path",
        "insert into t values (1)",
        "update t set a = 1",
        "delete from t",
        "select * into t2 from t",
        "create table t2 as select card_number from customers",
        "copy (select card_number from customers) to stdout",
        "fetch 10 from c",
        "execute p(1)",
        "select 1; select 2",
        "selec card_number",
        "select 'unterminated",
    ] {
        assert_eq!(projection(sql), None, "{sql:?}");
    }
}

#[test]
fn expr_needs_mask_decides_from_the_references() {
    let masked_column = |c: &str| c.contains("card");
    let masked_table = |t: &str| t == "customers" || t == "public.customers";
    let cases = [
        (col(), false),
        (star(), false),
        (cols(&[]), false),
        (cols(&["id"]), false),
        (cols(&["id", "card_number"]), true),
        (rows(&["customers"]), true),
        (rows(&["public.customers"]), true),
        (rows(&["orders"]), false),
        // A whole row of a source whose columns are unknown: fail closed.
        (expr(&[], &["f"], true), true),
        (expr(&["x"], &[], true), false),
        (expr_star(&[], &["orders", "pub"], false), false),
        (expr_star(&[], &["orders", "customers"], false), true),
        (expr_star(&["card"], &[], false), true),
    ];
    for (p, want) in cases {
        assert_eq!(
            expr_needs_mask(&p, masked_column, masked_table),
            want,
            "{p:?}"
        );
    }
}

/// End to end: each leak of the brief is masked, the plain columns are left to the session.
#[test]
fn every_leak_of_the_brief_needs_a_mask() {
    let masked_column = |c: &str| c == "card_number";
    let masked_table = |t: &str| t == "customers";
    for sql in [
        "select upper(card_number) from customers",
        "select card_number || '' from customers",
        "select row(id, card_number) from customers",
        "select string_agg(card_number, ',') from customers",
        "select to_json(customers) from customers",
        "select c from customers c",
        "select to_json(x.*) from customers x",
        "select coalesce(card_number, '') from customers",
        "select card_number::bigint from customers",
        "select case when true then card_number end from customers",
        "select (select card_number from customers limit 1)",
        "with w as (select upper(card_number) c from customers) select c from w",
        "select id from pub union select card_number from customers",
        "select * from (select upper(card_number) u from customers) x",
    ] {
        let got = projection(sql).unwrap_or_default();
        let last = got.last().cloned().unwrap_or(Projected::Column);
        assert!(
            expr_needs_mask(&last, masked_column, masked_table),
            "{sql}: {got:?}"
        );
    }
}

/// Common shapes that reference nothing masked stay unmasked (no blanket fail-closed).
#[test]
fn computed_columns_without_masked_references_need_no_mask() {
    let masked_column = |c: &str| c == "card_number";
    let masked_table = |t: &str| t == "customers";
    for sql in [
        "select json_agg(t) from (select id, name from customers) t",
        "select row_to_json(o) from orders o",
        "select count(*), max(id) from customers",
        "select upper(name) from customers",
        "select exists(select * from customers)",
        "select g from generate_series(1, 3) g",
        "with w as (select id, upper(card_number) u from customers) select id + 1 from w",
        "select x.id::text from (select id, card_number || '' from customers) x",
    ] {
        let got = projection(sql).unwrap_or_default();
        assert!(!got.is_empty(), "{sql}");
        for p in &got {
            assert!(
                !expr_needs_mask(p, masked_column, masked_table),
                "{sql}: {got:?}"
            );
        }
    }
}

#[test]
fn per_field_matches_entries_to_fields() {
    let e = cols(&["card_number"]);
    let cases: Vec<(Vec<Projected>, usize, Option<Vec<Projected>>)> = vec![
        (vec![col(), e.clone()], 2, Some(vec![col(), e.clone()])),
        (vec![col(), e.clone()], 3, None),
        (vec![star()], 3, Some(vec![star(), star(), star()])),
        (vec![star()], 0, Some(vec![])),
        (
            vec![col(), star(), e.clone()],
            4,
            Some(vec![col(), star(), star(), e.clone()]),
        ),
        (vec![col(), star(), e.clone()], 1, None),
        // Two stars: the fields between them cannot be told apart.
        (
            vec![star(), e.clone(), expr_star(&["x"], &[], true), col()],
            4,
            Some(vec![
                expr_star(&["card_number", "x"], &[], true),
                expr_star(&["card_number", "x"], &[], true),
                expr_star(&["card_number", "x"], &[], true),
                col(),
            ]),
        ),
        (vec![star(), col(), star()], 5, Some(vec![star(); 5])),
        (vec![star(), e.clone(), star()], 0, None),
    ];
    for (projected, fields, want) in cases {
        assert_eq!(
            per_field(&projected, fields),
            want,
            "{projected:?} over {fields}"
        );
    }
}
