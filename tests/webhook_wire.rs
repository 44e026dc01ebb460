//! `pushpull webhook sign|verify` against the Standard Webhooks
//! specification's published example, and every refusal's exit status.

use std::io::Write;
use std::process::{Command, Stdio};

const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const ID: &str = "msg_p5jXN8AQM9LWM0D4loKWxJek";
const BODY: &[u8] = br#"{"test": 2432232314}"#;
const SIGNATURE: &str = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";

/// Runs `pushpull webhook ARGS` with `stdin`; (exit code, stdout).
fn webhook(args: &[&str], stdin: &[u8]) -> (i32, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_pushpull"))
        .arg("webhook")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(stdin).unwrap();
    let out = child.wait_with_output().unwrap();
    (
        out.status.code().unwrap(),
        String::from_utf8(out.stdout).unwrap(),
    )
}

fn verify(now: &str, headers: &[String], body: &[u8]) -> (i32, String) {
    let mut args = vec!["verify", "--secret", SECRET, "--now", now];
    for h in headers {
        args.extend(["--header", h.as_str()]);
    }
    webhook(&args, body)
}

fn genuine() -> Vec<String> {
    vec![
        format!("webhook-id: {ID}"),
        "webhook-timestamp: 1614265330".into(),
        format!("webhook-signature: {SIGNATURE}"),
    ]
}

#[test]
fn sign_prints_the_specifications_example_signature() {
    let args = [
        "sign",
        "--secret",
        SECRET,
        "--id",
        ID,
        "--timestamp",
        "1614265330",
    ];
    assert_eq!(webhook(&args, BODY), (0, format!("{SIGNATURE}\n")));
    // From a file too, byte for byte: a trailing newline is signed.
    let path = std::env::temp_dir().join(format!("pushpull-wh-{}.json", std::process::id()));
    std::fs::write(&path, b"{\"test\": 2432232314}\n").unwrap();
    let mut with_file = args.to_vec();
    with_file.push(path.to_str().unwrap());
    let (code, out) = webhook(&with_file, b"");
    assert_eq!(code, 0);
    assert_ne!(out.trim(), SIGNATURE);
    std::fs::remove_file(&path).ok();
}

#[test]
fn verify_says_valid_or_why_not_and_exits_accordingly() {
    assert_eq!(
        verify("1614265330", &genuine(), BODY),
        (0, "valid\n".into())
    );
    // Header names in any case, a rotation's extra signature beside it.
    let mut rotated = genuine();
    rotated[2] = format!("Webhook-Signature: v1,bm90IHRoaXMgb25l {SIGNATURE}");
    rotated[0] = format!("WEBHOOK-ID: {ID}");
    assert_eq!(verify("1614265630", &rotated, BODY).0, 0);

    let (code, out) = verify("1614265330", &genuine(), br#"{"test": 2432232315}"#);
    assert_eq!((code, out.trim()), (1, "no matching signature"));
    let (code, out) = verify("1614265631", &genuine(), BODY);
    assert_eq!(code, 1);
    assert!(out.starts_with("timestamp too old"), "{out}");
    let (code, out) = verify("1614265029", &genuine(), BODY);
    assert_eq!(code, 1);
    assert!(out.starts_with("timestamp in the future"), "{out}");
    let (code, out) = verify("1614265330", &genuine()[..2], BODY);
    assert_eq!((code, out.trim()), (1, "missing header webhook-signature"));
    let (code, out) = webhook(
        &["verify", "--secret", "whsec_%%%", "--now", "1614265330"],
        BODY,
    );
    assert_eq!(code, 1);
    assert!(out.contains("not valid base64"), "{out}");
    // A wider tolerance lets the old one through.
    let mut args = vec!["verify", "--secret", SECRET, "--now", "1614266330"];
    args.extend(["--tolerance", "1000"]);
    let headers = genuine();
    for h in &headers {
        args.extend(["--header", h.as_str()]);
    }
    assert_eq!(webhook(&args, BODY).0, 0);
}
