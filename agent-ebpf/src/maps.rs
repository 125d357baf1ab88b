//! Maps shared by the programs. Names and sizes come from `agent_common`.
use agent_common::{ConnMeta, TupleKey, cgroups, conns, counters, settings};
use aya_ebpf::{
    btf_maps::{Array, LruHashMap, PerCpuArray, SkStorage},
    macros::btf_map,
};

/// cgroup id -> `cgroups::ENROLLED` / `cgroups::UNENROLLED`; absent means "not classified yet".
#[btf_map]
pub static CGROUPS: LruHashMap<u64, u8, { cgroups::CAPACITY as usize }> = LruHashMap::new();

/// Agent settings (see `agent_common::settings`).
#[btf_map]
pub static SETTINGS: Array<u64, { settings::LEN as usize }> = Array::new();

/// Original destination and caller of a redirected socket, for its whole life.
#[btf_map]
pub static SOCK_META: SkStorage<ConnMeta> = SkStorage::new();

/// 4-tuple -> caller, published before the SYN leaves, taken by the proxy after accept().
#[btf_map]
pub static CONNS: LruHashMap<TupleKey, ConnMeta, { conns::CAPACITY as usize }> = LruHashMap::new();

/// Event counters (see `agent_common::counters`).
#[btf_map]
pub static COUNTERS: PerCpuArray<u64, { counters::LEN as usize }> = PerCpuArray::new();

#[inline(always)]
pub fn count(slot: u32) {
    if let Some(p) = COUNTERS.get_ptr_mut(slot) {
        // SAFETY: per-CPU slot, no concurrent writer on this CPU while the program runs.
        unsafe { *p += 1 };
    }
}

#[inline(always)]
pub fn setting(slot: u32) -> u64 {
    SETTINGS.get(slot).copied().unwrap_or(0)
}
