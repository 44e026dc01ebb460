//! WebSocket on the wire, checked against RFC 6455 itself: its examples byte
//! for byte, the opening handshake both ways, every rule whose breach fails
//! the connection (with the close code section 7.4.1 gives it), and
//! `pushpull decode ws` on real bytes.

use proptest::prelude::*;
use pushpull::wire::http::{Request, Response, parse_request_head, parse_response_head};
use pushpull::wire::websocket::{
    Frame, Incoming, Message, Opcode, Reader, Refusal, Sender, Violation, accept_for, apply_mask,
    check_request, check_response, client_key, decode_frame, handshake_request, parse_close,
    switching_protocols, valid_close_code,
};
use serde_json::{Value, json};
use std::io::Write;
use std::process::{Command, Stdio};

/// The masking key of the RFC's examples (section 5.7).
const KEY: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];
/// A generous limit for readers that are not testing the limit.
const LIMIT: usize = 1 << 20;

/// A frame written by hand from section 5.2, not by the code under test:
/// `first` is the whole first byte (FIN, RSV, opcode); the length takes the
/// shortest form; the payload is masked when a key is given.
fn raw(first: u8, mask: Option<[u8; 4]>, payload: &[u8]) -> Vec<u8> {
    let mask_bit = if mask.is_some() { 0x80 } else { 0 };
    let mut out = vec![first];
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
    match mask {
        Some(key) => {
            out.extend_from_slice(&key);
            out.extend(payload.iter().enumerate().map(|(i, b)| b ^ key[i % 4]));
        }
        None => out.extend_from_slice(payload),
    }
    out
}

/// A frame as a client must send it (masked).
fn client(first: u8, payload: &[u8]) -> Vec<u8> {
    raw(first, Some(KEY), payload)
}

/// A frame as a server must send it (unmasked).
fn server(first: u8, payload: &[u8]) -> Vec<u8> {
    raw(first, None, payload)
}

/// Reads every frame in `bytes` as sent by `from`, with a message limit of
/// `max`: what each frame meant, or the first violation.
fn read_all(from: Sender, max: usize, bytes: &[u8]) -> Result<Vec<Incoming>, Violation> {
    let mut reader = Reader::new(from, max);
    let mut rest = bytes;
    let mut out = Vec::new();
    while !rest.is_empty() {
        let (_, used, incoming) = reader.next(rest)?.expect("whole frames only");
        rest = &rest[used..];
        out.extend(incoming);
    }
    Ok(out)
}

/// The close code the reader of `bytes` fails the connection with.
fn failure(from: Sender, bytes: &[u8]) -> u16 {
    match read_all(from, LIMIT, bytes) {
        Err(v) => v.close_code,
        Ok(read) => panic!("read {read:?} where a violation was due"),
    }
}

fn text(s: &str) -> Incoming {
    Incoming::Message(Message::Text(s.into()))
}

fn close_payload(code: u16, reason: &[u8]) -> Vec<u8> {
    let mut payload = code.to_be_bytes().to_vec();
    payload.extend_from_slice(reason);
    payload
}

// ---------------------------------------------------------------------------
// The RFC's examples
// ---------------------------------------------------------------------------

/// Section 1.3: the sample nonce, its key, and the server's answer.
#[test]
fn rfc_handshake_example_key_and_accept() {
    assert_eq!(client_key(*b"the sample nonce"), "dGhlIHNhbXBsZSBub25jZQ==");
    assert_eq!(
        accept_for("dGhlIHNhbXBsZSBub25jZQ=="),
        "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
    );
}

/// Section 1.2's request, bytes as sent, accepted with section 1.3's answer;
/// the subprotocol offer is the server's to ignore (section 4.2.2).
#[test]
fn rfc_handshake_request_is_accepted() {
    let bytes = b"GET /chat HTTP/1.1\r\nHost: server.example.com\r\nUpgrade: websocket\r\n\
                  Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
                  Origin: http://example.com\r\nSec-WebSocket-Protocol: chat, superchat\r\n\
                  Sec-WebSocket-Version: 13\r\n\r\n";
    let (_, request, _) = parse_request_head(bytes).unwrap().unwrap();
    assert_eq!(
        check_request(&request).unwrap(),
        "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
    );
}

/// Section 5.7: a single-frame unmasked text message, and the same masked.
#[test]
fn rfc_single_frame_text_unmasked_and_masked() {
    let unmasked = [0x81, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f];
    let masked = [
        0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58,
    ];
    assert_eq!(Frame::text("Hello").encode(), unmasked);
    assert_eq!(Frame::text("Hello").masked(KEY).encode(), masked);
    assert_eq!(
        read_all(Sender::Server, LIMIT, &unmasked).unwrap(),
        [text("Hello")]
    );
    assert_eq!(
        read_all(Sender::Client, LIMIT, &masked).unwrap(),
        [text("Hello")]
    );
    let (frame, used) = decode_frame(&masked, Sender::Client, LIMIT)
        .unwrap()
        .unwrap();
    assert_eq!(used, 11);
    assert_eq!(frame, Frame::text("Hello").masked(KEY));
}

/// Section 5.7: "Hel" then "lo", one message.
#[test]
fn rfc_fragmented_text_makes_one_message() {
    let first = [0x01, 0x03, 0x48, 0x65, 0x6c];
    let second = [0x80, 0x02, 0x6c, 0x6f];
    let mut reader = Reader::new(Sender::Server, LIMIT);
    let (frame, used, incoming) = reader.next(&first).unwrap().unwrap();
    assert_eq!(
        (frame.fin, frame.opcode, used, incoming),
        (false, Opcode::Text, 5, None)
    );
    assert!(reader.mid_message());
    let (frame, used, incoming) = reader.next(&second).unwrap().unwrap();
    assert_eq!(
        (frame.fin, frame.opcode, used),
        (true, Opcode::Continuation, 4)
    );
    assert_eq!(incoming, Some(text("Hello")));
    assert!(!reader.mid_message());
}

