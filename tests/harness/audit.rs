//! Audit records as printed by `tollgate sessions list --json`, read loosely (a JSON object
//! per line) so that an added field does not break the suites.
use std::net::SocketAddr;

use serde_json::Value;

/// One audit record.
#[derive(Debug, Clone)]
pub struct Session(pub Value);

impl Session {
    /// Record id, whatever its JSON type.
    pub fn id(&self) -> String {
        match &self.0["id"] {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        }
    }

    /// Process id of the connecting task.
    pub fn pid(&self) -> Option<u32> {
        self.0["pid"].as_u64().and_then(|p| u32::try_from(p).ok())
    }

    /// Original destination, v4-mapped addresses turned into IPv4.
    pub fn dst(&self) -> Option<SocketAddr> {
        let dst: SocketAddr = self.str("dst")?.parse().ok()?;
        Some(SocketAddr::new(dst.ip().to_canonical(), dst.port()))
    }

    /// `allow`, `deny` or `audit-deny`.
    pub fn decision(&self) -> &str {
        self.str("decision").unwrap_or("")
    }

    /// Name of the rule that decided.
    pub fn rule(&self) -> &str {
        self.str("rule").unwrap_or("")
    }

    /// Workload name.
    pub fn workload(&self) -> &str {
        self.str("workload").unwrap_or("")
    }

    /// Target name, if one matched.
    pub fn target(&self) -> &str {
        self.str("target").unwrap_or("")
    }

    /// Bytes from the task to the destination.
    pub fn bytes_up(&self) -> u64 {
        self.0["bytes_up"].as_u64().unwrap_or(0)
    }

    /// Bytes from the destination to the task.
    pub fn bytes_down(&self) -> u64 {
        self.0["bytes_down"].as_u64().unwrap_or(0)
    }

    /// Whether the end of the record has been written.
    pub fn ended(&self) -> bool {
        !self.0["ended_at"].is_null()
    }

    /// A string field.
    pub fn str(&self, key: &str) -> Option<&str> {
        self.0[key].as_str()
    }
}

/// Parses the JSON lines of `sessions list --json`.
pub fn parse_lines(text: &str) -> Vec<Session> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(|l| {
            Session(
                serde_json::from_str(l)
                    .unwrap_or_else(|e| panic!("sessions list: not JSON ({e}): {l}")),
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dst_is_canonical() {
        let cases = [
            (r#"{"dst":"127.0.0.1:80"}"#, Some("127.0.0.1:80")),
            (r#"{"dst":"[::ffff:127.0.0.1]:80"}"#, Some("127.0.0.1:80")),
            (r#"{"dst":"[::1]:8080"}"#, Some("[::1]:8080")),
            (r#"{"dst":null}"#, None),
        ];
        for (line, want) in cases {
            let s = &parse_lines(line)[0];
            assert_eq!(s.dst(), want.map(|w| w.parse().expect("addr")), "{line}");
        }
    }
}
