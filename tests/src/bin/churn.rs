//! churn: connection churn for the memory tests. Listens on ADDR:PORT (an
//! IPv4 loopback address) and opens COUNT connections to itself, each
//! accepted and then closed with an RST (linger 0: no TIME-WAIT), from a few
//! threads. Clients bind to 127.0.0.1 .. 127.0.0.8 in turn so that up to
//! half a million connections each have their own 4-tuple. Prints
//! `{"connections":COUNT}` when done.
//!
//! usage: churn ADDR:PORT COUNT

use std::{
    net::{SocketAddr, TcpListener, TcpStream},
    sync::atomic::{AtomicUsize, Ordering},
    time::Duration,
};

const THREADS: usize = 4;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (Some(addr), Some(count)) = (
        args.first().and_then(|a| a.parse::<SocketAddr>().ok()),
        args.get(1).and_then(|c| c.parse::<usize>().ok()),
    ) else {
        eprintln!("usage: churn ADDR:PORT COUNT");
        std::process::exit(2);
    };
    // A deep backlog: at the default 128 the accept queue overflows and a
    // dropped SYN costs a second's retransmission.
    let socket = socket2::Socket::new(
        socket2::Domain::for_address(addr),
        socket2::Type::STREAM,
        None,
    )
    .expect("socket");
    socket.bind(&addr.into()).expect("bind");
    socket.listen(4096).expect("listen");
    let listener: TcpListener = socket.into();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            drop(stream);
        }
    });
    let next = AtomicUsize::new(0);
    std::thread::scope(|scope| {
        for _ in 0..THREADS {
            scope.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= count {
                        break;
                    }
                    match connect_from(i, addr) {
                        Ok(stream) => {
                            let _ =
                                socket2::SockRef::from(&stream).set_linger(Some(Duration::ZERO));
                        }
                        Err(e) => {
                            eprintln!("churn: connect: {e}");
                            std::thread::sleep(Duration::from_millis(10));
                        }
                    }
                }
            });
        }
    });
    println!(r#"{{"connections":{count}}}"#);
}

/// Connection `i`, from 127.0.0.(1 + i % 8).
fn connect_from(i: usize, addr: SocketAddr) -> std::io::Result<TcpStream> {
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)?;
    let local = SocketAddr::from(([127, 0, 0, 1 + (i % 8) as u8], 0));
    socket.bind(&local.into())?;
    socket.connect(&addr.into())?;
    Ok(socket.into())
}
