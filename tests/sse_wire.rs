//! SSE on the wire: the server's exact bytes, replay from `Last-Event-ID`, the
//! `gap` event, and the client side reading a stream that arrives in pieces.

mod support;

use pushpull::record::trace::Dir;
use pushpull::scenario::Mechanism;
use pushpull::wire::event_stream::{Output, Parser};
use pushpull::wire::http::Framing;
use pushpull::world::http_conn::StreamBody;
use support::{scripted_conn, server_answer};

/// Sends `request` to an SSE server whose log holds `events` events and returns
/// what it streamed in the first simulated second.
fn stream_bytes(request: &[u8], events: u64, sets: &[&str]) -> String {
    let names: Vec<String> = (1..=events).map(|id| format!("e{id}")).collect();
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    server_answer(Mechanism::Sse, sets, &names, request)
}

/// The body of a streamed answer, its chunks decoded.
fn dechunked_body(answer: &str) -> String {
    let (_, body) = answer.split_once("\r\n\r\n").unwrap();
    let mut decoder = pushpull::wire::http::ChunkedDecoder::new();
    let (data, _) = decoder.push(body.as_bytes()).unwrap();
    String::from_utf8(data).unwrap()
}

/// The head, then every event as an `id` / `event` / `data` block.
#[test]
fn sse_server_streams_head_then_event_blocks() {
    let answer = stream_bytes(b"GET /stream HTTP/1.1\r\nHost: server\r\n\r\n", 2, &[]);
    // Each block is one chunk: its size in hex (0x1E = 30 bytes), the block,
    // CRLF. The stream has no last chunk yet: it is still open.
    assert_eq!(
        answer,
        "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-store\r\nTransfer-Encoding: chunked\r\n\r\n\
         1E\r\nid: 1\nevent: update\ndata: e1\n\n\r\n\
         1E\r\nid: 2\nevent: update\ndata: e2\n\n\r\n"
    );
}

/// `Last-Event-ID: 2` replays from event 3; `retry` comes first when set.
#[test]
fn sse_server_replays_after_last_event_id_and_sends_retry() {
    let answer = stream_bytes(
        b"GET /stream HTTP/1.1\r\nHost: server\r\nLast-Event-ID: 2\r\n\r\n",
        4,
        &["sse.retry=10s"],
    );
    let body = dechunked_body(&answer);
    assert_eq!(
        body,
        "retry: 10000\n\nid: 3\nevent: update\ndata: e3\n\nid: 4\nevent: update\ndata: e4\n\n"
    );
}

/// Further behind than the history: an explicit `gap` event, then what is kept.
#[test]
fn sse_server_says_gap_when_history_is_too_short() {
    let answer = stream_bytes(
        b"GET /stream HTTP/1.1\r\nHost: server\r\nLast-Event-ID: 1\r\n\r\n",
        10,
        &["sse.history=3"],
    );
    let body = dechunked_body(&answer);
    assert!(
        body.starts_with("event: gap\ndata: {\"missed_from\":2,\"missed_to\":7}\n\nid: 8\n"),
        "{body}"
    );
}

/// A payload longer than 40 bytes goes out as several `data` lines.
#[test]
fn sse_server_splits_long_payloads_into_data_lines() {
    let block = pushpull::mechanisms::sse::event_block(&pushpull::world::event_log::AppEvent {
        id: 9,
        data: "x".repeat(90),
    });
    let text = String::from_utf8(block).unwrap();
    assert_eq!(text.matches("data: ").count(), 3);
    let events = pushpull::wire::event_stream::decode_all(text.as_bytes());
    assert!(
        matches!(&events[0], Output::Event(e) if e.data == "x".repeat(40) + "\n" + &"x".repeat(40) + "\n" + &"x".repeat(10))
    );
}

#[test]
fn sse_server_refuses_wrong_path_and_method() {
    assert!(
        stream_bytes(b"GET /nope HTTP/1.1\r\nHost: server\r\n\r\n", 0, &[])
            .starts_with("HTTP/1.1 404 ")
    );
    assert!(
        stream_bytes(b"DELETE /stream HTTP/1.1\r\nHost: server\r\n\r\n", 0, &[])
            .starts_with("HTTP/1.1 405 ")
    );
    assert!(stream_bytes(b"\x16\x03\x01garbage\r\n\r\n", 0, &[]).starts_with("HTTP/1.1 400 "));
}

/// The client side over a mock socket: a response whose head, CRLFs and a
/// UTF-8 character are all split across reads still yields the same events.
#[tokio::test]
async fn sse_client_reads_a_stream_split_across_reads() {
    let stream = tokio_test::io::Builder::new()
        .read(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r")
        .read(b"\n\r\nid: 1\r")
        .read(b"\ndata: caf\xc3")
        .read(b"\xa9\r\n\r")
        .read(b"\n: heartbeat\n\nretry: 50")
        .read(b"0\n\nid: 2\ndata: b\n\n")
        .build();
    let mut conn = scripted_conn(stream, Dir::Up);
    let (response, framing) = conn.read_response_start().await.unwrap();
    assert_eq!(response.status, 200);
    assert_eq!(framing, Framing::UntilClose);
    let mut parser = Parser::new();
    let mut outputs = Vec::new();
    let mut body = StreamBody::new(framing);
    while let Some((bytes, _blocks)) = body.next(&mut conn).await.unwrap() {
        outputs.extend(parser.feed(&bytes));
    }
    let text: Vec<String> = outputs
        .iter()
        .map(|o| serde_json::to_string(o).unwrap())
        .collect();
    assert_eq!(
        text,
        vec![
            r#"{"type":"message","data":"café","last_event_id":"1"}"#,
            r#"{"retry":500}"#,
            r#"{"type":"message","data":"b","last_event_id":"2"}"#,
        ]
    );
}

/// The client side of a chunked stream: chunks split anywhere across reads
/// give the same events, and the last chunk is a clean end.
#[tokio::test]
async fn sse_client_reads_a_chunked_stream_to_its_last_chunk() {
    let stream = tokio_test::io::Builder::new()
        .read(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n")
        .read(b"F\r\nid: 1\ndata: a\n")
        .read(b"\n\r\n0\r")
        .read(b"\n\r\n")
        .build();
    let mut conn = scripted_conn(stream, Dir::Up);
    let (_, framing) = conn.read_response_start().await.unwrap();
    assert_eq!(framing, Framing::Chunked);
    let mut body = StreamBody::new(framing);
    let mut blocks = Vec::new();
    while let Some((_, b)) = body.next(&mut conn).await.unwrap() {
        blocks.extend(b);
    }
    assert_eq!(blocks, vec![b"id: 1\ndata: a\n\n".to_vec()]);
}

/// A chunked stream whose connection closes before the last chunk was cut
/// short: an error, never a clean end (so EventSource retries, as a
/// failure).
#[tokio::test]
async fn sse_client_sees_a_chunked_stream_cut_short_as_an_error() {
    let stream = tokio_test::io::Builder::new()
        .read(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n")
        .read(b"F\r\nid: 1\ndata: a\n\n\r\n")
        .build();
    let mut conn = scripted_conn(stream, Dir::Up);
    let (_, framing) = conn.read_response_start().await.unwrap();
    let mut body = StreamBody::new(framing);
    assert!(body.next(&mut conn).await.unwrap().is_some());
    assert!(body.next(&mut conn).await.is_err());
}
