//! Shared helpers of the root integration suites (`tests/*.rs`, see `tests/README.md`): host
//! prerequisites, one agent per test with its own cgroups, pins, state and port, real clients
//! (curl, Python) started inside a cgroup, a peer-echo server, and a second network namespace.
//! Every guard cleans up on drop, also when an assertion fails.
#![allow(dead_code, unused_imports)] // each suite uses a part

pub mod agent;
pub mod audit;
pub mod certs;
pub mod cgroup;
pub mod cleanup;
pub mod client;
pub mod netns;
pub mod policy;
pub mod prereq;
pub mod server;

use std::time::{Duration, Instant};

pub use agent::{Agent, FailMode};
pub use client::{curl, python};
pub use netns::NetNs;
pub use policy::{PolicyText, addr};
pub use prereq::{Need, setup};
pub use server::PeerServer;

/// Calls `f` every 100 ms until it returns `Some` or `timeout` passes.
pub fn poll<T>(timeout: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if Instant::now() > deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}
