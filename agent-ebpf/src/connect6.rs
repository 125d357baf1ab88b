//! `cgroup/connect6`: redirect IPv6 TCP connections (v4-mapped ones included) of enrolled
//! tasks to the proxy.
use aya_ebpf::{macros::cgroup_sock_addr, programs::SockAddrContext};

use crate::redirect::{Action, decide, is_v4_mapped};

const AF_INET6: u16 = 10;
const SOCK_STREAM: u32 = 1;

#[cgroup_sock_addr(connect6)]
pub fn tollgate_connect6(ctx: SockAddrContext) -> i32 {
    match try_connect6(&ctx) {
        Ok(ret) | Err(ret) => ret,
    }
}

fn try_connect6(ctx: &SockAddrContext) -> Result<i32, i32> {
    // SAFETY: valid context for this program type.
    let sa = unsafe { &mut *ctx.sock_addr };
    if sa.type_ != SOCK_STREAM {
        return Ok(1);
    }
    // The verifier wants the words read one at a time.
    let dst = [
        sa.user_ip6[0],
        sa.user_ip6[1],
        sa.user_ip6[2],
        sa.user_ip6[3],
    ];
    let port = u16::from_be(sa.user_port as u16);
    match decide(ctx, dst, port, AF_INET6) {
        Action::Direct => Ok(1),
        Action::Refuse => Err(0),
        Action::Redirect(proxy_port) => {
            if is_v4_mapped(&dst) {
                // A dual-stack socket reaching an IPv4 peer: the proxy's IPv4 listener.
                sa.user_ip6[0] = 0;
                sa.user_ip6[1] = 0;
                sa.user_ip6[2] = u32::to_be(0x0000_ffff);
                sa.user_ip6[3] = u32::from_ne_bytes([127, 0, 0, 1]);
            } else {
                sa.user_ip6[0] = 0;
                sa.user_ip6[1] = 0;
                sa.user_ip6[2] = 0;
                sa.user_ip6[3] = u32::to_be(1);
            }
            sa.user_port = u32::from(proxy_port.to_be());
            Ok(1)
        }
    }
}
