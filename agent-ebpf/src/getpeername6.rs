//! `cgroup/getpeername6`: a redirected IPv6 (or dual-stack) socket reports its original peer.
use aya_ebpf::{macros::cgroup_sock_addr, programs::SockAddrContext};

use crate::maps::SOCK_META;

#[cgroup_sock_addr(getpeername6)]
pub fn tollgate_getpeername6(ctx: SockAddrContext) -> i32 {
    match try_getpeername6(&ctx) {
        Ok(ret) | Err(ret) => ret,
    }
}

fn try_getpeername6(ctx: &SockAddrContext) -> Result<i32, i32> {
    // SAFETY: lookup only; the storage belongs to this context's socket.
    let meta = unsafe { SOCK_META.get_ptr_mut(ctx) };
    if meta.is_null() {
        return Ok(1);
    }
    // SAFETY: non-null pointer into this socket's storage.
    let meta = unsafe { *meta };
    // SAFETY: valid context for this program type.
    let sa = unsafe { &mut *ctx.sock_addr };
    sa.user_ip6[0] = meta.dst_ip6[0];
    sa.user_ip6[1] = meta.dst_ip6[1];
    sa.user_ip6[2] = meta.dst_ip6[2];
    sa.user_ip6[3] = meta.dst_ip6[3];
    sa.user_port = u32::from(meta.dst_port.to_be());
    Ok(1)
}
