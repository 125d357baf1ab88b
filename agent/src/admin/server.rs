//! The agent side: bind the socket, check every peer, answer requests.
use std::{
    fs,
    os::unix::fs::{FileTypeExt, PermissionsExt},
    path::{Path, PathBuf},
    sync::Arc,
    time::Duration,
};

use nix::unistd::{Gid, Group, chown};
use tokio::{
    io::BufReader,
    net::{UnixListener, UnixStream},
    sync::{Semaphore, watch},
};
use tracing::{debug, info, warn};

use super::{
    AdminApi, AdminError, auth,
    framing::{Frame, MAX_REQUEST_LINE, read_line, write_line},
    protocol::{Request, Response},
};

/// Most admin connections served at once; further ones wait in the backlog.
const MAX_CONNECTIONS: usize = 32;
/// A connection that sends no request for this long is closed.
const IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a refused peer is given to send its request before the refusal is written.
const REFUSAL_WAIT: Duration = Duration::from_secs(2);

/// Creates the admin socket at `path` with mode 0660, group `admin_group` (root's otherwise),
/// replacing a stale socket file. Returns the listener and the admin group's gid. Must run
/// inside a Tokio runtime.
pub fn bind(
    path: &Path,
    admin_group: Option<&str>,
) -> Result<(UnixListener, Option<u32>), AdminError> {
    let gid = admin_group.map(resolve_group).transpose()?;
    check_stale(path)?;
    // Bind under a temporary name, secure it, then move it into place: the socket is never
    // reachable with looser permissions.
    let tmp = temp_path(path);
    let bind_err = |e| AdminError::Bind(path.to_owned(), e);
    let _ = fs::remove_file(&tmp);
    let listener = std::os::unix::net::UnixListener::bind(&tmp).map_err(bind_err)?;
    let placed = secure(&tmp, gid)
        .and_then(|()| fs::rename(&tmp, path))
        .and_then(|()| listener.set_nonblocking(true))
        .and_then(|()| UnixListener::from_std(listener));
    match placed {
        Ok(listener) => {
            info!(path = %path.display(), gid, "admin socket listening");
            Ok((listener, gid))
        }
        Err(e) => {
            let _ = fs::remove_file(&tmp);
            Err(bind_err(e))
        }
    }
}

fn resolve_group(name: &str) -> Result<u32, AdminError> {
    match Group::from_name(name) {
        Ok(Some(g)) => Ok(g.gid.as_raw()),
        Ok(None) => Err(AdminError::UnknownGroup(name.to_owned())),
        Err(e) => Err(AdminError::GroupLookup(name.to_owned(), e)),
    }
}

/// Refuses to replace a live socket or a non-socket file.
fn check_stale(path: &Path) -> Result<(), AdminError> {
    let meta = match fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(AdminError::Bind(path.to_owned(), e)),
    };
    if !meta.file_type().is_socket() {
        return Err(AdminError::NotASocket(path.to_owned()));
    }
    match std::os::unix::net::UnixStream::connect(path) {
        Ok(_) => Err(AdminError::InUse(path.to_owned())),
        Err(_) => {
            debug!(path = %path.display(), "replacing stale admin socket");
            Ok(())
        }
    }
}

fn temp_path(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "admin.sock".into());
    path.with_file_name(format!(".{name}.{}.tmp", std::process::id()))
}

fn secure(path: &Path, gid: Option<u32>) -> std::io::Result<()> {
    if let Some(gid) = gid {
        chown(path, None, Some(Gid::from_raw(gid))).map_err(std::io::Error::from)?;
    }
    fs::set_permissions(path, fs::Permissions::from_mode(0o660))
}

/// Serves admin connections until `shutdown` turns true (or its sender is dropped).
/// Connections in progress finish their current request and close.
pub async fn serve(
    listener: UnixListener,
    api: Arc<dyn AdminApi>,
    admin_gid: Option<u32>,
    mut shutdown: watch::Receiver<bool>,
) {
    let limit = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    loop {
        if *shutdown.borrow() {
            break;
        }
        let permit = tokio::select! {
            p = limit.clone().acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => break,
            },
            changed = shutdown.changed() => {
                if changed.is_err() {
                    break;
                }
                continue;
            }
        };
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    warn!(error = %e, "admin accept failed");
                    // EMFILE and friends: do not spin.
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            changed = shutdown.changed() => {
                if changed.is_err() {
                    break;
                }
                continue;
            }
        };
        let api = api.clone();
        let shutdown = shutdown.clone();
        tokio::spawn(async move {
            connection(stream, api, admin_gid, shutdown).await;
            drop(permit);
        });
    }
    debug!("admin socket closed");
}

async fn connection(
    stream: UnixStream,
    api: Arc<dyn AdminApi>,
    admin_gid: Option<u32>,
    mut shutdown: watch::Receiver<bool>,
) {
    let cred = match stream.peer_cred() {
        Ok(c) => c,
        Err(e) => {
            warn!(error = %e, "admin peer credentials unavailable");
            return;
        }
    };
    let (uid, gid, pid) = (cred.uid(), cred.gid(), cred.pid());
    let agent_uid = nix::unistd::geteuid().as_raw();
    let ok = tokio::task::spawn_blocking(move || {
        auth::allowed(uid, gid, agent_uid, admin_gid, auth::user_groups)
    })
    .await
    .unwrap_or(false);
    let (read, mut write) = stream.into_split();
    let mut reader = BufReader::new(read);
    if !ok {
        warn!(uid, gid, ?pid, "admin peer refused");
        // Take the first request off the wire so that the client, which writes before it
        // reads, gets the refusal rather than a broken pipe.
        let _ = tokio::time::timeout(REFUSAL_WAIT, read_line(&mut reader, MAX_REQUEST_LINE)).await;
        let refusal = Response::error(format!(
            "permission denied: uid {uid} is neither root nor a member of the admin group"
        ));
        let _ = write_line(&mut write, &refusal).await;
        return;
    }
    loop {
        let frame = tokio::select! {
            f = tokio::time::timeout(IDLE_TIMEOUT, read_line(&mut reader, MAX_REQUEST_LINE)) => f,
            _ = shutdown.changed() => return,
        };
        let response = match frame {
            Err(_) => {
                debug!(uid, ?pid, "admin connection idle, closing");
                return;
            }
            Ok(Err(e)) => {
                debug!(uid, ?pid, error = %e, "admin connection read failed");
                return;
            }
            Ok(Ok(Frame::Eof)) => return,
            Ok(Ok(Frame::TooLong)) => {
                let msg = format!("request line exceeds {MAX_REQUEST_LINE} bytes");
                let _ = write_line(&mut write, &Response::error(msg)).await;
                return;
            }
            Ok(Ok(Frame::Line(line))) if line.iter().all(u8::is_ascii_whitespace) => continue,
            Ok(Ok(Frame::Line(line))) => match serde_json::from_slice::<Request>(&line) {
                Ok(req) => {
                    debug!(uid, ?pid, op = req.op(), "admin request");
                    answer(api.as_ref(), req).await
                }
                Err(e) => Response::error(format!("invalid request: {e}")),
            },
        };
        if let Err(e) = write_line(&mut write, &response).await {
            debug!(uid, ?pid, error = %e, "admin connection write failed");
            return;
        }
    }
}

async fn answer(api: &dyn AdminApi, req: Request) -> Response {
    match req {
        Request::Status => Response::Status(api.status()),
        other => api.handle(other).await,
    }
}
