//! `cargo xtask bench http`: what tollgate's HTTP handler costs next to a direct connection,
//! HAProxy (`mode http`) and an nginx reverse proxy, measured in one run with interleaved rounds
//! and reported as medians. It prints; it asserts nothing about speed.
//!
//! wrk (`--latency`) fetches a 1 KiB static file from an origin nginx, keep-alive and with
//! `Connection: close`, through each path: requests per second, ratio to direct, latency
//! p50/p99 and the CPU time the proxy process (and its children) spent per request
//! (`/proc/<pid>/stat` utime+stime), with its kernel part and, for tollgate, its audit writer
//! thread's part; and tollgate's requests per second and CPU over each other path's, the median
//! of the round-by-round ratios (each round runs every path, so a machine that slows down
//! between rounds moves both sides of a ratio). tollgate's target is `protocol = "http"`, `tls = "none"`,
//! with a request rule (every request decided) and the request audit (one record per request).
//!
//! Every run proves its path: the origin served the requests, the path's proxy counted them
//! (tollgate: connections allowed and audit records, one per request at least; HAProxy's
//! frontend `req_tot`; the nginx proxy's `stub_status`), and the other proxies counted nothing.
#[path = "bench_http_paths.rs"]
mod paths;
#[path = "bench_http_servers.rs"]
mod servers;
#[path = "bench_http_wrk.rs"]
mod wrk;

// The postgres bench's process helpers and tables.
use super::pg::{proc, report};

use std::{
    collections::BTreeMap,
    path::{Path as FsPath, PathBuf},
    process::{Command, Stdio},
};

use anyhow::{Context as _, bail};

use super::{
    env::{self, BenchAgent, Host, visit},
    note,
    stats::{fmt_num, median, paired_ratio},
    step,
};
use paths::{Counters, Path};
use report::{Table, ratio};
use servers::{FILE, FILE_BYTES, Haproxy, Nginx, Workdir};
use wrk::{Load, Mode, Outcome};

/// What to measure and how much.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Options {
    /// Interleaved rounds per comparison.
    rounds: usize,
    /// Seconds per wrk run.
    secs: u32,
    /// wrk `-c`.
    connections: u32,
    /// wrk `-t`.
    threads: u32,
    /// Build the agent with `--release` first.
    build: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            rounds: 5,
            secs: 10,
            connections: 50,
            threads: 2,
            build: true,
        }
    }
}

const USAGE: &str = "usage: cargo xtask bench http [--quick] [--rounds N] [--secs N] \
                     [--connections N] [--threads N] [--no-build]";

impl Options {
    fn parse(args: &[String]) -> anyhow::Result<Options> {
        let mut o = Options::default();
        let mut it = args.iter();
        while let Some(arg) = it.next() {
            let mut value = |name: &str| -> anyhow::Result<u32> {
                it.next()
                    .with_context(|| format!("{name} needs a value\n{USAGE}"))?
                    .parse()
                    .with_context(|| format!("{name}: not a number\n{USAGE}"))
            };
            match arg.as_str() {
                "--quick" => {
                    o.rounds = 3;
                    o.secs = 3;
                }
                "--rounds" => o.rounds = value(arg)?.max(1) as usize,
                "--secs" => o.secs = value(arg)?.max(1),
                "--connections" => o.connections = value(arg)?.clamp(1, 1000),
                "--threads" => o.threads = value(arg)?.max(1),
                "--no-build" => o.build = false,
                "-h" | "--help" => {
                    println!("{USAGE}");
                    std::process::exit(0);
                }
                other => bail!("unknown argument {other:?}\n{USAGE}"),
            }
        }
        // wrk refuses fewer connections than threads.
        o.threads = o.threads.min(o.connections);
        Ok(o)
    }
}

/// Programs the bench runs, and the package that has each.
const PROGRAMS: &[(&str, &str)] = &[
    (servers::NGINX, "nginx"),
    (servers::HAPROXY, "haproxy"),
    (wrk::WRK, "wrk"),
];

