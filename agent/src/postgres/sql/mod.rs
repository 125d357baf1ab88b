//! PostgreSQL statement classification for policy: what each statement of a query string does
//! (its [`StatementClass`]) and which tables it reads and writes, with a real SQL parser
//! (sqlparser-rs, `PostgreSqlDialect`), never pattern matching on text. Pure: no I/O.
//!
//! # Rules
//!
//! - **One entry per statement.** The string is tokenized once and split at top-level `;`
//!   (a `;` in parentheses, a string or a dollar-quoted body does not split). A string that is
//!   empty or only whitespace, comments and `;` gives no entry. Each statement is parsed on its
//!   own: an unparsable statement is one [`StatementClass::Unknown`] entry with no tables, and
//!   does not spoil its neighbours. A string the tokenizer rejects (an unterminated quote or
//!   comment) is one Unknown entry for the whole string.
//! - **The most consequential effect wins**, anywhere in the statement, in this order:
//!   Unknown > Dcl > Ddl > Truncate > DeleteNoWhere > UpdateNoWhere > Delete > Update > Merge >
//!   CopyFrom > Insert > CopyTo > Select > Set > Transaction > Utility
//!   ([`StatementClass::severity`]). So a data-modifying CTE
//!   (`WITH x AS (DELETE FROM t RETURNING *) SELECT * FROM x`) is a DeleteNoWhere, and Unknown
//!   anywhere makes the whole statement Unknown (fail closed).
//! - **No WHERE.** `UPDATE`/`DELETE` without a `WHERE` clause are UpdateNoWhere/DeleteNoWhere.
//!   Any `WHERE` counts, even `WHERE true`: the classifier does not evaluate predicates.
//! - **Upsert.** `INSERT ... ON CONFLICT DO UPDATE` is Update (it may rewrite existing rows);
//!   `ON CONFLICT DO NOTHING` stays Insert.
//! - **EXPLAIN.** `EXPLAIN ANALYZE <stmt>` (also `EXPLAIN (ANALYZE [true|on|1|yes]) <stmt>`; any
//!   value but an explicit false counts as on) runs `<stmt>`, so it is classified as `<stmt>`.
//!   Plain `EXPLAIN <stmt>` only plans: Utility, and every table `<stmt>` names is listed in
//!   `reads` (its would-be write targets too: planning reads their metadata). An Unknown `<stmt>`
//!   keeps the EXPLAIN Unknown.
//! - **COPY.** `COPY t FROM ...` is CopyFrom and writes `t`; `COPY t TO ...` and
//!   `COPY (query) TO ...` are CopyTo and read. `COPY ... PROGRAM` runs a shell command on the
//!   server: Unknown. (`COPY` to or from a server file keeps its class.)
//! - **New tables.** `SELECT ... INTO new_table` and `CREATE TABLE ... AS` are Ddl: they write
//!   the new table and read the sources.
//! - **Locks and functions.** `SELECT ... FOR UPDATE` is Select. Functions are not resolved:
//!   `SELECT dangerous_fn()` is Select, and a table a function reads (`pg_read_file`, `dblink`,
//!   a `regclass` cast) is not listed. Policy rules may match the statement text as a last resort.
//! - **Opaque statements are Unknown:** `DO`, `CALL`, `EXECUTE` (the prepared statement's text is
//!   not known here), `LOAD`, and any statement sqlparser cannot parse, which includes some
//!   PostgreSQL commands (`REFRESH MATERIALIZED VIEW`, `CLUSTER`, `REINDEX`, `CHECKPOINT`,
//!   `ALTER SYSTEM`, `ALTER DEFAULT PRIVILEGES`, `GRANT role TO role`, `VACUUM ANALYZE t`, `COPY`
//!   with some option spellings such as `(FREEZE on)`), and `TABLE name`.
//!   `PREPARE p AS <stmt>` is classified as `<stmt>` (a body that does not parse makes it Unknown).
//!   A string literal where PostgreSQL wants a name (`DROP TABLE 'x'`, which sqlparser accepts
//!   and PostgreSQL rejects) makes the statement Unknown; as a `SET`/`RESET` parameter, Unknown
//!   with `SET` (it could be a setting of `reading`), Dcl with `RESET`.
//! - **How the server reads SQL.** `SET client_encoding` to anything but UTF8, `SET NAMES` likewise,
//!   `SET standard_conforming_strings` off, and `set_config` of either (or of a name not given as
//!   a string literal) anywhere in a statement: Unknown (see `reading`). A function may change
//!   them inside the server all the same, so a query string the server would split otherwise
//!   under backslash escapes or a client encoding with ASCII trail bytes (a backslash it holds
//!   decides) is one Unknown entry (see `other_reading`), as is a string sqlparser's tokenizer
//!   splits otherwise than PostgreSQL's (a dollar-quote tag that is not alphanumeric ASCII, an
//!   `X'..'` or `B'..'` holding more than its digits).
//! - **Roles.** `SET ROLE`, `SET SESSION AUTHORIZATION`, `SET role = ...` and the matching
//!   `RESET` change the privileges in force: Dcl, like `GRANT`/`REVOKE` and `CREATE`/`ALTER`/`DROP`
//!   `ROLE|USER`. Other `SET`/`RESET`/`SHOW` are Set.
//! - **Cursors.** `DECLARE c CURSOR FOR <query>` is classified as `<query>`; `FETCH` is Select
//!   with no tables (the cursor's query was classified when declared); `CLOSE` is Utility.
//! - **Utility:** plain `EXPLAIN`, `VACUUM`, `ANALYZE`, `LOCK` (their tables are listed as reads),
//!   `LISTEN`, `UNLISTEN`, `NOTIFY`, `DEALLOCATE`, `DISCARD`, `CLOSE`.
//!
//! # Tables
//!
//! Names are normalized as PostgreSQL resolves them: each identifier is cut to its first 63 bytes
//! (at a character boundary), unquoted identifiers fold to lower case,
//! quoted ones keep their case and lose their quotes (a part holding `.` or `"` stays quoted), and
//! a qualified name is kept qualified (`schema.table`); nothing is resolved against
//! `search_path`, so `t` and `public.t` are different strings. Each list holds a name once, in
//! order of first appearance.
//!
//! - `reads`: tables in `FROM`/`JOIN` lists, subqueries in any clause, CTE bodies, `USING`,
//!   `UPDATE ... FROM`, `MERGE ... USING`, `INSERT ... SELECT` sources, `COPY ... TO` sources,
//!   `CREATE TABLE ... (LIKE t)`. A DML target appears in `reads` too when the statement has a
//!   `RETURNING` clause (it hands the rows back). CTE names are scoped as PostgreSQL scopes them
//!   and are not tables; a qualified name never refers to a CTE. Set-returning functions in
//!   `FROM` are not tables.
//! - `writes`: `INSERT`/`UPDATE`/`DELETE`/`MERGE` targets, `TRUNCATE` lists, `COPY ... FROM`
//!   targets, and the objects DDL creates, alters or drops, whatever their kind (table, view,
//!   index, sequence, schema, function, ...) plus the table an index, trigger or policy is
//!   attached to; `GRANT`/`REVOKE` list the tables, views, sequences or schemas whose privileges
//!   change.
//!
//! # Redaction
//!
//! [`Classified::text_redacted`] is the statement rebuilt from its tokens with every string
//! literal (any quoting, dollar-quoted bodies included) replaced by `'?'`, every number by `?`,
//! and comments by a space; identifiers, keywords and `$n` parameters are kept. When the
//! tokenizer rejects the string, a best-effort scan masks the same way, erring towards masking
//! too much.
//!
//! # Projections
//!
//! [`projection`] says what each result column of a statement is computed from, so that masking
//! by column name also covers computed columns (`upper(card_number)`, `to_json(t)`, a `UNION`
//! column); [`expr_needs_mask`] decides on one, [`per_field`] lines a projection up with a
//! RowDescription. See the `project` module for the approach and its limits.
//!
//! # Robustness and cost
//!
//! Classifications are memoized per exact query string, and per statement shape (the tokens
//! with literal values blanked; see `cache`): literal values and comments never change a class
//! or a table list, except the value of an `EXPLAIN (ANALYZE ...)` option, so statements holding
//! `EXPLAIN` are never memoized by shape. Each memo is bounded (two generations of 2048 entries;
//! shapes of at most 4 KiB, strings of at most 1 KiB).
//!
//! [`classify`] never panics. Nesting is bounded by sqlparser's default recursion limit (50);
//! deeper input is Unknown. Chains that nest without parentheses (`1+1+...`, `a UNION b UNION
//! ...`) are parsed and visited safely by sqlparser, but dropping such a tree recurses, so a
//! statement of more than [`INLINE_TOKENS`] tokens is parsed on a short-lived thread with a large
//! stack, and one of more than [`MAX_TOKENS`] tokens is not parsed at all (Unknown). A typical
//! OLTP statement costs a few microseconds (see `bench_pgbench_statements` in the tests).

