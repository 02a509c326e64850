//! Doctor's self-test: a loopback connection with keepalive 1 s must show
//! its sock_ops event, its first probe and the answer on the ring buffer.

use std::{
    net::{TcpListener, TcpStream},
    time::{Duration, Instant},
};

use super::Check;
use crate::{
    kernel::{Observer, ring::EventRing},
    model::event::{self, EventKind},
};

/// Opens a loopback connection with keepalive 1 s and waits for its
/// sock_ops event, its first probe and the answer.
pub async fn self_test(observer: &mut Observer) -> Vec<Check> {
    let mut checks = Vec::new();
    let ring = observer.take_events();
    let Ok(ring) = ring else {
        checks.push(Check::new(
            "ring buffer",
            false,
            true,
            "no ring buffer map",
            "no events",
        ));
        return checks;
    };
    let Ok(mut ring) = EventRing::new(ring) else {
        checks.push(Check::new(
            "ring buffer",
            false,
            true,
            "cannot poll the ring buffer",
            "no events",
        ));
        return checks;
    };
    let connection = (|| -> std::io::Result<(TcpListener, TcpStream, TcpStream)> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let client = TcpStream::connect(listener.local_addr()?)?;
        let sock = socket2::SockRef::from(&client);
        sock.set_tcp_keepalive(
            &socket2::TcpKeepalive::new()
                .with_time(Duration::from_secs(1))
                .with_interval(Duration::from_secs(1)),
        )?;
        let (server, _) = listener.accept()?;
        Ok((listener, client, server))
    })();
    let Ok((_listener, client, _server)) = connection else {
        checks.push(Check::new(
            "self-test",
            false,
            true,
            "cannot open a loopback connection",
            "",
        ));
        return checks;
    };
    let local = client.local_addr().ok();
    let (mut established, mut probe, mut ack) = (None, None, None);
    let started = Instant::now();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(4);
    while (established.is_none() || probe.is_none() || ack.is_none())
        && tokio::time::Instant::now() < deadline
    {
        let mut events = Vec::new();
        let read = ring.read_batch(|bytes| events.extend(event::decode(bytes).ok()));
        if !matches!(tokio::time::timeout_at(deadline, read).await, Ok(Ok(_))) {
            break;
        }
        for event in events {
            if Some(event.conn.local) != local {
                continue;
            }
            let at = started.elapsed();
            match event.kind {
                EventKind::Established => established = Some(at),
                EventKind::Probe { .. } => probe = probe.or(Some((at, event.config))),
                EventKind::Ack { rtt_ns, .. } => ack = ack.or(Some(rtt_ns)),
                _ => {}
            }
        }
    }
    checks.push(Check::new(
        "ring buffer",
        established.is_some() || probe.is_some(),
        true,
        match established {
            Some(at) => format!(
                "sock_ops event for a new loopback connection after {} us",
                at.as_micros()
            ),
            None => "no event arrived".into(),
        },
        "no events",
    ));
    checks.push(Check::new(
        "socket-local storage + probe detection",
        probe.is_some(),
        true,
        match probe {
            Some((at, Some(c))) => format!(
                "keepalive probe seen {} ms after connect, settings read from the socket: idle {}s intvl {}s",
                at.as_millis(),
                c.idle_s,
                c.intvl_s
            ),
            Some((at, None)) => format!("keepalive probe seen {} ms after connect (settings unknown)", at.as_millis()),
            None => "no probe seen within 4 s on a 1 s keepalive".into(),
        },
        "no probes are seen",
    ));
    checks.push(Check::new(
        "answer detection",
        ack.is_some(),
        true,
        ack.map_or("no answer seen".into(), |rtt| {
            format!("answer seen, rtt {} us", rtt / 1000)
        }),
        "answers and round trips are not seen",
    ));
    checks
}
