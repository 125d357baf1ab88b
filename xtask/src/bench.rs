//! `cargo xtask bench`: placeholder, replaced by the benchmark harness.

/// Runs the benchmarks with `args`.
pub fn run(args: &[String]) -> anyhow::Result<()> {
    let _ = args;
    anyhow::bail!("cargo xtask bench: not written yet")
}