mod cache;
mod class;
mod lex;
mod names;
mod other_reading;
mod prelex;
mod project;
mod reading;
mod session_names;
mod walk;

#[cfg(test)]
mod tests;

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;

use serde::Serialize;
use sqlparser::ast::Statement;
use sqlparser::dialect::PostgreSqlDialect;
use sqlparser::parser::Parser;
use sqlparser::tokenizer::Token;

pub use class::StatementClass;
pub use names::last_part;
#[cfg(test)]
use project::project;
pub use project::{Projected, expr_needs_mask, per_field, projection};
pub use reading::{is_utf8, reported_value_is_safe};
pub use session_names::{MAX_NAME_LEN, NameEffects, Names};

/// Statements with at most this many tokens (whitespace and comments not counted) are parsed on
/// the caller's stack; any parse tree they make is shallow enough to drop there.
pub const INLINE_TOKENS: usize = 4_096;
/// Statements with more tokens than this are Unknown without being parsed.
pub const MAX_TOKENS: usize = 1_000_000;
/// Stack for parsing a statement larger than [`INLINE_TOKENS`]: room to drop a parse tree as deep
/// as [`MAX_TOKENS`] (reserved address space; only the pages used are touched).
const LARGE_STACK_BYTES: usize = 256 << 20;

/// One statement of a query string, classified.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Classified {
    /// The most consequential effect of the whole statement.
    pub class: StatementClass,
    /// Tables read, normalized (see the module doc), first occurrence first.
    pub reads: Vec<String>,
    /// Tables and other objects written, normalized, first occurrence first.
    pub writes: Vec<String>,
    /// The statement with literals replaced by `'?'` / `?` and comments removed, for an audit
    /// record when the policy asks for redaction.
    pub text_redacted: String,
    /// The session's prepared statements and portals it makes or drops (`PREPARE`, `DECLARE`,
    /// …; all of them for a statement not understood).
    #[serde(skip)]
    pub names: NameEffects,
}

