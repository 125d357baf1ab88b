//! `cgroup/connect4`: redirect IPv4 TCP connections of enrolled tasks to the proxy.
use aya_ebpf::{macros::cgroup_sock_addr, programs::SockAddrContext};

use crate::redirect::{Action, decide};

const AF_INET: u16 = 2;
const SOCK_STREAM: u32 = 1;

#[cgroup_sock_addr(connect4)]
pub fn tollgate_connect4(ctx: SockAddrContext) -> i32 {
    match try_connect4(&ctx) {
        Ok(ret) | Err(ret) => ret,
    }
}

fn try_connect4(ctx: &SockAddrContext) -> Result<i32, i32> {
    // SAFETY: valid context for this program type.
    let sa = unsafe { &mut *ctx.sock_addr };
    if sa.type_ != SOCK_STREAM {
        return Ok(1);
    }
    let dst = agent_common::v4_mapped(sa.user_ip4);
    let port = u16::from_be(sa.user_port as u16);
    match decide(ctx, dst, port, AF_INET) {
        Action::Direct => Ok(1),
        Action::Refuse => Err(0),
        Action::Redirect(proxy_port) => {
            sa.user_ip4 = u32::from_ne_bytes([127, 0, 0, 1]);
            sa.user_port = u32::from(proxy_port.to_be());
            Ok(1)
        }
    }
}