/// Runs the HTTP benchmark with `args`.
pub fn run(args: &[String]) -> anyhow::Result<()> {
    let opts = Options::parse(args)?;
    if !env::is_root() {
        bail!("cargo xtask bench http needs root (eBPF, cgroups)");
    }
    for (program, package) in PROGRAMS {
        if !FsPath::new(program).is_file() {
            bail!("{program} is missing: apt-get install {package} (cargo xtask setup does)");
        }
    }
    let bin = super::agent_binary(opts.build)?;
    let host = Host::detect()?;
    let load_start = loadavg();
    // Declared first, dropped last: after every process that uses it has stopped.
    let work = Workdir::create()?;

    step("origin nginx, nginx reverse proxy, HAProxy and tollgate on loopback");
    let [
        origin_port,
        origin_status,
        proxy_port,
        proxy_status,
        haproxy_port,
        agent_port,
    ] = distinct_ports()?;
    let origin = Nginx::origin(&work, origin_port, origin_status)?;
    let nginx_proxy = Nginx::proxy(&work, proxy_port, proxy_status, origin.port)?;
    let haproxy = Haproxy::start(&work, haproxy_port, origin.port)?;
    let mut agent = BenchAgent::new(&bin, &host, agent_port)?;
    let client_cgroup = agent.cgroup("wrk")?;
    let policy = policy(&agent.cgroup_path("wrk"), origin.port);
    check_policy(&bin, &work, &policy)?;
    agent.write_policy(&policy)?;
    agent.start()?;
    let agent_pid = proc::child_running(&bin)?;

    let mut bench = Bench {
        agent,
        agent_pid,
        haproxy,
        nginx_proxy,
        origin,
        opts,
        host,
        client_cgroup,
        scratch: work.path.clone(),
    };
    bench.print_settings(&load_start);
    bench.check_paths()?;
    bench.warm_up()?;
    let results = bench.measure_all()?;
    bench.agent.stop()?;

    println!();
    for mode in Mode::ALL {
        print!("{}", table(&bench.opts, mode, &results).render());
        println!();
    }
    println!(
        "(medians over {} interleaved rounds of {} s; ratio = path / direct; proxy CPU = user + \
         system time of the tollgate agent, haproxy, or the nginx proxy's master and workers, \
         per request; load average {} at start, {} at the end: the machine is shared with \
         builds, so compare columns of one run rather than absolute figures)",
        bench.opts.rounds,
        bench.opts.secs,
        load_start,
        loadavg()
    );
    Ok(())
}

/// `N` ports free now and different from each other (`env::free_port` returns the same port
/// until something binds it: each is held while the next is chosen).
fn distinct_ports<const N: usize>() -> anyhow::Result<[u16; N]> {
    let mut held = Vec::with_capacity(N);
    let mut ports = [0u16; N];
    for port in &mut ports {
        *port = env::free_port()?;
        held.push(
            std::net::TcpListener::bind(("127.0.0.1", *port))
                .with_context(|| format!("holding port {port}"))?,
        );
    }
    Ok(ports)
}

/// The bench policy: the `wrk` cgroup may fetch anything with GET from the origin, an http
/// target without TLS, masking or credential; a request rule decides (and the audit records)
/// each request.
fn policy(cgroup: &str, origin_port: u16) -> String {
    format!(
        "# cargo xtask bench http: wrk in the enrolled cgroup fetches from the origin nginx.\n\
         [[workload]]\nname = \"wrk\"\nspiffe_id = \"spiffe://bench.tollgate/wrk\"\n\
         mode = \"enforce\"\n[workload.selector]\ncgroup = {cgroup:?}\n\n\
         [[target]]\nname = \"origin\"\nprotocol = \"http\"\n\
         addresses = [\"127.0.0.1:{origin_port}\"]\n[target.http]\ntls = \"none\"\n\n\
         [[rule]]\nname = \"wrk-gets\"\nworkloads = [\"wrk\"]\ntargets = [\"origin\"]\n\
         action = \"allow\"\n[rule.http]\nmethods = [\"GET\"]\npath_prefix = [\"/\"]\n"
    )
}

