//! What the wire tests share: a server of one mechanism on a small simulated
//! network, raw bytes sent to it, and what it answered; and a traced
//! connection over a scripted socket.
#![allow(dead_code)] // each test file uses part of it

pub mod browser;
pub mod live;

use pushpull::record::trace::{Dir, Tracer};
use pushpull::scenario::{Mechanism, Plan};
use pushpull::world::conn::Conn;
use pushpull::world::context::ServerCtx;
use pushpull::world::event_log::EventLog;
use pushpull::world::network::{HostNet, SERVER_PORT};
use pushpull::world::tcp::Loss;
use std::rc::Rc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Sends `request` as raw bytes to the server of `mechanism` (scenario
/// overrides `sets`), whose log holds one event per entry of `events` (its
/// payload), and returns everything it sent back until it closed or went quiet for a
/// simulated second.
pub fn server_answer(
    mechanism: Mechanism,
    sets: &[&str],
    events: &[&str],
    request: &[u8],
) -> String {
    let mut sim = turmoil::Builder::new()
        .min_message_latency(Duration::from_millis(1))
        .max_message_latency(Duration::from_millis(1))
        .build();
    let tracer = Tracer::new(None, false);
    let log = EventLog::default();
    for data in events {
        log.append(data.to_string(), 0);
    }
    let sets: Vec<String> = sets.iter().map(|s| s.to_string()).collect();
    let plan = Plan::from_toml(&format!("mechanism = \"{}\"", mechanism.name()), &sets).unwrap();
    let ctx = ServerCtx {
        net: HostNet {
            trace: tracer.on("server"),
            loss: Loss::none(),
            switchboard: Default::default(),
            keepalive: None,
        },
        log,
        scenario: plan.scenario.clone(),
        post_times: Default::default(),
        name: "server".into(),
        feed: None,
        broker: false,
        store: Default::default(),
    };
    sim.host("server", move || {
        pushpull::mechanisms::server(mechanism, ctx.clone())
    });
    let request = request.to_vec();
    let answer = Rc::new(std::cell::RefCell::new(Vec::new()));
    let sink = answer.clone();
    sim.client("client-1", async move {
        let mut s = turmoil::net::TcpStream::connect(("server", SERVER_PORT)).await?;
        s.write_all(&request).await?;
        let mut buf = vec![0u8; 65536];
        while let Ok(Ok(n)) =
            pushpull::world::clock::timeout(Duration::from_secs(1), s.read(&mut buf)).await
        {
            if n == 0 {
                break;
            }
            sink.borrow_mut().extend_from_slice(&buf[..n]);
        }
        Ok(())
    });
    sim.run().unwrap();
    String::from_utf8_lossy(&answer.borrow()).into_owned()
}

/// A traced connection over a scripted socket; `outgoing` is `Up` for a
/// client's end, `Down` for a server's.
pub fn scripted_conn(stream: tokio_test::io::Mock, outgoing: Dir) -> Conn<tokio_test::io::Mock> {
    let host = if outgoing == Dir::Up {
        "client-1"
    } else {
        "server"
    };
    Conn::new(
        stream,
        "test".into(),
        outgoing,
        Tracer::new(None, false).on(host),
        Loss::none(),
    )
}
