//! Builds the eBPF programs of `agent-ebpf` with the nightly toolchain and bpf-linker
//! (`cargo xtask setup` installs both) and leaves the object in `OUT_DIR` for
//! `include_bytes_aligned!`.
use anyhow::{Context as _, anyhow};

fn main() -> anyhow::Result<()> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .ok_or_else(|| anyhow!("agent has no parent directory"))?
        .join("agent-ebpf");
    let root = root.to_str().context("non-UTF-8 path")?;
    println!("cargo:rerun-if-changed={root}/../agent-common/src");
    // sqlx::migrate! embeds these; new files must trigger a rebuild.
    println!("cargo:rerun-if-changed=migrations");
    aya_build::build_ebpf(
        [aya_build::Package {
            name: "agent-ebpf",
            root_dir: root,
            ..Default::default()
        }],
        aya_build::Toolchain::default(),
    )
    .context("building the eBPF programs (run `cargo xtask setup` first)")
}