impl Classified {
    /// A query string of `len` bytes that is not read (over the target's limit): one Unknown
    /// statement that may do anything.
    pub fn unread(len: usize) -> Self {
        Classified::unknown(format!("[{len} bytes of SQL, not read]"))
    }

    /// A query string of `len` bytes whose classification failed (it panicked): one Unknown
    /// statement that may do anything.
    pub fn failed(len: usize) -> Self {
        Classified::unknown(format!("[{len} bytes of SQL, classification failed]"))
    }

    fn unknown(text_redacted: String) -> Self {
        Classified {
            class: StatementClass::Unknown,
            reads: Vec::new(),
            writes: Vec::new(),
            text_redacted,
            names: NameEffects::all(),
        }
    }
}

/// Classifies every statement of a (possibly multi-statement) query string, in order. Shared
/// with the memos: a hit costs a reference count, not a copy of the statements.
pub fn classify(sql: &str) -> Arc<[Classified]> {
    if let Some(hit) = cache::text(sql) {
        return hit;
    }
    let scan = prelex::scan(sql, cache::MAX_KEY);
    if let Some(hit) = scan.as_ref().and_then(|s| cache::literal_shape(&s.key)) {
        return hit;
    }
    let (classified, literals) = classify_with_literals(sql, classify_statement);
    let classified: Arc<[Classified]> = classified.into();
    if literals == 0 {
        // Only strings without literals: every distinct string of a client that inlines its
        // literals would be an entry. Those are remembered by their scan's key below.
        cache::put_text(sql, classified.clone());
    } else if let Some(scan) = scan
        && let [one] = &*classified
        && scan.agrees(classified.len(), literals, &one.text_redacted)
    {
        cache::put_literal_shape(scan.key, classified.clone());
    }
    classified
}

/// Classifies without either memo (what a memo hit must equal).
#[cfg(test)]
fn classify_fresh(sql: &str) -> Arc<[Classified]> {
    classify_with_literals(sql, parse_statement).0.into()
}

