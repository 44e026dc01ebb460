//! The short-polling server on the simulated wire: exact bytes in, exact
//! bytes out, and a protocol error (never a panic) for bytes that are not HTTP.

mod support;

use pushpull::record::trace::Dir;
use pushpull::scenario::Mechanism;
use pushpull::world::http_conn::ReadError;
use support::{scripted_conn, server_answer};

/// Sends `request` as raw bytes to a short-polling server holding two events
/// and returns everything the server sent back before closing or going quiet.
fn exchange(request: &[u8]) -> String {
    server_answer(Mechanism::ShortPolling, &[], &["first", "second"], request)
}

/// A well-formed poll gets the events after the cursor, with exact framing.
#[test]
fn poll_gets_events_after_cursor_as_json() {
    let answer = exchange(b"GET /updates?after=1 HTTP/1.1\r\nHost: server\r\n\r\n");
    let body = r#"{"events":[{"id":2,"data":"second"}],"more":false}"#;
    assert_eq!(
        answer,
        format!(
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
    );
}

#[test]
fn poll_with_nothing_new_gets_an_empty_list() {
    let answer = exchange(b"GET /updates?after=2 HTTP/1.1\r\nHost: server\r\n\r\n");
    assert!(answer.starts_with("HTTP/1.1 200 OK\r\n"), "{answer}");
    assert!(
        answer.ends_with("\r\n\r\n{\"events\":[],\"more\":false}"),
        "{answer}"
    );
}

#[test]
fn garbage_gets_400() {
    let answer = exchange(b"HELLO THERE\r\n\r\n");
    assert!(
        answer.starts_with("HTTP/1.1 400 Bad Request\r\n"),
        "{answer}"
    );
    assert!(answer.contains("Connection: close\r\n"));
}

#[test]
fn http11_without_host_gets_400() {
    let answer = exchange(b"GET /updates HTTP/1.1\r\n\r\n");
    assert!(
        answer.starts_with("HTTP/1.1 400 Bad Request\r\n"),
        "{answer}"
    );
}

#[test]
fn bad_cursor_gets_400() {
    let answer = exchange(b"GET /updates?after=abc HTTP/1.1\r\nHost: server\r\n\r\n");
    assert!(
        answer.starts_with("HTTP/1.1 400 Bad Request\r\n"),
        "{answer}"
    );
}

#[test]
fn oversized_head_gets_431() {
    let mut request = b"GET /updates HTTP/1.1\r\nHost: server\r\nX-Big: ".to_vec();
    request.extend(std::iter::repeat_n(b'a', 10_000));
    request.extend_from_slice(b"\r\n\r\n");
    let answer = exchange(&request);
    assert!(
        answer.starts_with("HTTP/1.1 431 Request Header Fields Too Large\r\n"),
        "{answer}"
    );
}

#[test]
fn too_many_headers_gets_431() {
    let mut request = b"GET /updates HTTP/1.1\r\nHost: server\r\n".to_vec();
    for i in 0..40 {
        request.extend_from_slice(format!("X-{i}: 1\r\n").as_bytes());
    }
    request.extend_from_slice(b"\r\n");
    let answer = exchange(&request);
    assert!(answer.starts_with("HTTP/1.1 431 "), "{answer}");
}

#[test]
fn unknown_path_gets_404_and_wrong_method_405() {
    assert!(exchange(b"GET /nope HTTP/1.1\r\nHost: server\r\n\r\n").starts_with("HTTP/1.1 404 "));
    let answer = exchange(b"POST /updates HTTP/1.1\r\nHost: server\r\nContent-Length: 0\r\n\r\n");
    assert!(answer.starts_with("HTTP/1.1 405 "), "{answer}");
    assert!(answer.contains("Allow: GET\r\n"));
}

#[test]
fn chunked_body_is_read_and_smuggling_shape_gets_400() {
    // The body is read whole (RFC 9112 section 7: a recipient MUST parse
    // chunked), then the method is refused: 405, not a framing error.
    let answer = exchange(
        b"POST /updates HTTP/1.1\r\nHost: server\r\nTransfer-Encoding: chunked\r\n\r\n3;ext\r\nabc\r\n0\r\nX-Trailer: 1\r\n\r\n",
    );
    assert!(answer.starts_with("HTTP/1.1 405 "), "{answer}");
    let answer = exchange(
        b"POST /updates HTTP/1.1\r\nHost: server\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n",
    );
    assert!(answer.starts_with("HTTP/1.1 400 "), "{answer}");
}

/// Two polls on one connection (keep-alive), answered in order.
#[test]
fn keep_alive_answers_pipelined_polls_in_order() {
    let answer = exchange(
        b"GET /updates?after=0 HTTP/1.1\r\nHost: server\r\n\r\nGET /updates?after=2 HTTP/1.1\r\nHost: server\r\n\r\n",
    );
    assert_eq!(answer.matches("HTTP/1.1 200 OK").count(), 2, "{answer}");
    let first = answer.find("\"first\"").unwrap();
    let empty = answer.find("{\"events\":[]").unwrap();
    assert!(first < empty);
}

/// RFC 9112 section 3.2.2: the absolute form is accepted.
#[test]
fn absolute_form_target_is_served() {
    let answer = exchange(b"GET http://server/updates?after=2 HTTP/1.1\r\nHost: server\r\n\r\n");
    assert!(answer.starts_with("HTTP/1.1 200 OK\r\n"), "{answer}");
}

/// Two Host headers are a 400 in any version.
#[test]
fn two_host_headers_get_400_even_in_http10() {
    let answer = exchange(b"GET /updates HTTP/1.0\r\nHost: a\r\nHost: b\r\n\r\n");
    assert!(answer.starts_with("HTTP/1.1 400 "), "{answer}");
}

/// A 204 carries no Content-Length (RFC 9110 section 8.6).
#[test]
fn no_content_answers_have_no_content_length() {
    let mut r = pushpull::wire::http::Response::new(204, "text/plain", Vec::new());
    r.headers.clear();
    assert_eq!(r.to_bytes(), b"HTTP/1.1 204 No Content\r\n\r\n");
}

/// A proxy drops `Connection` and the headers it names (RFC 9110 section 7.6.1).
#[test]
fn hop_by_hop_headers_are_stripped() {
    let mut headers = vec![
        ("Host".to_string(), "server".to_string()),
        ("Connection".to_string(), "close, X-Hop".to_string()),
        ("X-Hop".to_string(), "1".to_string()),
        ("Keep-Alive".to_string(), "timeout=5".to_string()),
    ];
    pushpull::wire::http::strip_hop_by_hop(&mut headers);
    assert_eq!(headers, vec![("Host".to_string(), "server".to_string())]);
}

/// HTTP/1.0 without keep-alive: answered, then closed.
#[test]
fn http10_request_is_answered_and_closed() {
    let answer = exchange(b"GET /updates?after=2 HTTP/1.0\r\n\r\n");
    assert!(answer.starts_with("HTTP/1.1 200 OK\r\n"), "{answer}");
}

/// A request split across many reads (as TCP may deliver it) parses the same.
#[tokio::test]
async fn request_split_across_reads_parses() {
    let stream = tokio_test::io::Builder::new()
        .read(b"GET /upd")
        .read(b"ates?after=7 HT")
        .read(b"TP/1.1\r\nHo")
        .read(b"st: server\r\n\r")
        .read(b"\n")
        .build();
    let mut conn = scripted_conn(stream, Dir::Down);
    let request = conn.read_request().await.unwrap().unwrap();
    assert_eq!(request.target, "/updates?after=7");
    assert_eq!(request.query("after"), Some("7"));
    assert!(
        conn.read_request().await.unwrap().is_none(),
        "clean close is Ok(None)"
    );
}

/// A response without Content-Length runs to the end of the connection, and
/// an interim 1xx answer is skipped (RFC 9112 section 6.3, RFC 9110 15.2).
#[tokio::test]
async fn close_delimited_response_and_interim_answers() {
    let stream = tokio_test::io::Builder::new()
        .read(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Type: application/json\r\n\r\n{\"events\"")
        .read(b":[],\"more\":false}")
        .build();
    let mut conn = scripted_conn(stream, Dir::Up);
    let response = conn.read_response().await.unwrap();
    assert_eq!(response.status, 200);
    assert_eq!(response.body, b"{\"events\":[],\"more\":false}");
}

/// A close in the middle of a head is an error, not a request.
#[tokio::test]
async fn close_mid_head_is_unexpected_eof() {
    let stream = tokio_test::io::Builder::new()
        .read(b"GET /updates HTTP/1.1\r\nHo")
        .build();
    let mut conn = scripted_conn(stream, Dir::Down);
    assert!(matches!(
        conn.read_request().await,
        Err(ReadError::ClosedMidMessage)
    ));
}

/// Arbitrary bytes never panic the request parser.
#[test]
fn arbitrary_bytes_never_panic_the_parser() {
    use proptest::prelude::*;
    proptest!(|(bytes in proptest::collection::vec(any::<u8>(), 0..2000))| {
        let _ = pushpull::wire::http::parse_request_head(&bytes);
        let _ = pushpull::wire::http::parse_response_head(&bytes);
    });
}

/// The answer shown at the top of `src/mechanisms/long_polling.rs`, byte for byte.
#[test]
fn long_polling_doc_answer_is_what_the_server_writes() {
    let (response, count) = pushpull::mechanisms::short_polling::batch_answer(vec![
        pushpull::world::event_log::AppEvent {
            id: 4,
            data: "event 4".into(),
        },
    ]);
    assert_eq!((count.count, count.first), (1, Some(4)));
    assert_eq!(
        String::from_utf8(response.to_bytes()).unwrap(),
        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 51\r\n\r\n\
         {\"events\":[{\"id\":4,\"data\":\"event 4\"}],\"more\":false}"
    );
}

/// The empty answer shown at the top of `src/wire/http.rs` and
/// `src/mechanisms/short_polling.rs`, byte for byte.
#[test]
fn http_doc_answer_is_what_the_server_writes() {
    let (response, count) = pushpull::mechanisms::short_polling::batch_answer(Vec::new());
    assert_eq!((count.count, count.first), (0, None));
    assert_eq!(
        String::from_utf8(response.to_bytes()).unwrap(),
        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 26\r\n\r\n\
         {\"events\":[],\"more\":false}"
    );
}
