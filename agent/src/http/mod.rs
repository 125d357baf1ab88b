//! The `http` protocol handler: HTTP/1.1 and HTTP/2 requests decided one by one.
//!
//! [`serve`] takes a connection the hand-off allowed to an http target: TLS per the target
//! ([`tls`]: none, originate, terminate with SNI passthrough, passthrough), then a hyper server
//! on the client side ([`conn`]) whose every request ([`exchange`]) is decided by the live policy
//! ([`gate`]), denied with a 403 JSON body ([`deny`]) or forwarded with the target's credential
//! ([`request`]) over one upstream connection ([`upstream`]); responses are streamed, or masked
//! when the target masks ([`response`], [`json`], [`decode`]); each request is audited
//! ([`audit`]). Credentials and unmasked values are never logged nor recorded.
//!
//! Decisions use the live policy (a reload applies to the next request); the target's settings
//! (TLS, credential, limits, masking) are those of the policy when the connection began.
mod audit;
mod body;
mod conn;
mod decode;
mod deny;
mod echo;
mod exchange;
mod form_body;
mod gate;
mod idle;
mod io;
mod json;
mod pool;
mod request;
mod response;
mod sni;
#[cfg(test)]
mod tests;
mod tls;
mod upstream;

use std::{
    net::SocketAddr,
    sync::{Arc, atomic::Ordering},
};

use tokio::net::TcpStream;
use tracing::{info, warn};

pub use self::pool::Pool;
use self::{exchange::Session, gate::LiveGate, pool::PoolKey};
use crate::{
    proxy::{
        Context,
        copy::{CopyEnd, Transfer},
        upstream as proxy_upstream,
    },
    tcp,
};

/// Closes pooled upstream connections past their idle time, until the agent stops (the task is
/// aborted with the other background tasks).
pub async fn sweep_pool(pool: Arc<Pool>) {
    let mut tick = tokio::time::interval(pool::IDLE);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        pool.sweep();
    }
}

/// What the hand-off knows when it passes a connection to the handler.
#[derive(Debug, Clone)]
pub struct HttpInit {
    /// Audit id of the connection.
    pub connection_id: uuid::Uuid,
    /// The connection has its row in the audit store (begun): `false` when it was let through
    /// unrecorded (`audit_failure = "open"`), and then none of its requests is recorded.
    pub recorded: bool,
    /// Workload name.
    pub workload: String,
    /// Target name.
    pub target: String,
    /// Original destination.
    pub dst: SocketAddr,
}

/// Serves one client connection to an http target until it ends. Takes the `Arc` because
/// HTTP/2 streams are served on tasks of their own.
pub async fn serve(ctx: &Arc<Context>, init: HttpInit, client: TcpStream) -> Transfer {
    let state = ctx.policy.load_full();
    let generation = state.generation;
    let Some(target) = state
        .policy
        .target(&init.target)
        .and_then(|t| t.http.clone())
    else {
        warn!(target = %init.target, "target has no http settings");
        return Transfer {
            up: 0,
            down: 0,
            end: CopyEnd::Error(std::io::Error::other("target has no http settings")),
        };
    };
    drop(state);
    let counters = Arc::new(io::Counters::default());
    let side = match tls::accept(ctx.ca.clone(), &target, init.dst, client, counters.clone()).await
    {
        Ok(s) => s,
        Err(e) => {
            warn!(workload = %init.workload, target = %init.target, error = %e, "http session ended");
            return Transfer {
                up: counters.up.load(Ordering::Relaxed),
                down: counters.down.load(Ordering::Relaxed),
                end: CopyEnd::Error(std::io::Error::other(e.to_string())),
            };
        }
    };
    let (io, h2, upstream_tls) = match side {
        tls::ClientSide::Passthrough(mut client) => {
            return match proxy_upstream::connect_counted(ctx, init.dst).await {
                Ok(mut upstream) => tcp::serve(ctx, &mut client, &mut upstream).await,
                Err(e) => {
                    // As the hand-off does for a tcp target: recorded, and a reset.
                    crate::proxy::reset(client);
                    Transfer {
                        up: counters.up.load(Ordering::Relaxed),
                        down: counters.down.load(Ordering::Relaxed),
                        end: CopyEnd::Upstream(e.label()),
                    }
                }
            };
        }
        tls::ClientSide::Http {
            io,
            h2,
            upstream_tls,
        } => (io, h2, upstream_tls),
    };
    let dst = init.dst;
    let connect_ctx = ctx.clone();
    // A failure gives the request a 502 and its record the reason; the connection goes on.
    let connector: upstream::Connector = Box::new(move || {
        let ctx = connect_ctx.clone();
        Box::pin(async move {
            proxy_upstream::connect_counted(&ctx, dst)
                .await
                .map_err(std::io::Error::other)
        })
    });
    let limits = conn::Limits {
        max_request_header: usize::try_from(target.max_request_header).unwrap_or(usize::MAX),
        idle: ctx.settings.idle_timeout,
    };
    let gate = Arc::new(LiveGate {
        ctx: ctx.clone(),
        connection_id: init.connection_id,
        workload: init.workload.clone(),
        target: init.target.clone(),
    });
    let recorder: Arc<dyn audit::Recorder> = if init.recorded {
        Arc::new(ctx.audit.clone())
    } else {
        Arc::new(audit::Unrecorded(ctx.audit.clone()))
    };
    let session = Arc::new(Session::new(
        init.connection_id,
        init.workload.clone(),
        init.dst,
        target,
        gate,
        recorder,
        upstream::Upstream::new(
            None,
            connector,
            upstream_tls,
            Some(upstream::Pooling {
                pool: ctx.http_pool.clone(),
                key: PoolKey {
                    workload: init.workload.clone(),
                    target: init.target.clone(),
                    dst: init.dst,
                    tls_name: None,
                    generation,
                },
            }),
        ),
    ));
    info!(workload = %init.workload, target = %init.target, h2, "http session open");
    let end = conn::serve_client(io, h2, session, limits, ctx.stopped()).await;
    Transfer {
        up: counters.up.load(Ordering::Relaxed),
        down: counters.down.load(Ordering::Relaxed),
        end,
    }
}
