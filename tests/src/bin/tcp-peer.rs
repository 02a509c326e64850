//! tcp-peer: a real TCP process for the integration tests to drive. It
//! listens or connects, reports each connection as one JSON line, then idles
//! and obeys commands read from stdin, one per line:
//! `get`, `send N`, `close`, `abort`, `recv`, `dup2 FROM TO`, `exit` (see `USAGE`).

use std::{
    io::{BufRead as _, Read as _, Write as _},
    net::SocketAddr,
    os::fd::{AsRawFd as _, RawFd},
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use keepalive::model::errno::io_error_name;
use socket2::{Domain, Protocol, SockAddr, Socket, Type};

const USAGE: &str = "usage:
  tcp-peer listen ADDR:PORT [--keepalive IDLE,INTVL,CNT] [--user-timeout MS] [--accept N] [--close-idle SECS] [--v6only-off]
  tcp-peer connect ADDR:PORT [--keepalive IDLE,INTVL,CNT] [--user-timeout MS] [--count N] [--local-port P] [--v6only-off]
stdin commands: get | send N | close | abort (RST) | recv | dup2 FROM TO | exit";

#[derive(Default)]
struct Options {
    keepalive: Option<[i32; 3]>,
    user_timeout_ms: Option<i32>,
    accept: Option<usize>,
    /// Listen mode: each accepted connection is shut down (FIN) after this
    /// many seconds, like a server with its own idle timeout.
    close_idle_s: Option<u64>,
    count: usize,
    local_port: Option<u16>,
    v6only_off: bool,
}

struct Conn {
    sock: Socket,
    /// Set by `close`/`abort` so that worker threads let go of the socket quietly.
    closing: AtomicBool,
}

type Conns = Arc<Mutex<Vec<Arc<Conn>>>>;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (mode, addr, opts) = parse(&args).unwrap_or_else(|e| {
        eprintln!("tcp-peer: {e}\n{USAGE}");
        std::process::exit(2)
    });
    let conns: Conns = Arc::default();
    let result = match mode.as_str() {
        "listen" => listen(addr, &opts, &conns),
        _ => connect(addr, &opts, &conns),
    };
    if let Err(e) = result {
        println!(
            r#"{{"error":"{}","errno":{}}}"#,
            io_error_name(&e),
            e.raw_os_error().unwrap_or(0)
        );
        std::process::exit(1);
    }
    for line in std::io::stdin().lock().lines() {
        let Ok(line) = line else { break };
        command(line.trim(), &conns);
    }
}

fn parse(args: &[String]) -> Result<(String, SocketAddr, Options), String> {
    let [mode, addr, rest @ ..] = args else {
        return Err("a mode and an address are needed".into());
    };
    if mode != "listen" && mode != "connect" {
        return Err(format!("unknown mode {mode:?}"));
    }
    let addr: SocketAddr = addr.parse().map_err(|e| format!("{addr:?}: {e}"))?;
    let mut opts = Options {
        count: 1,
        ..Options::default()
    };
    let mut rest = rest.iter();
    while let Some(flag) = rest.next() {
        if flag == "--v6only-off" {
            opts.v6only_off = true;
            continue;
        }
        let value = rest.next().ok_or(format!("{flag} needs a value"))?;
        let bad = |e: std::num::ParseIntError| format!("{flag} {value:?}: {e}");
        match flag.as_str() {
            "--keepalive" => {
                let parts = value.split(',').map(|v| v.parse().map_err(bad));
                let parts = parts.collect::<Result<Vec<i32>, _>>()?;
                opts.keepalive = Some(parts.try_into().map_err(|_| "--keepalive IDLE,INTVL,CNT")?);
            }
            "--user-timeout" => opts.user_timeout_ms = Some(value.parse().map_err(bad)?),
            "--accept" => opts.accept = Some(value.parse().map_err(bad)?),
            "--close-idle" => opts.close_idle_s = Some(value.parse().map_err(bad)?),
            "--count" => opts.count = value.parse().map_err(bad)?,
            "--local-port" => opts.local_port = Some(value.parse().map_err(bad)?),
            _ => return Err(format!("unknown option {flag}")),
        }
    }
    Ok((mode.clone(), addr, opts))
}

fn new_socket(addr: &SocketAddr, opts: &Options) -> std::io::Result<Socket> {
    let sock = Socket::new(
        Domain::for_address(*addr),
        Type::STREAM,
        Some(Protocol::TCP),
    )?;
    if addr.is_ipv6() && opts.v6only_off {
        sock.set_only_v6(false)?;
    }
    apply(&sock, opts)?;
    Ok(sock)
}

