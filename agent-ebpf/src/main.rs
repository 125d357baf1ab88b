//! tollgate's eBPF programs.
//!
//! `connect4`/`connect6` redirect connections of enrolled (or not yet classified) cgroups to the
//! agent's proxy on loopback and keep the original destination in socket-local storage;
//! `sockops` publishes it under the connection's 4-tuple for the proxy to take after
//! `accept()`; `getpeername4`/`getpeername6` show the task its original peer.
#![cfg_attr(target_arch = "bpf", no_std)]
#![cfg_attr(target_arch = "bpf", no_main)]
#![cfg_attr(not(target_arch = "bpf"), allow(dead_code, unused_imports))]

#[cfg(target_arch = "bpf")]
mod connect4;
#[cfg(target_arch = "bpf")]
mod connect6;
#[cfg(target_arch = "bpf")]
mod getpeername4;
#[cfg(target_arch = "bpf")]
mod getpeername6;
#[cfg(target_arch = "bpf")]
mod maps;
#[cfg(target_arch = "bpf")]
mod redirect;
#[cfg(target_arch = "bpf")]
mod sockops;

/// On the host this crate is an empty program; the real one is built for the bpf target.
#[cfg(not(target_arch = "bpf"))]
fn main() {}

#[cfg(target_arch = "bpf")]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}

#[cfg(target_arch = "bpf")]
#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 13] = *b"Dual MIT/GPL\0";
