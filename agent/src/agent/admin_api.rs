//! The agent's side of the admin socket.
use std::{
    collections::BTreeMap,
    future::Future,
    pin::Pin,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::SystemTime,
};

use tracing::{info, warn};

use crate::{
    admin::{AdminApi, Request, Response, SessionQuery, StatusReport},
    agent::reload::ReloadState,
    proxy::Context,
    store::{SessionFilter, StoreReader},
};

/// Sessions listed when the caller gives no limit.
const DEFAULT_LIST_LIMIT: u32 = 1000;

/// Facts fixed at start.
pub struct StaticInfo {
    /// Attached program names.
    pub programs: Vec<String>,
    /// "open" or "closed".
    pub fail_mode: String,
    /// Proxy listen addresses.
    pub listen: Vec<String>,
    /// cgroup v2 mount.
    pub cgroup_root: String,
    /// Attach cgroup path.
    pub attach_cgroup: String,
    /// Where `tollgate run` cgroups go.
    pub run_cgroup: String,
}

/// Implements [`AdminApi`] over the live agent state.
pub struct Api {
    ctx: Arc<Context>,
    reader: StoreReader,
    reload: Arc<ReloadState>,
    info: StaticInfo,
    ready: AtomicBool,
}

impl Api {
    /// A new API; not ready until [`Api::set_ready`].
    pub fn new(
        ctx: Arc<Context>,
        reader: StoreReader,
        reload: Arc<ReloadState>,
        info: StaticInfo,
    ) -> Self {
        Self {
            ctx,
            reader,
            reload,
            info,
            ready: AtomicBool::new(false),
        }
    }

    /// Marks the agent ready (intercepting) or not (starting, draining).
    pub fn set_ready(&self, ready: bool) {
        self.ready.store(ready, Ordering::SeqCst);
    }

    async fn sessions(&self, q: SessionQuery) -> Response {
        let now = SystemTime::now();
        let filter = match (q.since_time(now), q.until_time(now)) {
            (Ok(since), Ok(until)) => SessionFilter {
                workload: q.workload,
                since,
                until,
                limit: Some(q.limit.unwrap_or(DEFAULT_LIST_LIMIT)),
            },
            (Err(e), _) | (_, Err(e)) => return Response::error(e.0),
        };
        match self.reader.list(&filter).await {
            Ok(rows) => Response::Sessions {
                sessions: rows
                    .into_iter()
                    .filter_map(|r| serde_json::to_value(r).ok())
                    .collect(),
            },
            Err(e) => Response::error(e.to_string()),
        }
    }

    /// The session row, with its `statements` (PostgreSQL sessions) or `requests` (HTTP
    /// sessions) when it has any: as many as fit in one answer
    /// ([`crate::admin::protocol::session_json`],
    /// [`crate::cli::sessions::requests::with_requests`]).
    async fn session(&self, id: String) -> Response {
        use crate::{
            admin::protocol::{MAX_SESSION_STATEMENTS, session_json},
            cli::sessions::requests::{MAX_SESSION_REQUESTS, with_requests},
        };
        let row = match self.reader.get(&id).await {
            Ok(Some(row)) => row,
            Ok(None) => return Response::Session { session: None },
            Err(e) => return Response::error(e.to_string()),
        };
        // One more than fits: tells `session_json` whether some were left out.
        let statements = match self
            .reader
            .first_statements(&row.id, MAX_SESSION_STATEMENTS + 1)
            .await
        {
            Ok(s) => s,
            Err(e) => return Response::error(e.to_string()),
        };
        let requests = match self
            .reader
            .first_requests(&row.id, MAX_SESSION_REQUESTS + 1)
            .await
        {
            Ok(r) => r,
            Err(e) => return Response::error(e.to_string()),
        };
        match session_json(row, statements).and_then(|s| with_requests(s, requests)) {
            Ok(session) => Response::Session {
                session: Some(session),
            },
            Err(e) => Response::error(e.to_string()),
        }
    }

    fn run_enroll(&self, workload: String) -> Response {
        let state = self.ctx.policy.load();
        if state.policy.workload(&workload).is_none() {
            return Response::error(format!("no workload named {workload:?} in the live policy"));
        }
        let valid = !workload.is_empty()
            && workload
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
        if !valid {
            return Response::error(format!("workload name {workload:?} cannot name a cgroup"));
        }
        let suffix = uuid::Uuid::now_v7().simple().to_string();
        let path = format!(
            "{}/run-{workload}-{}",
            self.info.run_cgroup.trim_end_matches('/'),
            &suffix[suffix.len() - 12..]
        );
        let fs = self.ctx.resolver.cgroupfs();
        let id = match fs.create(&path) {
            Ok(id) => id,
            Err(e) => return Response::error(e.to_string()),
        };
        // Enrolled before the command can run: its first connection is already intercepted.
        self.ctx.enrollment.bind(id, path.clone(), workload.clone());
        self.ctx.resolver.remember(id, path.clone());
        if let Err(e) = self.ctx.programs.set_cgroup(id, true) {
            self.ctx.enrollment.unbind_path(&path);
            let _ = fs.remove(&path);
            return Response::error(e.to_string());
        }
        info!(cgroup = %path, %workload, "run cgroup enrolled");
        match fs.dir(&path) {
            Ok(dir) => Response::RunEnrolled {
                cgroup: dir.display().to_string(),
            },
            Err(e) => Response::error(e.to_string()),
        }
    }

