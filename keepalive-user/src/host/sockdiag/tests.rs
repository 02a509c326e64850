//! The socket table's decoding, and this process's own connection in it.

use std::net::{TcpListener, TcpStream};

use super::*;

#[test]
fn state_and_timer_names() {
    assert_eq!(state_name(ESTABLISHED), "ESTAB");
    assert_eq!(state_name(LISTEN), "LISTEN");
    assert_eq!(state_name(99), "UNKNOWN");
    assert_eq!(state_by_name("established"), Some(1));
    assert_eq!(state_by_name("ESTAB"), Some(1));
    assert_eq!(state_by_name("time_wait"), Some(TIME_WAIT));
    assert_eq!(state_by_name("close-wait"), Some(8));
    assert_eq!(state_by_name("bogus"), None);
    assert_eq!(
        TimerKind::from_raw(2).map(TimerKind::name),
        Some("keepalive")
    );
    assert_eq!(TimerKind::from_raw(4).map(TimerKind::name), Some("persist"));
    assert_eq!(TimerKind::from_raw(0), None);
    assert_eq!(TimerKind::from_raw(5), None);
    assert_eq!(state_bit(LISTEN) & ALL_STATES, 1 << 10);
    assert_eq!(ALL_STATES, StateFlags::all().bits());
}

#[test]
fn addresses_are_canonical_and_matched_either_way() {
    assert_eq!(
        canonical("::ffff:10.0.0.1".parse().unwrap(), 80),
        "10.0.0.1:80".parse().unwrap()
    );
    assert_eq!(
        canonical("::1".parse().unwrap(), 80),
        "[::1]:80".parse().unwrap()
    );
    let socket = TcpSocket {
        netns: 0,
        local: "10.0.0.1:4000".parse().unwrap(),
        remote: "10.0.0.2:443".parse().unwrap(),
        state: ESTABLISHED,
        inode: 1,
        uid: 0,
        timer: None,
    };
    let mapped = Wanted::conn(
        "[::ffff:10.0.0.1]:4000".parse().unwrap(),
        "10.0.0.2:443".parse().unwrap(),
    );
    assert!(mapped.matches(&socket));
    assert!(!Wanted::conn(socket.remote, socket.local).matches(&socket));
    assert!(Wanted::Port(443).matches(&socket));
    assert!(Wanted::Port(4000).matches(&socket));
    assert!(!Wanted::Port(80).matches(&socket));
}

#[test]
fn timer_fields_from_the_raw_message() {
    let mut message = vec![0u8; 16 + 72];
    message[16 + 2] = 2; // keepalive
    message[16 + 3] = 3; // probes out
    message[16 + 52..16 + 56].copy_from_slice(&1500u32.to_ne_bytes());
    assert_eq!(
        raw_timer(&message),
        Some(Timer {
            kind: TimerKind::Keepalive,
            expires_ms: 1500,
            count: 3
        })
    );
    message[16 + 2] = 0;
    assert_eq!(raw_timer(&message), None);
    assert_eq!(raw_timer(&message[..20]), None);
}

/// Runs without root: sock_diag dumps are open to every user.
#[test]
fn finds_our_own_connection() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
    let (local, remote) = (client.local_addr().unwrap(), listener.local_addr().unwrap());
    let table = dump_tcp().unwrap();
    let row = table
        .iter()
        .find(|s| s.local == local)
        .expect("our connection is listed");
    assert_eq!(row.remote, remote);
    assert_eq!(state_name(row.state), "ESTAB");
    assert!(row.inode > 0);
    assert!(table.iter().any(|s| s.local == remote && s.state == LISTEN));

    let here = NetnsScope::choose(None, false, false).unwrap();
    let exact = find(&here, Wanted::conn(local, remote), ALL_STATES).unwrap();
    assert_eq!(exact.len(), 1, "{exact:?}");
    let by_port = find(&here, Wanted::Port(remote.port()), state_bit(ESTABLISHED)).unwrap();
    assert_eq!(by_port.len(), 2, "both ends, no listener: {by_port:?}");
    let listeners = find(&here, Wanted::Port(remote.port()), state_bit(LISTEN)).unwrap();
    assert_eq!(listeners.len(), 1, "{listeners:?}");
}
