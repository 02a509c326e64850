//! Hooks this tool does not need, loaded only by `keepalive doctor` to tell
//! the user whether this kernel has them (kprobes and fentry are absent or
//! refused on some kernels; elsewhere they could time the keepalive timer).

use aya_ebpf::{
    macros::{fentry, kprobe},
    programs::{FEntryContext, ProbeContext},
};

/// kprobe on tcp_keepalive_timer: reports nothing (doctor only loads and
/// attaches it). Needs CONFIG_KPROBES.
#[kprobe]
pub fn keepalive_timer_kprobe(_ctx: ProbeContext) -> u32 {
    0
}

/// fentry on tcp_keepalive_timer: reports nothing (doctor only loads and
/// attaches it). Needs BPF trampolines (x86-64 ≥ 5.5).
#[fentry(function = "tcp_keepalive_timer")]
pub fn keepalive_timer_fentry(_ctx: FEntryContext) -> u32 {
    0
}
