//! `pushpull client sse URL` and `pushpull client ws URL` against small
//! scripted servers written here with blocking std sockets (not with the
//! code under test): what the EventSource rules say a client must do on each
//! answer, read back from the command's JSON lines.

use serde_json::Value;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::Command;
use std::sync::mpsc;
use std::thread;

/// A server that answers its n-th connection with `answers[n]` (raw bytes,
/// then closes), and reports each request head it read.
fn scripted(answers: Vec<&'static [u8]>) -> (u16, mpsc::Receiver<String>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        for answer in answers {
            let (mut stream, _) = listener.accept().unwrap();
            let head = read_head(&mut stream);
            tx.send(head).unwrap();
            stream.write_all(answer).unwrap();
        }
    });
    (port, rx)
}

fn read_head(stream: &mut TcpStream) -> String {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if stream.read(&mut byte).unwrap() == 0 {
            break;
        }
        head.push(byte[0]);
    }
    String::from_utf8(head).unwrap()
}

/// Runs `pushpull client ...` and returns its JSON lines.
fn client(args: &[&str]) -> Vec<Value> {
    let out = Command::new(env!("CARGO_BIN_EXE_pushpull"))
        .arg("client")
        .args(args)
        .output()
        .expect("pushpull runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l}: {e}")))
        .collect()
}

const STREAM: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n\r\n";

#[test]
fn sse_reconnects_with_last_event_id_after_the_retry_time() {
    let first: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream; charset=utf-8\r\n\r\n\
retry: 200\n\nid: 7\nevent: price\ndata: 101\n\ndata: no id\n\n";
    let second: &[u8] =
        b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n\r\nid: 8\ndata: 102\n\n";
    let (port, heads) = scripted(vec![first, second]);
    let url = format!("http://127.0.0.1:{port}/ticker");
    let lines = client(&["sse", &url, "--max-events", "3", "--timeout", "10s"]);
    assert_eq!(lines[0]["open"]["url"], url.as_str());
    assert_eq!(lines[0]["open"]["headers"]["Accept"], "text/event-stream");
    assert_eq!(lines[0]["open"]["last_event_id"], "");
    assert_eq!(
        (
            &lines[1]["type"],
            &lines[1]["data"],
            &lines[1]["last_event_id"]
        ),
        (
            &Value::from("price"),
            &Value::from("101"),
            &Value::from("7")
        )
    );
    // An event without an id keeps the last one.
    assert_eq!(lines[2]["last_event_id"], "7");
    assert_eq!(lines[2]["type"], "message");
    // The server closed the stream: reconnect after `retry`, with the id.
    assert_eq!(lines[3]["reconnect_in_ms"], 200);
    assert_eq!(lines[4]["open"]["headers"]["Last-Event-ID"], "7");
    assert_eq!(lines[5]["data"], "102");
    assert_eq!(lines.len(), 6, "--max-events 3 ends it: {lines:?}");
    let first_head = heads.recv().unwrap();
    assert!(
        first_head.starts_with("GET /ticker HTTP/1.1\r\n"),
        "{first_head}"
    );
    assert!(!first_head.to_ascii_lowercase().contains("last-event-id"));
    let second_head = heads.recv().unwrap();
    assert!(
        second_head.contains("Last-Event-ID: 7\r\n"),
        "{second_head}"
    );
}

/// Each answer that makes an EventSource fail for good: it says why and
/// never connects again.
#[test]
fn sse_stops_for_good_on_204_500_and_a_wrong_content_type() {
    for (answer, why) in [
        (&b"HTTP/1.1 204 No Content\r\n\r\n"[..], "204"),
        (
            &b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 0\r\n\r\n"[..],
            "500",
        ),
        (
            &b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}"[..],
            "application/json",
        ),
    ] {
        let (port, _heads) = scripted(vec![answer]);
        let url = format!("http://127.0.0.1:{port}/s");
        let lines = client(&["sse", &url, "--timeout", "10s"]);
        assert_eq!(lines.len(), 2, "{lines:?}");
        let closed = lines[1]["closed"].as_str().expect("a closed line");
        assert!(closed.contains(why), "{closed}");
    }
}

/// A network error (the connection refused) is retried, as the spec's
/// "reestablish the connection" says, after the default reconnection time.
#[test]
fn sse_retries_a_refused_connection() {
    let port = {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let url = format!("http://127.0.0.1:{port}/s");
    let lines = client(&["sse", &url, "--default-retry", "300ms", "--timeout", "1s"]);
    let errors: Vec<&Value> = lines.iter().filter(|l| l.get("error").is_some()).collect();
    assert!(errors.len() >= 2, "{lines:?}");
    assert_eq!(errors[0]["reconnect_in_ms"], 300);
}

#[test]
fn sse_stream_split_across_writes_is_parsed_whole() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    thread::spawn(move || {
        let (mut s, _) = listener.accept().unwrap();
        read_head(&mut s);
        s.write_all(STREAM).unwrap();
        for piece in [&b"da"[..], b"ta: he", b"llo\r", b"\n\r\n"] {
            s.write_all(piece).unwrap();
            s.flush().unwrap();
            thread::sleep(std::time::Duration::from_millis(50));
        }
        thread::sleep(std::time::Duration::from_secs(2));
    });
    let url = format!("http://127.0.0.1:{port}/");
    let lines = client(&["sse", &url, "--max-events", "1", "--timeout", "5s"]);
    assert_eq!(lines[1]["data"], "hello");
}

/// The WebSocket client against a scripted server: a correct 101, one text
/// frame and a close; the client masks what it sends and answers the close.
#[test]
fn ws_prints_messages_and_the_close() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = thread::spawn(move || {
        let (mut s, _) = listener.accept().unwrap();
        let head = read_head(&mut s);
        let key = head
            .lines()
            .find_map(|l| l.strip_prefix("Sec-WebSocket-Key: "))
            .unwrap()
            .to_string();
        let accept = pushpull::wire::websocket::accept_for(&key);
        write!(
            s,
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {accept}\r\n\r\n"
        )
        .unwrap();
        s.write_all(&[0x81, 0x02, b'h', b'i']).unwrap();
        s.write_all(&[0x88, 0x02, 0x03, 0xe8]).unwrap();
        // The client's close: masked, with the same code.
        let mut frame = [0u8; 8];
        s.read_exact(&mut frame).unwrap();
        assert_eq!(frame[0], 0x88);
        assert_eq!(frame[1], 0x80 | 2, "masked, 2 bytes");
        let code = [frame[6] ^ frame[2], frame[7] ^ frame[3]];
        assert_eq!(u16::from_be_bytes(code), 1000);
    });
    let lines = client(&["ws", &format!("ws://127.0.0.1:{port}/x"), "--timeout", "5s"]);
    server.join().unwrap();
    assert_eq!(lines[0]["open"]["headers"]["Sec-WebSocket-Version"], "13");
    assert_eq!(
        lines[1],
        serde_json::json!({"message": "text", "data": "hi"})
    );
    assert_eq!(
        lines[2],
        serde_json::json!({"close_code": 1000, "reason": ""})
    );
    assert!(lines[3]["closed"].as_str().unwrap().contains("1000"));
}

#[test]
fn ws_refuses_a_wrong_accept() {
    let (port, _) = scripted(vec![
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: AAAA\r\n\r\n",
    ]);
    let lines = client(&["ws", &format!("ws://127.0.0.1:{port}/"), "--timeout", "5s"]);
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(
        lines[0]["closed"]
            .as_str()
            .unwrap()
            .contains("handshake failed")
    );
}