/// Section 5.7: an unmasked ping and a masked pong, both carrying "Hello".
#[test]
fn rfc_unmasked_ping_and_masked_pong() {
    let ping = [0x89, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f];
    let pong = [
        0x8a, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58,
    ];
    assert_eq!(Frame::new(Opcode::Ping, b"Hello".to_vec()).encode(), ping);
    assert_eq!(
        Frame::new(Opcode::Pong, b"Hello".to_vec())
            .masked(KEY)
            .encode(),
        pong
    );
    assert_eq!(
        read_all(Sender::Server, LIMIT, &ping).unwrap(),
        [Incoming::Ping(b"Hello".to_vec())]
    );
    assert_eq!(
        read_all(Sender::Client, LIMIT, &pong).unwrap(),
        [Incoming::Pong(b"Hello".to_vec())]
    );
}

/// Section 5.7: 256 bytes of binary take the 16-bit length, 64 KiB the
/// 64-bit one.
#[test]
fn rfc_256_bytes_and_64_kib_binary() {
    let data: Vec<u8> = (0..=255).collect();
    let mut short = vec![0x82, 0x7E, 0x01, 0x00];
    short.extend_from_slice(&data);
    assert_eq!(Frame::new(Opcode::Binary, data.clone()).encode(), short);
    assert_eq!(
        read_all(Sender::Server, LIMIT, &short).unwrap(),
        [Incoming::Message(Message::Binary(data))]
    );

    let data: Vec<u8> = (0..65536u32).map(|i| (i * 7) as u8).collect();
    let mut long = vec![0x82, 0x7F, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00];
    long.extend_from_slice(&data);
    assert_eq!(Frame::new(Opcode::Binary, data.clone()).encode(), long);
    assert_eq!(
        read_all(Sender::Server, LIMIT, &long).unwrap(),
        [Incoming::Message(Message::Binary(data))]
    );
}

// ---------------------------------------------------------------------------
// The opening handshake (section 4)
// ---------------------------------------------------------------------------

/// A valid request for `/chat`, with the RFC's key, and `change` applied.
fn request_with(change: impl FnOnce(&mut Request)) -> Request {
    let mut request = handshake_request("/chat", "server.example.com", "dGhlIHNhbXBsZSBub25jZQ==");
    change(&mut request);
    request
}

fn set_header(headers: &mut Vec<(String, String)>, name: &str, value: &str) {
    headers.retain(|(n, _)| !n.eq_ignore_ascii_case(name));
    headers.push((name.into(), value.into()));
}

fn remove_header(headers: &mut Vec<(String, String)>, name: &str) {
    headers.retain(|(n, _)| !n.eq_ignore_ascii_case(name));
}

/// Section 4.2.1 and 4.2.2: the status a server refuses `request` with.
fn refused_with(request: &Request) -> u16 {
    match check_request(request) {
        Ok(accept) => panic!("accepted ({accept}) where a refusal was due"),
        Err(refusal) => refusal.response().status,
    }
}

/// Our own request, through its bytes, passes our own server check, and our
/// own 101 passes our own client check.
#[test]
fn handshake_round_trip_through_bytes() {
    let key = client_key([7; 16]);
    let bytes = handshake_request("/ws", "example.org", &key).to_bytes();
    let (_, request, _) = parse_request_head(&bytes).unwrap().unwrap();
    assert_eq!(request.method, "GET");
    assert_eq!(request.target, "/ws");
    let accept = check_request(&request).unwrap();
    assert_eq!(accept, accept_for(&key));
    let bytes = switching_protocols(&accept).to_bytes();
    assert!(bytes.starts_with(b"HTTP/1.1 101 Switching Protocols\r\n"));
    let (_, response, _) = parse_response_head(&bytes).unwrap().unwrap();
    assert_eq!(check_response(&response, &key), Ok(()));
}

/// Section 4.2.1, item 3: "An |Upgrade| header field containing the value
/// "websocket"" -- 400 otherwise (section 4.2.2).
#[test]
fn server_refuses_missing_upgrade_with_400() {
    assert_eq!(
        refused_with(&request_with(|r| remove_header(&mut r.headers, "Upgrade"))),
        400
    );
    assert_eq!(
        refused_with(&request_with(|r| set_header(
            &mut r.headers,
            "Upgrade",
            "h2c"
        ))),
        400
    );
}

/// Section 4.2.1, item 4: "A |Connection| header field that includes the
/// token "Upgrade"".
#[test]
fn server_refuses_connection_without_upgrade_token_with_400() {
    assert_eq!(
        refused_with(&request_with(|r| remove_header(
            &mut r.headers,
            "Connection"
        ))),
        400
    );
    assert_eq!(
        refused_with(&request_with(|r| set_header(
            &mut r.headers,
            "Connection",
            "keep-alive"
        ))),
        400
    );
    // A token, not a substring.
    assert_eq!(
        refused_with(&request_with(|r| set_header(
            &mut r.headers,
            "Connection",
            "Upgrades"
        ))),
        400
    );
}

/// Section 4.2.1, item 5: the key "when decoded, is 16 bytes in length".
#[test]
fn server_refuses_a_key_that_is_not_16_bytes_in_base64_with_400() {
    for key in [
        "not base64 at all!",
        "dGhlIHNhbXBsZSBub25jZQ",   // no padding
        "dGhlIHNhbXBsZSBub25j",     // 15 bytes
        "dGhlIHNhbXBsZSBub25jZXM=", // 17 bytes
        "",
    ] {
        assert_eq!(
            refused_with(&request_with(|r| set_header(
                &mut r.headers,
                "Sec-WebSocket-Key",
                key
            ))),
            400,
            "{key:?}"
        );
    }
    assert_eq!(
        refused_with(&request_with(|r| remove_header(
            &mut r.headers,
            "Sec-WebSocket-Key"
        ))),
        400
    );
}

