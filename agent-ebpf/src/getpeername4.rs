//! `cgroup/getpeername4`: a redirected IPv4 socket reports its original peer, not the proxy.
use aya_ebpf::{macros::cgroup_sock_addr, programs::SockAddrContext};

use crate::maps::SOCK_META;

#[cgroup_sock_addr(getpeername4)]
pub fn tollgate_getpeername4(ctx: SockAddrContext) -> i32 {
    match try_getpeername4(&ctx) {
        Ok(ret) | Err(ret) => ret,
    }
}

fn try_getpeername4(ctx: &SockAddrContext) -> Result<i32, i32> {
    // SAFETY: lookup only; the storage belongs to this context's socket.
    let meta = unsafe { SOCK_META.get_ptr_mut(ctx) };
    if meta.is_null() {
        return Ok(1);
    }
    // SAFETY: non-null pointer into this socket's storage.
    let meta = unsafe { *meta };
    // SAFETY: valid context for this program type.
    let sa = unsafe { &mut *ctx.sock_addr };
    sa.user_ip4 = meta.dst_ip6[3];
    sa.user_port = u32::from(meta.dst_port.to_be());
    Ok(1)
}
