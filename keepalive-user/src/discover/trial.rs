//! A trial connection: opened with the idle under test, held while it
//! idles, and let go gracefully (survived) or with RST (cut).

use std::{io::ErrorKind, net::SocketAddr, time::Duration};

use anyhow::Context as _;
use tokio::{
    net::{TcpSocket, TcpStream},
    sync::{mpsc, oneshot},
    time::Instant,
};

use super::DiscoverError;
use crate::model::conn::Conn;

/// Probes per trial: a second one tells a lost probe from a cut flow.
pub const PROBES_PER_TRIAL: u32 = 2;
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// How a trial connection is let go.
#[derive(Debug, Clone, Copy)]
pub enum Close {
    /// The flow is alive: FIN, as any client would.
    Graceful,
    /// The trial no longer matters and its flow may be gone: RST, so no
    /// orphan retransmits its FIN for minutes.
    Abort,
}

/// What the trial's own socket saw, beside the kernel events.
#[derive(Debug)]
pub enum SocketSignal {
    PeerClosed,
    Data,
    Error(std::io::Error),
}

/// One trial connection idling toward its first probe.
pub struct Trial {
    pub idle_s: u32,
    pub connected: Instant,
    pub connected_ns: u64,
    pub deadline: Instant,
    /// When the first probe left, and the idle the kernel measured.
    pub first_probe: Option<(u64, Option<u64>)>,
    pub socket_error: Option<std::io::Error>,
    pub close: Option<oneshot::Sender<Close>>,
}

impl Trial {
    pub fn close(&mut self, how: Close) {
        if let Some(tx) = self.close.take() {
            let _ = tx.send(how);
        }
    }
}

/// Holds a trial connection: reports FIN, data and errors, and closes it
/// as told (or when the search ends and the sender is dropped).
pub async fn hold(
    stream: TcpStream,
    conn: Conn,
    mut close: oneshot::Receiver<Close>,
    signals: mpsc::UnboundedSender<(Conn, SocketSignal)>,
) {
    let mut buf = [0u8; 4096];
    loop {
        tokio::select! {
            how = &mut close => {
                if !matches!(how, Ok(Close::Graceful)) {
                    let _ = socket2::SockRef::from(&stream).set_linger(Some(Duration::ZERO));
                }
                return;
            }
            ready = stream.readable() => {
                if let Err(err) = ready {
                    let _ = signals.send((conn, SocketSignal::Error(err)));
                    return;
                }
                match stream.try_read(&mut buf) {
                    Ok(0) => {
                        let _ = signals.send((conn, SocketSignal::PeerClosed));
                        // Wait to be told how to close; the FIN is answered then.
                        let how = close.await;
                        if !matches!(how, Ok(Close::Graceful)) {
                            let _ = socket2::SockRef::from(&stream).set_linger(Some(Duration::ZERO));
                        }
                        return;
                    }
                    Ok(_) => {
                        let _ = signals.send((conn, SocketSignal::Data));
                    }
                    Err(err) if err.kind() == ErrorKind::WouldBlock => {}
                    Err(err) => {
                        let _ = signals.send((conn, SocketSignal::Error(err)));
                        let _ = close.await;
                        return;
                    }
                }
            }
        }
    }
}

pub fn connect_error(target: SocketAddr, err: &std::io::Error) -> anyhow::Error {
    match err.raw_os_error() {
        Some(libc::ECONNREFUSED) => DiscoverError::Refused(target).into(),
        Some(libc::EHOSTUNREACH | libc::ENETUNREACH | libc::EHOSTDOWN | libc::ENETDOWN) => {
            DiscoverError::Unreachable(target, err.to_string()).into()
        }
        _ => anyhow::Error::new(std::io::Error::new(err.kind(), err.to_string()))
            .context(format!("connecting to {target}")),
    }
}

/// Opens a connection whose first probe leaves after `idle_s` of silence.
pub async fn connect(
    target: SocketAddr,
    keepalive: Option<(u32, u32)>,
) -> anyhow::Result<(TcpStream, Duration)> {
    let socket = if target.is_ipv4() {
        TcpSocket::new_v4()
    } else {
        TcpSocket::new_v6()
    }
    .context("creating a TCP socket")?;
    if let Some((idle_s, intvl_s)) = keepalive {
        // Set before connecting, so sock_ops reads them at establishment.
        let settings = socket2::TcpKeepalive::new()
            .with_time(Duration::from_secs(idle_s.into()))
            .with_interval(Duration::from_secs(intvl_s.into()))
            .with_retries(PROBES_PER_TRIAL);
        socket2::SockRef::from(&socket)
            .set_tcp_keepalive(&settings)
            .context("setting keepalive options")?;
    }
    let started = Instant::now();
    match tokio::time::timeout(CONNECT_TIMEOUT, socket.connect(target)).await {
        Ok(Ok(stream)) => Ok((stream, started.elapsed())),
        Ok(Err(err)) => Err(connect_error(target, &err)),
        Err(_) => Err(DiscoverError::Unreachable(
            target,
            format!(
                "no answer to the connection request within {} s",
                CONNECT_TIMEOUT.as_secs()
            ),
        )
        .into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connect_errors_say_which() {
        let target: SocketAddr = "10.0.0.2:80".parse().unwrap();
        let refused = connect_error(
            target,
            &std::io::Error::from_raw_os_error(libc::ECONNREFUSED),
        );
        assert!(refused.to_string().contains("refused"), "{refused}");
        let unreachable = connect_error(
            target,
            &std::io::Error::from_raw_os_error(libc::EHOSTUNREACH),
        );
        assert!(
            unreachable.to_string().contains("unreachable"),
            "{unreachable}"
        );
    }
}
