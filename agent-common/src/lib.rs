//! Map keys and values shared by the eBPF programs (`agent-ebpf`) and the agent.
//!
//! Every type is `#[repr(C)]`, padded explicitly, and `Copy`, so that both sides agree on the
//! byte layout. Addresses are always stored as IPv6 words in network byte order; IPv4 addresses
//! are stored v4-mapped (`::ffff:a.b.c.d`) so that one key shape serves both families.
#![no_std]

/// Mark set (`SO_MARK`) on the agent's own upstream sockets; the connect hooks never redirect
/// a socket carrying it.
pub const TOLLGATE_MARK: u32 = 0x746f_6c6c; // "toll"

/// Per-cgroup classification, written by the agent into [`cgroups::CGROUPS`].
pub mod cgroups {
    /// Map name.
    pub const MAP: &str = "CGROUPS";
    /// Capacity (LRU). An evicted cgroup becomes unknown again and is reclassified (fail closed).
    pub const CAPACITY: u32 = 65_536;
    /// Connections go direct, no proxy hop.
    pub const UNENROLLED: u8 = 1;
    /// Connections are redirected to the proxy.
    pub const ENROLLED: u8 = 2;
}

/// Agent settings the programs read, in an array map indexed by the constants below.
pub mod settings {
    /// Map name.
    pub const MAP: &str = "SETTINGS";
    /// Number of slots.
    pub const LEN: u32 = 4;
    /// Proxy port (host byte order); 0 means "no agent configured", connections are refused.
    pub const PROXY_PORT: u32 = 0;
    /// Network namespace cookie of the agent; sockets elsewhere cannot reach its loopback.
    pub const HOST_NETNS: u32 = 1;
    /// 1 while an agent is serving; 0 after it stopped (pinned programs then refuse).
    pub const AGENT_UP: u32 = 2;
    /// The agent's process id: only its own sockets go direct by their mark (any process with
    /// `CAP_NET_RAW` may set a mark, `SO_MARK`).
    pub const AGENT_TGID: u32 = 3;
}

/// What the connect hook learned about a redirected connection.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ConnMeta {
    /// Original destination address, IPv6 words in network byte order (v4 mapped).
    pub dst_ip6: [u32; 4],
    /// Original destination port, host byte order.
    pub dst_port: u16,
    /// `AF_INET` or `AF_INET6` of the original `connect()` call.
    pub family: u16,
    /// Thread group id (the process id) of the connecting task.
    pub tgid: u32,
    /// cgroup v2 id (inode number of the cgroup directory) of the connecting task.
    pub cgroup_id: u64,
    /// Real uid of the connecting task.
    pub uid: u32,
    /// Real gid of the connecting task.
    pub gid: u32,
    /// [`FLAG_UNCLASSIFIED`] and future flags.
    pub flags: u32,
    /// Explicit padding, always zero.
    pub _pad: u32,
}

/// [`ConnMeta::flags`]: the hook did not know the cgroup; the agent must classify it.
pub const FLAG_UNCLASSIFIED: u32 = 1;

/// 4-tuple of a redirected connection as seen from the client socket, the key under which the
/// sockops program publishes [`ConnMeta`] for the proxy to take after `accept()`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct TupleKey {
    /// Client (source) address, IPv6 words in network byte order (v4 mapped).
    pub src_ip6: [u32; 4],
    /// Proxy (destination after rewrite) address, same encoding.
    pub dst_ip6: [u32; 4],
    /// Client source port, host byte order.
    pub src_port: u16,
    /// Proxy port, host byte order.
    pub dst_port: u16,
    /// Explicit padding, always zero.
    pub _pad: u32,
}

/// The LRU map from [`TupleKey`] to [`ConnMeta`].
pub mod conns {
    /// Map name.
    pub const MAP: &str = "CONNS";
    /// Capacity (LRU): connections redirected but not yet accepted.
    pub const CAPACITY: u32 = 65_536;
}

/// Socket-local storage the connect hook fills for the sockops and getpeername hooks.
pub mod sockstore {
    /// Map name.
    pub const MAP: &str = "SOCK_META";
}

/// Counters, a per-CPU array indexed by the constants below.
pub mod counters {
    /// Map name.
    pub const MAP: &str = "COUNTERS";
    /// Number of slots.
    pub const LEN: u32 = 8;
    /// Connections redirected to the proxy.
    pub const REDIRECTED: u32 = 0;
    /// Connections of unknown cgroups redirected for classification.
    pub const UNKNOWN: u32 = 1;
    /// Connections that went direct (unenrolled cgroup).
    pub const DIRECT: u32 = 2;
    /// Connections refused by the hook (no agent, foreign netns, ...).
    pub const REFUSED: u32 = 3;
    /// Connections skipped because of [`crate::TOLLGATE_MARK`].
    pub const MARKED: u32 = 4;
}

/// IPv4 address in network byte order, mapped into IPv6 words.
#[inline(always)]
pub const fn v4_mapped(ip4_be: u32) -> [u32; 4] {
    [0, 0, u32::to_be(0x0000_ffff), ip4_be]
}

#[cfg(feature = "user")]
mod pod {
    // SAFETY: both types are `#[repr(C)]`, `Copy`, contain only integers and have no implicit
    // padding (checked by the layout tests below).
    unsafe impl aya::Pod for super::ConnMeta {}
    // SAFETY: as above.
    unsafe impl aya::Pod for super::TupleKey {}
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;

    #[test]
    fn layouts_have_no_implicit_padding() {
        assert_eq!(
            core::mem::size_of::<ConnMeta>(),
            16 + 2 + 2 + 4 + 8 + 4 + 4 + 4 + 4
        );
        assert_eq!(core::mem::size_of::<TupleKey>(), 16 + 16 + 2 + 2 + 4);
    }

    #[test]
    fn v4_mapped_words() {
        let ip = u32::from_be_bytes([10, 1, 2, 3]).to_be();
        let w = v4_mapped(ip);
        let bytes: std::vec::Vec<u8> = w.iter().flat_map(|x| x.to_ne_bytes()).collect();
        assert_eq!(
            &bytes[..],
            &[0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 10, 1, 2, 3]
        );
    }
}