/// Section 4.2.1, item 1: "An HTTP/1.1 or higher GET request".
#[test]
fn server_refuses_post_and_http10_with_400() {
    assert_eq!(
        refused_with(&request_with(|r| r.method = "POST".into())),
        400
    );
    assert_eq!(refused_with(&request_with(|r| r.minor_version = 0)), 400);
    let bytes = b"GET /chat HTTP/1.0\r\nHost: server.example.com\r\nUpgrade: websocket\r\n\
                  Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
                  Sec-WebSocket-Version: 13\r\n\r\n";
    let (_, request, _) = parse_request_head(bytes).unwrap().unwrap();
    assert_eq!(refused_with(&request), 400);
}

/// Section 4.2.1, item 2: "A |Host| header field".
#[test]
fn server_refuses_missing_host_with_400() {
    assert_eq!(
        refused_with(&request_with(|r| remove_header(&mut r.headers, "Host"))),
        400
    );
}

/// Section 4.2.2 and 4.4: another version gets 426 and
/// `Sec-WebSocket-Version: 13`, the version the server speaks.
#[test]
fn server_answers_other_versions_with_426_and_version_13() {
    for version in ["8", "12", "14", "0"] {
        let request =
            request_with(|r| set_header(&mut r.headers, "Sec-WebSocket-Version", version));
        let refusal = check_request(&request).unwrap_err();
        assert!(
            matches!(refusal, Refusal::UnsupportedVersion(_)),
            "{refusal:?}"
        );
        let response = refusal.response();
        assert_eq!(response.status, 426);
        assert_eq!(response.header("sec-websocket-version"), Some("13"));
        let bytes = response.to_bytes();
        assert!(bytes.starts_with(b"HTTP/1.1 426 "));
        let (_, parsed, _) = parse_response_head(&bytes).unwrap().unwrap();
        assert_eq!(parsed.header("Sec-WebSocket-Version"), Some("13"));
    }
    // No version at all is not a handshake this server understands either.
    assert!(
        check_request(&request_with(|r| remove_header(
            &mut r.headers,
            "Sec-WebSocket-Version"
        )))
        .is_err()
    );
}

/// Section 4.2.1: `Upgrade` is "an ASCII case-insensitive value" and
/// `Connection` a token list, as Firefox's `keep-alive, Upgrade`.
#[test]
fn server_accepts_token_lists_in_any_case() {
    let request = request_with(|r| {
        set_header(&mut r.headers, "Upgrade", "WebSocket");
        set_header(&mut r.headers, "Connection", "keep-alive, Upgrade");
    });
    assert_eq!(
        check_request(&request).unwrap(),
        "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
    );
    let request = request_with(|r| {
        set_header(&mut r.headers, "Upgrade", "WEBSOCKET");
        set_header(&mut r.headers, "Connection", "upgrade,keep-alive");
    });
    assert!(check_request(&request).is_ok());
    let bytes = b"GET /chat HTTP/1.1\r\nhost: server.example.com\r\nupgrade: websocket\r\n\
                  connection: keep-alive, Upgrade\r\nsec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
                  sec-websocket-version: 13\r\n\r\n";
    let (_, request, _) = parse_request_head(bytes).unwrap().unwrap();
    assert!(check_request(&request).is_ok());
}

const RFC_KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";

fn response_from(bytes: &[u8]) -> Response {
    parse_response_head(bytes).unwrap().unwrap().1
}

/// Section 4.1: the RFC's 101, headers in any case, is a success.
#[test]
fn client_accepts_the_rfc_answer() {
    let response = response_from(
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
          Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n",
    );
    assert_eq!(check_response(&response, RFC_KEY), Ok(()));
    let response = response_from(
        b"HTTP/1.1 101 Web Socket Protocol Handshake\r\nupgrade: WebSocket\r\nconnection: upgrade\r\n\
          sec-websocket-accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n",
    );
    assert_eq!(check_response(&response, RFC_KEY), Ok(()));
}

/// Section 4.1: "If the status code received from the server is not 101,
/// the client handles the response per HTTP" -- no WebSocket connection.
#[test]
fn client_rejects_anything_but_101() {
    for status in [200, 400, 426, 302] {
        let mut response = switching_protocols(&accept_for(RFC_KEY));
        response.status = status;
        assert!(check_response(&response, RFC_KEY).is_err(), "{status}");
    }
}

/// Section 4.1, items 2-4: missing `Upgrade`, `Connection` or the accept, or
/// an accept for another key, fails the connection.
#[test]
fn client_rejects_wrong_accept_and_missing_headers() {
    let good = switching_protocols(&accept_for(RFC_KEY));
    assert_eq!(check_response(&good, RFC_KEY), Ok(()));
    // The answer to another key.
    assert!(check_response(&good, &client_key([1; 16])).is_err());
    let mut wrong = good.clone();
    set_header(
        &mut wrong.headers,
        "Sec-WebSocket-Accept",
        "dGhlIHNhbXBsZSBub25jZQ==",
    );
    assert!(check_response(&wrong, RFC_KEY).is_err());
    for name in ["Upgrade", "Connection", "Sec-WebSocket-Accept"] {
        let mut missing = good.clone();
        remove_header(&mut missing.headers, name);
        assert!(check_response(&missing, RFC_KEY).is_err(), "without {name}");
    }
    let mut not_websocket = good.clone();
    set_header(&mut not_websocket.headers, "Upgrade", "h2c");
    assert!(check_response(&not_websocket, RFC_KEY).is_err());
    let mut not_upgrade = good.clone();
    set_header(&mut not_upgrade.headers, "Connection", "keep-alive");
    assert!(check_response(&not_upgrade, RFC_KEY).is_err());
}