/// Sets the keepalive options; a listener's accepted sockets inherit them.
fn apply(sock: &Socket, opts: &Options) -> std::io::Result<()> {
    let fd = sock.as_raw_fd();
    if let Some([idle, intvl, cnt]) = opts.keepalive {
        setsockopt(fd, libc::SOL_SOCKET, libc::SO_KEEPALIVE, 1)?;
        setsockopt(fd, libc::IPPROTO_TCP, libc::TCP_KEEPIDLE, idle)?;
        setsockopt(fd, libc::IPPROTO_TCP, libc::TCP_KEEPINTVL, intvl)?;
        setsockopt(fd, libc::IPPROTO_TCP, libc::TCP_KEEPCNT, cnt)?;
    }
    if let Some(ms) = opts.user_timeout_ms {
        setsockopt(fd, libc::IPPROTO_TCP, libc::TCP_USER_TIMEOUT, ms)?;
    }
    Ok(())
}

fn listen(addr: SocketAddr, opts: &Options, conns: &Conns) -> std::io::Result<()> {
    let listener = new_socket(&addr, opts)?;
    listener.set_reuse_address(true)?;
    listener.bind(&addr.into())?;
    listener.listen(4096)?;
    let local = show(&listener.local_addr()?);
    println!(r#"{{"listening":"{local}","pid":{}}}"#, std::process::id());
    println!(r#"{{"ready":true}}"#);
    let (limit, close_idle_s, conns) = (opts.accept, opts.close_idle_s, conns.clone());
    std::thread::spawn(move || {
        let mut accepted = 0;
        while limit.is_none_or(|limit| accepted < limit) {
            match listener.accept() {
                Ok((sock, _)) => {
                    accepted += 1;
                    let conn = report(sock, &conns);
                    if let Some(secs) = close_idle_s {
                        std::thread::spawn(move || {
                            std::thread::sleep(Duration::from_secs(secs));
                            let _ = conn.sock.shutdown(std::net::Shutdown::Write);
                        });
                    }
                }
                Err(e) => {
                    println!(r#"{{"accept_error":"{}"}}"#, io_error_name(&e));
                    std::thread::sleep(Duration::from_millis(100));
                }
            }
        }
    });
    Ok(())
}

fn connect(addr: SocketAddr, opts: &Options, conns: &Conns) -> std::io::Result<()> {
    for i in 0..opts.count {
        let sock = new_socket(&addr, opts)?;
        if let Some(port) = opts.local_port {
            let port = port + u16::try_from(i).unwrap_or(u16::MAX);
            let any: SocketAddr = if addr.is_ipv6() {
                ([0u16; 8], port).into()
            } else {
                ([0u8; 4], port).into()
            };
            sock.set_reuse_address(true)?;
            sock.bind(&any.into())?;
        }
        sock.connect(&addr.into())?;
        let _ = report(sock, conns);
    }
    println!(r#"{{"ready":true}}"#);
    Ok(())
}

fn report(sock: Socket, conns: &Conns) -> Arc<Conn> {
    let (local, remote) = (
        sock.local_addr().map(|a| show(&a)),
        sock.peer_addr().map(|a| show(&a)),
    );
    println!(
        r#"{{"fd":{},"local":"{}","remote":"{}","pid":{}}}"#,
        sock.as_raw_fd(),
        local.unwrap_or_default(),
        remote.unwrap_or_default(),
        std::process::id()
    );
    let conn = Arc::new(Conn {
        sock,
        closing: AtomicBool::new(false),
    });
    conns.lock().unwrap().push(conn.clone());
    conn
}

fn show(addr: &SockAddr) -> String {
    addr.as_socket().map(|a| a.to_string()).unwrap_or_default()
}

fn command(line: &str, conns: &Conns) {
    let mut words = line.split_whitespace();
    let all: Vec<Arc<Conn>> = conns.lock().unwrap().clone();
    match (words.next(), words.next()) {
        (Some("get"), None) => all.iter().for_each(|c| get(c)),
        (Some("send"), Some(n)) => match n.parse::<usize>() {
            Ok(n) => all
                .into_iter()
                .for_each(|c| drop(std::thread::spawn(move || send(&c, n)))),
            Err(e) => println!(r#"{{"command_error":"send {n}: {e}"}}"#),
        },
        (Some("recv"), None) => all
            .into_iter()
            .for_each(|c| drop(std::thread::spawn(move || recv(&c)))),
        (Some("close"), None) | (Some("abort"), None) => {
            let abort = line == "abort";
            for c in conns.lock().unwrap().drain(..) {
                c.closing.store(true, Ordering::SeqCst);
                // Linger 0 turns the final close into an RST; shutdown wakes
                // worker threads blocked on the socket so that they drop it.
                if abort {
                    let _ = c.sock.set_linger(Some(Duration::ZERO));
                    let _ = c.sock.shutdown(std::net::Shutdown::Read);
                } else {
                    let _ = c.sock.shutdown(std::net::Shutdown::Both);
                }
            }
        }
        (Some("dup2"), Some(from)) => dup2(from, words.next(), &all),
        (Some("exit"), None) => std::process::exit(0),
        (None, _) => {}
        _ => println!(r#"{{"command_error":"unknown command {line:?}"}}"#),
    }
    let _ = std::io::stdout().flush();
}

/// `dup2 FROM TO`: descriptor TO becomes another name for FROM's socket and
/// TO's own socket is closed, as when a process reuses a descriptor number.
/// Connection TO then reports what FROM's socket holds.
fn dup2(from: &str, to: Option<&str>, conns: &[Arc<Conn>]) {
    let known = |fd: &str| {
        fd.parse::<RawFd>()
            .ok()
            .filter(|fd| conns.iter().any(|c| c.sock.as_raw_fd() == *fd))
    };
    let (Some(from), Some(to)) = (known(from), to.and_then(known)) else {
        println!(r#"{{"command_error":"dup2 needs two descriptors of our connections"}}"#);
        return;
    };
    // SAFETY: both are open descriptors of ours; TO's Socket keeps owning
    // the number, which now names FROM's socket.
    if unsafe { libc::dup2(from, to) } < 0 {
        let e = std::io::Error::last_os_error();
        println!(r#"{{"command_error":"dup2: {}"}}"#, io_error_name(&e));
        return;
    }
    println!(r#"{{"dup2":[{from},{to}]}}"#);
}

fn get(c: &Conn) {
    let fd = c.sock.as_raw_fd();
    let opt = |level, name| getsockopt(fd, level, name).unwrap_or(-1);
    println!(
        r#"{{"fd":{fd},"keepalive":{},"idle_s":{},"intvl_s":{},"cnt":{},"user_timeout_ms":{}}}"#,
        opt(libc::SOL_SOCKET, libc::SO_KEEPALIVE) != 0,
        opt(libc::IPPROTO_TCP, libc::TCP_KEEPIDLE),
        opt(libc::IPPROTO_TCP, libc::TCP_KEEPINTVL),
        opt(libc::IPPROTO_TCP, libc::TCP_KEEPCNT),
        opt(libc::IPPROTO_TCP, libc::TCP_USER_TIMEOUT),
    );
}

/// Writes `n` bytes; a short send timeout lets `abort` take the socket back from a blocked writer.
fn send(c: &Conn, n: usize) {
    let fd = c.sock.as_raw_fd();
    let _ = c.sock.set_write_timeout(Some(Duration::from_millis(100)));
    let chunk = vec![0u8; 65536];
    let mut sent = 0;
    while sent < n && !c.closing.load(Ordering::SeqCst) {
        match (&c.sock).write(&chunk[..chunk.len().min(n - sent)]) {
            Ok(written) => sent += written,
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::Interrupted
                ) => {}
            Err(e) => {
                println!(
                    r#"{{"fd":{fd},"send_error":"{}","errno":{},"sent":{sent}}}"#,
                    io_error_name(&e),
                    e.raw_os_error().unwrap_or(0)
                );
                return;
            }
        }
    }
    if !c.closing.load(Ordering::SeqCst) {
        println!(r#"{{"fd":{fd},"sent":{sent}}}"#);
    }
}

/// Reads until EOF or an error (ETIMEDOUT after a keepalive timeout) and says which.
fn recv(c: &Conn) {
    let fd = c.sock.as_raw_fd();
    let mut buf = vec![0u8; 65536];
    let mut received = 0;
    let result = loop {
        match (&c.sock).read(&mut buf) {
            Ok(0) => break Ok(()),
            Ok(n) => received += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => break Err(e),
        }
    };
    if c.closing.load(Ordering::SeqCst) {
        return;
    }
    let (name, errno) = match &result {
        Ok(()) => ("ok".to_owned(), 0),
        Err(e) => (io_error_name(e), e.raw_os_error().unwrap_or(0)),
    };
    println!(r#"{{"fd":{fd},"recv_error":"{name}","errno":{errno},"received":{received}}}"#);
}

fn setsockopt(
    fd: RawFd,
    level: libc::c_int,
    name: libc::c_int,
    value: libc::c_int,
) -> std::io::Result<()> {
    let len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: `value` outlives the call and `len` is its size.
    let rc = unsafe { libc::setsockopt(fd, level, name, (&raw const value).cast(), len) };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

fn getsockopt(fd: RawFd, level: libc::c_int, name: libc::c_int) -> std::io::Result<libc::c_int> {
    let mut value: libc::c_int = 0;
    let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: `value` and `len` outlive the call and describe a c_int buffer.
    let rc = unsafe { libc::getsockopt(fd, level, name, (&raw mut value).cast(), &mut len) };
    if rc == 0 {
        Ok(value)
    } else {
        Err(std::io::Error::last_os_error())
    }
}