/// Classifies `sql`, each statement with `one`, and counts its literal tokens (a string the
/// tokenizer rejects counts as one).
fn classify_with_literals(
    sql: &str,
    one: fn(lex::Chunk) -> Classified,
) -> (Vec<Classified>, usize) {
    match lex::tokenize(sql) {
        Ok(tokens) => {
            let literals = tokens.iter().filter(|t| lex::is_literal(t)).count();
            if !other_reading::reads_alike(sql, &tokens) {
                // The server could read it otherwise (see `other_reading`): one Unknown entry,
                // its literals masked as tollgate reads them.
                return (vec![Classified::unknown(lex::redact(&tokens))], literals);
            }
            let classified = lex::split(tokens).into_iter().map(one).collect();
            (classified, literals)
        }
        Err(_) if sql.trim().is_empty() => (Vec::new(), 0),
        Err(_) => (vec![Classified::unknown(lex::redact_raw(sql))], 1),
    }
}

/// One statement, from the memo by shape when it is there, else parsed (and remembered).
fn classify_statement(chunk: lex::Chunk) -> Classified {
    let key = lex::cache_key(&chunk.tokens, cache::MAX_KEY);
    if let Some(hit) = key.as_deref().and_then(cache::shape) {
        return Classified {
            class: hit.class,
            reads: hit.reads,
            writes: hit.writes,
            text_redacted: lex::redact(&chunk.tokens),
            names: hit.names,
        };
    }
    let classified = parse_statement(chunk);
    if let Some(key) = key {
        cache::put_shape(
            key,
            cache::Shape {
                class: classified.class,
                reads: classified.reads.clone(),
                writes: classified.writes.clone(),
                names: classified.names.clone(),
            },
        );
    }
    classified
}

/// One statement, parsed and walked.
fn parse_statement(chunk: lex::Chunk) -> Classified {
    let text_redacted = lex::redact(&chunk.tokens);
    match run_guarded(chunk, walk_one) {
        Some(walk::Analysis {
            class: Some(class),
            reads,
            writes,
            names,
        }) => Classified {
            class,
            reads,
            writes,
            text_redacted,
            // What cannot be classified may do anything.
            names: if class == StatementClass::Unknown {
                NameEffects::all()
            } else {
                names
            },
        },
        _ => Classified::unknown(text_redacted),
    }
}

fn walk_one(statement: &Statement) -> Option<walk::Analysis> {
    Some(walk::statement(statement))
}

/// Parses one statement's tokens and applies `f` to it, never panicking and never overflowing
/// the caller's stack: a statement of more than [`INLINE_TOKENS`] tokens is parsed, analyzed and
/// dropped on a short-lived thread with a large stack, one of more than [`MAX_TOKENS`] is not
/// parsed at all (`None`), and a panic (a bug in sqlparser or here) is `None`, failing closed
/// rather than unwinding into the session.
pub(crate) fn run_guarded<T: Send + 'static>(
    chunk: lex::Chunk,
    f: fn(&Statement) -> Option<T>,
) -> Option<T> {
    if chunk.significant <= INLINE_TOKENS {
        run_caught(chunk.tokens, f)
    } else if chunk.significant <= MAX_TOKENS {
        let tokens = chunk.tokens;
        std::thread::Builder::new()
            .name("sql-parse".into())
            .stack_size(LARGE_STACK_BYTES)
            .spawn(move || run_caught(tokens, f))
            .ok()?
            .join()
            .ok()
            .flatten()
    } else {
        None
    }
}

fn run_caught<T>(tokens: Vec<Token>, f: fn(&Statement) -> Option<T>) -> Option<T> {
    catch_unwind(AssertUnwindSafe(|| parse_one(tokens).and_then(|s| f(&s))))
        .ok()
        .flatten()
}

/// Parses one statement's tokens; `None` when they do not parse as exactly one statement.
pub(crate) fn parse_one(tokens: Vec<Token>) -> Option<Statement> {
    let dialect = PostgreSqlDialect {};
    let mut statements = Parser::new(&dialect)
        .with_tokens(tokens)
        .parse_statements()
        .ok()?;
    match statements.len() {
        1 => statements.pop(),
        _ => None,
    }
}

/// Parses one statement's tokens and walks it, unguarded (for the robustness tests).
#[cfg(test)]
fn parse_and_walk(tokens: Vec<Token>) -> Option<walk::Analysis> {
    parse_one(tokens).map(|s| walk::statement(&s))
}
