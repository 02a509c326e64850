//! Kernel programs of keepalive, grouped by concern:
//! - `probes`: cgroup_skb egress/ingress, which recognise keepalive probes and
//!   the peer's answers on the wire;
//! - `packet`: the IP and TCP header parsing those two share;
//! - `tracepoints`: the kernel giving up (keepalive reset, socket errors),
//!   resets from the peer and closes;
//! - `sockops`: settings of new connections, and the policy that sets them;
//! - `sock`: reading a socket's keepalive settings from kernel memory;
//! - `maps`: every map and global, documented together;
//! - `optional`: kprobe and fentry stubs that only `keepalive doctor` loads.
#![no_std]
#![no_main]

mod maps;
mod optional;
mod packet;
mod probes;
mod sock;
mod sockops;
mod tracepoints;

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    // The verifier rejects any program that could reach this.
    loop {}
}

#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 4] = *b"GPL\0";
