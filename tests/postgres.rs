//! Root suite: PostgreSQL through tollgate (issue 3). A real PostgreSQL 15 server per test and
//! real, unmodified clients (psql, pgbench, Python psycopg2, tokio-postgres) in an enrolled
//! cgroup, connecting without any password: tollgate logs in upstream with the policy's
//! credentials, enforces statement rules, masks rows and audits every statement. Needs root,
//! cgroup v2, bpffs, postgresql-15, postgresql-client-15, openssl and python3-psycopg2
//! (see tests/README.md).
mod harness;
mod pg;

use pg::{Fixture, PgServer, Role, conninfo, data, psql, server::PG_BIN};

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
             select string_agg(tableowner, ',' order by tablename) from pg_tables where schemaname = 'public'"
        ),
        format!("{}\n100000\napp,app,app,app,app,app", data::ACCOUNTS)
    );
    assert!(std::path::Path::new(PG_BIN).join("postgres").is_file());
}
