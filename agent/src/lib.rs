//! tollgate's userspace agent: eBPF load/attach, transparent proxy, workload identity, policy,
//! audit store, admin socket and CLI. See `ARCHITECTURE.md` at the repository root.
pub mod admin;
pub mod agent;
pub mod cli;
pub mod config;
pub mod ebpf;
pub mod enroll;
pub mod http;
pub mod identity;
pub mod masking;
pub mod offload;
pub mod policy;
pub mod postgres;
pub mod proxy;
pub mod store;
pub mod sync;
pub mod tcp;
pub mod telemetry;
pub mod tls;