/// Section 4.1, items 5 and 6: an extension or subprotocol the client did
/// not ask for fails the connection.
#[test]
fn client_rejects_extensions_and_subprotocols_it_did_not_offer() {
    let good = switching_protocols(&accept_for(RFC_KEY));
    let mut extension = good.clone();
    set_header(
        &mut extension.headers,
        "Sec-WebSocket-Extensions",
        "permessage-deflate",
    );
    assert!(check_response(&extension, RFC_KEY).is_err());
    let mut protocol = good;
    set_header(&mut protocol.headers, "Sec-WebSocket-Protocol", "chat");
    assert!(check_response(&protocol, RFC_KEY).is_err());
}

// ---------------------------------------------------------------------------
// Frames: the rules whose breach fails the connection (sections 5, 7, 8)
// ---------------------------------------------------------------------------

/// Section 5.1: "a server MUST close the connection upon receiving a frame
/// that is not masked" (1002, section 7.4.1).
#[test]
fn unmasked_client_frame_is_1002() {
    assert_eq!(failure(Sender::Client, &server(0x81, b"Hello")), 1002);
    assert_eq!(failure(Sender::Client, &server(0x89, b"")), 1002);
}

/// Section 5.1: "A client MUST close a connection if it detects a masked
/// frame".
#[test]
fn masked_server_frame_is_1002() {
    assert_eq!(failure(Sender::Server, &client(0x81, b"Hello")), 1002);
    assert_eq!(failure(Sender::Server, &client(0x8A, b"")), 1002);
}

/// Section 5.2: RSV1-3 "MUST be 0 unless an extension is negotiated".
#[test]
fn rsv_bits_without_extension_are_1002() {
    for rsv in [0x10, 0x20, 0x40, 0x70] {
        assert_eq!(failure(Sender::Client, &client(0x81 | rsv, b"Hello")), 1002);
        assert_eq!(failure(Sender::Server, &server(0x89 | rsv, b"")), 1002);
    }
}

/// Section 5.2: opcodes 3-7 and 11-15 are reserved; "If an unknown opcode
/// is received, the receiving endpoint MUST _Fail the WebSocket
/// Connection_".
#[test]
fn reserved_opcodes_are_1002() {
    for opcode in (3..=7).chain(11..=15) {
        assert_eq!(
            failure(Sender::Client, &client(0x80 | opcode, b"")),
            1002,
            "{opcode}"
        );
        assert_eq!(
            failure(Sender::Server, &server(0x80 | opcode, b"x")),
            1002,
            "{opcode}"
        );
        assert_eq!(Opcode::from_bits(opcode), None);
    }
}

/// Section 5.4: a continuation frame only continues a message.
#[test]
fn continuation_with_nothing_to_continue_is_1002() {
    assert_eq!(failure(Sender::Client, &client(0x80, b"lo")), 1002);
    assert_eq!(failure(Sender::Server, &server(0x00, b"lo")), 1002);
    // Not even after a message that ended.
    let mut bytes = client(0x81, b"Hel");
    bytes.extend(client(0x80, b"lo"));
    assert_eq!(failure(Sender::Client, &bytes), 1002);
}

/// Section 5.4: "The fragments of one message MUST NOT be interleaved
/// between the fragments of another message".
#[test]
fn new_data_frame_inside_a_fragmented_message_is_1002() {
    for (start, intruder) in [(0x01, 0x81), (0x01, 0x82), (0x02, 0x81), (0x02, 0x01)] {
        let mut bytes = client(start, b"Hel");
        bytes.extend(client(intruder, b"lo"));
        assert_eq!(
            failure(Sender::Client, &bytes),
            1002,
            "{start:#x} {intruder:#x}"
        );
    }
}

/// Section 5.5: "All control frames MUST have a payload length of 125 bytes
/// or less".
#[test]
fn control_frame_over_125_bytes_is_1002() {
    for opcode in [0x88, 0x89, 0x8A] {
        let mut payload = vec![b'a'; 126];
        if opcode == 0x88 {
            payload[..2].copy_from_slice(&1000u16.to_be_bytes());
        }
        assert_eq!(failure(Sender::Client, &client(opcode, &payload)), 1002);
        assert_eq!(failure(Sender::Server, &server(opcode, &payload)), 1002);
        // 125 is fine.
        assert!(read_all(Sender::Server, LIMIT, &server(opcode, &payload[..125])).is_ok());
    }
}

/// Section 5.5: "Control frames ... MUST NOT be fragmented".
#[test]
fn fragmented_control_frame_is_1002() {
    for opcode in [0x08, 0x09, 0x0A] {
        assert_eq!(failure(Sender::Client, &client(opcode, b"")), 1002);
        assert_eq!(failure(Sender::Server, &server(opcode, b"")), 1002);
    }
}

/// Section 5.2: the 64-bit length's "most significant bit MUST be 0".
#[test]
fn length_with_top_bit_set_is_a_violation() {
    let bytes = [0x82, 0x7F, 0x80, 0, 0, 0, 0, 0, 0, 1];
    assert!(
        Reader::new(Sender::Server, usize::MAX >> 1)
            .next(&bytes)
            .is_err()
    );
}

/// Section 5.4: control frames "MAY be injected in the middle of a
/// fragmented message".
#[test]
fn ping_pong_and_close_between_fragments_are_allowed() {
    let mut bytes = client(0x01, b"Hel");
    bytes.extend(client(0x89, b"ping"));
    bytes.extend(client(0x8A, b"pong"));
    bytes.extend(client(0x00, b""));
    bytes.extend(client(0x80, b"lo"));
    assert_eq!(
        read_all(Sender::Client, LIMIT, &bytes).unwrap(),
        [
            Incoming::Ping(b"ping".to_vec()),
            Incoming::Pong(b"pong".to_vec()),
            text("Hello"),
        ]
    );
    let mut bytes = server(0x02, b"\x01\x02");
    bytes.extend(server(0x88, &close_payload(1001, b"bye")));
    assert_eq!(
        read_all(Sender::Server, LIMIT, &bytes).unwrap(),
        [Incoming::Close(Some((1001, "bye".into())))]
    );
}

