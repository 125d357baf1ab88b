//! A second network namespace joined to the host by a veth pair, with addresses in
//! 10.213.<x>.0/30 and fd00:213::<x>:0/126, and a peer-echo HTTP server running inside it.
//! Dropping it kills the server and deletes the namespace (and with it the veth pair).
use std::{
    fs::File,
    net::{Ipv4Addr, Ipv6Addr, SocketAddr, TcpStream},
    os::fd::AsRawFd as _,
    path::Path,
    process::{Child, Command, Stdio},
    time::Duration,
};

use super::{cleanup::NETNS_PREFIX, cleanup::next_id, poll};

/// A dual-stack HTTP server that answers `peer=<addr>` with the address it saw.
const PY_SERVER: &str = r#"
import socket, sys, threading
s = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
s.bind(("::", int(sys.argv[1])))
s.listen(64)
def serve(c, a):
    with c:
        c.settimeout(10)
        data = b""
        try:
            while b"\r\n\r\n" not in data:
                chunk = c.recv(4096)
                if not chunk:
                    return
                data += chunk
            host = a[0][7:] if a[0].startswith("::ffff:") else a[0]
            peer = "[%s]:%d" % (host, a[1]) if ":" in host else "%s:%d" % (host, a[1])
            body = ("peer=%s\n" % peer).encode()
            c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\nConnection: close\r\n\r\n" % len(body) + body)
        except OSError:
            pass
while True:
    c, a = s.accept()
    threading.Thread(target=serve, args=(c, a), daemon=True).start()
"#;

/// Port of the server inside the namespace.
pub const SERVER_PORT: u16 = 8080;

/// A network namespace with a server; removed on drop.
pub struct NetNs {
    /// Namespace name (`tgt-<pid>-<n>`).
    pub name: String,
    /// Host side of the veth pair.
    pub host_if: String,
    /// Host-side IPv4 address.
    pub host_v4: Ipv4Addr,
    /// Namespace-side IPv4 address (the server).
    pub peer_v4: Ipv4Addr,
    /// Namespace-side IPv6 address (the server).
    pub peer_v6: Ipv6Addr,
    server: Option<Child>,
}

impl NetNs {
    /// Creates the namespace, the veth pair and the addresses, and starts the server.
    pub fn create(python3: &Path) -> NetNs {
        let id = next_id();
        let name = format!("{NETNS_PREFIX}{}-{id}", std::process::id());
        // Interface names are at most 15 bytes.
        let host_if = format!("tg{:x}n{id}h", std::process::id());
        let peer_if = format!("tg{:x}n{id}p", std::process::id());
        // Picking a free subnet and creating it happen under one host-wide lock.
        let lock = HostLock::take();
        let x = free_subnet();
        let mut ns = NetNs {
            host_v4: Ipv4Addr::new(10, 213, x, 1),
            peer_v4: Ipv4Addr::new(10, 213, x, 2),
            peer_v6: format!("fd00:213::{x:x}:2").parse().expect("v6"),
            name,
            host_if,
            server: None,
        };
        let host_v6 = format!("fd00:213::{x:x}:1/126");
        let peer_v6 = format!("{}/126", ns.peer_v6);
        let host_v4 = format!("{}/30", ns.host_v4);
        let peer_v4 = format!("{}/30", ns.peer_v4);
        let (n, h, p) = (ns.name.as_str(), ns.host_if.as_str(), peer_if.as_str());
        ip(&["netns", "add", n]);
        ip(&["link", "add", h, "type", "veth", "peer", "name", p]);
        ip(&["link", "set", p, "netns", n]);
        ip(&["addr", "add", &host_v4, "dev", h]);
        ip(&["-6", "addr", "add", &host_v6, "dev", h, "nodad"]);
        ip(&["link", "set", h, "up"]);
        ip(&["-n", n, "addr", "add", &peer_v4, "dev", p]);
        ip(&["-n", n, "-6", "addr", "add", &peer_v6, "dev", p, "nodad"]);
        ip(&["-n", n, "link", "set", p, "up"]);
        ip(&["-n", n, "link", "set", "lo", "up"]);
        drop(lock);
        let server = Command::new("ip")
            .args(["netns", "exec", n])
            .arg(python3)
            .args(["-c", PY_SERVER, &SERVER_PORT.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .spawn()
            .expect("start server in netns");
        ns.server = Some(server);
        // Reachable directly from the test process (outside every attach cgroup).
        for addr in [ns.v4_addr(), ns.v6_addr()] {
            poll(Duration::from_secs(10), || {
                TcpStream::connect_timeout(&addr, Duration::from_millis(500)).ok()
            })
            .unwrap_or_else(|| panic!("netns server at {addr} not reachable"));
        }
        ns
    }

    /// The server's IPv4 address.
    pub fn v4_addr(&self) -> SocketAddr {
        SocketAddr::from((self.peer_v4, SERVER_PORT))
    }

    /// The server's IPv6 address.
    pub fn v6_addr(&self) -> SocketAddr {
        SocketAddr::from((self.peer_v6, SERVER_PORT))
    }
}

impl Drop for NetNs {
    fn drop(&mut self) {
        if let Some(mut server) = self.server.take() {
            let _ = server.kill();
            let _ = server.wait();
        }
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .stderr(Stdio::null())
            .status();
        let _ = Command::new("ip")
            .args(["link", "del", &self.host_if])
            .stderr(Stdio::null())
            .status();
    }
}

fn ip(args: &[&str]) {
    let out = Command::new("ip")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run ip");
    assert!(
        out.status.success(),
        "ip {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The first x in 1..=254 whose 10.213.x.0 is not on any host interface.
fn free_subnet() -> u8 {
    let out = Command::new("ip")
        .args(["-4", "-o", "addr", "show"])
        .output()
        .expect("ip addr show");
    let text = String::from_utf8_lossy(&out.stdout);
    (1..=254u8)
        .find(|x| !text.contains(&format!(" 10.213.{x}.")))
        .expect("a free 10.213.x.0/30 subnet")
}

/// `flock` on a file in /run, held while a subnet is chosen and configured.
struct HostLock(File);

impl HostLock {
    fn take() -> HostLock {
        let file = File::create("/run/tollgate-tests-netns.lock")
            .or_else(|_| File::create(std::env::temp_dir().join("tollgate-tests-netns.lock")))
            .expect("lock file");
        // SAFETY: flock on a file descriptor we own.
        let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX) };
        assert_eq!(rc, 0, "flock: {}", std::io::Error::last_os_error());
        HostLock(file)
    }
}
