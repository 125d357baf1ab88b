//! A bounded memo of statement classifications, keyed by [`super::lex::cache_key`]: the
//! statement's tokens with literal values blanked. Workloads send the same few statement shapes
//! over and over with different literals (`... WHERE id = 42`); a hit skips the parse and the
//! walk, which are most of the cost of classifying.
//!
//! Bounded in entries and key length; evicts by generations (a full young generation becomes
//! the old one and the previous old one is dropped; a hit in the old generation moves the entry
//! back), which keeps the hot shapes without any per-hit bookkeeping.
use std::collections::HashMap;
use std::sync::{LazyLock, Mutex};

use super::StatementClass;
use crate::sync::lock;

/// Entries per generation.
const GENERATION: usize = 2_048;
/// Longest key remembered, in bytes.
pub(crate) const MAX_KEY: usize = 4_096;

/// What is remembered of a classification (the redacted text is rebuilt per statement).
#[derive(Debug, Clone)]
pub(crate) struct Entry {
    pub class: StatementClass,
    pub reads: Vec<String>,
    pub writes: Vec<String>,
}

#[derive(Default)]
struct Generations {
    young: HashMap<String, Entry>,
    old: HashMap<String, Entry>,
}

static CACHE: LazyLock<Mutex<Generations>> = LazyLock::new(Mutex::default);

/// The remembered classification of `key`.
pub(crate) fn get(key: &str) -> Option<Entry> {
    let mut g = lock(&CACHE);
    if let Some(e) = g.young.get(key) {
        return Some(e.clone());
    }
    let (key, entry) = g.old.remove_entry(key)?;
    let hit = entry.clone();
    insert(&mut g, key, entry);
    Some(hit)
}

/// Remembers the classification of `key`.
pub(crate) fn put(key: String, entry: Entry) {
    insert(&mut lock(&CACHE), key, entry);
}

fn insert(g: &mut Generations, key: String, entry: Entry) {
    if g.young.len() >= GENERATION {
        g.old = std::mem::take(&mut g.young);
    }
    g.young.insert(key, entry);
}

#[cfg(test)]
pub(crate) fn len() -> usize {
    let g = lock(&CACHE);
    g.young.len() + g.old.len()
}
