//! Every map and global the kernel programs share with userspace, in one
//! place. The loader looks them up by these names: renaming one changes it too.
//!
//! | name           | kind                 | written by                      | read by        |
//! |----------------|----------------------|---------------------------------|----------------|
//! | `EVENTS`       | ring buffer          | probes, tracepoints, sockops    | userspace      |
//! | `LOST`         | per-CPU array        | the same, when `EVENTS` is full | userspace      |
//! | `PROBE_STATE`  | socket-local storage | probes                          | probes         |
//! | `SOCK_OFFSETS` | `.rodata` global     | userspace, at load              | sock           |
//! | `TP_LAYOUT`    | `.rodata` global     | userspace, at load              | tracepoints    |
//! | `POLICY`       | `.rodata` global     | userspace, at load              | sockops        |

use aya_ebpf::{
    bindings::bpf_spin_lock,
    btf_maps::SkStorage,
    macros::{btf_map, map},
    maps::{PerCpuArray, RingBuf},
};
use keepalive_common::{Event, Policy, SockOffsets, TracepointLayout};

/// Per-socket probe state in socket-local storage. Written by the egress
/// program (from the keepalive timer, socket locked) and by the ingress
/// program (softirq, before the socket lock), which can run at the same
/// time on two CPUs when a round trip is close to the interval: every
/// read-modify-write holds `lock`. Kernel-only: userspace never reads it.
#[repr(C)]
pub struct ProbeState {
    /// Must be a `struct bpf_spin_lock` by that BTF name for the verifier.
    pub lock: bpf_spin_lock,
    /// Probes sent since the peer last answered.
    pub unanswered: u32,
    pub last_probe_ns: u64,
    /// How long after the last probe an ACK may still be its answer (the
    /// interval in force when it left); 0 when the settings were unknown.
    pub answer_window_ns: u64,
    /// The socket's segs_in when the last probe left: any segment from the
    /// peer since then (data included, which the ingress program does not
    /// inspect) means the peer is alive and the run was answered by traffic.
    pub segs_in: u32,
    pub _pad: u32,
}

/// Events to userspace. Userspace may resize it at load time. 8 MiB holds
/// about 80 000 events: most of a second at 50 000 connections probing every
/// second, so a watcher that stalls briefly (a full stdout pipe, its first
/// sight of every connection) loses nothing; 1 MiB lost events at that load.
#[map]
pub static EVENTS: RingBuf = RingBuf::with_byte_size(1 << 23, 0);

/// Events the ring buffer could not take, per CPU; userspace reads, reports
/// and subtracts what it has reported.
#[map]
pub static LOST: PerCpuArray<u64> = PerCpuArray::with_max_entries(1, 0);

/// Per-socket probe state, created by the first probe a socket sends.
#[btf_map]
pub static PROBE_STATE: SkStorage<ProbeState> = SkStorage::new();

/// Offsets into kernel socket structures, resolved from BTF by userspace.
#[unsafe(no_mangle)]
pub static SOCK_OFFSETS: SockOffsets = SockOffsets::unknown();

/// Tracepoint field offsets, read from tracefs by userspace.
#[unsafe(no_mangle)]
pub static TP_LAYOUT: TracepointLayout = TracepointLayout::unknown();

/// Keepalive values sock_ops applies to new connections, when enabled.
#[unsafe(no_mangle)]
pub static POLICY: Policy = Policy::disabled();

/// Reads a global that userspace patches at load time; volatile so the
/// compiler does not fold in the default value.
#[macro_export]
macro_rules! global {
    ($global:ident . $field:ident) => {
        // SAFETY: a field of a live, aligned static made of plain integers;
        // volatile only because the loader rewrites it before the program runs.
        unsafe { core::ptr::read_volatile(&raw const $crate::maps::$global.$field) }
    };
}

/// Sends `event` to userspace, counting it as lost when the ring is full.
#[inline(always)]
pub fn emit(event: &Event) {
    if EVENTS.output::<Event>(event, 0).is_err()
        && let Some(lost) = LOST.get_ptr_mut(0)
    {
        // SAFETY: get_ptr_mut returned this CPU's slot of a live map, a u64
        // that only programs running on this CPU write.
        unsafe { *lost += 1 };
    }
}

/// The socket-local storage map as the helper wants it.
#[inline(always)]
pub fn probe_state_map() -> *mut core::ffi::c_void {
    core::ptr::from_ref(&PROBE_STATE).cast_mut().cast()
}
