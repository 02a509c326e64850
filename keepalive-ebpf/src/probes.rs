//! Keepalive probes and their answers, recognised on the wire.
//!
//! Both programs run on every packet of every socket below the cgroup they
//! are attached to, so the common path is one length compare: anything with
//! payload leaves at once. They always return 1: 0 would drop the packet.

use aya_ebpf::{
    bindings::{BPF_SK_STORAGE_GET_F_CREATE, bpf_sock},
    helpers::{
        bpf_ktime_get_ns, bpf_sk_fullsock, bpf_sk_storage_get, bpf_skc_to_tcp_sock, bpf_tcp_sock,
    },
    macros::cgroup_skb,
    programs::SkBuffContext,
};
use keepalive_common::{Event, KeepaliveConfig, ProbeState, kind};

use crate::{
    maps::{emit, probe_state_map},
    packet::{self, header_only_ack},
    sock,
};

/// cgroup_skb/egress: a keepalive probe leaving (no payload, seq = snd_una − 1,
/// nothing in flight or unsent); reports PROBE with its number and idle time.
/// Kernel ≥ 5.2 (bpf_tcp_sock, socket-local storage from cgroup_skb).
#[cgroup_skb(egress)]
pub fn keepalive_probe_egress(ctx: SkBuffContext) -> i32 {
    let _ = try_probe_egress(&ctx);
    1
}

/// cgroup_skb/ingress: the peer's answer to an outstanding probe (pure ACK,
/// ack = snd_una, seq = rcv_nxt); reports ACK with the round trip.
#[cgroup_skb(ingress)]
pub fn keepalive_answer_ingress(ctx: SkBuffContext) -> i32 {
    let _ = try_answer_ingress(&ctx);
    1
}

#[inline(always)]
fn socket_of(ctx: &SkBuffContext) -> Option<*mut bpf_sock> {
    // SAFETY: ctx.skb.skb is the __sk_buff the kernel passed in, valid for
    // the whole run; `sk` is a pointer-sized union member, so any read is valid.
    let sk = unsafe { (*ctx.skb.skb).__bindgen_anon_2.sk };
    if sk.is_null() { None } else { Some(sk) }
}

fn try_probe_egress(ctx: &SkBuffContext) -> Option<()> {
    let segment = header_only_ack(ctx)?;
    let sk = socket_of(ctx)?;
    // SAFETY: sk is the packet's non-null socket; the helper returns NULL
    // unless it is a TCP socket.
    let tp = unsafe { bpf_tcp_sock(sk) };
    if tp.is_null() {
        return None;
    }
    // SAFETY: tp is a non-null bpf_tcp_sock from the helper, valid for this
    // run; the verifier checks each field offset.
    let (snd_una, packets_out, segs_in) =
        unsafe { ((*tp).snd_una, (*tp).packets_out, (*tp).segs_in) };
    // The kernel sends keepalive probes only with nothing in flight; the same
    // shape with data in flight is a zero-window probe or a retransmission.
    if segment.seq != snd_una.wrapping_sub(1) || packets_out != 0 {
        return None;
    }
    // SAFETY: sk is the packet's non-null socket; the helper returns NULL
    // for request and time-wait sockets.
    let full = unsafe { bpf_sk_fullsock(sk) };
    if full.is_null() {
        return None;
    }
    // SAFETY: full is a non-null full socket, which the helper accepts; the
    // result is only an address for bpf_probe_read_kernel (0 if not TCP).
    let kernel_sk = unsafe { bpf_skc_to_tcp_sock(full.cast()) } as u64;
    if sock::keepalive_on(kernel_sk) == Some(false)
        || sock::has_unsent_data(kernel_sk) == Some(true)
    {
        return None;
    }
    // SAFETY: PROBE_STATE is a socket-storage map of ProbeState and full a
    // full socket; the helper returns NULL or that socket's value.
    let state = unsafe {
        bpf_sk_storage_get(
            probe_state_map(),
            full.cast(),
            core::ptr::null_mut(),
            u64::from(BPF_SK_STORAGE_GET_F_CREATE),
        )
    } as *mut ProbeState;
    if state.is_null() {
        return None;
    }
    // SAFETY: bpf_ktime_get_ns has no arguments and no preconditions.
    let now = unsafe { bpf_ktime_get_ns() };
    // SAFETY: non-null, aligned and alive with the socket; ProbeState is
    // plain integers. Another CPU may update it too, as with any map value.
    let state = unsafe { &mut *state };
    if state.segs_in != segs_in {
        // The peer sent something since our last probe: a new run begins.
        state.unanswered = 0;
    }
    state.unanswered += 1;
    state.last_probe_ns = now;
    state.segs_in = segs_in;
    emit(&Event {
        ts_ns: now,
        span_ns: sock::idle_ns(kernel_sk),
        kind: kind::PROBE,
        value: state.unanswered,
        tuple: packet::tuple(ctx, &segment, true),
        config: sock::keepalive_config(kernel_sk),
        socket_ino: sock::socket_inode(kernel_sk),
    });
    Some(())
}

fn try_answer_ingress(ctx: &SkBuffContext) -> Option<()> {
    let segment = header_only_ack(ctx)?;
    let sk = socket_of(ctx)?;
    // SAFETY: sk is the packet's non-null socket; the helper returns NULL
    // unless it is a TCP socket.
    let tp = unsafe { bpf_tcp_sock(sk) };
    if tp.is_null() {
        return None;
    }
    // SAFETY: tp is a non-null bpf_tcp_sock from the helper, valid for this
    // run; the verifier checks each field offset.
    let (snd_una, rcv_nxt, segs_in) = unsafe { ((*tp).snd_una, (*tp).rcv_nxt, (*tp).segs_in) };
    // A probe from the peer has seq = rcv_nxt − 1 and must not pass for an answer.
    if segment.ack_seq != snd_una || segment.seq != rcv_nxt {
        return None;
    }
    // SAFETY: sk is the packet's non-null socket; the helper returns NULL
    // for request and time-wait sockets.
    let full = unsafe { bpf_sk_fullsock(sk) };
    if full.is_null() {
        return None;
    }
    // SAFETY: PROBE_STATE is a socket-storage map of ProbeState and full a
    // full socket; without F_CREATE the helper returns NULL or its value.
    let state =
        unsafe { bpf_sk_storage_get(probe_state_map(), full.cast(), core::ptr::null_mut(), 0) }
            as *mut ProbeState;
    if state.is_null() {
        return None;
    }
    // SAFETY: non-null, aligned and alive with the socket; ProbeState is
    // plain integers. Another CPU may update it too, as with any map value.
    let state = unsafe { &mut *state };
    if state.unanswered == 0 {
        return None;
    }
    // SAFETY: bpf_ktime_get_ns has no arguments and no preconditions.
    let now = unsafe { bpf_ktime_get_ns() };
    let answered = state.unanswered;
    state.unanswered = 0;
    // segs_in is counted after this program runs: this answer is included.
    state.segs_in = segs_in.wrapping_add(1);
    emit(&Event {
        ts_ns: now,
        span_ns: now.wrapping_sub(state.last_probe_ns),
        kind: kind::ACK,
        value: answered,
        tuple: packet::tuple(ctx, &segment, false),
        config: KeepaliveConfig::default(),
        socket_ino: 0,
    });
    Some(())
}
