//! Target addresses: `HOST:PORTS`, where HOST is an IP, a CIDR or a DNS name (IPv6 in brackets)
//! and PORTS is a port, a range `LOW-HIGH` or `*`.
use std::{
    fmt,
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
    str::FromStr,
};

use ipnet::IpNet;

use super::DnsTable;

/// Why an address string is not valid.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AddressError {
    /// No `:PORTS` part.
    #[error("missing port in {0:?}: write HOST:PORT, HOST:LOW-HIGH or HOST:*")]
    MissingPort(String),
    /// IPv6 without brackets.
    #[error("IPv6 address {0:?} must be in brackets, e.g. \"[fd00::1]:443\"")]
    Unbracketed(String),
    /// `[` without a matching `]:`.
    #[error("malformed bracketed IPv6 address {0:?}: write \"[ADDR]:PORT\" or \"[ADDR/LEN]:PORT\"")]
    Brackets(String),
    /// Brackets around something that is not IPv6.
    #[error("{0:?} in brackets is not an IPv6 address or network")]
    NotIpv6(String),
    /// Not an IP, CIDR or DNS name.
    #[error("invalid host {0:?}: {1}")]
    Host(String, &'static str),
    /// Bad CIDR.
    #[error("invalid network {0:?}: {1}")]
    Network(String, String),
    /// A CIDR with bits set after the prefix.
    #[error("network {0} has host bits set; did you mean {1}?")]
    HostBits(IpNet, IpNet),
    /// `::ffff:a.b.c.d` in the policy.
    #[error("IPv4-mapped address {0}: write the IPv4 address {1} instead")]
    Mapped(String, Ipv4Addr),
    /// Bad port, port 0 or bad range.
    #[error("invalid port {0:?}: {1}")]
    Port(String, &'static str),
}

/// The host part of an address.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Host {
    /// One IP address (also a CIDR of full length, e.g. `/32`).
    Ip(IpAddr),
    /// A network.
    Net(IpNet),
    /// A DNS name, lowercase, without trailing dot; resolved by the agent (see [`DnsTable`]).
    Name(String),
}

/// The port part of an address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Ports {
    /// One port.
    One(u16),
    /// An inclusive range, `low < high`.
    Range(u16, u16),
    /// Any port (`*`).
    Any,
}

/// One target address.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Address {
    /// Which hosts.
    pub host: Host,
    /// Which ports.
    pub ports: Ports,
}

/// How specific a matching address is; greater is more specific. Order: exact IP, then DNS name,
/// then networks by prefix length (longest first); among equals, one port, then ranges (narrowest
/// first), then `*`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Specificity {
    /// 3 exact IP, 2 DNS name, 1 network.
    host_rank: u8,
    /// Prefix length of a network; 0 otherwise.
    prefix: u8,
    /// 2 one port, 1 range, 0 any.
    port_rank: u8,
    /// `u16::MAX` minus the range width (narrower is more specific); 0 otherwise.
    narrowness: u16,
}

impl Address {
    /// Whether `ip` (canonical: IPv4-mapped IPv6 already turned into IPv4) and `port` are
    /// covered. DNS names match the addresses `dns` holds for them, nothing when it has none.
    pub fn matches(&self, ip: IpAddr, port: u16, dns: &DnsTable) -> bool {
        self.ports.contains(port)
            && match &self.host {
                Host::Ip(a) => *a == ip,
                Host::Net(n) => n.contains(&ip),
                Host::Name(name) => dns
                    .0
                    .get(name)
                    .is_some_and(|ips| ips.iter().any(|a| a.to_canonical() == ip)),
            }
    }

    /// How specific this address is (to rank the targets that match a destination).
    pub fn specificity(&self) -> Specificity {
        let (host_rank, prefix) = match &self.host {
            Host::Ip(_) => (3, 0),
            Host::Name(_) => (2, 0),
            Host::Net(n) => (1, n.prefix_len()),
        };
        let (port_rank, narrowness) = match self.ports {
            Ports::One(_) => (2, 0),
            Ports::Range(lo, hi) => (1, u16::MAX - (hi - lo)),
            Ports::Any => (0, 0),
        };
        Specificity {
            host_rank,
            prefix,
            port_rank,
            narrowness,
        }
    }
}

