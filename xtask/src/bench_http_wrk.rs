//! `wrk` runs of `cargo xtask bench http`: a fixed number of threads and connections for a
//! fixed time against one URL, keep-alive or `Connection: close`, with `--latency`; the
//! figures read back from its text report.
use std::{path::Path, process::Command, time::Duration};

use anyhow::{Context as _, bail};

use super::proc::run_bounded;

/// The wrk binary.
pub const WRK: &str = "/usr/bin/wrk";

/// How connections are used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Mode {
    /// Keep-alive: each connection carries many requests.
    KeepAlive,
    /// `Connection: close`: one request per connection.
    Close,
}

impl Mode {
    /// Both, in table order.
    pub const ALL: [Mode; 2] = [Mode::KeepAlive, Mode::Close];

    /// Its label.
    pub fn label(self) -> &'static str {
        match self {
            Mode::KeepAlive => "keep-alive",
            Mode::Close => "Connection: close",
        }
    }
}

/// One wrk run.
#[derive(Debug, Clone)]
pub struct Load {
    /// `-t`.
    pub threads: u32,
    /// `-c`.
    pub connections: u32,
    /// `-d`, seconds.
    pub secs: u32,
    /// Keep-alive or close.
    pub mode: Mode,
}

/// What wrk reported.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Outcome {
    /// Completed requests.
    pub requests: u64,
    /// Requests per second.
    pub rps: f64,
    /// Latency p50, µs.
    pub p50_us: f64,
    /// Latency p99, µs.
    pub p99_us: f64,
    /// Non-2xx/3xx responses plus socket errors.
    pub errors: u64,
}

/// Runs wrk with `load` against `url`; its report goes to `out`.
pub fn run(load: &Load, url: &str, out: &Path) -> anyhow::Result<Outcome> {
    let mut cmd = Command::new(WRK);
    cmd.arg("-t")
        .arg(load.threads.to_string())
        .arg("-c")
        .arg(load.connections.to_string())
        .arg("-d")
        .arg(format!("{}s", load.secs))
        .arg("--latency");
    if load.mode == Mode::Close {
        cmd.args(["-H", "Connection: close"]);
    }
    cmd.arg(url);
    let limit = Duration::from_secs(u64::from(load.secs) + 30);
    let (status, text) = run_bounded(cmd, out, limit)?;
    if !status.success() {
        bail!("wrk failed ({status}):\n{text}");
    }
    parse(&text).with_context(|| format!("unexpected wrk output:\n{text}"))
}

/// Reads a wrk report (`--latency`).
pub fn parse(text: &str) -> Option<Outcome> {
    let mut o = Outcome::default();
    let mut seen = (false, false, false, false);
    for line in text.lines().map(str::trim) {
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            ["50%", v] => {
                o.p50_us = duration_us(v)?;
                seen.0 = true;
            }
            ["99%", v] => {
                o.p99_us = duration_us(v)?;
                seen.1 = true;
            }
            [n, "requests", "in", ..] => {
                o.requests = n.parse().ok()?;
                seen.2 = true;
            }
            ["Requests/sec:", v] => {
                o.rps = v.parse().ok()?;
                seen.3 = true;
            }
            ["Non-2xx", "or", "3xx", "responses:", n] => o.errors += n.parse::<u64>().ok()?,
            ["Socket", "errors:", rest @ ..] => {
                // connect 0, read 12, write 0, timeout 0
                for pair in rest.chunks(2) {
                    if let [_, n] = pair {
                        o.errors += n.trim_end_matches(',').parse::<u64>().ok()?;
                    }
                }
            }
            _ => {}
        }
    }
    (seen == (true, true, true, true)).then_some(o)
}

/// `812.00us`, `1.23ms`, `2.00s` → µs.
fn duration_us(v: &str) -> Option<f64> {
    let (number, scale) = if let Some(n) = v.strip_suffix("us") {
        (n, 1.0)
    } else if let Some(n) = v.strip_suffix("ms") {
        (n, 1e3)
    } else if let Some(n) = v.strip_suffix('m') {
        (n, 60e6)
    } else if let Some(n) = v.strip_suffix('s') {
        (n, 1e6)
    } else {
        return None;
    };
    number.parse::<f64>().ok().map(|x| x * scale)
}

#[cfg(test)]
mod tests {
    use super::*;

    const REPORT: &str = "Running 3s test @ http://127.0.0.1:8080/small.txt
  2 threads and 50 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     1.02ms  412.50us  12.31ms   88.10%
    Req/Sec    24.51k     1.20k   27.00k    70.00%
  Latency Distribution
     50%  812.00us
     75%    1.23ms
     90%    1.51ms
     99%    2.00s
  146345 requests in 3.00s, 150.12MB read
  Socket errors: connect 0, read 12, write 3, timeout 0
  Non-2xx or 3xx responses: 5
Requests/sec:  48763.55
Transfer/sec:     50.02MB
";

    #[test]
    fn parse_report() {
        let o = parse(REPORT).expect("parse");
        assert_eq!(o.requests, 146_345);
        assert!((o.rps - 48_763.55).abs() < 1e-6);
        assert!((o.p50_us - 812.0).abs() < 1e-6);
        assert!((o.p99_us - 2e6).abs() < 1e-6);
        assert_eq!(o.errors, 20);
        assert_eq!(parse("garbage"), None);
        let no_p99 = REPORT.replace("99%", "98%");
        assert_eq!(parse(&no_p99), None);
    }

    #[test]
    fn durations() {
        let cases = [
            ("812.00us", Some(812.0)),
            ("1.5ms", Some(1500.0)),
            ("2.00s", Some(2e6)),
            ("1.00m", Some(60e6)),
            ("12", None),
        ];
        for (text, want) in cases {
            assert_eq!(duration_us(text), want, "{text}");
        }
    }
}