/// `tollgate policy check` on the bench policy, so that a policy error shows as such.
fn check_policy(bin: &FsPath, work: &Workdir, policy: &str) -> anyhow::Result<()> {
    let dir = work.subdir("policy-check")?;
    std::fs::write(dir.join("bench.toml"), policy)?;
    let out = Command::new(bin)
        .args(["policy", "check"])
        .arg(&dir)
        .stdin(Stdio::null())
        .output()
        .context("running tollgate policy check")?;
    if !out.status.success() {
        bail!(
            "the bench policy does not load:\n{}{}\n{policy}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(())
}

/// The 1-minute load average, as text.
fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|l| l.split_whitespace().next().map(str::to_owned))
        .unwrap_or_else(|| "?".into())
}

/// The first three words of `program args` output (either stream), or the program name.
fn version(program: &str, args: &[&str]) -> String {
    Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .ok()
        .and_then(|o| {
            let text = format!(
                "{}{}",
                String::from_utf8_lossy(&o.stdout),
                String::from_utf8_lossy(&o.stderr)
            );
            let words: Vec<&str> = text.lines().next()?.split_whitespace().take(3).collect();
            Some(words.join(" "))
        })
        .filter(|l| !l.is_empty())
        .unwrap_or_else(|| program.to_owned())
}

/// Per-round figures of one (mode, path).
#[derive(Debug, Default, Clone)]
struct Series {
    /// Requests per second per round.
    rps: Vec<f64>,
    /// p50 latency per round, µs.
    p50: Vec<f64>,
    /// p99 latency per round, µs.
    p99: Vec<f64>,
    /// Proxy CPU µs per request per round (empty for direct).
    cpu: Vec<f64>,
    /// Of it, system (kernel) time.
    kernel: Vec<f64>,
    /// Of it, tollgate's audit writer thread (empty for the other paths).
    writer: Vec<f64>,
    /// Errors over all rounds (non-2xx/3xx, socket errors).
    errors: u64,
    /// tollgate audit records dropped (queue full) over all rounds.
    audit_dropped: u64,
}

/// One measured run.
struct Measurement {
    outcome: Outcome,
    cpu_per_req: Option<proc::Cpu>,
    audit_dropped: u64,
}

/// Everything the measurements use. Fields drop in order: the agent first, the origin last.
struct Bench {
    agent: BenchAgent,
    agent_pid: u32,
    haproxy: Haproxy,
    nginx_proxy: Nginx,
    origin: Nginx,
    opts: Options,
    host: Host,
    client_cgroup: PathBuf,
    scratch: PathBuf,
}

impl Bench {
    fn print_settings(&self, load: &str) {
        let o = &self.opts;
        step("settings");
        note(&format!(
            "{}: -t {} -c {} -d {}s --latency, GET {FILE} ({FILE_BYTES} bytes), keep-alive and \
             -H 'Connection: close'; {} interleaved rounds",
            version(wrk::WRK, &["-v"]),
            o.threads,
            o.connections,
            o.secs,
            o.rounds
        ));
        note(&format!(
            "origin: {}, one worker per CPU, access log off, port {}",
            version(servers::NGINX, &["-v"]),
            self.origin.port
        ));
        note(&format!(
            "tollgate: release build, client cgroup {} enrolled; target protocol http, tls \
             none, request rule wrk-gets (GET, any path), request audit on, no masking or \
             credential",
            self.client_cgroup.display()
        ));
        note(&format!(
            "{}: mode http, keep-alive both sides (http-reuse always), port {}",
            version(servers::HAPROXY, &["-v"]),
            self.haproxy.port
        ));
        note(&format!(
            "nginx reverse proxy: one worker per CPU, proxy_http_version 1.1, upstream \
             keepalive 64, port {}",
            self.nginx_proxy.port
        ));
        note(&format!(
            "machine: {} CPUs, load average {load} at start (shared with other builds)",
            std::thread::available_parallelism().map_or(0, usize::from)
        ));
    }

