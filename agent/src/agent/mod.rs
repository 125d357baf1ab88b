//! The agent runtime: starts the store, proxy, eBPF programs, admin socket, policy reloads and
//! DNS refreshes; stops them in order on SIGTERM/SIGINT.
mod admin_api;
mod dns;
mod reload;
mod sd_notify;

use std::{
    net::{IpAddr, SocketAddr},
    os::unix::fs::DirBuilderExt,
    path::PathBuf,
    sync::Arc,
    time::{Duration, SystemTime},
};

use arc_swap::ArcSwap;
use tokio::{
    signal::unix::{SignalKind, signal},
    sync::{Semaphore, watch},
    task::JoinSet,
};
use tracing::{error, info, warn};

use crate::{
    admin,
    config::Config,
    ebpf::{self, AttachSpec, Programs},
    enroll::Enrollment,
    identity::{CgroupFs, Resolver, process},
    policy::{self, DnsTable},
    proxy::{self, Context, PolicyState, ProxySettings, approval::Unavailable},
    store,
};

/// Errors that stop the agent from starting.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    /// The state directory cannot be created.
    #[error("state directory {0}: {1}")]
    StateDir(PathBuf, #[source] std::io::Error),
    /// The policy does not load.
    #[error("policy in {0} rejected:\n{1}")]
    Policy(PathBuf, policy::PolicyErrors),
    /// cgroup v2 trouble.
    #[error(transparent)]
    Cgroup(#[from] crate::identity::CgroupError),
    /// The run cgroup must lie under the attach cgroup.
    #[error("run_cgroup {run:?} is not below attach_cgroup {attach:?}")]
    RunCgroup {
        /// Configured run cgroup.
        run: String,
        /// Configured attach cgroup.
        attach: String,
    },
    /// Audit store.
    #[error("audit store: {0}")]
    Store(#[from] store::StoreError),
    /// Proxy listeners.
    #[error(transparent)]
    Proxy(#[from] proxy::ProxyError),
    /// eBPF.
    #[error(transparent)]
    Ebpf(#[from] ebpf::EbpfError),
    /// Admin socket.
    #[error(transparent)]
    Admin(#[from] admin::AdminError),
    /// The local CA.
    #[error("local CA: {0}")]
    Tls(#[from] crate::tls::TlsError),
    /// Signals or the netns cookie.
    #[error("{0}: {1}")]
    Io(&'static str, #[source] std::io::Error),
}

/// Runs the agent in the foreground until SIGTERM or SIGINT.
pub async fn run(config: Config) -> Result<(), AgentError> {
    let cgroupfs = CgroupFs::detect(config.cgroup_root.as_deref())?;
    let attach_dir = cgroupfs.dir(&config.attach_cgroup)?;
    let run_prefix = format!("{}/", config.attach_cgroup.trim_end_matches('/'));
    if config.run_cgroup != config.attach_cgroup && !config.run_cgroup.starts_with(&run_prefix) {
        return Err(AgentError::RunCgroup {
            run: config.run_cgroup.clone(),
            attach: config.attach_cgroup.clone(),
        });
    }
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o750)
        .create(&config.state_dir)
        .map_err(|e| AgentError::StateDir(config.state_dir.clone(), e))?;

    let policy = policy::load_dir(&config.policy_dir, config.trust_domain.as_deref())
        .map_err(|e| AgentError::Policy(config.policy_dir.clone(), e))?;
    info!(
        dir = %config.policy_dir.display(), workloads = policy.workloads().len(),
        fingerprint = %policy.fingerprint(), "policy loaded"
    );
    let (store, audit, reader) = store::open_sqlite(&config.audit_db(), config.audit_queue).await?;
    let audit = audit
        .with_wait(config.audit_wait)
        .with_failure(config.audit_failure);

    // Listeners first: the programs must never redirect to a port nobody listens on.
    let listeners = bind_listeners(&config)?;
    let listen: Vec<SocketAddr> = listeners
        .iter()
        .filter_map(|l| l.local_addr().ok())
        .collect();
    let port = listen.first().map_or(config.listen_port, SocketAddr::port);
    warn_if_unprivileged(port, config.fail_mode);

    cgroupfs.create(&config.attach_cgroup)?;
    cgroupfs.create(&config.run_cgroup)?;
    let enrollment = Enrollment::default();
    restore_runs(&cgroupfs, &config.run_cgroup, &enrollment);
    let own_cgroup = process::cgroup_of(std::process::id()).unwrap_or_default();
    let preclassified = classify_all(
        &cgroupfs,
        &config.attach_cgroup,
        &policy,
        &enrollment,
        &own_cgroup,
    );
    let netns_cookie =
        ebpf::own_netns_cookie().map_err(|e| AgentError::Io("SO_NETNS_COOKIE", e))?;
    let programs = Arc::new(Programs::load_and_attach(&AttachSpec {
        cgroup_dir: &attach_dir,
        proxy_port: port,
        netns_cookie,
        pin_dir: &config.pin_dir,
        fail_mode: config.fail_mode,
        preclassified: &preclassified,
    })?);

    let (stop_tx, stop_rx) = watch::channel(false);
    let dns_names = policy.dns_names();
    let ctx = Arc::new(Context {
        settings: ProxySettings {
            listen: listen.clone(),
            connect_timeout: config.connect_timeout,
            idle_timeout: config.idle_timeout,
            audit_failure: config.audit_failure,
        },
        programs: programs.clone(),
        resolver: Resolver::new(cgroupfs.clone()),
        enrollment,
        policy: ArcSwap::from_pointee(PolicyState {
            policy,
            generation: 1,
            loaded_at: SystemTime::now(),
        }),
        dns: ArcSwap::from_pointee(DnsTable::default()),
        audit: audit.clone(),
        approvals: Arc::new(Unavailable),
        stats: Default::default(),
        limit: Arc::new(Semaphore::new(config.max_connections)),
        stop: stop_rx,
        ca: Arc::new(crate::tls::LocalCa::load_or_create(&config.state_dir)?),
        pg_cancel: Default::default(),
        http_pool: Default::default(),
    });
    dns::refresh(&ctx, &dns_names).await;

    let reload_state = Arc::new(reload::ReloadState::default());
    let (admin_listener, admin_gid) =
        admin::bind(&config.admin_socket(), config.admin_group.as_deref())?;
    if let Some(gid) = admin_gid {
        // The socket is 0660 in the admin group; its directory must let that group through.
        nix::unistd::chown(
            &config.state_dir,
            None,
            Some(nix::unistd::Gid::from_raw(gid)),
        )
        .map_err(|e| AgentError::StateDir(config.state_dir.clone(), e.into()))?;
    }
    let api = Arc::new(admin_api::Api::new(
        ctx.clone(),
        reader,
        reload_state.clone(),
        admin_api::StaticInfo {
            programs: programs.program_names(),
            fail_mode: format!("{:?}", config.fail_mode).to_lowercase(),
            listen: listen.iter().map(ToString::to_string).collect(),
            cgroup_root: cgroupfs.root().display().to_string(),
            attach_cgroup: config.attach_cgroup.clone(),
            run_cgroup: config.run_cgroup.clone(),
        },
    ));

    let (accepting_tx, accepting_rx) = watch::channel(true);
    let (admin_stop_tx, admin_stop_rx) = watch::channel(false);
    let mut background = JoinSet::new();
    background.spawn(admin::serve(
        admin_listener,
        api.clone(),
        admin_gid,
        admin_stop_rx,
    ));
    background.spawn(reload::watch(
        ctx.clone(),
        config.clone(),
        reload_state.clone(),
        own_cgroup,
    ));
    background.spawn(dns::periodic(ctx.clone(), config.dns_refresh));
    background.spawn(crate::http::sweep_pool(ctx.http_pool.clone()));

    let mut sigterm =
        signal(SignalKind::terminate()).map_err(|e| AgentError::Io("SIGTERM handler", e))?;
    let mut sigint =
        signal(SignalKind::interrupt()).map_err(|e| AgentError::Io("SIGINT handler", e))?;
    api.set_ready(true);
    sd_notify::notify("READY=1");
    info!(listen = ?listen, attach = %attach_dir.display(), fail_mode = ?config.fail_mode, "tollgate agent ready");

    let mut proxy_task = tokio::spawn(proxy::serve(ctx.clone(), listeners, accepting_rx));
    let early = tokio::select! {
        r = &mut proxy_task => { warn!("proxy stopped on its own"); Some(r) }
        _ = sigterm.recv() => { info!("SIGTERM: draining"); None }
        _ = sigint.recv() => { info!("SIGINT: draining"); None }
    };
    sd_notify::notify("STOPPING=1");
    api.set_ready(false);
    let _ = accepting_tx.send(false);
    let mut conns = match early {
        Some(r) => r.unwrap_or_default(),
        None => proxy_task.await.unwrap_or_default(),
    };

    // Drain: open connections get `drain_timeout` to finish, then are told to stop.
    let drained = tokio::time::timeout(config.drain_timeout, async {
        while conns.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        warn!(
            open = conns.len(),
            "drain timeout: closing open connections"
        );
        let _ = stop_tx.send(true);
        let _ = tokio::time::timeout(Duration::from_secs(2), async {
            while conns.join_next().await.is_some() {}
        })
        .await;
        conns.abort_all();
    }
    let _ = admin_stop_tx.send(true);
    background.abort_all();
    drop(api);
    drop(ctx);
    // Closed mode: the pinned programs must refuse from now on, whoever still holds a
    // reference; the links themselves detach (open) or stay (closed) with the last reference.
    programs.shutdown();
    drop(programs);
    audit.close();
    drop(audit);
    // The writer flushes everything queued; it stops waiting for slots still held once nothing
    // has come for a while.
    if let Err(e) = store.shutdown().await {
        error!(error = %e, "audit store did not flush cleanly");
    }
    let _ = std::fs::remove_file(config.admin_socket());
    info!("tollgate agent stopped");
    Ok(())
}

/// IPv4 and IPv6 loopback listeners on one port (the configured one, or the v4 listener's
/// ephemeral port when 0 is configured).
fn bind_listeners(config: &Config) -> Result<Vec<tokio::net::TcpListener>, AgentError> {
    let v4 = SocketAddr::new(IpAddr::V4(config.listen_v4), config.listen_port);
    let mut listeners = proxy::bind(&[v4])?;
    let port = listeners
        .first()
        .and_then(|l| l.local_addr().ok())
        .map_or(config.listen_port, |a| a.port());
    let v6 = SocketAddr::new(IpAddr::V6(config.listen_v6), port);
    listeners.extend(proxy::bind(&[v6])?);
    Ok(listeners)
}

/// With `fail_mode = "closed"` the programs outlive the agent, and after a crash (no orderly
/// stop to mark it down) they still redirect to its port: on a port any user may bind, that user
/// would receive the enrolled tasks' connections until an agent runs again.
fn warn_if_unprivileged(port: u16, fail_mode: crate::config::FailMode) {
    let start = std::fs::read_to_string("/proc/sys/net/ipv4/ip_unprivileged_port_start")
        .ok()
        .and_then(|s| s.trim().parse::<u16>().ok())
        .unwrap_or(1024);
    if fail_mode == crate::config::FailMode::Closed && port >= start {
        warn!(
            port,
            unprivileged_from = start,
            "listen_port is a port any user may bind: after a crash of the agent, whoever binds \
             it receives the enrolled tasks' connections; use a port below {start}"
        );
    }
}

/// Binds again the run cgroups an earlier agent made that still hold processes (a command's
/// leftovers, or a run under way when the agent restarted), so that they keep their workload;
/// the empty ones are removed. Only directories owned by root count: a run cgroup is made by
/// the agent, and a name alone must not bind a cgroup someone else made to a workload.
fn restore_runs(cgroupfs: &CgroupFs, run_cgroup: &str, enrollment: &Enrollment) {
    use std::os::unix::fs::MetadataExt as _;
    let walk: Vec<(u64, String)> = cgroupfs
        .walk(run_cgroup)
        .into_iter()
        .filter(|(_, path)| {
            cgroupfs
                .dir(path)
                .ok()
                .and_then(|d| std::fs::metadata(d).ok())
                .is_some_and(|m| m.uid() == 0)
        })
        .collect();
    enrollment.restore(run_cgroup, &walk);
    let mut kept = 0;
    for path in enrollment.bound_paths() {
        if cgroupfs.remove_tree(&path).is_ok() {
            enrollment.unbind_path(&path);
        } else {
            kept += 1;
        }
    }
    if kept > 0 {
        info!(
            kept,
            "run cgroups of an earlier agent still in use: bound again"
        );
    }
}

/// Classifies every cgroup at or below `attach`; the agent's own cgroup is never enrolled.
pub(crate) fn classify_all(
    cgroupfs: &CgroupFs,
    attach: &str,
    policy: &policy::Policy,
    enrollment: &Enrollment,
    own_cgroup: &str,
) -> Vec<(u64, bool)> {
    cgroupfs
        .walk(attach)
        .into_iter()
        .map(|(id, path)| {
            let enrolled = enrollment.enrolled(policy, id, &path);
            if path == own_cgroup && enrolled {
                warn!(cgroup = %path, "the agent's own cgroup matches a workload: left unenrolled");
                return (id, false);
            }
            (id, enrolled)
        })
        .collect()
}
