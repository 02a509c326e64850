//! prefork-server: a listener that hands each connection to a child, as
//! pre-forking servers do. For every accepted connection it forks; the child
//! turns keepalive on (so the probes leave from the child's socket) and
//! holds the connection; the parent closes its copy at once and accepts the
//! next. It prints one JSON line per child, `{"pid":…,"local":…,"remote":…}`,
//! then `{"accepted":N}`, and waits for stdin to close; the children die with
//! it (they are in its process group, which the test kills).
//!
//! usage: prefork-server ADDR:PORT COUNT IDLE,INTVL,CNT

use std::{
    io::{Read as _, Write as _},
    net::{SocketAddr, TcpListener},
    os::fd::AsRawFd as _,
    time::Duration,
};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (addr, count, keepalive) = match parse(&args) {
        Some(parsed) => parsed,
        None => {
            eprintln!("usage: prefork-server ADDR:PORT COUNT IDLE,INTVL,CNT");
            std::process::exit(2);
        }
    };
    let listener = TcpListener::bind(addr).unwrap_or_else(|e| {
        println!(r#"{{"error":"bind {addr}: {e}"}}"#);
        std::process::exit(1)
    });
    println!(
        r#"{{"listening":"{}"}}"#,
        listener.local_addr().expect("bound")
    );
    let _ = std::io::stdout().flush();
    let mut out = std::io::stdout();
    for _ in 0..count {
        let (stream, remote) = listener.accept().expect("accept");
        let local = stream.local_addr().expect("local address");
        // SAFETY: this process is single-threaded, so the child may run
        // anything; it only sets options, writes and sleeps.
        let pid = unsafe { libc::fork() };
        match pid {
            -1 => panic!("fork: {}", std::io::Error::last_os_error()),
            0 => {
                // SAFETY: prctl with these arguments only sets a flag: the
                // child dies with the parent, whoever kills it.
                unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) };
                drop(listener);
                let sock = socket2::SockRef::from(&stream);
                let [idle, intvl, cnt] = keepalive;
                let settings = socket2::TcpKeepalive::new()
                    .with_time(Duration::from_secs(idle))
                    .with_interval(Duration::from_secs(intvl))
                    .with_retries(cnt as u32);
                sock.set_tcp_keepalive(&settings).expect("keepalive");
                let line = format!(
                    "{{\"pid\":{},\"fd\":{},\"local\":\"{local}\",\"remote\":\"{remote}\"}}\n",
                    std::process::id(),
                    stream.as_raw_fd()
                );
                let _ = out.write_all(line.as_bytes());
                let _ = out.flush();
                loop {
                    std::thread::sleep(Duration::from_secs(3600));
                }
            }
            _ => drop(stream), // the hand-off: the parent lets go of its copy
        }
    }
    println!(r#"{{"accepted":{count}}}"#);
    let _ = std::io::stdout().flush();
    let mut rest = Vec::new();
    let _ = std::io::stdin().read_to_end(&mut rest);
}

fn parse(args: &[String]) -> Option<(SocketAddr, usize, [u64; 3])> {
    let [addr, count, keepalive] = args else {
        return None;
    };
    let values: Vec<u64> = keepalive
        .split(',')
        .map(str::parse)
        .collect::<Result<_, _>>()
        .ok()?;
    Some((
        addr.parse().ok()?,
        count.parse().ok()?,
        values.try_into().ok()?,
    ))
}