impl Ports {
    /// Whether `port` is covered.
    pub fn contains(self, port: u16) -> bool {
        match self {
            Ports::One(p) => p == port,
            Ports::Range(lo, hi) => (lo..=hi).contains(&port),
            Ports::Any => true,
        }
    }
}

impl FromStr for Address {
    type Err = AddressError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (host, ports) = if let Some(inner) = s.strip_prefix('[') {
            let (host, ports) =
                inner
                    .split_once("]:")
                    .ok_or_else(|| match inner.split_once(']') {
                        Some((_, "")) => AddressError::MissingPort(s.to_owned()),
                        _ => AddressError::Brackets(s.to_owned()),
                    })?;
            (parse_v6_host(host)?, ports)
        } else {
            let (host, ports) = s
                .rsplit_once(':')
                .ok_or_else(|| AddressError::MissingPort(s.to_owned()))?;
            if host.contains(':') {
                return Err(AddressError::Unbracketed(s.to_owned()));
            }
            (parse_host(host)?, ports)
        };
        Ok(Self {
            host,
            ports: parse_ports(ports)?,
        })
    }
}

fn parse_v6_host(s: &str) -> Result<Host, AddressError> {
    let host = match s.split_once('/') {
        Some(_) => match s.parse::<IpNet>() {
            Ok(IpNet::V6(n)) => net_host(IpNet::V6(n))?,
            Ok(IpNet::V4(_)) => return Err(AddressError::NotIpv6(s.to_owned())),
            Err(e) => return Err(AddressError::Network(s.to_owned(), e.to_string())),
        },
        None => match s.parse::<Ipv6Addr>() {
            Ok(a) => Host::Ip(IpAddr::V6(a)),
            Err(_) => return Err(AddressError::NotIpv6(s.to_owned())),
        },
    };
    let ip = match &host {
        Host::Ip(IpAddr::V6(a)) => Some(*a),
        Host::Net(IpNet::V6(n)) => Some(n.addr()),
        _ => None,
    };
    if let Some(v4) = ip.and_then(|a| a.to_ipv4_mapped()) {
        return Err(AddressError::Mapped(s.to_owned(), v4));
    }
    Ok(host)
}

fn parse_host(s: &str) -> Result<Host, AddressError> {
    if s.contains('/') {
        return match s.parse::<IpNet>() {
            Ok(n) => net_host(n),
            Err(e) => Err(AddressError::Network(s.to_owned(), e.to_string())),
        };
    }
    if let Ok(a) = s.parse::<Ipv4Addr>() {
        return Ok(Host::Ip(IpAddr::V4(a)));
    }
    parse_dns_name(s)
        .map(Host::Name)
        .map_err(|why| AddressError::Host(s.to_owned(), why))
}

/// A network, or its one address when the prefix is full length; host bits must be clear.
fn net_host(n: IpNet) -> Result<Host, AddressError> {
    if n.trunc() != n {
        return Err(AddressError::HostBits(n, n.trunc()));
    }
    if n.prefix_len() == n.max_prefix_len() {
        return Ok(Host::Ip(n.addr()));
    }
    Ok(Host::Net(n))
}

/// Validates a DNS name (letters, digits, hyphens; labels of 1 to 63; 253 in all), returned in
/// lowercase without a trailing dot.
fn parse_dns_name(s: &str) -> Result<String, &'static str> {
    let name = s.strip_suffix('.').unwrap_or(s).to_ascii_lowercase();
    if name.is_empty() {
        return Err("empty host");
    }
    if name.len() > 253 {
        return Err("DNS name longer than 253 bytes");
    }
    for label in name.split('.') {
        if label.is_empty() || label.len() > 63 {
            return Err("DNS labels must be 1 to 63 characters long");
        }
        if !label
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        {
            return Err("DNS names may only hold letters, digits, '-' and '.'");
        }
        if label.starts_with('-') || label.ends_with('-') {
            return Err("DNS labels must not start or end with '-'");
        }
    }
    let last = name.rsplit('.').next().unwrap_or_default();
    if last.bytes().all(|b| b.is_ascii_digit()) {
        return Err("not a valid IPv4 address, nor a DNS name (last label is numeric)");
    }
    Ok(name)
}

