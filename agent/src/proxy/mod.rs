//! The transparent proxy: loopback listeners that accept redirected connections and hand each
//! to [`handoff::handle`].
pub mod approval;
pub mod context;
pub mod copy;
pub mod handoff;
pub mod upstream;

use std::{io, net::SocketAddr, sync::Arc};

use tokio::{net::TcpListener, sync::watch, task::JoinSet};
use tracing::{debug, error, info};

pub use context::{Context, PolicyState, ProxySettings, Stats};

/// Errors of this layer.
#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    /// A listener could not be bound.
    #[error("binding proxy listener {0}: {1}")]
    Bind(SocketAddr, #[source] io::Error),
}

/// Binds a listener per address (IPv6 ones with `IPV6_V6ONLY`), with `TCP_NODELAY` on: Linux
/// copies it to each accepted socket, so the protocol handlers never wait for Nagle on the
/// client side without a `setsockopt` per connection.
pub fn bind(addrs: &[SocketAddr]) -> Result<Vec<TcpListener>, ProxyError> {
    addrs
        .iter()
        .map(|&addr| {
            let sock = match addr {
                SocketAddr::V4(_) => tokio::net::TcpSocket::new_v4(),
                SocketAddr::V6(_) => tokio::net::TcpSocket::new_v6(),
            }
            .map_err(|e| ProxyError::Bind(addr, e))?;
            sock.set_reuseaddr(true)
                .map_err(|e| ProxyError::Bind(addr, e))?;
            sock.set_nodelay(true)
                .map_err(|e| ProxyError::Bind(addr, e))?;
            sock.bind(addr).map_err(|e| ProxyError::Bind(addr, e))?;
            sock.listen(1024).map_err(|e| ProxyError::Bind(addr, e))
        })
        .collect()
}

/// Accepts on every listener until `accepting` turns false; returns the connection tasks still
/// running, for the caller to drain.
pub async fn serve(
    ctx: Arc<Context>,
    listeners: Vec<TcpListener>,
    mut accepting: watch::Receiver<bool>,
) -> JoinSet<()> {
    let mut tasks = JoinSet::new();
    let (tx, mut rx) = tokio::sync::mpsc::channel(256);
    let mut acceptors = JoinSet::new();
    for l in listeners {
        let tx = tx.clone();
        // An accepted socket's local address is its listener's, unless that is a wildcard: no
        // `getsockname` per connection then.
        let fixed = l.local_addr().ok().filter(|a| !a.ip().is_unspecified());
        acceptors.spawn(async move {
            loop {
                match l.accept().await {
                    Ok((stream, peer)) => {
                        let local = fixed.map_or_else(|| stream.local_addr(), Ok);
                        if tx.send((stream, peer, local)).await.is_err() {
                            return;
                        }
                    }
                    Err(e) => {
                        error!(error = %e, "accept failed");
                        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    }
                }
            }
        });
    }
    drop(tx);
    loop {
        tokio::select! {
            conn = rx.recv() => {
                let Some((stream, peer, local)) = conn else { break };
                Stats::inc(&ctx.stats.accepted);
                let local = match local {
                    Ok(a) => a,
                    Err(e) => { debug!(error = %e, "accepted socket has no local address"); continue; }
                };
                let Ok(permit) = ctx.limit.clone().try_acquire_owned() else {
                    Stats::inc(&ctx.stats.over_limit);
                    // Its metadata goes with it: left behind, it would wait for the next
                    // connection from the same address and port, whoever made it.
                    let _ = ctx.programs.take_conn(&handoff::tuple_key(peer, local));
                    reset(stream);
                    continue;
                };
                let ctx = ctx.clone();
                tasks.spawn(async move {
                    ctx.stats.active.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    handoff::handle(ctx.clone(), stream, peer, local).await;
                    ctx.stats.active.fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
                    drop(permit);
                });
            }
            _ = accepting.wait_for(|a| !*a) => break,
        }
        // Reap finished connection tasks so the set does not grow.
        while tasks.try_join_next().is_some() {}
    }
    acceptors.abort_all();
    info!("proxy stopped accepting");
    tasks
}

/// Closes with RST (`SO_LINGER` 0) so the client sees the connection refused at once rather
/// than a clean EOF it might take for an empty answer.
pub fn reset(stream: tokio::net::TcpStream) {
    use std::os::fd::AsRawFd;
    let linger = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    // SAFETY: valid fd, pointer to a `linger` and its size. Zero linger never blocks on close.
    unsafe {
        libc::setsockopt(
            stream.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            (&linger as *const libc::linger).cast(),
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        )
    };
    drop(stream);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Accepted sockets inherit `TCP_NODELAY` from the listener (the handlers rely on it and no
    /// longer set it per connection), and their local address is the listener's (no
    /// `getsockname` per connection).
    #[tokio::test]
    async fn accepted_sockets_take_nodelay_and_address_from_the_listener() {
        let listeners = bind(&["127.0.0.1:0".parse().expect("addr")]).expect("bind");
        let listener = &listeners[0];
        let addr = listener.local_addr().expect("local");
        let _client = tokio::net::TcpStream::connect(addr).await.expect("connect");
        let (accepted, _) = listener.accept().await.expect("accept");
        assert!(accepted.nodelay().expect("nodelay"));
        assert_eq!(accepted.local_addr().expect("local"), addr);
    }
}
