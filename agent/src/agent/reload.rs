//! Hot reload of the policy directory, on change (inotify) and on SIGHUP. A policy that fails
//! to load is logged with file, line and reason, and the last good one stays in force.
//! Connections keep the decision they got; new connections get the new policy.
use crate::sync::lock;
use std::{
    sync::{Arc, Mutex},
    time::{Duration, SystemTime},
};

use notify::{RecursiveMode, Watcher};
use tokio::{
    signal::unix::{SignalKind, signal},
    sync::mpsc,
};
use tracing::{error, info, warn};

use crate::{
    agent::classify_all,
    agent::dns,
    config::Config,
    policy,
    proxy::{Context, PolicyState},
};

/// Quiet time after a change before reloading (editors write in several steps).
const DEBOUNCE: Duration = Duration::from_millis(300);

/// The outcome of the last reload attempt, for `tollgate status`.
#[derive(Default)]
pub struct ReloadState {
    last_error: Mutex<Option<String>>,
}

impl ReloadState {
    /// The error of the last reload, if it failed.
    pub fn last_error(&self) -> Option<String> {
        lock(&self.last_error).clone()
    }

    fn set(&self, e: Option<String>) {
        *lock(&self.last_error) = e;
    }
}

/// Watches the policy directory and SIGHUP; reloads until the task is aborted.
pub async fn watch(ctx: Arc<Context>, config: Config, state: Arc<ReloadState>, own_cgroup: String) {
    let (tx, mut rx) = mpsc::channel::<()>(16);
    let watcher_tx = tx.clone();
    let watcher = notify::recommended_watcher(move |ev: notify::Result<notify::Event>| {
        if ev.is_ok() {
            let _ = watcher_tx.try_send(());
        }
    });
    let _watcher = match watcher {
        Ok(mut w) => match w.watch(&config.policy_dir, RecursiveMode::NonRecursive) {
            Ok(()) => Some(w),
            Err(e) => {
                warn!(dir = %config.policy_dir.display(), error = %e, "cannot watch policy dir; reload on SIGHUP only");
                None
            }
        },
        Err(e) => {
            warn!(error = %e, "no file watcher; reload on SIGHUP only");
            None
        }
    };
    let mut hup = match signal(SignalKind::hangup()) {
        Ok(s) => Some(s),
        Err(e) => {
            warn!(error = %e, "no SIGHUP handler");
            None
        }
    };
    loop {
        tokio::select! {
            Some(()) = rx.recv() => {
                // Let a burst of writes settle, then take everything that queued meanwhile.
                tokio::time::sleep(DEBOUNCE).await;
                while rx.try_recv().is_ok() {}
                reload(&ctx, &config, &state, &own_cgroup, "file change").await;
            }
            Some(()) = async { match hup.as_mut() { Some(h) => h.recv().await, None => std::future::pending().await } } => {
                reload(&ctx, &config, &state, &own_cgroup, "SIGHUP").await;
            }
        }
    }
}

/// Loads the directory; on success publishes it and reclassifies the known cgroups.
pub async fn reload(
    ctx: &Context,
    config: &Config,
    state: &ReloadState,
    own_cgroup: &str,
    why: &str,
) {
    match policy::load_dir(&config.policy_dir, config.trust_domain.as_deref()) {
        Err(errors) => {
            for e in &errors.0 {
                error!(file = %e.file.display(), line = e.line, column = e.column, reason = %e.reason, "policy rejected");
            }
            let current = ctx.policy.load();
            warn!(
                generation = current.generation,
                trigger = why,
                "policy reload failed: the previous policy stays in force"
            );
            state.set(Some(errors.to_string()));
        }
        Ok(new) => {
            let current = ctx.policy.load_full();
            if new.fingerprint() == current.policy.fingerprint() {
                state.set(None);
                return;
            }
            let names = new.dns_names();
            let generation = current.generation + 1;
            let preview = classify_all(
                ctx.resolver.cgroupfs(),
                &config.attach_cgroup,
                &new,
                &ctx.enrollment,
                own_cgroup,
            );
            // The previous attempt's error is stale once this policy is in force: clear it first,
            // so that `status` never shows the new generation next to an old error.
            state.set(None);
            ctx.policy.store(Arc::new(PolicyState {
                policy: new,
                generation,
                loaded_at: SystemTime::now(),
            }));
            reclassify(ctx, &preview);
            dns::refresh(ctx, &names).await;
            info!(generation, trigger = why, fingerprint = %ctx.policy.load().policy.fingerprint(), "policy reloaded");
        }
    }
}

/// Updates the connect hooks' view of every cgroup under the attach point; cgroups that
/// vanished are forgotten.
fn reclassify(ctx: &Context, current: &[(u64, bool)]) {
    let present: std::collections::HashSet<u64> = current.iter().map(|(id, _)| *id).collect();
    for (id, enrolled) in current {
        if let Err(e) = ctx.programs.set_cgroup(*id, *enrolled) {
            warn!(cgroup = id, error = %e, "cannot update cgroup classification");
        }
    }
    for (id, _) in ctx.programs.classified_cgroups() {
        if !present.contains(&id) {
            ctx.programs.forget_cgroup(id);
            ctx.resolver.forget(id);
        }
    }
}
