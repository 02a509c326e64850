//! Sets the `bpf_target_arch` cfg aya-ebpf needs (whose `pt_regs` to use):
//! from the host when nothing passed it in, as in a plain `cargo clippy` run;
//! keepalive-user's build.rs passes it through RUSTFLAGS.

fn main() -> aya_build::Result<()> {
    aya_build::emit_bpf_target_arch_cfg()
}
