//! Keepalive probes and their answers, recognised on the wire.
//!
//! Both programs run on every packet of every socket below the cgroup they
//! are attached to, so the common path is one length compare: anything with
//! payload leaves at once. They always return 1: 0 would drop the packet.

use aya_ebpf::{
    bindings::{BPF_SK_STORAGE_GET_F_CREATE, bpf_sock},
    helpers::{
        bpf_ktime_get_ns, bpf_sk_fullsock, bpf_sk_storage_get, bpf_skc_to_tcp_sock, bpf_spin_lock,
        bpf_spin_unlock, bpf_tcp_sock,
    },
    macros::cgroup_skb,
    programs::SkBuffContext,
};
use keepalive_common::{Event, KeepaliveConfig, kind};

use crate::{
    maps::{ProbeState, emit, probe_state_map},
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
    let config = sock::keepalive_config(kernel_sk);
    let answer_window_ns = u64::from(config.intvl_s) * 1_000_000_000;
    // SAFETY: state is this socket's non-null, aligned value, alive with the
    // socket; the lock in it serialises us with the ingress program.
    let (number, answered_by_traffic) = unsafe {
        let state = &mut *state;
        bpf_spin_lock(&raw mut state.lock);
        let mut answered_by_traffic = 0;
        if state.segs_in != segs_in {
            // The peer sent something since our last probe: that run was
            // answered by traffic, and a new one begins.
            answered_by_traffic = state.unanswered;
            state.unanswered = 0;
        }
        state.unanswered += 1;
        state.last_probe_ns = now;
        state.answer_window_ns = answer_window_ns;
        state.segs_in = segs_in;
        let number = state.unanswered;
        bpf_spin_unlock(&raw mut state.lock);
        (number, answered_by_traffic)
    };
    let tuple = packet::tuple(ctx, &segment, true);
    let mut event = Event {
        ts_ns: now,
        span_ns: 0,
        kind: kind::ANSWERED_BY_TRAFFIC,
        value: answered_by_traffic,
        tuple,
        config,
        socket_ino: sock::socket_inode(kernel_sk),
        ..Event::default()
    };
    sock::identity(kernel_sk, &mut event);
    if answered_by_traffic > 0 {
        emit(&event);
    }
    event.kind = kind::PROBE;
    event.value = number;
    event.span_ns = sock::idle_ns(kernel_sk);
    emit(&event);
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
    // Most pure ACKs come with no probe out: leave before taking the lock.
    // Racing with a probe leaving now is harmless: its answer comes later.
    // SAFETY: state is this socket's non-null, aligned value; a plain u32 read.
    if unsafe { core::ptr::read_volatile(&raw const (*state).unanswered) } == 0 {
        return None;
    }
    // SAFETY: bpf_ktime_get_ns has no arguments and no preconditions.
    let now = unsafe { bpf_ktime_get_ns() };
    // SAFETY: state is this socket's non-null, aligned value, alive with the
    // socket; the lock in it serialises us with the egress program.
    let (kind, number, rtt_ns) = unsafe {
        let state = &mut *state;
        bpf_spin_lock(&raw mut state.lock);
        let number = state.unanswered;
        let since_probe = now.wrapping_sub(state.last_probe_ns);
        // An ACK answers the probe only if nothing else came from the peer
        // since it left and it came within the probe's interval; otherwise
        // something else (data, a late or unmatched segment) proved the peer
        // alive, and no round trip can be told.
        let answer = state.segs_in == segs_in
            && (state.answer_window_ns == 0 || since_probe <= state.answer_window_ns);
        if number > 0 {
            state.unanswered = 0;
            // segs_in is counted after this program runs: this one included.
            state.segs_in = segs_in.wrapping_add(1);
        }
        bpf_spin_unlock(&raw mut state.lock);
        if answer {
            (kind::ACK, number, since_probe)
        } else {
            (kind::ANSWERED_BY_TRAFFIC, number, 0)
        }
    };
    if number == 0 {
        return None;
    }
    // SAFETY: full is a non-null full socket, which the helper accepts; the
    // result is only an address for bpf_probe_read_kernel (0 if not TCP).
    let kernel_sk = unsafe { bpf_skc_to_tcp_sock(full.cast()) } as u64;
    let mut event = Event {
        ts_ns: now,
        span_ns: rtt_ns,
        kind,
        value: number,
        tuple: packet::tuple(ctx, &segment, false),
        config: KeepaliveConfig::default(),
        socket_ino: 0,
        ..Event::default()
    };
    sock::identity(kernel_sk, &mut event);
    emit(&event);
    Some(())
}