/// Section 8.1: "When an endpoint is to interpret a byte stream as UTF-8
/// but finds that the byte stream is not, in fact, a valid UTF-8 stream,
/// that endpoint MUST _Fail the WebSocket Connection_" (1007, section
/// 7.4.1).
#[test]
fn invalid_utf8_text_is_1007() {
    for bad in [
        &b"\xff"[..],
        b"Hello\xc0\xafworld", // overlong '/'
        b"\xed\xa0\x80",       // a surrogate, U+D800
        b"\xf4\x90\x80\x80",   // above U+10FFFF
        b"\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xed\xa0\x80edited",
    ] {
        assert_eq!(failure(Sender::Client, &client(0x81, bad)), 1007, "{bad:?}");
        assert_eq!(failure(Sender::Server, &server(0x81, bad)), 1007, "{bad:?}");
    }
    // Valid pieces that join into invalid text.
    let mut bytes = client(0x01, b"\xce");
    bytes.extend(client(0x80, b"A"));
    assert_eq!(failure(Sender::Client, &bytes), 1007);
    // Binary is never checked.
    assert!(read_all(Sender::Client, LIMIT, &client(0x82, b"\xff\xfe")).is_ok());
}

/// A character split across fragments is still one valid character.
#[test]
fn character_split_across_fragments_is_valid() {
    let mut bytes = client(0x01, b"\xce");
    bytes.extend(client(0x00, b"\xba\xe1"));
    bytes.extend(client(0x89, b""));
    bytes.extend(client(0x80, b"\xbd\xb9"));
    assert_eq!(
        read_all(Sender::Client, LIMIT, &bytes).unwrap(),
        [Incoming::Ping(Vec::new()), text("κ\u{1f79}")]
    );
}

/// Section 8.1 and Autobahn 6.4: an impossible sequence fails the
/// connection as it arrives, before the rest of its frame.
#[test]
fn invalid_utf8_fails_fast_on_a_partial_frame() {
    // A 40-byte masked text frame of which 17 have arrived: "κόσμε" (11
    // bytes) then 0xf4 0x90, which no byte can complete (above U+10FFFF).
    let mut payload = b"\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xf4\x90\x80\x80".to_vec();
    payload.resize(40, b'a');
    let bytes = client(0x81, &payload);
    let partial = &bytes[..6 + 13];
    let mut reader = Reader::new(Sender::Client, LIMIT);
    let err = reader.next(partial).unwrap_err();
    assert_eq!(err.close_code, 1007);

    // Fed a byte at a time, it fails at 0x90 exactly, not before.
    let mut reader = Reader::new(Sender::Client, LIMIT);
    for end in 1..=6 + 12 {
        assert_eq!(reader.next(&bytes[..end]), Ok(None), "{end}");
    }
    assert_eq!(reader.next(&bytes[..6 + 13]).unwrap_err().close_code, 1007);

    // The same for an unmasked server frame and for a continuation.
    let bytes = server(0x81, &payload);
    assert_eq!(
        Reader::new(Sender::Server, LIMIT)
            .next(&bytes[..2 + 13])
            .unwrap_err()
            .close_code,
        1007
    );
    let mut reader = Reader::new(Sender::Client, LIMIT);
    let first = client(0x01, b"\xce");
    let (_, used, _) = reader.next(&first).unwrap().unwrap();
    assert_eq!(used, first.len());
    // The continuation's first byte cannot finish the character.
    let next = client(0x80, b"Aaaaaaaaaa");
    assert_eq!(reader.next(&next[..7]).unwrap_err().close_code, 1007);
}

/// Fed byte by byte, valid text never fails early, masked or not.
#[test]
fn valid_utf8_never_fails_on_a_partial_frame() {
    let payload = "κόσμε, 𝄞 and ü".as_bytes();
    for bytes in [client(0x81, payload), server(0x81, payload)] {
        let from = if bytes[1] & 0x80 != 0 {
            Sender::Client
        } else {
            Sender::Server
        };
        let mut reader = Reader::new(from, LIMIT);
        for end in 1..bytes.len() {
            assert_eq!(reader.next(&bytes[..end]), Ok(None), "{end}");
        }
        let (_, _, incoming) = reader.next(&bytes).unwrap().unwrap();
        assert_eq!(incoming, Some(text("κόσμε, 𝄞 and ü")));
    }
}

/// Section 8.1: a message ending inside a character is not valid UTF-8.
#[test]
fn text_ending_mid_character_is_1007() {
    assert_eq!(failure(Sender::Client, &client(0x81, b"Hello\xce")), 1007);
    assert_eq!(
        failure(Sender::Client, &client(0x81, b"\xf0\x9d\x84")),
        1007
    );
    let mut bytes = client(0x01, b"Hel");
    bytes.extend(client(0x80, b"lo\xe1\xbd"));
    assert_eq!(failure(Sender::Client, &bytes), 1007);
}

