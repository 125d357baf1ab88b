//! Loads and attaches the eBPF programs.
/// The compiled eBPF object.
pub static OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/agent-ebpf"));
