//! `pushpull live` on real sockets: the binary started on a free port, and a
//! plain blocking `TcpStream` speaking RFC 6455 to it, frames written by hand
//! (not by the code under test): the handshake, echoes, the rules that fail
//! a connection, the closing handshake, the chat's origin check and its one
//! order for every member.

mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;
use support::live::Live;

/// The RFC's example key and the answer it must get (section 1.3).
const KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";
const ACCEPT: &str = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=";
const MASK: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];

const TEXT: u8 = 0x1;
const BINARY: u8 = 0x2;
const CONTINUATION: u8 = 0x0;
const CLOSE: u8 = 0x8;
const PING: u8 = 0x9;
const PONG: u8 = 0xA;

/// What these tests do with the server: raw connections and handshakes.
trait Connect {
    fn connect(&self) -> TcpStream;
    fn open(&self, target: &str, extra: &str) -> (TcpStream, String);
    fn websocket(&self, target: &str) -> TcpStream;
}

impl Connect for Live {
    fn connect(&self) -> TcpStream {
        let stream = TcpStream::connect(("127.0.0.1", self.port)).expect("connects");
        stream
            .set_read_timeout(Some(Duration::from_secs(20)))
            .unwrap();
        stream
    }

    /// Opens a WebSocket on `target` with `extra` header lines; returns the
    /// stream and the answer's head (the stream is left at the first frame).
    fn open(&self, target: &str, extra: &str) -> (TcpStream, String) {
        let mut stream = self.connect();
        let request = format!(
            "GET {target} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nUpgrade: websocket\r\n\
             Connection: Upgrade\r\nSec-WebSocket-Key: {KEY}\r\n\
             Sec-WebSocket-Version: 13\r\n{extra}\r\n",
            self.port
        );
        stream.write_all(request.as_bytes()).unwrap();
        let head = read_head(&mut stream);
        (stream, head)
    }

    /// A WebSocket on `target`, checked to be open.
    fn websocket(&self, target: &str) -> TcpStream {
        let (stream, head) = self.open(target, "");
        assert!(head.starts_with("HTTP/1.1 101 "), "{head}");
        stream
    }
}

/// Reads an HTTP head byte by byte, so not a byte of what follows is taken.
fn read_head(stream: &mut TcpStream) -> String {
    let mut head = Vec::new();
    let mut byte = [0u8];
    while !head.ends_with(b"\r\n\r\n") {
        let n = stream.read(&mut byte).expect("the answer's head");
        assert_eq!(n, 1, "closed mid-head: {}", String::from_utf8_lossy(&head));
        head.push(byte[0]);
    }
    String::from_utf8(head).unwrap()
}

