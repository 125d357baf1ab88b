//! Bounded memos of classifications. [`classify`](super::classify) is a pure function of the
//! query string, so its result is remembered per exact string (drivers that prepare statements
//! send the same text again and again); and per statement shape, keyed by
//! [`super::lex::cache_key`] (the tokens with literal values blanked), for clients that inline
//! their literals (`... WHERE id = 42`); and per key of the fast scan in [`super::prelex`], which
//! lets such a client skip the tokenizer too. A hit skips the parse and the walk (and, for an exact
//! string or a scan key, the tokenizer), which are most of the cost of classifying.
//!
//! Each memo is bounded in entries and key length, and evicts by generations: a full young
//! generation becomes the old one and the previous old one is dropped; a hit in the old
//! generation moves the entry back. That keeps the hot entries with no per-hit bookkeeping.
use std::collections::HashMap;
use std::sync::{Arc, LazyLock, Mutex};

use super::{Classified, StatementClass};
use crate::sync::lock;

/// Entries per generation.
const GENERATION: usize = 2_048;
/// Longest statement shape remembered, in bytes.
pub(crate) const MAX_KEY: usize = 4_096;
/// Longest exact query string remembered, in bytes: every distinct string of a client that
/// inlines literals is an entry, so these are kept small (at most about 2 x 2048 x 2 KiB with
/// the redacted texts).
const MAX_TEXT: usize = 1_024;

/// What is remembered of a statement's classification by shape (the redacted text is rebuilt
/// per statement).
#[derive(Debug, Clone)]
pub(crate) struct Shape {
    pub class: StatementClass,
    pub reads: Vec<String>,
    pub writes: Vec<String>,
    pub names: super::NameEffects,
}

struct Generations<V> {
    young: HashMap<String, V>,
    old: HashMap<String, V>,
}

impl<V: Clone> Generations<V> {
    fn new() -> Self {
        Generations {
            young: HashMap::new(),
            old: HashMap::new(),
        }
    }

    fn get(&mut self, key: &str) -> Option<V> {
        if let Some(v) = self.young.get(key) {
            return Some(v.clone());
        }
        let (key, v) = self.old.remove_entry(key)?;
        let hit = v.clone();
        self.insert(key, v);
        Some(hit)
    }

    fn insert(&mut self, key: String, v: V) {
        if self.young.len() >= GENERATION {
            self.old = std::mem::take(&mut self.young);
        }
        self.young.insert(key, v);
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.young.len() + self.old.len()
    }
}

static SHAPES: LazyLock<Mutex<Generations<Shape>>> =
    LazyLock::new(|| Mutex::new(Generations::new()));
static TEXTS: LazyLock<Mutex<Generations<Arc<[Classified]>>>> =
    LazyLock::new(|| Mutex::new(Generations::new()));
static LITERAL_SHAPES: LazyLock<Mutex<Generations<Arc<[Classified]>>>> =
    LazyLock::new(|| Mutex::new(Generations::new()));

/// The remembered classification of the statement shape `key`.
pub(crate) fn shape(key: &str) -> Option<Shape> {
    lock(&SHAPES).get(key)
}

/// Remembers the classification of the statement shape `key`.
pub(crate) fn put_shape(key: String, shape: Shape) {
    lock(&SHAPES).insert(key, shape);
}

/// The remembered classification of the exact query string `sql`.
pub(crate) fn text(sql: &str) -> Option<Arc<[Classified]>> {
    if sql.len() > MAX_TEXT {
        return None;
    }
    lock(&TEXTS).get(sql)
}

/// Remembers the classification of the exact query string `sql`.
pub(crate) fn put_text(sql: &str, classified: Arc<[Classified]>) {
    if sql.len() <= MAX_TEXT {
        lock(&TEXTS).insert(sql.to_owned(), classified);
    }
}

/// The remembered classification (one statement, redacted text included) of the strings whose
/// [`super::prelex`] key is `key`.
pub(crate) fn literal_shape(key: &str) -> Option<Arc<[Classified]>> {
    lock(&LITERAL_SHAPES).get(key)
}

/// Remembers the classification of the one-statement strings whose [`super::prelex`] key is
/// `key` (only once the full path agreed with the scan; see [`super::prelex::Scan::agrees`]).
pub(crate) fn put_literal_shape(key: String, classified: Arc<[Classified]>) {
    lock(&LITERAL_SHAPES).insert(key, classified);
}

/// Entries remembered by shape.
#[cfg(test)]
pub(crate) fn shapes() -> usize {
    lock(&SHAPES).len()
}
