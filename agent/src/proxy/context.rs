//! What every proxied connection needs, shared by the accept loops.
use std::{
    net::SocketAddr,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, SystemTime},
};

use arc_swap::ArcSwap;
use tokio::sync::{Semaphore, watch};

use crate::{
    config::AuditFailure,
    ebpf::Programs,
    enroll::Enrollment,
    identity::Resolver,
    policy::{DnsTable, Policy},
    proxy::approval::ApprovalGate,
    store::AuditSink,
};

/// A loaded policy and when it became live.
#[derive(Debug)]
pub struct PolicyState {
    /// The policy.
    pub policy: Policy,
    /// Increments on every successful load.
    pub generation: u64,
    /// When it was loaded.
    pub loaded_at: SystemTime,
}

/// Proxy settings taken from the config.
#[derive(Debug, Clone)]
pub struct ProxySettings {
    /// Addresses the proxy listens on (connections to them are self-calls).
    pub listen: Vec<SocketAddr>,
    /// Upstream connect timeout.
    pub connect_timeout: Duration,
    /// Idle timeout.
    pub idle_timeout: Duration,
    /// What to do when the audit store cannot record.
    pub audit_failure: AuditFailure,
}

/// Connection counters (monotonic).
#[derive(Debug, Default)]
pub struct Stats {
    /// Accepted connections.
    pub accepted: AtomicU64,
    /// Connections currently proxied.
    pub active: AtomicU64,
    /// Allowed and proxied (policy applied).
    pub allowed: AtomicU64,
    /// Denied by policy (or refused fail-closed).
    pub denied: AtomicU64,
    /// Passed through without policy (no workload).
    pub passthrough: AtomicU64,
    /// Accepted without redirect metadata (direct connections to the proxy port).
    pub no_metadata: AtomicU64,
    /// Refused because the audit store could not record.
    pub audit_refused: AtomicU64,
    /// Refused at the connection limit.
    pub over_limit: AtomicU64,
    /// Upstream connect failures.
    pub upstream_failed: AtomicU64,
}

impl Stats {
    /// Adds one to a counter.
    pub fn inc(c: &AtomicU64) {
        c.fetch_add(1, Ordering::Relaxed);
    }
}

/// Shared state of the proxy.
pub struct Context {
    /// Settings.
    pub settings: ProxySettings,
    /// eBPF maps.
    pub programs: Arc<Programs>,
    /// Identity resolution.
    pub resolver: Resolver,
    /// Enrollment (run bindings).
    pub enrollment: Enrollment,
    /// Live policy.
    pub policy: ArcSwap<PolicyState>,
    /// Resolved DNS names of targets.
    pub dns: ArcSwap<DnsTable>,
    /// Audit writer.
    pub audit: AuditSink,
    /// Approvals.
    pub approvals: Arc<dyn ApprovalGate>,
    /// Counters.
    pub stats: Stats,
    /// Limit of concurrent connections.
    pub limit: Arc<Semaphore>,
    /// Flips to true when open connections must end (drain time over).
    pub stop: watch::Receiver<bool>,
    /// tollgate's local CA, for client-side TLS termination.
    pub ca: Arc<crate::tls::LocalCa>,
    /// Cancellation keys issued to PostgreSQL clients.
    pub pg_cancel: crate::postgres::session::cancel::CancelRegistry,
    /// Idle upstream HTTP/1.1 connections, per workload, target and address.
    pub http_pool: Arc<crate::http::Pool>,
}

impl Context {
    /// Resolves when connections must stop.
    pub async fn stopped(&self) {
        let mut rx = self.stop.clone();
        let _ = rx.wait_for(|s| *s).await;
    }
}
