fn main() {
    println!("{}", tollgate::ebpf::OBJECT.len());
}