    /// Every counter now, once tollgate's audit records are all committed (they are then
    /// counted, and their writing does not slow the next run down).
    fn counters(&mut self) -> anyhow::Result<Counters> {
        self.agent.settle()?;
        let counter = |name: &str| {
            self.agent
                .counter(name)
                .with_context(|| format!("tollgate status has no {name} counter"))
        };
        let tollgate_allowed = counter("connections_allowed")?;
        let tollgate_audit = counter("audit_written")? + counter("audit_queue_full")?;
        Ok(Counters {
            origin: self.origin.requests()?,
            tollgate_allowed,
            tollgate_audit,
            haproxy: self.haproxy.requests()?,
            nginx_proxy: self.nginx_proxy.requests()?,
        })
    }

    /// Where wrk connects for `path`.
    fn port(&self, path: Path) -> u16 {
        match path {
            Path::Direct | Path::Tollgate => self.origin.port,
            Path::Haproxy => self.haproxy.port,
            Path::NginxProxy => self.nginx_proxy.port,
        }
    }

    /// The process whose CPU time (with its children's) a run through `path` costs.
    fn proxy_pid(&self, path: Path) -> Option<u32> {
        match path {
            Path::Direct => None,
            Path::Tollgate => Some(self.agent_pid),
            Path::Haproxy => Some(self.haproxy.pid()),
            Path::NginxProxy => Some(self.nginx_proxy.pid()),
        }
    }

    /// One request per path from this process (enrolled for tollgate): the file comes back
    /// whole, and the counters say which way it went.
    fn check_paths(&mut self) -> anyhow::Result<()> {
        step("check: one request per path, counted by the right proxy only");
        for path in Path::ALL {
            let before = self.counters()?;
            let body = {
                let _visit = (path == Path::Tollgate)
                    .then(|| visit(&self.host, &self.client_cgroup))
                    .transpose()?;
                servers::http_get(self.port(path), FILE)?
            };
            if body.len() != FILE_BYTES {
                bail!(
                    "{}: GET {FILE} returned {} bytes, not {FILE_BYTES}",
                    path.label(),
                    body.len()
                );
            }
            paths::verify(path, before, self.counters()?, 1, 1)?;
            note(&format!("{:<11} ok", path.label()));
        }
        Ok(())
    }

    /// Runs `load` through `path`, checks the path and measures the proxy's CPU.
    fn measure(&mut self, path: Path, load: &Load) -> anyhow::Result<Measurement> {
        let url = format!("http://127.0.0.1:{}{FILE}", self.port(path));
        let pid = self.proxy_pid(path);
        let dropped = |agent: &BenchAgent| agent.counter("audit_queue_full").unwrap_or(0);
        let dropped_before = dropped(&self.agent);
        let before = self.counters()?;
        let cpu_before = pid.map(servers::tree_cpu).transpose()?;
        let out = self.scratch.join("wrk.out");
        let outcome = {
            let _visit = (path == Path::Tollgate)
                .then(|| visit(&self.host, &self.client_cgroup))
                .transpose()?;
            wrk::run(load, &url, &out)
        };
        let outcome = outcome.with_context(|| format!("{} run", path.label()))?;
        // After the counters: tollgate's writer commits the run's last records meanwhile.
        let after = self.counters()?;
        let cpu_after = pid.map(servers::tree_cpu).transpose()?;
        let connections = match load.mode {
            Mode::KeepAlive => u64::from(load.connections).min(outcome.requests),
            Mode::Close => outcome.requests,
        };
        // Responses the proxy gave itself (a refusal when the audit queue is full, a 502) never
        // reached the origin: they are reported in the errors row, not taken as a wrong path.
        let served = outcome.requests.saturating_sub(outcome.errors);
        paths::verify(path, before, after, served, connections)?;
        let audit_dropped = dropped(&self.agent).saturating_sub(dropped_before);
        let cpu_per_req = cpu_before
            .zip(cpu_after)
            .map(|(b, a)| (a - b).per(outcome.requests));
        Ok(Measurement {
            outcome,
            cpu_per_req,
            audit_dropped,
        })
    }

