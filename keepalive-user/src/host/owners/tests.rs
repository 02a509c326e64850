//! The owner cache and /proc scans on this process's own sockets (no root needed).

use std::{net::TcpListener, os::unix::fs::MetadataExt as _};

use super::{scan::*, *};

#[test]
fn parents_and_children_from_proc() {
    let me = std::process::id();
    let parent = parent_of(me).expect("a parent");
    assert!(
        children_of(parent).contains(&me),
        "our parent's children include us"
    );
    assert_eq!(parent_of(u32::MAX), None);
}

#[test]
fn parses_socket_links() {
    assert_eq!(socket_inode_of_link("socket:[98765]"), Some(98765));
    assert_eq!(socket_inode_of_link("pipe:[98765]"), None);
    assert_eq!(socket_inode_of_link("/dev/null"), None);
}

fn conn_of(listener: &TcpListener) -> Conn {
    Conn {
        netns: 1,
        local: listener.local_addr().unwrap(),
        remote: "127.0.0.1:1".parse().unwrap(),
    }
}

fn inode_of(listener: &TcpListener) -> u64 {
    let fd = std::os::fd::AsRawFd::as_raw_fd(listener);
    std::fs::metadata(format!("/proc/self/fd/{fd}"))
        .unwrap()
        .ino()
}

/// Runs without root: a process may read its own fd table.
#[test]
fn finds_this_process_as_owner_of_its_socket() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let ino = inode_of(&listener);
    let holders = &scan(None)[&ino];
    assert_eq!(holders.len(), 1, "one entry per process: {holders:?}");
    assert_eq!(holders[0].owner.pid, std::process::id());
    assert!(!holders[0].owner.comm.is_empty());
    assert_eq!(scan(Some(std::process::id())).get(&ino), Some(holders));

    let mut cache = OwnerCache::primed(None);
    let conn = conn_of(&listener);
    assert_eq!(cache.lookup(&conn), Lookup::Unknown, "no inode yet");
    cache.learn_inode(&conn, Some(ino));
    let Lookup::Known(owners) = cache.lookup(&conn) else {
        panic!("primed with our socket");
    };
    assert_eq!(owners[0].owner.pid, std::process::id());
    cache.forget(&conn);
    assert_eq!(cache.remembered(), (cache.by_inode.len(), 0));
    assert!(!cache.by_inode.contains_key(&ino));
}

/// A holder that closed its copy is not shown again: the check of a
/// young entry drops it and asks for a scan.
#[test]
fn a_holder_that_let_go_is_dropped() {
    let mut cache = OwnerCache::primed(Some(std::process::id()));
    // Made after the first scan: learnt now, so checked again.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let ino = inode_of(&listener);
    let conn = conn_of(&listener);
    cache.learn_inode(&conn, Some(ino));
    std::thread::sleep(VERIFY_EVERY);
    assert!(matches!(cache.lookup(&conn), Lookup::Known(_)));
    drop(listener);
    std::thread::sleep(VERIFY_EVERY);
    assert_eq!(
        cache.lookup(&conn),
        Lookup::Unknown,
        "closed: nobody holds it, and this process's table says so"
    );
}
