//! The tokio-postgres client: what this test binary does when re-run in the enrolled cgroup
//! as `rust_driver_child` (see [`super::client::rust_client`]). It connects without a
//! password, runs each step, and prints one JSON object with the outcome of every step.
use serde_json::{Value, json};
use tokio_postgres::{NoTls, SimpleQueryMessage};

/// One step's error as JSON: `{"code": SQLSTATE, "message": …}` for a server (or tollgate)
/// error, `{"error": …}` otherwise.
fn error(e: &tokio_postgres::Error) -> Value {
    match e.as_db_error() {
        Some(db) => json!({"code": db.code().code(), "message": db.message()}),
        None => json!({"error": e.to_string()}),
    }
}

/// The connection task of a client made by [`connect`].
type Conn = tokio::task::JoinHandle<Result<(), tokio_postgres::Error>>;

/// Connects as `spec.user` to `spec.port` (database orders, no TLS): the scenario's output so
/// far (`pid`, `connect: "ok"`), the client and its connection task; or the output with the
/// connect error.
async fn connect(spec: &Value) -> Result<(Value, tokio_postgres::Client, Conn), Value> {
    let port = spec["port"].as_u64().expect("spec.port");
    let user = spec["user"].as_str().expect("spec.user");
    let conf = format!("host=127.0.0.1 port={port} user={user} dbname=orders sslmode=disable");
    let mut out = json!({"pid": std::process::id()});
    match tokio_postgres::connect(&conf, NoTls).await {
        Ok((client, conn)) => {
            out["connect"] = json!("ok");
            Ok((out, client, tokio::spawn(conn)))
        }
        Err(e) => {
            out["connect"] = error(&e);
            Err(out)
        }
    }
}