    fn load(&self, mode: Mode, secs: u32) -> Load {
        Load {
            threads: self.opts.threads,
            connections: self.opts.connections,
            secs,
            mode,
        }
    }

    /// One second per path and mode (connections, caches, CPU frequency).
    fn warm_up(&mut self) -> anyhow::Result<()> {
        step("warm-up: 1 s per path and mode");
        for mode in Mode::ALL {
            for path in Path::ALL {
                let load = self.load(mode, 1);
                let m = self.measure(path, &load)?;
                note(&format!(
                    "{:<17} {:<11} {:>8.0} req/s",
                    mode.label(),
                    path.label(),
                    m.outcome.rps
                ));
            }
        }
        Ok(())
    }

    /// Both modes, every path, interleaved rounds.
    fn measure_all(&mut self) -> anyhow::Result<BTreeMap<(Mode, Path), Series>> {
        step("wrk: direct, tollgate, haproxy, nginx proxy; keep-alive and Connection: close");
        let mut out: BTreeMap<(Mode, Path), Series> = BTreeMap::new();
        for round in 0..self.opts.rounds {
            for path in Path::rotation(round) {
                for mode in modes(round) {
                    let load = self.load(mode, self.opts.secs);
                    let m = self.measure(path, &load)?;
                    let o = &m.outcome;
                    note(&format!(
                        "round {}/{} {:<17} {:<11} {:>8.0} req/s  p50 {:>7.0} µs  p99 {:>7.0} µs{}{}",
                        round + 1,
                        self.opts.rounds,
                        mode.label(),
                        path.label(),
                        o.rps,
                        o.p50_us,
                        o.p99_us,
                        m.cpu_per_req.map_or(String::new(), |c| format!(
                            "  proxy CPU {:.1} µs/req (kernel {:.1})",
                            c.total, c.system
                        )),
                        if o.errors > 0 {
                            format!("  {} errors", o.errors)
                        } else {
                            String::new()
                        }
                    ));
                    let s = out.entry((mode, path)).or_default();
                    s.rps.push(o.rps);
                    s.p50.push(o.p50_us);
                    s.p99.push(o.p99_us);
                    if let Some(c) = m.cpu_per_req {
                        s.cpu.push(c.total);
                        s.kernel.push(c.system);
                        if path == Path::Tollgate {
                            s.writer.push(c.writer);
                        }
                    }
                    s.errors += o.errors;
                    s.audit_dropped += m.audit_dropped;
                }
            }
        }
        Ok(out)
    }
}

/// Even rounds run keep-alive first, odd rounds `Connection: close` first.
fn modes(round: usize) -> [Mode; 2] {
    if round.is_multiple_of(2) {
        [Mode::KeepAlive, Mode::Close]
    } else {
        [Mode::Close, Mode::KeepAlive]
    }
}

/// Median of `v`, formatted; `-` when there are no values.
fn med(v: &[f64]) -> String {
    if v.is_empty() {
        "-".into()
    } else {
        fmt_num(median(v))
    }
}

