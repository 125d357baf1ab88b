// Rebuild when bpf-linker changes (it is the linker of every program here).
fn main() {
    if let Ok(path) = which::which("bpf-linker") {
        println!("cargo:rerun-if-changed={}", path.display());
    }
}
