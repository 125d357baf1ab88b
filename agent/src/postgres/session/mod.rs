//! One PostgreSQL session through tollgate: client startup, login checks, upstream login with
//! injected credentials, then two pumps (client → server with statement policy, server →
//! client with masking) sharing the expected-response state.
mod backend;
pub mod cancel;
mod catalog;
mod check;
mod deny;
mod diagnostics;
mod frontend;
mod lineage;
mod startup;
mod state;
mod stream;
mod undo;
mod upstream;

use std::{
    net::SocketAddr,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use bytes::BytesMut;
use tokio::{io::AsyncWriteExt, net::TcpStream};
use tracing::{info, warn};

use crate::{
    masking::Masker,
    policy::{PostgresTarget, Verdict},
    postgres::protocol::{
        Authentication, BackendKeyData, CancelRequest, ReadyForQuery, StartupMessage,
    },
    proxy::{
        Context,
        copy::{CopyEnd, Transfer},
    },
};

pub use check::SessionMeta;
use startup::ClientStart;
use stream::{BoxStream, ReadError, send};

/// What the hand-off knows when it passes a connection to the session.
#[derive(Debug, Clone)]
pub struct SessionInit {
    /// Audit id of the connection.
    pub connection_id: uuid::Uuid,
    /// The connection has its row in the audit store: `false` when it was let through
    /// unrecorded (`audit_failure = "open"`), and then none of its statements is recorded.
    pub recorded: bool,
    /// Workload name.
    pub workload: String,
    /// Target name.
    pub target: String,
    /// Original destination.
    pub dst: SocketAddr,
}

/// Serves one client connection to a postgres target until it ends.
pub async fn serve(
    ctx: &Context,
    init: SessionInit,
    client: TcpStream,
    upstream: TcpStream,
) -> Transfer {
    let up = AtomicU64::new(0);
    let down = AtomicU64::new(0);
    let end = match run(ctx, &init, client, upstream, &up, &down).await {
        Ok(end) => end,
        Err(reason) => {
            warn!(workload = %init.workload, target = %init.target, %reason, "postgres session ended");
            CopyEnd::Error(std::io::Error::other(reason))
        }
    };
    Transfer {
        up: up.load(Ordering::Relaxed),
        down: down.load(Ordering::Relaxed),
        end,
    }
}

async fn run(
    ctx: &Context,
    init: &SessionInit,
    client: TcpStream,
    upstream: TcpStream,
    up: &AtomicU64,
    down: &AtomicU64,
) -> Result<CopyEnd, String> {
    let state = ctx.policy.load_full();
    let pg: PostgresTarget = state
        .policy
        .target(&init.target)
        .and_then(|t| t.postgres.clone())
        .ok_or("target has no postgres settings")?;
    let masker: Arc<Masker> = pg.masker.clone().unwrap_or_default();
    let server_tls = if pg.client_tls {
        let opts = crate::tls::ServerOptions {
            fallback_name: Some(init.dst.ip().to_string()),
            alpn: vec![crate::tls::ALPN_POSTGRESQL.to_vec()],
        };
        Some(
            crate::tls::server_config(ctx.ca.clone(), opts)
                .map_err(|e| format!("client TLS: {e}"))?,
        )
    } else {
        None
    };
    // Small request/response messages: `TCP_NODELAY` is on the client, inherited from the
    // listener (`proxy::bind`); the upstream side sets it too.
    let start = startup::accept(client, server_tls)
        .await
        .map_err(|e| format!("client startup: {e}"))?;
    let (mut client, client_buf, startup, client_tls) = match start {
        ClientStart::Cancel(req) => return cancel_forward(ctx, req, upstream, &pg, init).await,
        ClientStart::Session {
            stream,
            buf,
            startup,
            tls,
        } => (stream, buf, startup, tls),
    };

    // Who may log in as whom: the client's password is never used; its workload decides.
    let role = startup.user().unwrap_or_default().to_owned();
    if role.is_empty() {
        return refuse(&mut client, "28000", "tollgate: empty user name").await;
    }
    let database = startup.database().unwrap_or(&role).to_owned();
    let Some(cred) = pg.credentials.iter().find(|c| c.role == role) else {
        let msg = format!(
            "tollgate: no credential for role \"{role}\" on target \"{}\"",
            init.target
        );
        return refuse(&mut client, "28000", &msg).await;
    };
    let Some(workload) = state.policy.workload(&init.workload) else {
        return refuse(
            &mut client,
            "28000",
            "tollgate: workload no longer in policy",
        )
        .await;
    };
    let login = state
        .policy
        .evaluate_login(workload, &init.target, &role, &database);
    if !login.permits() || login.verdict == Verdict::Approve {
        let msg = format!(
            "tollgate: role \"{role}\" on database \"{database}\" denied by rule \"{}\"",
            login.rule
        );
        return refuse(&mut client, "28000", &msg).await;
    }

    if let Some(name) = forbidden_parameter(&startup) {
        let msg = format!(
            "tollgate: startup parameter \"{name}\" is not allowed (set it with SQL, where the \
             policy decides)"
        );
        return refuse(&mut client, "42501", &msg).await;
    }
    let upstream_startup = upstream_startup(&startup, &role, &database);
    let host = pg
        .server_name
        .clone()
        .unwrap_or_else(|| init.dst.ip().to_string());
    let server = match upstream::connect_tls(upstream, &pg, &host).await {
        Ok(s) => s,
        Err(e) => return refuse(&mut client, "08006", &format!("tollgate: upstream {e}")).await,
    };
    let ready = match upstream::login(server, &upstream_startup, &role, &cred.secret).await {
        Ok(u) => u,
        Err(e) => {
            // The server's own message for a missing role or database is safe to show; our
            // credential never appears in it.
            return refuse(&mut client, "08006", &format!("tollgate: upstream {e}")).await;
        }
    };
    info!(
        workload = %init.workload, target = %init.target, %role, %database, client_tls,
        "postgres session open"
    );
    let mut ready = ready;
    let rules = pg
        .masking
        .as_ref()
        .map(|m| m.columns.as_slice())
        .unwrap_or_default();
    let catalog = if rules.is_empty() {
        catalog::Catalog::default()
    } else {
        match catalog::load(&mut ready.stream, &mut ready.buf, rules).await {
            Ok(c) => c,
            Err(e) => {
                // Without it, an alias would hide a masked column: no session (fail closed).
                warn!(target = %init.target, error = %e, "cannot read the catalog for column masking");
                let msg = "tollgate: cannot read the catalog that column masking needs";
                return refuse(&mut client, "58000", msg).await;
            }
        }
    };

    // The client never authenticates to tollgate: its identity is its workload.
    let mut hello = BytesMut::new();
    Authentication::Ok.encode(&mut hello);
    for raw in &ready.replay {
        hello.extend_from_slice(raw);
    }
    let issued = ready.key.as_ref().map(|k| {
        ctx.pg_cancel.issue(cancel::CancelTarget {
            upstream: init.dst,
            pid: k.pid,
            secret_key: k.secret_key.clone(),
            target: init.target.clone(),
        })
    });
    if let Some((pid, secret_key)) = &issued {
        BackendKeyData {
            pid: *pid,
            secret_key: secret_key.clone(),
        }
        .encode(&mut hello);
    }
    ReadyForQuery {
        status: ready.status,
    }
    .encode(&mut hello);
    send(&mut client, &hello).await.map_err(|e| e.to_string())?;
    down.fetch_add(hello.len() as u64, Ordering::Relaxed);

    let meta = SessionMeta {
        connection_id: init.connection_id,
        recorded: init.recorded,
        workload: init.workload.clone(),
        target: init.target.clone(),
        database,
        role,
        redact_literals: pg.redact_literals,
        column_masking: masker.has_column_rules(),
        binary_allowed: pg.binary_results == crate::policy::BinaryResults::Allow,
        catalog: std::sync::Arc::new(catalog),
        names_unconverted: names_unconverted(ready.server_encoding.as_deref()),
        max_statement_bytes: pg.max_statement_bytes,
    };
    let shared = state::Shared::default();
    let (client_r, client_w) = tokio::io::split(client);
    let (server_r, mut server_w) = tokio::io::split(ready.stream);
    let front = frontend::pump(
        ctx,
        &meta,
        &masker,
        &shared,
        client_r,
        client_buf,
        &mut server_w,
        up,
    );
    let back = backend::pump(
        ctx, &meta, &masker, &shared, server_r, ready.buf, client_w, down,
    );
    tokio::pin!(front);
    tokio::pin!(back);
    let end = tokio::select! {
        r = &mut front => match r {
            // The client is done: let the server finish answering, briefly.
            Ok(_) => {
                let _ = tokio::time::timeout(Duration::from_secs(5), &mut back).await;
                CopyEnd::Closed
            }
            Err(e) => end_of(e, "client"),
        },
        r = &mut back => match r {
            Ok(()) => CopyEnd::Closed,
            Err(e) => end_of(e, "server"),
        },
        _ = ctx.stopped() => CopyEnd::Shutdown,
    };
    backend::session_ended(&ctx.audit, &meta, &shared);
    if let Some((pid, key)) = issued {
        ctx.pg_cancel.remove(pid, &key);
    }
    Ok(end)
}

fn end_of(e: ReadError, side: &str) -> CopyEnd {
    match e {
        ReadError::Closed => CopyEnd::Closed,
        ReadError::Io(e) => CopyEnd::Error(e),
        other => CopyEnd::Error(std::io::Error::other(format!("{side}: {other}"))),
    }
}

/// A startup parameter the client may not set: PostgreSQL applies each as a setting before the
/// first statement, past the policy. `role` and `session_authorization` change who the session
/// is (`SET ROLE` is class `dcl`); `standard_conforming_strings` off changes how the server
/// reads SQL (see `sql::reading`). Names are matched as PostgreSQL does, without case.
fn forbidden_parameter(client: &StartupMessage) -> Option<&str> {
    client.params.iter().find_map(|(k, v)| {
        let forbidden = match k.to_ascii_lowercase().as_str() {
            "role" | "session_authorization" => true,
            "standard_conforming_strings" => !crate::postgres::sql::reported_value_is_safe(k, v),
            _ => false,
        };
        forbidden.then_some(k.as_str())
    })
}

/// The startup packet tollgate sends upstream: the client's, minus what could change who the
/// session is or how tollgate reads it.
fn upstream_startup(client: &StartupMessage, role: &str, database: &str) -> StartupMessage {
    let mut s = StartupMessage::new(role);
    s.set("database", database);
    for (k, v) in &client.params {
        match k.as_str() {
            // Identity and routing are tollgate's; `options` can set session_authorization or
            // role; replication connections are not proxied; encoding must stay UTF-8.
            "user" | "database" | "options" | "replication" | "client_encoding" => {}
            _ => s.set(k, v),
        }
    }
    s.set("client_encoding", "UTF8");
    s
}

/// Sends a FATAL error to the client and ends the session.
async fn refuse(client: &mut BoxStream, sqlstate: &str, message: &str) -> Result<CopyEnd, String> {
    let mut out = BytesMut::new();
    deny::fatal(sqlstate, message, &mut out);
    let _ = send(client, &out).await;
    let _ = client.shutdown().await;
    Err(message.to_owned())
}

/// Forwards a CancelRequest carrying a tollgate-issued key to the real backend.
async fn cancel_forward(
    ctx: &Context,
    req: CancelRequest,
    upstream: TcpStream,
    pg: &PostgresTarget,
    init: &SessionInit,
) -> Result<CopyEnd, String> {
    let Some(target) = ctx.pg_cancel.lookup(req.pid, &req.secret_key) else {
        return Err("cancel request with an unknown key".into());
    };
    if target.upstream != init.dst || target.target != init.target {
        return Err("cancel request for another target".into());
    }
    let host = pg
        .server_name
        .clone()
        .unwrap_or_else(|| init.dst.ip().to_string());
    let mut s = upstream::connect_tls(upstream, pg, &host)
        .await
        .map_err(|e| e.to_string())?;
    let mut out = BytesMut::new();
    CancelRequest {
        pid: target.pid,
        secret_key: target.secret_key.clone(),
    }
    .encode(&mut out);
    send(&mut s, &out).await.map_err(|e| e.to_string())?;
    let _ = s.shutdown().await;
    info!(target = %init.target, "query cancel forwarded");
    Ok(CopyEnd::Closed)
}

/// Whether a server whose `server_encoding` is `encoding` keeps names as the client sends them:
/// tollgate sends `client_encoding=UTF8`, and a UTF8 server converts nothing, nor does a
/// SQL_ASCII one (it takes the bytes as they come). Any other encoding converts them, and the
/// bytes it keeps (and so which names it takes for one) are not the ones tollgate saw.
fn names_unconverted(encoding: Option<&str>) -> bool {
    encoding.is_some_and(|e| {
        crate::postgres::sql::is_utf8(e)
            || e.replace(['_', '-'], "").eq_ignore_ascii_case("SQLASCII")
    })
}

#[cfg(test)]
mod tests {
    use super::{StartupMessage, forbidden_parameter, names_unconverted};

    #[test]
    fn startup_parameters_that_change_who_or_how_are_refused() {
        let with = |k: &str, v: &str| {
            let mut s = StartupMessage::new("etl");
            s.set("database", "orders");
            s.set("application_name", "x");
            s.set(k, v);
            forbidden_parameter(&s).map(str::to_owned)
        };
        for (k, v) in [
            ("role", "admin"),
            ("ROLE", "admin"),
            ("session_authorization", "postgres"),
            ("standard_conforming_strings", "off"),
        ] {
            assert_eq!(with(k, v).as_deref(), Some(k), "{k}={v}");
        }
        for (k, v) in [
            ("standard_conforming_strings", "on"),
            ("DateStyle", "ISO"),
            ("search_path", "public"),
        ] {
            assert_eq!(with(k, v), None, "{k}={v}");
        }
    }

    #[test]
    fn only_utf8_and_sql_ascii_servers_keep_names_as_sent() {
        for e in ["UTF8", "utf8", "UTF-8", "SQL_ASCII"] {
            assert!(names_unconverted(Some(e)), "{e}");
        }
        for e in ["LATIN1", "EUC_JP", "EUC_TW", "MULE_INTERNAL", "WIN1252", ""] {
            assert!(!names_unconverted(Some(e)), "{e}");
        }
        assert!(
            !names_unconverted(None),
            "not reported: taken as converting"
        );
    }
}