fn table(o: &Options, mode: Mode, s: &BTreeMap<(Mode, Path), Series>) -> Table {
    let columns: Vec<&str> = Path::ALL.iter().map(|p| p.label()).collect();
    let mut t = Table::new(
        format!(
            "wrk -t{} -c{} -d{}s, {}, GET {FILE} ({FILE_BYTES} bytes)",
            o.threads,
            o.connections,
            o.secs,
            mode.label()
        ),
        &columns,
    );
    let empty = Series::default();
    let get = |p: Path| s.get(&(mode, p)).unwrap_or(&empty);
    let direct = get(Path::Direct);
    let each = |f: &dyn Fn(&Series) -> String| Path::ALL.iter().map(|&p| f(get(p))).collect();
    t.row("requests/s", each(&|x| med(&x.rps)));
    t.row(
        "ratio to direct",
        each(&|x| ratio(median(&x.rps) / median(&direct.rps))),
    );
    t.row("latency p50 (µs)", each(&|x| med(&x.p50)));
    t.row("latency p99 (µs)", each(&|x| med(&x.p99)));
    t.row(
        "p99 ratio to direct",
        each(&|x| ratio(median(&x.p99) / median(&direct.p99))),
    );
    t.row("proxy CPU µs/request", each(&|x| med(&x.cpu)));
    t.row("  of it kernel", each(&|x| med(&x.kernel)));
    t.row("  of it audit writer", each(&|x| med(&x.writer)));
    let ours = get(Path::Tollgate);
    t.row(
        "tollgate's req/s over this",
        each(&|x| ratio(paired_ratio(&ours.rps, &x.rps))),
    );
    t.row(
        "tollgate's CPU over this",
        each(&|x| ratio(paired_ratio(&ours.cpu, &x.cpu))),
    );
    t.row("errors (all rounds)", each(&|x| x.errors.to_string()));
    t.row(
        "audit records dropped",
        Path::ALL
            .iter()
            .map(|&p| {
                if p == Path::Tollgate {
                    get(p).audit_dropped.to_string()
                } else {
                    "-".into()
                }
            })
            .collect(),
    );
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn options_parse() {
        let q = Options::parse(&args(&["--quick", "--no-build"])).expect("parse");
        assert_eq!((q.rounds, q.secs, q.build), (3, 3, false));
        let o = Options::parse(&args(&["--connections", "1", "--threads", "4"])).expect("parse");
        assert_eq!(
            (o.connections, o.threads),
            (1, 1),
            "threads capped by connections"
        );
        assert!(Options::parse(&args(&["--secs"])).is_err());
        assert!(Options::parse(&args(&["--pings", "1"])).is_err());
        assert_eq!(Options::parse(&[]).expect("parse"), Options::default());
    }

    #[test]
    fn ports_are_distinct() {
        let ports: [u16; 4] = distinct_ports().expect("ports");
        let mut sorted = ports.to_vec();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(sorted.len(), 4, "{ports:?}");
    }

    #[test]
    fn modes_alternate() {
        assert_eq!(modes(0), [Mode::KeepAlive, Mode::Close]);
        assert_eq!(modes(1), [Mode::Close, Mode::KeepAlive]);
    }

    #[test]
    fn policy_names_the_cgroup_and_origin() {
        let p = policy("/b/wrk", 8080);
        for want in [
            "cgroup = \"/b/wrk\"",
            "addresses = [\"127.0.0.1:8080\"]",
            "protocol = \"http\"",
            "tls = \"none\"",
            "[rule.http]",
        ] {
            assert!(p.contains(want), "{want} in {p}");
        }
        let parsed: toml::Value = toml::from_str(&p).expect("TOML");
        assert!(parsed.get("rule").is_some());
    }

    #[test]
    fn table_shows_ratios_to_direct() {
        let mut s = BTreeMap::new();
        for (p, rps) in [
            (Path::Direct, 1000.0),
            (Path::Tollgate, 500.0),
            (Path::Haproxy, 800.0),
            (Path::NginxProxy, 900.0),
        ] {
            s.insert(
                (Mode::KeepAlive, p),
                Series {
                    rps: vec![rps],
                    p50: vec![100.0],
                    p99: vec![if p == Path::Direct { 200.0 } else { 300.0 }],
                    cpu: if p == Path::Direct {
                        vec![]
                    } else {
                        vec![20.0]
                    },
                    errors: 0,
                    audit_dropped: 7,
                    ..Series::default()
                },
            );
        }
        let text = table(&Options::default(), Mode::KeepAlive, &s).render();
        for want in ["0.50x", "0.90x", "1.50x", "keep-alive"] {
            assert!(text.contains(want), "{want} in {text}");
        }
        let dropped = text
            .lines()
            .find(|l| l.contains("audit records dropped"))
            .expect("row");
        assert!(dropped.contains(" 7"), "{dropped}");
    }
}