/// Section 7.4.1: 1009, "a message that is too big for it to process".
#[test]
fn message_over_the_limit_is_1009() {
    let too_big = |bytes: &[u8]| read_all(Sender::Client, 10, bytes).unwrap_err().close_code;
    assert_eq!(too_big(&client(0x82, &[0; 11])), 1009);
    assert_eq!(too_big(&client(0x81, b"Hello world")), 1009);
    assert!(read_all(Sender::Client, 10, &client(0x82, &[0; 10])).is_ok());
    // Across fragments: 6 + 5 is over, 6 + 4 is not.
    let mut over = client(0x01, b"Hello ");
    over.extend(client(0x80, b"world"));
    assert_eq!(too_big(&over), 1009);
    let mut at = client(0x01, b"Hello ");
    at.extend(client(0x80, b"worl"));
    assert_eq!(
        read_all(Sender::Client, 10, &at).unwrap(),
        [text("Hello worl")]
    );
    // Over the limit fails on the header, before the payload.
    let big = client(0x82, &[0; 1000]);
    assert_eq!(
        Reader::new(Sender::Client, 10)
            .next(&big[..8])
            .unwrap_err()
            .close_code,
        1009
    );
}

/// Section 5.5.1: a close payload is empty or starts with a 2-byte code.
#[test]
fn close_with_one_byte_payload_is_1002() {
    assert_eq!(failure(Sender::Client, &client(0x88, &[0x03])), 1002);
    assert_eq!(parse_close(&[0x03]).unwrap_err().close_code, 1002);
    assert_eq!(
        read_all(Sender::Client, LIMIT, &client(0x88, b"")).unwrap(),
        [Incoming::Close(None)]
    );
}

/// Section 7.4.1 and 7.4.2: codes below 1000, 1004 (reserved), 1005, 1006
/// and 1015 (never sent), unassigned 1016-2999, and anything past 4999.
#[test]
fn invalid_close_codes_are_1002() {
    for code in [0, 999, 1004, 1005, 1006, 1015, 1016, 2999, 5000, 65535] {
        assert!(!valid_close_code(code), "{code}");
        assert_eq!(
            failure(Sender::Client, &client(0x88, &close_payload(code, b""))),
            1002,
            "{code}"
        );
        assert_eq!(
            failure(Sender::Server, &server(0x88, &close_payload(code, b"why"))),
            1002,
            "{code}"
        );
    }
}

/// Section 7.4.1 and the IANA registry (1012-1014), and 3000-4999 for
/// libraries and applications.
#[test]
fn valid_close_codes_are_accepted() {
    for code in (1000..=1003)
        .chain(1007..=1014)
        .chain([3000, 3999, 4000, 4999])
    {
        assert!(valid_close_code(code), "{code}");
        assert_eq!(
            read_all(
                Sender::Client,
                LIMIT,
                &client(0x88, &close_payload(code, b"bye"))
            )
            .unwrap(),
            [Incoming::Close(Some((code, "bye".into())))],
            "{code}"
        );
    }
}

/// Section 5.5.1: the close reason is UTF-8 (section 8.1 applies).
#[test]
fn close_reason_not_utf8_is_1002() {
    assert_eq!(
        failure(Sender::Client, &client(0x88, &close_payload(1000, b"\xce"))),
        1002
    );
    assert_eq!(
        failure(
            Sender::Server,
            &server(0x88, &close_payload(1000, b"ok\xff"))
        ),
        1002
    );
    assert_eq!(
        parse_close(&close_payload(1000, "ciao 👋".as_bytes())),
        Ok(Some((1000, "ciao 👋".into())))
    );
}

/// Frame::close cuts a long reason to fit 125 bytes, on a character boundary.
#[test]
fn close_frame_reason_fits_a_control_frame() {
    let frame = Frame::close(1000, &"é".repeat(100));
    assert!(frame.payload.len() <= 125);
    let bytes = frame.masked(KEY).encode();
    let read = read_all(Sender::Client, LIMIT, &bytes).unwrap();
    assert_eq!(read, [Incoming::Close(Some((1000, "é".repeat(61))))]);
}

// ---------------------------------------------------------------------------
// Encoding
// ---------------------------------------------------------------------------

/// Section 5.2: "the minimal number of bytes MUST be used to encode the
/// length".
#[test]
fn encoding_picks_the_minimal_length_form() {
    let header = |n: usize| {
        let bytes = Frame::new(Opcode::Binary, vec![0; n]).encode();
        bytes[..bytes.len() - n].to_vec()
    };
    assert_eq!(header(0), [0x82, 0]);
    assert_eq!(header(125), [0x82, 125]);
    assert_eq!(header(126), [0x82, 126, 0x00, 0x7E]);
    assert_eq!(header(65535), [0x82, 126, 0xFF, 0xFF]);
    assert_eq!(header(65536), [0x82, 127, 0, 0, 0, 0, 0, 1, 0, 0]);
    let masked = Frame::new(Opcode::Binary, vec![0; 126])
        .masked(KEY)
        .encode();
    assert_eq!(
        masked[..8],
        [0x82, 0xFE, 0x00, 0x7E, 0x37, 0xfa, 0x21, 0x3d]
    );
}

/// Section 5.3: masking is XOR with key byte `i mod 4`, so unmasking is the
/// same operation, and a payload may be unmasked in pieces.
#[test]
fn masking_is_its_own_inverse_and_works_in_pieces() {
    let mut data = b"Hello".to_vec();
    apply_mask(&mut data, KEY, 0);
    assert_eq!(data, [0x7f, 0x9f, 0x4d, 0x51, 0x58]);
    let (head, tail) = data.split_at_mut(3);
    apply_mask(head, KEY, 0);
    apply_mask(tail, KEY, 3);
    assert_eq!(data, b"Hello");
}

fn opcode() -> impl Strategy<Value = Opcode> {
    prop_oneof![
        Just(Opcode::Continuation),
        Just(Opcode::Text),
        Just(Opcode::Binary),
        Just(Opcode::Close),
        Just(Opcode::Ping),
        Just(Opcode::Pong),
    ]
}

