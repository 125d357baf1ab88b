//! Loads the embedded eBPF programs, attaches them to the attach cgroup, and owns their maps.
//!
//! Links are pinned under `pin_dir` when `fail_mode = "closed"`, so the redirect outlives the
//! agent (tasks then get a refused connection); with `"open"` they are tied to the agent's file
//! descriptors and detach when it exits. A new agent attaches its own programs first, pins them
//! (closed mode), and only then removes pins left by a previous one, so there is no moment
//! without a redirect, and an agent that fails to pin leaves the previous pins in force.
use crate::sync::lock;
use std::{
    fs::File,
    os::fd::AsFd,
    path::{Path, PathBuf},
    sync::Mutex,
};

use agent_common::{ConnMeta, TupleKey, cgroups, conns, counters, settings, sockstore};
use aya::{
    Ebpf, EbpfLoader,
    maps::{Array, HashMap, MapData, PerCpuArray},
    programs::{
        CgroupAttachMode, CgroupSockAddr, SockOps,
        links::{FdLink, PinnedLink},
    },
};
use tracing::{debug, info, warn};

use crate::config::FailMode;

/// The compiled eBPF object, built by `build.rs`.
static OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/agent-ebpf"));

/// The cgroup/sock_addr programs, by name in the object.
const SOCK_ADDR_PROGRAMS: [&str; 4] = [
    "tollgate_connect4",
    "tollgate_connect6",
    "tollgate_getpeername4",
    "tollgate_getpeername6",
];
/// The sockops program.
const SOCK_OPS_PROGRAM: &str = "tollgate_sockops";

/// Attach mode. aya attaches through `bpf_link_create` (kernel >= 5.7), where the kernel
/// requires flags 0 and every link is multi-attach by nature: our programs run beside
/// systemd's and anyone else's. `AllowMultiple` would pass `BPF_F_ALLOW_MULTI` and get EINVAL.
const LINK_MODE: CgroupAttachMode = CgroupAttachMode::Single;