/// A frame as section 5.2 draws it; masked with `MASK` when `masked`.
fn frame(fin: bool, opcode: u8, payload: &[u8], masked: bool) -> Vec<u8> {
    let mut out = vec![(if fin { 0x80 } else { 0 }) | opcode];
    let mask_bit = if masked { 0x80 } else { 0 };
    match payload.len() {
        n @ 0..=125 => out.push(mask_bit | n as u8),
        n @ 126..=0xFFFF => {
            out.push(mask_bit | 126);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            out.push(mask_bit | 127);
            out.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    if masked {
        out.extend_from_slice(&MASK);
        out.extend(payload.iter().enumerate().map(|(i, b)| b ^ MASK[i % 4]));
    } else {
        out.extend_from_slice(payload);
    }
    out
}

/// Sends one whole, masked frame: what a client sends.
fn send(stream: &mut TcpStream, fin: bool, opcode: u8, payload: &[u8]) {
    stream
        .write_all(&frame(fin, opcode, payload, true))
        .unwrap();
}

/// Reads one frame from the server: (fin, opcode, payload). A server's
/// frames are never masked.
fn read_frame(stream: &mut TcpStream) -> (bool, u8, Vec<u8>) {
    let mut head = [0u8; 2];
    stream.read_exact(&mut head).expect("a frame");
    assert_eq!(head[1] & 0x80, 0, "a server's frame is not masked");
    let len = match head[1] & 0x7f {
        126 => {
            let mut b = [0u8; 2];
            stream.read_exact(&mut b).unwrap();
            u16::from_be_bytes(b) as usize
        }
        127 => {
            let mut b = [0u8; 8];
            stream.read_exact(&mut b).unwrap();
            u64::from_be_bytes(b) as usize
        }
        n => n as usize,
    };
    let mut payload = vec![0u8; len];
    stream
        .read_exact(&mut payload)
        .expect("the frame's payload");
    (head[0] & 0x80 != 0, head[0] & 0x0f, payload)
}

/// A close frame's code.
fn close_code(payload: &[u8]) -> u16 {
    u16::from_be_bytes([payload[0], payload[1]])
}

/// The server closed TCP: the next read is the end of the stream.
fn assert_server_closed(stream: &mut TcpStream) {
    let mut rest = Vec::new();
    match stream.read_to_end(&mut rest) {
        Ok(_) => assert!(rest.is_empty(), "bytes after the close: {rest:?}"),
        Err(e) => panic!("the server should close TCP, not {e}"),
    }
}

#[test]
fn the_handshake_answers_the_key() {
    let live = Live::start();
    let (_stream, head) = live.open("/echo", "");
    assert!(
        head.starts_with("HTTP/1.1 101 Switching Protocols\r\n"),
        "{head}"
    );
    let lower = head.to_ascii_lowercase();
    assert!(lower.contains("\r\nupgrade: websocket\r\n"), "{head}");
    assert!(lower.contains("\r\nconnection: upgrade\r\n"), "{head}");
    assert!(
        head.contains(&format!("\r\nSec-WebSocket-Accept: {ACCEPT}\r\n")),
        "{head}"
    );
}

#[test]
fn echo_sends_back_text_fragments_and_binary() {
    let live = Live::start();
    let mut ws = live.websocket("/echo");

    send(&mut ws, true, TEXT, b"Hello");
    assert_eq!(read_frame(&mut ws), (true, TEXT, b"Hello".to_vec()));

    // A fragmented text message with a ping between its fragments: the
    // pong comes at once, with the ping's payload; the message after its
    // last fragment, whole.
    send(&mut ws, false, TEXT, b"Hel");
    send(&mut ws, true, PING, b"are you there");
    send(&mut ws, true, CONTINUATION, "lo, wörld".as_bytes());
    assert_eq!(read_frame(&mut ws), (true, PONG, b"are you there".to_vec()));
    assert_eq!(
        read_frame(&mut ws),
        (true, TEXT, "Hello, wörld".as_bytes().to_vec())
    );

    let bytes: Vec<u8> = (0..=255).collect();
    send(&mut ws, true, BINARY, &bytes);
    assert_eq!(read_frame(&mut ws), (true, BINARY, bytes));
}

#[test]
fn echo_sends_back_a_mebibyte() {
    let live = Live::start();
    let mut ws = live.websocket("/echo");
    let message: Vec<u8> = (0..1 << 20).map(|i: u32| (i % 251) as u8).collect();
    let mut writer = ws.try_clone().unwrap();
    // Written from another thread: the echo comes back while we still send.
    let sent = message.clone();
    let sending = std::thread::spawn(move || send(&mut writer, true, BINARY, &sent));
    let (fin, opcode, payload) = read_frame(&mut ws);
    sending.join().unwrap();
    assert!(fin);
    assert_eq!(opcode, BINARY);
    assert!(payload == message, "the echo differs from the message");
}

#[test]
fn an_unmasked_frame_fails_the_connection_with_1002() {
    let live = Live::start();
    let mut ws = live.websocket("/echo");
    ws.write_all(&frame(true, TEXT, b"Hello", false)).unwrap();
    let (fin, opcode, payload) = read_frame(&mut ws);
    assert!(fin);
    assert_eq!(opcode, CLOSE);
    assert_eq!(close_code(&payload), 1002);
    assert_server_closed(&mut ws);
}

#[test]
fn invalid_utf8_fails_the_connection_with_1007() {
    let live = Live::start();
    let mut ws = live.websocket("/echo");
    send(&mut ws, true, TEXT, &[b'o', b'k', 0xff, 0xfe]);
    let (_, opcode, payload) = read_frame(&mut ws);
    assert_eq!(opcode, CLOSE);
    assert_eq!(close_code(&payload), 1007);
    assert_server_closed(&mut ws);
}

#[test]
fn the_closing_handshake_ends_with_the_server_closing_tcp() {
    let live = Live::start();
    let mut ws = live.websocket("/echo");
    let mut close = 1000u16.to_be_bytes().to_vec();
    close.extend_from_slice(b"bye");
    send(&mut ws, true, CLOSE, &close);
    let (fin, opcode, payload) = read_frame(&mut ws);
    assert!(fin);
    assert_eq!(opcode, CLOSE);
    assert_eq!(close_code(&payload), 1000);
    // Section 7.1.1: the server closes the TCP connection first.
    assert_server_closed(&mut ws);
}

#[test]
fn chat_refuses_other_sites_pages_and_echo_does_not() {
    let live = Live::start();
    let (_s, head) = live.open("/chat?user=x", "Origin: http://evil.example\r\n");
    assert!(head.starts_with("HTTP/1.1 403 Forbidden\r\n"), "{head}");
    // Its own pages, and tools that send no Origin, may.
    for origin in [
        format!("Origin: http://127.0.0.1:{}\r\n", live.port),
        format!("Origin: http://localhost:{}\r\n", live.port),
        String::new(),
    ] {
        let (_s, head) = live.open("/chat?user=x", &origin);
        assert!(head.starts_with("HTTP/1.1 101 "), "{origin}: {head}");
    }
    let (_s, head) = live.open("/echo", "Origin: http://evil.example\r\n");
    assert!(head.starts_with("HTTP/1.1 101 "), "{head}");
}

#[test]
fn the_chat_page_is_served() {
    let live = Live::start();
    let mut stream = live.connect();
    write!(
        stream,
        "GET /websocket HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 200 OK\r\n"), "{answer}");
    assert!(answer.contains("new WebSocket("), "{answer}");
    let mut stream = live.connect();
    write!(
        stream,
        "GET /nothing HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 404 "), "{answer}");
}

/// Reads text frames until a room message (not a notice) arrives.
fn next_room_message(ws: &mut TcpStream) -> serde_json::Value {
    loop {
        let (fin, opcode, payload) = read_frame(ws);
        assert!(fin);
        assert_eq!(opcode, TEXT, "{}", String::from_utf8_lossy(&payload));
        let value: serde_json::Value = serde_json::from_slice(&payload).unwrap();
        if value.get("seq").is_some() {
            return value;
        }
    }
}

#[test]
fn chat_members_receive_a_post_with_the_same_seq() {
    let live = Live::start();
    let mut mike = live.websocket("/chat?user=mike&since=0");
    let mut jane = live.websocket("/chat?user=jane&since=0");
    send(&mut mike, true, TEXT, br#"{"id":1,"text":"hi Jane"}"#);
    let to_mike = next_room_message(&mut mike);
    let to_jane = next_room_message(&mut jane);
    assert_eq!(to_mike, to_jane);
    assert_eq!(to_mike["from"], "mike");
    assert_eq!(to_mike["text"], "hi Jane");
    assert_eq!(to_mike["id"], 1);
    assert!(to_mike["seq"].as_u64().is_some(), "{to_mike}");
}