/// Any frame the rules allow: control frames final and at most 125 bytes.
fn any_frame() -> impl Strategy<Value = Frame> {
    (
        opcode(),
        any::<bool>(),
        any::<Option<[u8; 4]>>(),
        prop_oneof![
            prop::collection::vec(any::<u8>(), 0..=130),
            prop::collection::vec(any::<u8>(), 65530..=65540),
            prop::collection::vec(any::<u8>(), 0..=3000),
        ],
    )
        .prop_map(|(opcode, fin, mask, mut payload)| {
            if opcode.is_control() {
                payload.truncate(125);
            }
            Frame {
                fin: fin || opcode.is_control(),
                rsv: 0,
                opcode,
                mask,
                payload,
            }
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Encode then decode gives the frame back, taking exactly its bytes,
    /// with the length in its minimal form; any prefix is "not yet".
    #[test]
    fn frames_round_trip(frame in any_frame(), trailing in prop::collection::vec(any::<u8>(), 0..8)) {
        let from = if frame.mask.is_some() { Sender::Client } else { Sender::Server };
        let bytes = frame.encode();
        let len = frame.payload.len();
        let length_bytes = match len {
            0..=125 => 0,
            126..=65535 => 2,
            _ => 8,
        };
        let header_len = 2 + length_bytes + if frame.mask.is_some() { 4 } else { 0 };
        prop_assert_eq!(bytes.len(), header_len + len);
        prop_assert_eq!(&bytes, &raw(
            (frame.fin as u8) << 7 | frame.opcode.bits(),
            frame.mask,
            &frame.payload,
        ));
        let mut stream = bytes.clone();
        stream.extend_from_slice(&trailing);
        let (decoded, used) = decode_frame(&stream, from, LIMIT).unwrap().unwrap();
        prop_assert_eq!(used, bytes.len());
        prop_assert_eq!(&decoded, &frame);
        for end in [0, 1, header_len - 1, header_len, bytes.len() - 1] {
            if end < bytes.len() {
                prop_assert_eq!(decode_frame(&bytes[..end], from, LIMIT), Ok(None));
            }
        }
    }

    /// Any bytes as a text message, fragmented anywhere and fed in pieces:
    /// the message if they are UTF-8, 1007 otherwise.
    #[test]
    fn text_is_accepted_exactly_when_it_is_utf8(
        data in prop_oneof![
            any::<String>().prop_map(String::into_bytes),
            prop::collection::vec(any::<u8>(), 0..40),
        ],
        cuts in prop::collection::vec(any::<prop::sample::Index>(), 0..4),
        step in 1usize..7,
    ) {
        let mut cuts: Vec<usize> = cuts.iter().map(|c| c.index(data.len() + 1)).collect();
        cuts.sort();
        cuts.dedup();
        let mut bounds = vec![0];
        bounds.extend(cuts.into_iter().filter(|&c| c > 0 && c < data.len()));
        bounds.push(data.len());
        let pieces = bounds.windows(2).count();
        let mut bytes = Vec::new();
        for (i, w) in bounds.windows(2).enumerate() {
            let opcode = if i == 0 { 0x01 } else { 0x00 };
            let fin = if i + 1 == pieces { 0x80 } else { 0 };
            bytes.extend(client(fin | opcode, &data[w[0]..w[1]]));
        }
        // Fed `step` more bytes at a time, the way they might arrive.
        let mut reader = Reader::new(Sender::Client, LIMIT);
        let mut start = 0;
        let mut end = 0;
        let mut result = None;
        while start < bytes.len() && result.is_none() {
            end = (end + step).min(bytes.len());
            match reader.next(&bytes[start..end]) {
                Ok(None) => {}
                Ok(Some((_, used, incoming))) => {
                    start += used;
                    end = start;
                    if let Some(incoming) = incoming {
                        result = Some(Ok(incoming));
                    }
                }
                Err(v) => result = Some(Err(v.close_code)),
            }
        }
        match String::from_utf8(data) {
            Ok(s) => prop_assert_eq!(result, Some(Ok(text(&s)))),
            Err(_) => prop_assert_eq!(result, Some(Err(1007))),
        }
    }

    /// Bytes that are not a frame never panic the reader.
    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..300)) {
        for from in [Sender::Client, Sender::Server] {
            let _ = read_all_lenient(from, &bytes);
            let _ = pushpull::wire::websocket::decode_all(&bytes, from);
        }
    }
}

/// Like `read_all`, but stops quietly where the bytes end inside a frame.
fn read_all_lenient(from: Sender, bytes: &[u8]) -> Result<Vec<Incoming>, Violation> {
    let mut reader = Reader::new(from, 1000);
    let mut rest = bytes;
    let mut out = Vec::new();
    while let Some((_, used, incoming)) = reader.next(rest)? {
        rest = &rest[used..];
        out.extend(incoming);
    }
    Ok(out)
}

// ---------------------------------------------------------------------------
// `pushpull decode ws`
// ---------------------------------------------------------------------------

/// Runs `pushpull decode ws` with `args` and `stdin`; its JSON lines, raw
/// and parsed.
fn decode_ws(args: &[&str], stdin: &[u8]) -> (Vec<String>, Vec<Value>) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_pushpull"))
        .args(["decode", "ws"])
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(stdin).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<String> = text.lines().map(str::to_string).collect();
    let values = lines
        .iter()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l}: {e}")))
        .collect();
    (lines, values)
}

/// The issue's example: the RFC's masked "Hello" from a client, one line
/// for the frame (fields in this order), one for the message.
#[test]
fn cli_decodes_a_masked_client_frame() {
    let (lines, values) = decode_ws(
        &[],
        &[
            0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58,
        ],
    );
    assert_eq!(
        lines[0],
        r#"{"fin":true,"rsv":0,"opcode":"text","masked":true,"mask":"37fa213d","length":5,"payload":"Hello"}"#
    );
    assert_eq!(
        values,
        [
            json!({"fin":true,"rsv":0,"opcode":"text","masked":true,"mask":"37fa213d","length":5,"payload":"Hello"}),
            json!({"message":"text","data":"Hello"}),
        ]
    );
    // `--from client` is the default, said out loud.
    let (_, same) = decode_ws(
        &["--from", "client"],
        &[
            0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58,
        ],
    );
    assert_eq!(same, values);
}

