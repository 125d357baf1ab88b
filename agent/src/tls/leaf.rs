//! Leaf certificate names and the bounded cache of issued leaves.
use std::{
    collections::{HashMap, VecDeque},
    net::IpAddr,
    time::{Duration, Instant},
};

use rustls::pki_types::DnsName;

use super::TlsError;

/// How many distinct name sets keep their leaf; the oldest is dropped first.
pub(crate) const CACHE_CAPACITY: usize = 1024;
/// Leaves are valid 30 days; one is reissued once it is this old, so none served is near expiry.
pub(crate) const REFRESH_AFTER: Duration = Duration::from_secs(20 * 24 * 3600);

/// One subject alternative name of a leaf.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum LeafName {
    /// A DNS name, lowercase.
    Dns(String),
    /// An IP address.
    Ip(IpAddr),
}

impl LeafName {
    /// The canonical text of the name (cache key part, log field).
    pub(crate) fn text(&self) -> String {
        match self {
            LeafName::Dns(name) => name.clone(),
            LeafName::Ip(ip) => ip.to_string(),
        }
    }
}

/// Parses and canonicalizes the names of a leaf: IP addresses in their canonical form, DNS names
/// validated and lowercased, sorted and deduplicated so that equal sets share one cache entry.
pub(crate) fn normalize(names: &[String]) -> Result<Vec<LeafName>, TlsError> {
    let mut out = Vec::with_capacity(names.len());
    for name in names {
        let parsed = match name.parse::<IpAddr>() {
            Ok(ip) => LeafName::Ip(ip.to_canonical()),
            Err(_) => {
                let lower = name.to_ascii_lowercase();
                match DnsName::try_from(lower.as_str()) {
                    Ok(_) if !lower.ends_with('.') => LeafName::Dns(lower),
                    _ => return Err(TlsError::InvalidName(name.clone())),
                }
            }
        };
        out.push(parsed);
    }
    if out.is_empty() {
        return Err(TlsError::NoNames);
    }
    out.sort_by_key(LeafName::text);
    out.dedup();
    Ok(out)
}

/// The cache key of a normalized name set.
pub(crate) fn key(names: &[LeafName]) -> Vec<String> {
    names.iter().map(LeafName::text).collect()
}

struct Entry<V> {
    issued: Instant,
    leaf: V,
}

/// Issued leaves (`V`, an `Arc<CertifiedKey>` in use) by name set, bounded, first in first out.
pub(crate) struct LeafCache<V> {
    capacity: usize,
    entries: HashMap<Vec<String>, Entry<V>>,
    order: VecDeque<Vec<String>>,
}

impl<V: Clone> LeafCache<V> {
    pub(crate) fn new(capacity: usize) -> Self {
        Self {
            capacity: capacity.max(1),
            entries: HashMap::new(),
            order: VecDeque::new(),
        }
    }

    /// The cached leaf for `key`, unless it is older than [`REFRESH_AFTER`] at `now`.
    pub(crate) fn get(&self, key: &[String], now: Instant) -> Option<V> {
        let entry = self.entries.get(key)?;
        (now.saturating_duration_since(entry.issued) < REFRESH_AFTER).then(|| entry.leaf.clone())
    }

    /// Stores (or replaces) the leaf for `key`, dropping the oldest entries when full.
    pub(crate) fn insert(&mut self, key: Vec<String>, leaf: V, issued: Instant) {
        if !self.entries.contains_key(&key) {
            while self.entries.len() >= self.capacity {
                match self.order.pop_front() {
                    Some(old) => {
                        self.entries.remove(&old);
                    }
                    None => break,
                }
            }
            self.order.push_back(key.clone());
        }
        self.entries.insert(key, Entry { issued, leaf });
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(names: &[&str]) -> Vec<String> {
        names.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn normalize_cases() {
        // (input, Some(canonical key) or None for an error)
        let cases: &[(&[&str], Option<&[&str]>)] = &[
            (&["db.internal"], Some(&["db.internal"])),
            (&["DB.Internal"], Some(&["db.internal"])),
            (
                &["b.example", "a.example", "b.example"],
                Some(&["a.example", "b.example"]),
            ),
            (&["127.0.0.1"], Some(&["127.0.0.1"])),
            (&["::ffff:10.0.0.1"], Some(&["10.0.0.1"])),
            (&["::1", "localhost"], Some(&["::1", "localhost"])),
            (&["fe80:0:0::1"], Some(&["fe80::1"])),
            (&[], None),
            (&[""], None),
            (&["bad name"], None),
            (&["under_score..x"], None),
            (&["trailing.dot."], None),
            (&["[::1]"], None),
        ];
        for (input, want) in cases {
            let got = normalize(&strings(input)).map(|n| key(&n));
            match want {
                Some(want) => assert_eq!(got.unwrap(), strings(want), "{input:?}"),
                None => assert!(got.is_err(), "{input:?} accepted: {got:?}"),
            }
        }
    }

    #[test]
    fn cache_evicts_oldest_and_refreshes_stale() {
        let t0 = Instant::now();
        let mut cache = LeafCache::new(2);
        cache.insert(strings(&["a"]), 1, t0);
        cache.insert(strings(&["b"]), 2, t0);
        assert_eq!(cache.get(&strings(&["a"]), t0), Some(1));
        // Replacing an entry does not evict anything.
        cache.insert(strings(&["a"]), 11, t0);
        assert_eq!(cache.len(), 2);
        assert_eq!(cache.get(&strings(&["a"]), t0), Some(11));
        // A third name set drops the oldest ("a").
        cache.insert(strings(&["c"]), 3, t0);
        assert_eq!(cache.len(), 2);
        assert_eq!(cache.get(&strings(&["a"]), t0), None);
        assert_eq!(cache.get(&strings(&["b"]), t0), Some(2));
        assert_eq!(cache.get(&strings(&["c"]), t0), Some(3));
        // An entry as old as REFRESH_AFTER is not served.
        let later = t0 + REFRESH_AFTER;
        assert_eq!(
            cache.get(&strings(&["b"]), later - Duration::from_secs(1)),
            Some(2)
        );
        assert_eq!(cache.get(&strings(&["b"]), later), None);
    }

    #[test]
    fn normalize_keeps_kinds() {
        let names = normalize(&strings(&["10.1.2.3", "x.example"])).unwrap();
        assert_eq!(
            names,
            vec![
                LeafName::Ip("10.1.2.3".parse().unwrap()),
                LeafName::Dns("x.example".into())
            ]
        );
    }
}
