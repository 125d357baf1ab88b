//! Idle upstream HTTP/1.1 connections kept for the next client connection of the same workload
//! to the same target and address, as HAProxy (`http-reuse`) and nginx (`keepalive`) keep theirs:
//! a client that opens a connection per request (`Connection: close`, many CLIs and scripts) then
//! costs no upstream TCP (or TLS) handshake per request.
//!
//! A connection is only ever reused within one [`PoolKey`]: the same workload (never shared
//! between workloads), target, destination address, name verified by TLS (`None` for plain HTTP),
//! and policy generation (a reload may change the target's CA, client certificate or TLS mode, so
//! connections made under an older policy are not reused). Credentials are injected per request,
//! never bound to a connection. A connection is returned only when it is idle and open (its last
//! response fully read; not upgraded), and it is kept at most [`IDLE`], shorter than the common
//! server keep-alive timeouts (Apache 5 s, Node 5 s, nginx 75 s), so that a server rarely closes one
//! just as it is reused.
use std::{
    collections::HashMap,
    net::SocketAddr,
    sync::Mutex,
    time::{Duration, Instant},
};

use hyper::client::conn::http1;
use tokio::task::JoinHandle;

use super::body::ProxyBody;
use crate::sync::lock;

/// Longest an upstream connection is kept idle.
pub const IDLE: Duration = Duration::from_secs(4);
/// Most idle connections kept per key (the oldest is closed to make room).
pub const MAX_PER_KEY: usize = 64;
/// Most idle connections kept in all (the oldest of all is closed to make room): a client picks
/// part of the key (the SNI or Host a target's TLS name comes from, an address of the target).
pub const MAX_TOTAL: usize = 512;

/// Which connections may serve a session.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PoolKey {
    /// Workload name.
    pub workload: String,
    /// Target name.
    pub target: String,
    /// Destination address.
    pub dst: SocketAddr,
    /// The server name verified by upstream TLS; `None` for plain HTTP.
    pub tls_name: Option<String>,
    /// Policy generation the connection was made under.
    pub generation: u64,
}

/// An HTTP/1.1 connection's sender and the task driving it.
pub type Conn = (http1::SendRequest<ProxyBody>, JoinHandle<()>);

/// An idle connection. Dropping it aborts its driver, which closes the connection.
pub struct Idle {
    conn: Option<Conn>,
    since: Instant,
}

impl Idle {
    /// An entry idle from now.
    pub fn new(conn: Conn) -> Self {
        Self {
            conn: Some(conn),
            since: Instant::now(),
        }
    }

    /// The connection, to be used again.
    pub fn into_conn(mut self) -> Option<Conn> {
        self.conn.take()
    }

    fn usable(&self, now: Instant) -> bool {
        self.conn.as_ref().is_some_and(|(sender, driver)| {
            now.duration_since(self.since) < IDLE && sender.is_ready() && !driver.is_finished()
        })
    }
}

impl Drop for Idle {
    fn drop(&mut self) {
        if let Some((_, driver)) = self.conn.take() {
            driver.abort();
        }
    }
}

/// The pool (one per agent).
pub struct Pool {
    idle: Mutex<HashMap<PoolKey, Vec<Idle>>>,
    max_per_key: usize,
    max_total: usize,
}

impl Default for Pool {
    /// A pool with the limits [`MAX_PER_KEY`] and [`MAX_TOTAL`].
    fn default() -> Self {
        Self::with_limits(MAX_PER_KEY, MAX_TOTAL)
    }
}

impl Pool {
    /// A pool that keeps at most `max_per_key` idle connections per key and `max_total` in all
    /// (each at least 1).
    pub fn with_limits(max_per_key: usize, max_total: usize) -> Self {
        Self {
            idle: Mutex::new(HashMap::new()),
            max_per_key: max_per_key.max(1),
            max_total: max_total.max(1),
        }
    }

    /// The most recently returned usable connection for `key`, if any (stale ones are dropped).
    pub fn take(&self, key: &PoolKey) -> Option<Idle> {
        let now = Instant::now();
        let mut idle = lock(&self.idle);
        let list = idle.get_mut(key)?;
        let mut found = None;
        while let Some(entry) = list.pop() {
            if entry.usable(now) {
                found = Some(entry);
                break;
            }
        }
        if list.is_empty() {
            idle.remove(key);
        }
        found
    }

    /// Keeps `entry` for `key` if it is usable; drops the entries of older policy generations
    /// and those past their time, and the oldest entry when a limit is reached.
    pub fn put(&self, key: PoolKey, entry: Idle) {
        let now = Instant::now();
        if !entry.usable(now) {
            return;
        }
        let mut idle = lock(&self.idle);
        idle.retain(|k, list| {
            list.retain(|e| e.usable(now));
            k.generation >= key.generation && !list.is_empty()
        });
        if idle.values().map(Vec::len).sum::<usize>() >= self.max_total {
            // Each list is oldest first: the oldest of all is the oldest first entry.
            let oldest = idle
                .iter()
                .filter_map(|(k, list)| list.first().map(|e| (e.since, k.clone())))
                .min_by_key(|(since, _)| *since)
                .map(|(_, k)| k);
            if let Some(k) = oldest
                && let Some(list) = idle.get_mut(&k)
            {
                list.remove(0);
                if list.is_empty() {
                    idle.remove(&k);
                }
            }
        }
        let list = idle.entry(key).or_default();
        if list.len() >= self.max_per_key {
            list.remove(0);
        }
        list.push(entry);
    }

    /// Closes the connections past their time (or closed by the server).
    pub fn sweep(&self) {
        let now = Instant::now();
        lock(&self.idle).retain(|_, list| {
            list.retain(|e| e.usable(now));
            !list.is_empty()
        });
    }

    /// Idle connections kept.
    pub fn len(&self) -> usize {
        lock(&self.idle).values().map(Vec::len).sum()
    }

    /// Whether no idle connection is kept.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
