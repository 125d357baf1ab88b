//! `sockops`: at `TCP_CONNECT_CB` (source port bound, SYN not sent yet) publish a redirected
//! socket's metadata under its 4-tuple, so the proxy finds it after `accept()` without a race.
use agent_common::{ConnMeta, TupleKey, v4_mapped};
use aya_ebpf::{
    bindings::BPF_SOCK_OPS_TCP_CONNECT_CB, helpers::generated::bpf_sk_storage_get,
    macros::sock_ops, programs::SockOpsContext,
};

use crate::{
    maps::{CONNS, SOCK_META},
    redirect::is_v4_mapped,
};

const AF_INET: u32 = 2;

#[sock_ops]
pub fn tollgate_sockops(ctx: SockOpsContext) -> u32 {
    match try_sockops(&ctx) {
        Ok(()) | Err(()) => 1,
    }
}

fn try_sockops(ctx: &SockOpsContext) -> Result<(), ()> {
    if ctx.op() != BPF_SOCK_OPS_TCP_CONNECT_CB {
        return Ok(());
    }
    // SAFETY: valid context; `sk` may be null and is checked.
    let sk = unsafe { (*ctx.ops).__bindgen_anon_2.sk };
    if sk.is_null() {
        return Ok(());
    }
    let map = core::ptr::from_ref(&SOCK_META).cast_mut().cast();
    // SAFETY: lookup only (no create flag); `sk` is a non-null socket pointer.
    let meta =
        unsafe { bpf_sk_storage_get(map, sk.cast(), core::ptr::null_mut(), 0) }.cast::<ConnMeta>();
    if meta.is_null() {
        return Ok(());
    }
    // SAFETY: non-null pointer into this socket's storage.
    let meta = unsafe { *meta };
    let (src, dst) = if ctx.family() == AF_INET {
        (v4_mapped(ctx.local_ip4()), v4_mapped(ctx.remote_ip4()))
    } else {
        let l = ctx.local_ip6();
        let r = ctx.remote_ip6();
        (normalize(l), normalize(r))
    };
    let key = TupleKey {
        src_ip6: src,
        dst_ip6: dst,
        src_port: ctx.local_port() as u16,
        dst_port: u16::from_be((ctx.remote_port() >> 16) as u16),
        _pad: 0,
    };
    CONNS.insert(key, meta, 0).map(|_| ()).map_err(|_| ())
}

#[inline(always)]
fn normalize(ip6: [u32; 4]) -> [u32; 4] {
    if is_v4_mapped(&ip6) {
        v4_mapped(ip6[3])
    } else {
        ip6
    }
}
