//! The decision shared by `connect4` and `connect6`: go direct, redirect, or refuse.
use agent_common::{ConnMeta, FLAG_UNCLASSIFIED, TOLLGATE_MARK, cgroups, counters, settings};
use aya_ebpf::{
    helpers::{
        bpf_get_current_cgroup_id, bpf_get_current_pid_tgid, bpf_get_current_uid_gid,
        generated::bpf_get_netns_cookie,
    },
    programs::SockAddrContext,
};

use crate::maps::{CGROUPS, SOCK_META, count, setting};

/// What the connect hook does with one `connect()`.
pub enum Action {
    /// Leave the destination alone.
    Direct,
    /// Rewrite the destination to the proxy on loopback at this port (host byte order).
    Redirect(u16),
    /// Fail the `connect()` with `EPERM`.
    Refuse,
}

/// True when `ip6` (network byte order words) is `::ffff:a.b.c.d`.
#[inline(always)]
pub fn is_v4_mapped(ip6: &[u32; 4]) -> bool {
    ip6[0] == 0 && ip6[1] == 0 && ip6[2] == u32::to_be(0x0000_ffff)
}

/// True for the addresses a connect reaches the proxy at: 127.0.0.1 (v4 mapped) and `::1`,
/// where the hooks redirect to, and 0.0.0.0 and `::`, which reach this host's listeners.
#[inline(always)]
fn is_proxy_addr(ip6: &[u32; 4]) -> bool {
    if is_v4_mapped(ip6) {
        let v4 = u32::from_be(ip6[3]);
        return v4 == 0x7f00_0001 || v4 == 0;
    }
    ip6[0] == 0 && ip6[1] == 0 && ip6[2] == 0 && (ip6[3] == 0 || ip6[3] == u32::to_be(1))
}

/// Decides for a TCP `connect()` to `dst_ip6:dst_port` and, when redirecting, stores the
/// caller and original destination in the socket's local storage.
#[inline(always)]
pub fn decide(ctx: &SockAddrContext, dst_ip6: [u32; 4], dst_port: u16, family: u16) -> Action {
    // SAFETY: the kernel hands every cgroup/sock_addr program a valid context.
    let sk = unsafe { (*ctx.sock_addr).__bindgen_anon_1.sk };
    if sk.is_null() {
        return Action::Direct;
    }
    // The agent's own upstream sockets carry its mark. Any process with `CAP_NET_RAW` can set a
    // mark too: only the agent's count.
    // SAFETY: checked non-null above; `mark` is a readable `bpf_sock` field.
    if unsafe { (*sk).mark } == TOLLGATE_MARK
        && bpf_get_current_pid_tgid() >> 32 == setting(settings::AGENT_TGID)
    {
        count(counters::MARKED);
        return Action::Direct;
    }
    let port = setting(settings::PROXY_PORT) as u16;
    if port != 0 && dst_port == port && is_proxy_addr(&dst_ip6) {
        // Straight at the proxy, from any cgroup: such a connection carries no metadata of its
        // own, and could only take another's left behind. Refused, unless the loopback is not
        // the proxy's (another network namespace).
        // SAFETY: helper valid for sock_addr programs.
        let netns = unsafe { bpf_get_netns_cookie(ctx.sock_addr.cast()) };
        if netns == setting(settings::HOST_NETNS) {
            count(counters::REFUSED);
            return Action::Refuse;
        }
    }
    // SAFETY: helper without preconditions.
    let cgroup_id = unsafe { bpf_get_current_cgroup_id() };
    // SAFETY: the value is a plain u8 copied out at once.
    let state = unsafe { CGROUPS.get(cgroup_id) }.copied().unwrap_or(0);
    if state == cgroups::UNENROLLED {
        count(counters::DIRECT);
        return Action::Direct;
    }
    // Enrolled, or not classified yet: never direct from here on (fail closed).
    if port == 0 || setting(settings::AGENT_UP) == 0 {
        count(counters::REFUSED);
        return Action::Refuse;
    }
    // SAFETY: helper valid for sock_addr programs.
    let netns = unsafe { bpf_get_netns_cookie(ctx.sock_addr.cast()) };
    if netns != setting(settings::HOST_NETNS) {
        // The proxy's loopback is not this socket's loopback.
        count(counters::REFUSED);
        return Action::Refuse;
    }
    let pid_tgid = bpf_get_current_pid_tgid();
    let uid_gid = bpf_get_current_uid_gid();
    let mut meta = ConnMeta {
        dst_ip6,
        dst_port,
        family,
        tgid: (pid_tgid >> 32) as u32,
        cgroup_id,
        uid: uid_gid as u32,
        gid: (uid_gid >> 32) as u32,
        flags: if state == cgroups::ENROLLED {
            0
        } else {
            FLAG_UNCLASSIFIED
        },
        _pad: 0,
    };
    // SAFETY: `ctx` is the program's own context; the storage is keyed by its socket.
    let slot = unsafe { SOCK_META.get_or_insert_ptr_mut(ctx, Some(&mut meta)) };
    if slot.is_null() {
        count(counters::REFUSED);
        return Action::Refuse;
    }
    // SAFETY: non-null pointer into this socket's storage.
    unsafe { *slot = meta };
    count(if state == cgroups::ENROLLED {
        counters::REDIRECTED
    } else {
        counters::UNKNOWN
    });
    Action::Redirect(port)
}