fn parse_ports(s: &str) -> Result<Ports, AddressError> {
    let bad = |why| AddressError::Port(s.to_owned(), why);
    let port = |p: &str| -> Result<u16, AddressError> {
        if p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad("expected a number, LOW-HIGH or *"));
        }
        match p.parse::<u16>() {
            Ok(0) => Err(bad("port 0 is not a destination port")),
            Ok(n) => Ok(n),
            Err(_) => Err(bad("ports go up to 65535")),
        }
    };
    match s {
        "*" => Ok(Ports::Any),
        _ => match s.split_once('-') {
            None => Ok(Ports::One(port(s)?)),
            Some((lo, hi)) => {
                let (lo, hi) = (port(lo)?, port(hi)?);
                match lo.cmp(&hi) {
                    std::cmp::Ordering::Less => Ok(Ports::Range(lo, hi)),
                    std::cmp::Ordering::Equal => Ok(Ports::One(lo)),
                    std::cmp::Ordering::Greater => Err(bad("range is reversed (LOW-HIGH)")),
                }
            }
        },
    }
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.host {
            Host::Ip(IpAddr::V6(a)) => write!(f, "[{a}]")?,
            Host::Ip(a) => write!(f, "{a}")?,
            Host::Net(n @ IpNet::V6(_)) => write!(f, "[{n}]")?,
            Host::Net(n) => write!(f, "{n}")?,
            Host::Name(n) => f.write_str(n)?,
        }
        match self.ports {
            Ports::One(p) => write!(f, ":{p}"),
            Ports::Range(lo, hi) => write!(f, ":{lo}-{hi}"),
            Ports::Any => f.write_str(":*"),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn net(s: &str) -> Host {
        Host::Net(s.parse().unwrap())
    }

    #[test]
    fn parses_valid_addresses() {
        let cases = [
            (
                "10.0.0.5:5432",
                Host::Ip(ip("10.0.0.5")),
                Ports::One(5432),
                "10.0.0.5:5432",
            ),
            (
                "10.0.0.0/24:5432",
                net("10.0.0.0/24"),
                Ports::One(5432),
                "10.0.0.0/24:5432",
            ),
            (
                "10.0.0.5/32:1",
                Host::Ip(ip("10.0.0.5")),
                Ports::One(1),
                "10.0.0.5:1",
            ),
            ("0.0.0.0/0:*", net("0.0.0.0/0"), Ports::Any, "0.0.0.0/0:*"),
            (
                "[fd00::1]:443",
                Host::Ip(ip("fd00::1")),
                Ports::One(443),
                "[fd00::1]:443",
            ),
            (
                "[fd00::/64]:443",
                net("fd00::/64"),
                Ports::One(443),
                "[fd00::/64]:443",
            ),
            (
                "[::1]:8000-8100",
                Host::Ip(ip("::1")),
                Ports::Range(8000, 8100),
                "[::1]:8000-8100",
            ),
            (
                "Orders-DB.internal.:5432",
                Host::Name("orders-db.internal".into()),
                Ports::One(5432),
                "orders-db.internal:5432",
            ),
            (
                "localhost:80",
                Host::Name("localhost".into()),
                Ports::One(80),
                "localhost:80",
            ),
            (
                "127.0.0.1:8000-8100",
                Host::Ip(ip("127.0.0.1")),
                Ports::Range(8000, 8100),
                "",
            ),
            (
                "127.0.0.1:9-9",
                Host::Ip(ip("127.0.0.1")),
                Ports::One(9),
                "127.0.0.1:9",
            ),
            (
                "10.1.2.3:*",
                Host::Ip(ip("10.1.2.3")),
                Ports::Any,
                "10.1.2.3:*",
            ),
            (
                "10.1.2.3:65535",
                Host::Ip(ip("10.1.2.3")),
                Ports::One(65535),
                "",
            ),
        ];
        for (s, host, ports, shown) in cases {
            let a: Address = s.parse().unwrap_or_else(|e| panic!("{s}: {e}"));
            assert_eq!((&a.host, a.ports), (&host, ports), "{s}");
            let shown = if shown.is_empty() { s } else { shown };
            assert_eq!(a.to_string(), shown);
        }
    }

    #[test]
    fn rejects_invalid_addresses() {
        let cases = [
            ("10.0.0.5", "missing port"),
            ("[fd00::1]", "missing port"),
            ("fd00::1:443", "must be in brackets"),
            ("[fd00::1:443", "malformed bracketed"),
            ("[10.0.0.1]:443", "not an IPv6"),
            ("[10.0.0.0/8]:443", "not an IPv6"),
            ("[::ffff:10.0.0.1]:443", "write the IPv4 address 10.0.0.1"),
            ("10.0.0.1/24:80", "did you mean 10.0.0.0/24"),
            ("[fd00::1/64]:80", "did you mean fd00::/64"),
            ("10.0.0.0/33:80", "invalid network"),
            ("10.0.0.256:80", "last label is numeric"),
            ("1.2.3:80", "last label is numeric"),
            ("bad_name.internal:80", "may only hold"),
            ("-x.internal:80", "must not start or end"),
            ("a..b:80", "1 to 63"),
            (":80", "empty host"),
            ("10.0.0.1:0", "port 0"),
            ("10.0.0.1:65536", "up to 65535"),
            ("10.0.0.1:http", "expected a number"),
            ("10.0.0.1:", "expected a number"),
            ("10.0.0.1:+80", "expected a number"),
            ("10.0.0.1:9000-8000", "reversed"),
            ("10.0.0.1:1-*", "expected a number"),
        ];
        for (s, want) in cases {
            let err = s.parse::<Address>().map(|a| a.to_string());
            let msg = err.as_ref().map_err(ToString::to_string);
            assert!(
                msg.as_ref().is_err_and(|m| m.contains(want)),
                "{s}: {msg:?}"
            );
        }
    }

    #[test]
    fn matching() {
        let dns = DnsTable(HashMap::from([(
            "db.internal".to_owned(),
            vec![ip("10.9.9.9"), ip("::ffff:10.9.9.8"), ip("fd00::9")],
        )]));
        let cases = [
            ("10.0.0.5:5432", "10.0.0.5", 5432, true),
            ("10.0.0.5:5432", "10.0.0.5", 5433, false),
            ("10.0.0.5:5432", "10.0.0.6", 5432, false),
            ("10.0.0.0/24:5432", "10.0.0.200", 5432, true),
            ("10.0.0.0/24:5432", "10.0.1.1", 5432, false),
            ("[fd00::/64]:443", "fd00::abcd", 443, true),
            ("[fd00::/64]:443", "fd01::1", 443, false),
            ("10.0.0.0/8:*", "fd00::1", 1, false),
            ("127.0.0.1:8000-8100", "127.0.0.1", 8000, true),
            ("127.0.0.1:8000-8100", "127.0.0.1", 8100, true),
            ("127.0.0.1:8000-8100", "127.0.0.1", 8101, false),
            ("10.1.2.3:*", "10.1.2.3", 1, true),
            ("db.internal:5432", "10.9.9.9", 5432, true),
            ("db.internal:5432", "10.9.9.8", 5432, true),
            ("db.internal:5432", "fd00::9", 5432, true),
            ("db.internal:5432", "10.9.9.7", 5432, false),
            ("other.internal:5432", "10.9.9.9", 5432, false),
        ];
        for (addr, dst, port, want) in cases {
            let a: Address = addr.parse().unwrap();
            assert_eq!(
                a.matches(ip(dst), port, &dns),
                want,
                "{addr} vs {dst}:{port}"
            );
        }
    }

    #[test]
    fn specificity_order() {
        // Most specific first.
        let order = [
            "10.0.0.5:5432",
            "10.0.0.5:5000-6000",
            "10.0.0.5:*",
            "db.internal:5432",
            "db.internal:*",
            "10.0.0.0/24:5432",
            "10.0.0.0/24:5400-5500",
            "10.0.0.0/24:5000-6000",
            "10.0.0.0/16:5432",
            "0.0.0.0/0:*",
        ];
        let specs: Vec<_> = order
            .iter()
            .map(|s| s.parse::<Address>().unwrap().specificity())
            .collect();
        for (i, w) in specs.windows(2).enumerate() {
            assert!(w[0] > w[1], "{} should outrank {}", order[i], order[i + 1]);
        }
    }
}