/// Runs the scenario described by `spec` (`port`, `user`, `card`).
pub async fn scenario(spec: &Value) -> Value {
    let card = spec["card"].as_str().expect("spec.card").to_owned();
    let (mut out, client, conn) = match connect(spec).await {
        Ok(c) => c,
        Err(out) => return out,
    };

    // Simple protocol: text results, masked by tollgate.
    out["simple"] = match client
        .simple_query("select id, card_number, email from customers where id <= 3 order by id")
        .await
    {
        Ok(msgs) => Value::Array(
            msgs.iter()
                .filter_map(|m| match m {
                    SimpleQueryMessage::Row(row) => {
                        Some(json!([row.get(0), row.get(1), row.get(2)]))
                    }
                    _ => None,
                })
                .collect(),
        ),
        Err(e) => error(&e),
    };

    // Extended protocol with a parameter; results in binary (tokio-postgres always asks for
    // binary), no masked column among them.
    out["extended"] = match client
        .query("select id, balance from accounts where id = $1", &[&7i32])
        .await
    {
        Ok(rows) => Value::Array(
            rows.iter()
                .map(|r| json!([r.get::<_, i32>(0), r.get::<_, i64>(1)]))
                .collect(),
        ),
        Err(e) => error(&e),
    };

    // A named prepared statement, executed several times.
    out["prepared"] = match client
        .prepare("select balance from accounts where id = $1")
        .await
    {
        Ok(stmt) => {
            let mut got = Vec::new();
            for id in 1..=5i32 {
                got.push(match client.query_one(&stmt, &[&id]).await {
                    Ok(row) => json!(row.get::<_, i64>(0)),
                    Err(e) => error(&e),
                });
            }
            Value::Array(got)
        }
        Err(e) => error(&e),
    };

    // A masked column in binary format: refused.
    out["binary_masked"] = match client
        .query("select card_number from customers where id = $1", &[&1i32])
        .await
    {
        Ok(rows) => json!({
            "rows": rows.iter().map(|r| r.get::<_, String>(0)).collect::<Vec<_>>()
        }),
        Err(e) => error(&e),
    };

    // A column the e-mail detector masks in text, asked for in binary.
    out["binary_email"] = match client
        .query("select email from customers where id = $1", &[&1i32])
        .await
    {
        Ok(rows) => json!({
            "rows": rows.iter().map(|r| r.get::<_, String>(0)).collect::<Vec<_>>()
        }),
        Err(e) => error(&e),
    };

    // The session goes on after the refusal.
    out["after"] = match client
        .query_one("select count(*) from customers", &[])
        .await
    {
        Ok(row) => json!(row.get::<_, i64>(0)),
        Err(e) => error(&e),
    };

    // A card number as a bind parameter (must never reach the audit).
    out["bind"] = match client
        .query("select id from customers where card_number = $1", &[&card])
        .await
    {
        Ok(rows) => Value::Array(rows.iter().map(|r| json!(r.get::<_, i32>(0))).collect()),
        Err(e) => error(&e),
    };

    // DDL through the extended protocol (Parse): denied, nothing dropped.
    out["ddl_extended"] = match client.execute("DROP TABLE accounts", &[]).await {
        Ok(n) => json!({"done": n}),
        Err(e) => error(&e),
    };

    // A transaction of extended-protocol statements with a denied one inside: the commit
    // cannot keep the insert.
    out["txn"] = match client.batch_execute("BEGIN").await {
        Ok(()) => {
            let insert = client
                .execute(
                    "insert into accounts (id, owner, balance) values ($1, $2, $3)",
                    &[&5001i32, &"txn", &1i64],
                )
                .await;
            let drop = client.execute("DROP TABLE accounts", &[]).await;
            let commit = client.simple_query("COMMIT").await;
            json!({
                "insert": insert.map_or_else(|e| error(&e), |n| json!(n)),
                "drop": drop.map_or_else(|e| error(&e), |n| json!(n)),
                "commit": commit.map_or_else(
                    |e| error(&e),
                    |msgs| json!(msgs.iter().filter(|m| matches!(m, SimpleQueryMessage::CommandComplete(_))).count())
                ),
            })
        }
        Err(e) => error(&e),
    };

    // Pipelined (tokio-postgres writes the requests of futures polled together without waiting
    // for the answers): an allowed execution of a prepared statement, a denied DROP (its
    // Parse), and another allowed execution, all on the wire before the first answer. The
    // denial must answer only its own request, in order.
    out["pipeline"] = match client
        .prepare("select balance from accounts where id = $1")
        .await
    {
        Ok(stmt) => {
            let (first, drop, last) = tokio::join!(
                client.query_one(&stmt, &[&1i32]),
                client.execute("DROP TABLE accounts", &[]),
                client.query_one(&stmt, &[&2i32]),
            );
            let value = |r: Result<tokio_postgres::Row, tokio_postgres::Error>| {
                r.map_or_else(|e| error(&e), |row| json!(row.get::<_, i64>(0)))
            };
            json!([
                value(first),
                drop.map_or_else(|e| error(&e), |n| json!({"done": n})),
                value(last)
            ])
        }
        Err(e) => error(&e),
    };

    // Text results in the simple protocol still work after any refusal.
    out["simple_after"] = match client.simple_query("select count(*) from customers").await {
        Ok(msgs) => Value::Array(
            msgs.iter()
                .filter_map(|m| match m {
                    SimpleQueryMessage::Row(row) => Some(json!(row.get(0))),
                    _ => None,
                })
                .collect(),
        ),
        Err(e) => error(&e),
    };

    drop(client);
    let _ = conn.await;
    out
}

/// The rows of a simple-protocol result, each as an array of its text values.
fn simple_rows(msgs: &[SimpleQueryMessage]) -> Value {
    Value::Array(
        msgs.iter()
            .filter_map(|m| match m {
                SimpleQueryMessage::Row(row) => Some(Value::Array(
                    (0..row.len()).map(|i| json!(row.get(i))).collect(),
                )),
                _ => None,
            })
            .collect(),
    )
}

/// A COPY FROM STDIN the policy allows and the server fails at its Execute, before any copy
/// starts: the table has no such column.
pub const COPY_NO_SUCH_COLUMN: &str = "copy accounts (id, no_such_column) from stdin";