    fn run_release(&self, cgroup_dir: String) -> Response {
        let fs = self.ctx.resolver.cgroupfs();
        let Some(rel) = cgroup_dir
            .strip_prefix(fs.root().to_str().unwrap_or_default())
            .map(|r| format!("/{}", r.trim_start_matches('/')))
        else {
            return Response::error(format!("{cgroup_dir} is not under {}", fs.root().display()));
        };
        let Some(id) = self.ctx.enrollment.bound_at(&rel) else {
            return Response::error(format!("{rel} is not a run cgroup of this agent"));
        };
        if let Err(e) = fs.remove_tree(&rel) {
            // Still populated (a process the command left behind): it stays bound to the
            // workload, never direct; the binding ends with the cgroup (at the agent's next
            // start, which removes it once empty).
            warn!(cgroup = %rel, error = %e, "run cgroup still in use: it stays bound");
            return Response::Ok;
        }
        self.ctx.enrollment.unbind_path(&rel);
        self.ctx.programs.forget_cgroup(id);
        self.ctx.resolver.forget(id);
        Response::Ok
    }
}

impl AdminApi for Api {
    fn status(&self) -> StatusReport {
        let state = self.ctx.policy.load();
        let ebpf = self.ctx.programs.counters();
        let s = &self.ctx.stats;
        let store = self.ctx.audit.stats();
        let ld = |c: &std::sync::atomic::AtomicU64| c.load(Ordering::Relaxed);
        let counters = BTreeMap::from([
            ("ebpf_redirected".to_string(), ebpf.redirected),
            ("ebpf_unclassified".into(), ebpf.unknown),
            ("ebpf_direct".into(), ebpf.direct),
            ("ebpf_refused".into(), ebpf.refused),
            ("ebpf_agent_sockets".into(), ebpf.marked),
            ("connections_accepted".into(), ld(&s.accepted)),
            ("connections_active".into(), ld(&s.active)),
            ("connections_allowed".into(), ld(&s.allowed)),
            ("connections_denied".into(), ld(&s.denied)),
            ("connections_passthrough".into(), ld(&s.passthrough)),
            ("connections_without_metadata".into(), ld(&s.no_metadata)),
            ("connections_over_limit".into(), ld(&s.over_limit)),
            ("connections_audit_refused".into(), ld(&s.audit_refused)),
            ("upstream_failures".into(), ld(&s.upstream_failed)),
            ("audit_written".into(), store.written),
            ("audit_commits".into(), store.commits),
            ("audit_failed".into(), store.failed),
            ("audit_write_errors".into(), store.write_errors),
            ("audit_queue_full".into(), store.queue_full),
            ("audit_room_waits".into(), store.room_waits),
            ("audit_session_waits".into(), store.session_waits),
            ("audit_unheld".into(), store.unheld),
            ("audit_unspooled".into(), store.unspooled),
            ("audit_queued".into(), store.queued as u64),
            ("audit_pending".into(), store.pending as u64),
            ("audit_in_flight".into(), store.in_flight as u64),
        ]);
        StatusReport {
            ready: self.ready.load(Ordering::SeqCst) && !self.info.programs.is_empty(),
            attached: !self.info.programs.is_empty(),
            programs: self.info.programs.clone(),
            fail_mode: self.info.fail_mode.clone(),
            listen: self.info.listen.clone(),
            cgroup_root: self.info.cgroup_root.clone(),
            attach_cgroup: self.info.attach_cgroup.clone(),
            policy_generation: state.generation,
            policy_fingerprint: state.policy.fingerprint(),
            policy_loaded_at: humantime::format_rfc3339_micros(state.loaded_at).to_string(),
            last_reload_error: self.reload.last_error(),
            workloads: state
                .policy
                .workloads()
                .iter()
                .map(|w| w.name.clone())
                .collect(),
            counters,
            version: env!("CARGO_PKG_VERSION").into(),
        }
    }

    fn handle<'a>(&'a self, req: Request) -> Pin<Box<dyn Future<Output = Response> + Send + 'a>> {
        Box::pin(async move {
            match req {
                Request::Status => Response::Status(self.status()),
                Request::Sessions { filter } => self.sessions(filter).await,
                Request::Session { id } => self.session(id).await,
                Request::RunEnroll { workload } => self.run_enroll(workload),
                Request::RunRelease { cgroup } => self.run_release(cgroup),
            }
        })
    }
}