/// Errors of this layer.
#[derive(Debug, thiserror::Error)]
pub enum EbpfError {
    /// The object could not be loaded (verifier, BTF, permissions).
    #[error("loading eBPF object: {0}")]
    Load(#[from] aya::EbpfError),
    /// A program is missing from the object or has the wrong type.
    #[error("eBPF program {0}: {1}")]
    Program(&'static str, #[source] aya::programs::ProgramError),
    /// A map is missing from the object.
    #[error("eBPF map {0} missing from object")]
    MissingMap(&'static str),
    /// A map operation failed.
    #[error("eBPF map {0}: {1}")]
    Map(&'static str, #[source] aya::maps::MapError),
    /// The attach cgroup cannot be opened.
    #[error("opening cgroup {0}: {1}")]
    Cgroup(PathBuf, #[source] std::io::Error),
    /// Pinning or unpinning a link failed.
    #[error("pinning link at {0}: {1}")]
    Pin(PathBuf, String),
    /// bpffs could not be prepared.
    #[error("bpffs at {0}: {1}")]
    Bpffs(PathBuf, String),
}

/// A link the agent holds: pinned (survives the agent) or owned (detaches on drop).
enum Held {
    Owned(#[allow(dead_code)] FdLink),
    Pinned(#[allow(dead_code)] PinnedLink),
}

/// Loaded, attached programs and their maps.
pub struct Programs {
    /// Keeps the programs loaded; dropped last.
    _ebpf: Ebpf,
    links: Vec<Held>,
    cgroups: Mutex<HashMap<MapData, u64, u8>>,
    conns: Mutex<HashMap<MapData, TupleKey, ConnMeta>>,
    settings: Mutex<Array<MapData, u64>>,
    counters: PerCpuArray<MapData, u64>,
    fail_mode: FailMode,
}

/// Event counts of the programs, summed over CPUs.
#[derive(Debug, Clone, Copy, Default)]
pub struct Counters {
    /// Connections redirected to the proxy (enrolled cgroups).
    pub redirected: u64,
    /// Connections of unclassified cgroups sent to the proxy for classification.
    pub unknown: u64,
    /// Connections that went direct (unenrolled cgroups).
    pub direct: u64,
    /// Connections the hook refused.
    pub refused: u64,
    /// Agent sockets skipped by mark.
    pub marked: u64,
}

/// Everything the programs need to know at attach time.
pub struct AttachSpec<'a> {
    /// cgroup directory (absolute path) to attach to.
    pub cgroup_dir: &'a Path,
    /// Proxy port on loopback.
    pub proxy_port: u16,
    /// Network namespace cookie of the agent.
    pub netns_cookie: u64,
    /// Pin directory (used in closed mode; stale pins are removed in both modes).
    pub pin_dir: &'a Path,
    /// Fail mode.
    pub fail_mode: FailMode,
    /// cgroups classified before attaching (id, enrolled).
    pub preclassified: &'a [(u64, bool)],
}

impl Programs {
    /// Loads the object, fills the settings, classifies the given cgroups, then attaches.
    pub fn load_and_attach(spec: &AttachSpec<'_>) -> Result<Self, EbpfError> {
        let mut ebpf = EbpfLoader::new().load(OBJECT)?;
        let mut settings: Array<MapData, u64> = take_map(&mut ebpf, settings::MAP)?;
        settings
            .set(settings::PROXY_PORT, u64::from(spec.proxy_port), 0)
            .map_err(|e| EbpfError::Map(settings::MAP, e))?;
        settings
            .set(settings::HOST_NETNS, spec.netns_cookie, 0)
            .map_err(|e| EbpfError::Map(settings::MAP, e))?;
        settings
            .set(settings::AGENT_TGID, u64::from(host_pid()), 0)
            .map_err(|e| EbpfError::Map(settings::MAP, e))?;
        settings
            .set(settings::AGENT_UP, 1, 0)
            .map_err(|e| EbpfError::Map(settings::MAP, e))?;
        let mut cgroup_map: HashMap<MapData, u64, u8> = take_map(&mut ebpf, cgroups::MAP)?;
        for &(id, enrolled) in spec.preclassified {
            let state = if enrolled {
                cgroups::ENROLLED
            } else {
                cgroups::UNENROLLED
            };
            cgroup_map
                .insert(id, state, 0)
                .map_err(|e| EbpfError::Map(cgroups::MAP, e))?;
        }
        let conns: HashMap<MapData, TupleKey, ConnMeta> = take_map(&mut ebpf, conns::MAP)?;
        let counters: PerCpuArray<MapData, u64> = take_map(&mut ebpf, counters::MAP)?;
        if ebpf.map(sockstore::MAP).is_none() {
            return Err(EbpfError::MissingMap(sockstore::MAP));
        }

        let cgroup = File::open(spec.cgroup_dir)
            .map_err(|e| EbpfError::Cgroup(spec.cgroup_dir.to_owned(), e))?;
        let mut fresh: Vec<(&'static str, FdLink)> = Vec::new();
        for name in SOCK_ADDR_PROGRAMS {
            let prog: &mut CgroupSockAddr = program(&mut ebpf, name)?;
            prog.load().map_err(|e| EbpfError::Program(name, e))?;
            let id = prog
                .attach(cgroup.as_fd(), LINK_MODE)
                .map_err(|e| EbpfError::Program(name, e))?;
            let link = prog
                .take_link(id)
                .map_err(|e| EbpfError::Program(name, e))?;
            let link = FdLink::try_from(link)
                .map_err(|e| EbpfError::Pin(spec.pin_dir.join(name), e.to_string()))?;
            fresh.push((name, link));
        }
        {
            let name = SOCK_OPS_PROGRAM;
            let prog: &mut SockOps = program(&mut ebpf, name)?;
            prog.load().map_err(|e| EbpfError::Program(name, e))?;
            let id = prog
                .attach(cgroup.as_fd(), LINK_MODE)
                .map_err(|e| EbpfError::Program(name, e))?;
            let link = prog
                .take_link(id)
                .map_err(|e| EbpfError::Program(name, e))?;
            let link = FdLink::try_from(link)
                .map_err(|e| EbpfError::Pin(spec.pin_dir.join(name), e.to_string()))?;
            fresh.push((name, link));
        }
        info!(cgroup = %spec.cgroup_dir.display(), programs = fresh.len(), "eBPF programs attached");

        // Our programs run now; the previous agent's pinned links can go, once ours are
        // pinned (closed mode): a failure to pin leaves the previous pins, and the redirect or
        // refusal they hold, in place.
        let links = match spec.fail_mode {
            FailMode::Open => {
                remove_stale_pins(spec.pin_dir, &[]);
                fresh.into_iter().map(|(_, l)| Held::Owned(l)).collect()
            }
            FailMode::Closed => {
                let held = pin_all(spec.pin_dir, fresh)?;
                let own: Vec<PathBuf> = held.iter().map(|(p, _)| p.clone()).collect();
                remove_stale_pins(spec.pin_dir, &own);
                held.into_iter().map(|(_, l)| Held::Pinned(l)).collect()
            }
        };
        Ok(Self {
            _ebpf: ebpf,
            links,
            cgroups: Mutex::new(cgroup_map),
            conns: Mutex::new(conns),
            settings: Mutex::new(settings),
            counters,
            fail_mode: spec.fail_mode,
        })
    }

    /// Names of the attached programs.
    pub fn program_names(&self) -> Vec<String> {
        if self.links.is_empty() {
            return Vec::new();
        }
        SOCK_ADDR_PROGRAMS
            .iter()
            .chain(std::iter::once(&SOCK_OPS_PROGRAM))
            .map(|s| s.to_string())
            .collect()
    }

    /// Takes (looks up and deletes) the metadata of an accepted connection.
    pub fn take_conn(&self, key: &TupleKey) -> Option<ConnMeta> {
        let mut map = lock(&self.conns);
        let meta = map.get(key, 0).ok()?;
        if let Err(e) = map.remove(key) {
            debug!(error = %e, "removing connection metadata");
        }
        Some(meta)
    }

    /// Records a cgroup's classification for the connect hooks.
    pub fn set_cgroup(&self, cgroup_id: u64, enrolled: bool) -> Result<(), EbpfError> {
        let state = if enrolled {
            cgroups::ENROLLED
        } else {
            cgroups::UNENROLLED
        };
        lock(&self.cgroups)
            .insert(cgroup_id, state, 0)
            .map_err(|e| EbpfError::Map(cgroups::MAP, e))
    }

    /// Forgets a cgroup (it is reclassified on its next connection).
    pub fn forget_cgroup(&self, cgroup_id: u64) {
        let _ = lock(&self.cgroups).remove(&cgroup_id);
    }

    /// The classified cgroups.
    pub fn classified_cgroups(&self) -> Vec<(u64, bool)> {
        let map = lock(&self.cgroups);
        map.iter()
            .filter_map(Result::ok)
            .map(|(id, state)| (id, state == cgroups::ENROLLED))
            .collect()
    }

    /// Counters summed over CPUs.
    pub fn counters(&self) -> Counters {
        let read = |slot: u32| -> u64 {
            self.counters
                .get(&slot, 0)
                .map(|v| v.iter().sum())
                .unwrap_or(0)
        };
        Counters {
            redirected: read(counters::REDIRECTED),
            unknown: read(counters::UNKNOWN),
            direct: read(counters::DIRECT),
            refused: read(counters::REFUSED),
            marked: read(counters::MARKED),
        }
    }

    /// Called on orderly shutdown. Closed mode: pinned programs now refuse enrolled and
    /// unclassified connections outright (they would otherwise hit a closed port). Open mode:
    /// links detach when `self` drops.
    pub fn shutdown(&self) {
        if self.fail_mode == FailMode::Closed {
            if let Err(e) = lock(&self.settings).set(settings::AGENT_UP, 0, 0) {
                warn!(error = %e, "could not mark the agent down in the pinned programs");
            }
            info!(
                "agent stopping: pinned programs keep refusing enrolled connections (fail_mode = closed)"
            );
        } else {
            info!("agent stopping: programs detach, enrolled tasks go direct (fail_mode = open)");
        }
    }
}

/// The agent's pid as the host sees it, which the hooks compare with the calling task's tgid:
/// the first (outermost) entry of `NSpid` in `/proc/self/status`, the namespace's own pid when
/// `/proc` shows no other.
fn host_pid() -> u32 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("NSpid:"))
                .and_then(|v| v.split_whitespace().next())
                .and_then(|p| p.parse().ok())
        })
        .unwrap_or_else(std::process::id)
}

/// Pins `links` under `pin_dir`, named after this agent's process and start
/// (`<program>_<pid>_<nanoseconds>`; bpffs takes no dot), so that they never take the previous
/// agent's names before its pins are removed. All or nothing: on a failure the links pinned so far are unpinned (and detach when
/// dropped).
fn pin_all(
    pin_dir: &Path,
    links: Vec<(&'static str, FdLink)>,
) -> Result<Vec<(PathBuf, PinnedLink)>, EbpfError> {
    ensure_bpffs(pin_dir)?;
    // The pid alone may be the previous agent's (a container's pid 1, a pid reused).
    let nonce = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let mut held = Vec::new();
    for (name, link) in links {
        let path = pin_dir.join(format!("{name}_{}_{nonce}", std::process::id()));
        match link.pin(&path) {
            Ok(pinned) => held.push((path, pinned)),
            Err(e) => {
                for (_, pinned) in held {
                    let _ = pinned.unpin();
                }
                return Err(EbpfError::Pin(path, e.to_string()));
            }
        }
    }
    Ok(held)
}

/// Removes every pinned link under `pin_dir` but `keep` (detaching it), e.g. left by a previous
/// agent.
pub fn remove_stale_pins(pin_dir: &Path, keep: &[PathBuf]) {
    let Ok(entries) = std::fs::read_dir(pin_dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if keep.contains(&path) {
            continue;
        }
        match PinnedLink::from_pin(&path) {
            Ok(link) => match link.unpin() {
                Ok(_detached_on_drop) => info!(pin = %path.display(), "removed stale pinned link"),
                Err(e) => warn!(pin = %path.display(), error = %e, "could not unpin"),
            },
            Err(_) => {
                let _ = std::fs::remove_file(&path);
            }
        }
    }
}

/// Makes sure `pin_dir` lies on a mounted bpffs, mounting `/sys/fs/bpf` if needed.
fn ensure_bpffs(pin_dir: &Path) -> Result<(), EbpfError> {
    const BPF_FS_MAGIC: i64 = 0xcafe_4a11;
    let bpffs = Path::new("/sys/fs/bpf");
    let is_bpffs = |p: &Path| {
        nix::sys::statfs::statfs(p)
            .map(|s| s.filesystem_type().0 == BPF_FS_MAGIC)
            .unwrap_or(false)
    };
    if pin_dir.starts_with(bpffs) && !is_bpffs(bpffs) {
        std::fs::create_dir_all(bpffs)
            .map_err(|e| EbpfError::Bpffs(bpffs.into(), e.to_string()))?;
        nix::mount::mount(
            Some("bpf"),
            bpffs,
            Some("bpf"),
            nix::mount::MsFlags::empty(),
            None::<&str>,
        )
        .map_err(|e| EbpfError::Bpffs(bpffs.into(), e.to_string()))?;
        info!("mounted bpffs at /sys/fs/bpf");
    }
    std::fs::create_dir_all(pin_dir)
        .map_err(|e| EbpfError::Bpffs(pin_dir.into(), e.to_string()))?;
    if !is_bpffs(pin_dir) {
        return Err(EbpfError::Bpffs(
            pin_dir.into(),
            "not on a bpf filesystem".into(),
        ));
    }
    Ok(())
}

fn take_map<T>(ebpf: &mut Ebpf, name: &'static str) -> Result<T, EbpfError>
where
    T: TryFrom<aya::maps::Map, Error = aya::maps::MapError>,
{
    let map = ebpf.take_map(name).ok_or(EbpfError::MissingMap(name))?;
    T::try_from(map).map_err(|e| EbpfError::Map(name, e))
}

fn program<'a, T>(ebpf: &'a mut Ebpf, name: &'static str) -> Result<&'a mut T, EbpfError>
where
    &'a mut T: TryFrom<&'a mut aya::programs::Program, Error = aya::programs::ProgramError>,
{
    let prog = ebpf.program_mut(name).ok_or(EbpfError::Program(
        name,
        aya::programs::ProgramError::NotLoaded,
    ))?;
    prog.try_into().map_err(|e| EbpfError::Program(name, e))
}

/// The network namespace cookie of the calling thread's namespace (`SO_NETNS_COOKIE`).
pub fn own_netns_cookie() -> std::io::Result<u64> {
    let sock = std::net::UdpSocket::bind("127.0.0.1:0")?;
    let mut cookie: u64 = 0;
    let mut len = std::mem::size_of::<u64>() as libc::socklen_t;
    // SAFETY: valid fd, a u64 out-buffer and its length.
    let rc = unsafe {
        libc::getsockopt(
            std::os::fd::AsRawFd::as_raw_fd(&sock),
            libc::SOL_SOCKET,
            libc::SO_NETNS_COOKIE,
            (&mut cookie as *mut u64).cast(),
            &mut len,
        )
    };
    if rc != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(cookie)
}