/// Runs the COPY scenario of `spec` (`port`, `user`): a prepared COPY FROM STDIN executed
/// through the extended protocol (tokio-postgres sends a Sync right after the Execute, which
/// the server ignores while it copies, and one more after CopyDone), then simple and extended
/// statements whose rows tollgate must mask by their own columns; the COPY again, failed by the
/// client (the sink dropped: CopyFail and Sync), then one more statement; last, a COPY that
/// never starts (the server fails its Execute).
pub async fn copy_scenario(spec: &Value) -> Value {
    use futures_util::SinkExt as _;

    let (mut out, client, conn) = match connect(spec).await {
        Ok(c) => c,
        Err(out) => return out,
    };
    // Prepared once and kept: a statement dropped at once is closed (Close, Sync), and the
    // blind match of CloseComplete would hide a ReadyForQuery owed too many.
    let copy = match client
        .prepare("copy accounts (id, owner, balance) from stdin")
        .await
    {
        Ok(stmt) => stmt,
        Err(e) => {
            out["prepare"] = error(&e);
            return out;
        }
    };

    out["copy"] = match client.copy_in(&copy).await {
        Ok(sink) => {
            let mut sink = std::pin::pin!(sink);
            let rows = bytes::Bytes::from_static(b"3001\tcopy one\t31\n3002\tcopy two\t32\n");
            match sink.send(rows).await {
                Ok(()) => sink
                    .as_mut()
                    .finish()
                    .await
                    .map_or_else(|e| error(&e), |n| json!(n)),
                Err(e) => error(&e),
            }
        }
        Err(e) => error(&e),
    };
    out["simple"] = match client
        .simple_query("select id, card_number from customers where id <= 2 order by id")
        .await
    {
        Ok(msgs) => simple_rows(&msgs),
        Err(e) => error(&e),
    };
    out["extended"] = match client
        .query(
            "select owner, balance from accounts where id = $1",
            &[&3001i32],
        )
        .await
    {
        Ok(rows) => Value::Array(
            rows.iter()
                .map(|r| json!([r.get::<_, String>(0), r.get::<_, i64>(1)]))
                .collect(),
        ),
        Err(e) => error(&e),
    };
    out["extended_masked"] = match client
        .query("select card_number from customers where id = $1", &[&2i32])
        .await
    {
        Ok(rows) => Value::Array(rows.iter().map(|r| json!(r.get::<_, String>(0))).collect()),
        Err(e) => error(&e),
    };
    out["count"] = match client.simple_query("select count(*) from accounts").await {
        Ok(msgs) => simple_rows(&msgs),
        Err(e) => error(&e),
    };
    // Dropped unfinished, the sink sends CopyFail: the server fails the copy.
    out["copy_fail"] = match client.copy_in(&copy).await {
        Ok(sink) => {
            let mut sink = std::pin::pin!(sink);
            let row = bytes::Bytes::from_static(b"3003\tnever\t1\n");
            sink.send(row)
                .await
                .map_or_else(|e| error(&e), |()| json!("sent"))
        }
        Err(e) => error(&e),
    };
    out["after"] = match client
        .simple_query("select id, owner from accounts where id > 3000 order by id")
        .await
    {
        Ok(msgs) => simple_rows(&msgs),
        Err(e) => error(&e),
    };
    // Last: a COPY the server fails at its Execute (no such column), so no copy starts and the
    // Sync sent after the Execute must be answered (were it held back, the connection would
    // never finish below). tokio-postgres then sends CopyFail and a Sync of its own, whose
    // ReadyForQuery it takes as the answer to its next request, PostgreSQL alone too: nothing
    // can follow on this connection.
    out["copy_missing"] = match client.copy_in::<_, bytes::Bytes>(COPY_NO_SUCH_COLUMN).await {
        Ok(_sink) => json!("started"),
        Err(e) => error(&e),
    };

    drop(client);
    let _ = conn.await;
    out
}