/// A server's side: fragments, a ping between them, binary in hex, a close.
#[test]
fn cli_decodes_a_server_stream() {
    let mut bytes = vec![0x01, 0x03, 0x48, 0x65, 0x6c];
    bytes.extend([0x89, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f]);
    bytes.extend([0x80, 0x02, 0x6c, 0x6f]);
    bytes.extend(server(0x82, &[0x00, 0xff, 0x10]));
    bytes.extend(server(0x88, &close_payload(1000, b"")));
    let (_, values) = decode_ws(&["--from", "server"], &bytes);
    assert_eq!(
        values,
        [
            json!({"fin":false,"rsv":0,"opcode":"text","masked":false,"length":3,"payload":"Hel"}),
            json!({"fin":true,"rsv":0,"opcode":"ping","masked":false,"length":5,"payload":"Hello"}),
            json!({"fin":true,"rsv":0,"opcode":"continuation","masked":false,"length":2,"payload":"lo"}),
            json!({"message":"text","data":"Hello"}),
            json!({"fin":true,"rsv":0,"opcode":"binary","masked":false,"length":3,"payload_hex":"00ff10"}),
            json!({"message":"binary","data_hex":"00ff10"}),
            json!({"fin":true,"rsv":0,"opcode":"close","masked":false,"length":2,"payload_hex":"03e8"}),
            json!({"close_code":1000,"reason":""}),
        ]
    );
}

/// A close with a reason, from a client.
#[test]
fn cli_decodes_a_close_with_reason() {
    let (_, values) = decode_ws(&[], &client(0x88, &close_payload(1001, b"going")));
    assert_eq!(values.len(), 2);
    assert_eq!(values[0]["opcode"], "close");
    assert_eq!(values[0]["mask"], "37fa213d");
    assert_eq!(values[0]["payload_hex"], "03e9676f696e67");
    assert_eq!(values[1], json!({"close_code":1001,"reason":"going"}));
}

/// A violation prints `{"error","close_code"}` and nothing after it.
#[test]
fn cli_stops_at_the_first_violation() {
    // An unmasked frame from a client, then a valid one.
    let mut bytes = server(0x81, b"Hello");
    bytes.extend(client(0x81, b"Hello"));
    let (_, values) = decode_ws(&[], &bytes);
    assert_eq!(values.len(), 1, "{values:?}");
    assert_eq!(values[0]["close_code"], 1002);
    assert!(values[0]["error"].as_str().is_some_and(|e| !e.is_empty()));
    assert_eq!(values[0].as_object().unwrap().len(), 2);

    // A masked frame from a server, after a good one.
    let mut bytes = server(0x81, b"ok");
    bytes.extend(client(0x81, b"Hello"));
    bytes.extend(server(0x81, b"never"));
    let (_, values) = decode_ws(&["--from", "server"], &bytes);
    assert_eq!(values.len(), 3, "{values:?}");
    assert_eq!(values[1], json!({"message":"text","data":"ok"}));
    assert_eq!(values[2]["close_code"], 1002);

    // Invalid UTF-8: 1007; a bad close code: 1002.
    let (_, values) = decode_ws(&[], &client(0x81, b"\xff"));
    assert_eq!(values.len(), 1);
    assert_eq!(values[0]["close_code"], 1007);
    let (_, values) = decode_ws(&[], &client(0x88, &close_payload(1005, b"")));
    assert_eq!(values.last().unwrap()["close_code"], 1002);
    assert!(values.last().unwrap()["error"].is_string());
}

/// The bytes come from a FILE argument as well as from standard input.
#[test]
fn cli_reads_a_file() {
    let path = std::env::temp_dir().join(format!("pushpull-ws-{}.bin", std::process::id()));
    let mut bytes = server(0x81, "café".as_bytes());
    bytes.extend(server(0x8A, b"\xff\x01"));
    std::fs::write(&path, &bytes).unwrap();
    let (_, values) = decode_ws(&["--from", "server", path.to_str().unwrap()], b"");
    std::fs::remove_file(&path).unwrap();
    assert_eq!(
        values,
        [
            json!({"fin":true,"rsv":0,"opcode":"text","masked":false,"length":5,"payload":"café"}),
            json!({"message":"text","data":"café"}),
            json!({"fin":true,"rsv":0,"opcode":"pong","masked":false,"length":2,"payload_hex":"ff01"}),
        ]
    );
}

#[test]
fn frame_len_finds_whole_frames_for_a_proxy() {
    use pushpull::wire::websocket::frame_len;
    // Section 5.7's masked "Hello": 2 + 4 + 5 bytes.
    let hello = [
        0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58,
    ];
    assert_eq!(frame_len(&hello), Some(11));
    assert_eq!(frame_len(&hello[..10]), None);
    assert_eq!(frame_len(&hello[..1]), None);
    // 16-bit and 64-bit lengths, unmasked (a server's frames).
    let medium = Frame::new(Opcode::Binary, vec![7; 256]).encode();
    assert_eq!(frame_len(&medium), Some(4 + 256));
    let large = Frame::new(Opcode::Binary, vec![7; 65536]).encode();
    assert_eq!(frame_len(&large), Some(10 + 65536));
    assert_eq!(frame_len(&large[..9]), None);
    // Two frames back to back: only the first counts.
    let mut two = hello.to_vec();
    two.extend_from_slice(&hello);
    assert_eq!(frame_len(&two), Some(11));
}
