//! Cancellation keys. The client gets a key issued by tollgate; a CancelRequest carrying it
//! (a new connection, redirected like any other) is forwarded to the real backend with the real
//! key. The real key never reaches the task.
use crate::sync::lock;
use std::{collections::HashMap, net::SocketAddr, sync::Mutex};

use bytes::Bytes;

/// Where and how to cancel a running session.
#[derive(Clone)]
pub struct CancelTarget {
    /// Upstream address of the session.
    pub upstream: SocketAddr,
    /// Real backend pid.
    pub pid: i32,
    /// Real secret key.
    pub secret_key: Bytes,
    /// Target name (policy), for the audit of the cancel connection.
    pub target: String,
}

impl std::fmt::Debug for CancelTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CancelTarget")
            .field("upstream", &self.upstream)
            .field("pid", &self.pid)
            .field("secret_key", &"<redacted>")
            .finish()
    }
}

/// Proxy-issued keys of live sessions.
#[derive(Default)]
pub struct CancelRegistry {
    keys: Mutex<HashMap<(i32, Bytes), CancelTarget>>,
}

impl CancelRegistry {
    /// Issues a proxy key for `target`; returns (pid, secret key) to give the client.
    pub fn issue(&self, target: CancelTarget) -> (i32, Bytes) {
        let mut keys = lock(&self.keys);
        loop {
            let pid: i32 = rand::random::<i32>().wrapping_abs().max(1);
            let secret = Bytes::copy_from_slice(&rand::random::<[u8; 4]>());
            let key = (pid, secret.clone());
            if let std::collections::hash_map::Entry::Vacant(v) = keys.entry(key) {
                v.insert(target);
                return (pid, secret);
            }
        }
    }

    /// The session a client key cancels.
    pub fn lookup(&self, pid: i32, secret: &Bytes) -> Option<CancelTarget> {
        lock(&self.keys).get(&(pid, secret.clone())).cloned()
    }

    /// Forgets a key when its session ends.
    pub fn remove(&self, pid: i32, secret: &Bytes) {
        lock(&self.keys).remove(&(pid, secret.clone()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn issued_keys_map_to_the_real_backend_and_are_forgotten() {
        let r = CancelRegistry::default();
        let t = CancelTarget {
            upstream: "127.0.0.1:5432".parse().unwrap(),
            pid: 4242,
            secret_key: Bytes::from_static(b"real"),
            target: "db".into(),
        };
        let (pid, key) = r.issue(t);
        assert_ne!((pid, key.clone()), (4242, Bytes::from_static(b"real")));
        assert_eq!(r.lookup(pid, &key).map(|t| t.pid), Some(4242));
        assert!(r.lookup(pid, &Bytes::from_static(b"xxxx")).is_none());
        r.remove(pid, &key);
        assert!(r.lookup(pid, &key).is_none());
        assert!(!format!("{:?}", t_debug()).contains("real"));
    }

    fn t_debug() -> CancelTarget {
        CancelTarget {
            upstream: "127.0.0.1:1".parse().unwrap(),
            pid: 1,
            secret_key: Bytes::from_static(b"real"),
            target: "db".into(),
        }
    }
}
