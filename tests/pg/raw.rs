//! The scripted raw-protocol client ([`super::py::SCRIPT`]): runs a list of steps (pipelined
//! sends, reads up to a message type, drains) in the enrolled cgroup, and reads its report.
use serde_json::Value;

use super::{Fixture, python};

/// The report of one run of the scripted client.
#[derive(Debug, Clone)]
pub struct Script(pub Value);

impl Script {
    /// Runs `steps` (a JSON array, see [`super::py::SCRIPT`]) as the `etl` workload.
    pub fn run(f: &Fixture, steps: &Value) -> Script {
        Self::run_on(f, "orders", steps)
    }

    /// [`Self::run`] on `database`.
    pub fn run_on(f: &Fixture, database: &str, steps: &Value) -> Script {
        Self::run_with(f, database, &serde_json::json!({}), steps)
    }

    /// The report of a startup on orders with the extra startup parameters `params` (a JSON
    /// object), and no steps: the messages received up to ReadyForQuery or an error, whichever
    /// the startup ended with.
    pub fn startup_with(f: &Fixture, params: &Value) -> Value {
        report(f, "orders", params, &Value::Array(Vec::new()))
    }

    /// [`Self::run`] with the extra startup parameters `params` (a JSON object).
    pub fn run_with_params(f: &Fixture, params: &Value, steps: &Value) -> Script {
        Self::run_with(f, "orders", params, steps)
    }

    fn run_with(f: &Fixture, database: &str, params: &Value, steps: &Value) -> Script {
        let out = Script(report(f, database, params, steps));
        assert_eq!(
            out.0["startup"].as_array().and_then(|a| a.last()),
            Some(&Value::from("Z")),
            "no ReadyForQuery after the startup: {out}"
        );
        out
    }

    /// Process id of the client (the one the audit records).
    pub fn pid(&self) -> u32 {
        self.0["pid"]
            .as_u64()
            .and_then(|p| u32::try_from(p).ok())
            .unwrap_or_else(|| panic!("no pid: {self}"))
    }

    /// How the connection ended: `open`, `eof`, `reset` or `timeout`.
    pub fn end(&self) -> &str {
        self.0["end"].as_str().unwrap_or("")
    }

    /// The step at `i` (`Null` when it was not run).
    pub fn step(&self, i: usize) -> &Value {
        &self.0["steps"][i]
    }

    /// Message types received by the steps from `from` on, in order.
    pub fn types_from(&self, from: usize) -> Vec<String> {
        self.collect(from, "got", |v| v.as_str().unwrap_or("?").to_owned())
    }

    /// SQLSTATEs of the ErrorResponses received by the steps from `from` on.
    pub fn sqlstates_from(&self, from: usize) -> Vec<String> {
        self.collect(from, "errors", |e| e["C"].as_str().unwrap_or("").to_owned())
    }

    /// DataRows received by the steps from `from` on, each as the array of its values.
    pub fn rows_from(&self, from: usize) -> Vec<Value> {
        self.collect(from, "rows", Value::clone)
    }

    fn collect<T>(&self, from: usize, key: &str, each: impl Fn(&Value) -> T) -> Vec<T> {
        let steps = self.0["steps"].as_array().map_or(&[][..], Vec::as_slice);
        steps
            .iter()
            .skip(from)
            .flat_map(|s| s[key].as_array().map_or(&[][..], Vec::as_slice))
            .map(each)
            .collect()
    }
}

/// Runs the scripted client as the `etl` workload and returns its report.
fn report(f: &Fixture, database: &str, params: &Value, steps: &Value) -> Value {
    let r = python(
        super::py::SCRIPT,
        &[
            &f.pg.port.to_string(),
            &steps.to_string(),
            database,
            &params.to_string(),
        ],
    )
    .run(Some(&f.etl));
    assert!(r.ok(), "script client failed: {r:?}");
    r.json()
}

impl std::fmt::Display for Script {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:#}", self.0)
    }
}
