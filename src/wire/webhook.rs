//! Webhook signatures, as the Standard Webhooks specification defines them
//! (standardwebhooks.com): pure, no I/O, so that they can be checked
//! against the specification's own example.
//!
//! A delivery is a `POST` whose three headers say which message it is, when
//! it was sent, and that it comes from whoever holds the secret:
//!
//! ```text
//! POST /webhooks HTTP/1.1\r\n
//! Host: receiver-1\r\n
//! Content-Type: application/json\r\n
//! webhook-id: msg_p5jXN8AQM9LWM0D4loKWxJek\r\n
//! webhook-timestamp: 1614265330\r\n
//! webhook-signature: v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=\r\n
//! Content-Length: 20\r\n
//! \r\n
//! {"test": 2432232314}
//! ```
//!
//! The signature is `v1,` + base64(HMAC-SHA256(key, "{id}.{timestamp}.{body}")),
//! where the secret is written `whsec_` + base64(key). Signing the id and
//! the timestamp with the body is what makes a captured delivery useless to
//! an attacker: change the body and the signature fails; send it again
//! later and its timestamp is too old (or, inside the tolerance, its id has
//! been seen). During a key rotation the provider signs with both keys,
//! space-separated, and any one valid signature passes.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use std::fmt;

/// The prefix of a secret as providers print it.
pub const SECRET_PREFIX: &str = "whsec_";
/// The signature scheme this module speaks (symmetric, HMAC-SHA256).
pub const VERSION: &str = "v1";
/// How far a timestamp may be from the receiver's clock, either way. The
/// specification asks for "some allowable tolerance"; its reference
/// libraries use 5 minutes.
pub const DEFAULT_TOLERANCE_SECS: u64 = 300;

pub const ID_HEADER: &str = "webhook-id";
pub const TIMESTAMP_HEADER: &str = "webhook-timestamp";
pub const SIGNATURE_HEADER: &str = "webhook-signature";

/// Why a delivery is refused (the receiver answers 400), or a secret
/// cannot be used.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// The secret is not base64 (with or without `whsec_`).
    BadSecret(String),
    /// One of the three headers is missing.
    MissingHeader(&'static str),
    /// `webhook-timestamp` is not a whole number of unix seconds.
    BadTimestamp(String),
    /// Sent longer ago than the tolerance: `secs` before the receiver's now.
    TooOld { secs: u64, tolerance: u64 },
    /// Sent `secs` after the receiver's now, past the tolerance.
    InFuture { secs: u64, tolerance: u64 },
    /// No `v1` signature in the header matches the one the key gives.
    NoMatchingSignature,
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refusal::BadSecret(why) => write!(f, "the secret is not valid base64: {why}"),
            Refusal::MissingHeader(name) => write!(f, "missing header {name}"),
            Refusal::BadTimestamp(value) => {
                write!(f, "{TIMESTAMP_HEADER} is not unix seconds: {value:?}")
            }
            Refusal::TooOld { secs, tolerance } => write!(
                f,
                "timestamp too old: {secs} s before now, past the tolerance of {tolerance} s"
            ),
            Refusal::InFuture { secs, tolerance } => write!(
                f,
                "timestamp in the future: {secs} s after now, past the tolerance of {tolerance} s"
            ),
            Refusal::NoMatchingSignature => write!(f, "no matching signature"),
        }
    }
}

impl std::error::Error for Refusal {}

/// The key inside a secret: `whsec_` + base64 (the prefix may be left out,
/// as the specification's libraries allow).
pub fn decode_secret(secret: &str) -> Result<Vec<u8>, Refusal> {
    let encoded = secret.trim();
    let encoded = encoded.strip_prefix(SECRET_PREFIX).unwrap_or(encoded);
    BASE64
        .decode(encoded)
        .map_err(|e| Refusal::BadSecret(e.to_string()))
}

/// A key written as a secret.
pub fn encode_secret(key: &[u8]) -> String {
    format!("{SECRET_PREFIX}{}", BASE64.encode(key))
}

/// The bytes that are signed: `{id}.{timestamp}.{body}`, the body exactly
/// as sent (parsing and re-serializing JSON would change it).
pub fn signed_content(id: &str, timestamp: i64, body: &[u8]) -> Vec<u8> {
    let mut content = format!("{id}.{timestamp}.").into_bytes();
    content.extend_from_slice(body);
    content
}

/// HMAC-SHA256 of the signed content under `key`.
fn mac(key: &[u8], id: &str, timestamp: i64, body: &[u8]) -> [u8; 32] {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes a key of any length");
    mac.update(&signed_content(id, timestamp, body));
    mac.finalize().into_bytes().into()
}

/// The `webhook-signature` value for one key: `v1,<base64 of the MAC>`.
pub fn sign(key: &[u8], id: &str, timestamp: i64, body: &[u8]) -> String {
    format!("{VERSION},{}", BASE64.encode(mac(key, id, timestamp, body)))
}

/// Equal bytes, in a time that depends only on the lengths: a comparison
/// that stops at the first difference tells an attacker, by how long it
/// took, how many leading bytes of a forged signature were right, and lets
/// them find a valid one byte by byte.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |diff, (x, y)| diff | (x ^ y)) == 0
}

/// The three headers of a delivery.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Headers<'a> {
    pub id: Option<&'a str>,
    pub timestamp: Option<&'a str>,
    pub signature: Option<&'a str>,
}

impl<'a> Headers<'a> {
    /// Picks the three from `(name, value)` pairs (names in any case).
    /// Svix, whose scheme the specification adopted, sends the same three
    /// as `svix-id`, `svix-timestamp` and `svix-signature`: read too.
    pub fn from_pairs(pairs: &'a [(String, String)]) -> Headers<'a> {
        let find = |name: &str| {
            let svix = name.replacen("webhook-", "svix-", 1);
            [name, svix.as_str()].into_iter().find_map(|wanted| {
                pairs
                    .iter()
                    .find(|(n, _)| n.trim().eq_ignore_ascii_case(wanted))
                    .map(|(_, v)| v.trim())
            })
        };
        Headers {
            id: find(ID_HEADER),
            timestamp: find(TIMESTAMP_HEADER),
            signature: find(SIGNATURE_HEADER),
        }
    }
}

/// What a receiver checks, in the specification libraries' order: the
/// headers are there, the timestamp is within `tolerance` of `now` (both
/// unix seconds), and one of the `v1` signatures is the key's. `Ok` with
/// the message id (the receiver's deduplication key).
pub fn verify<'a>(
    key: &[u8],
    headers: &Headers<'a>,
    body: &[u8],
    now: i64,
    tolerance: u64,
) -> Result<&'a str, Refusal> {
    let id = headers.id.ok_or(Refusal::MissingHeader(ID_HEADER))?;
    let signatures = headers
        .signature
        .ok_or(Refusal::MissingHeader(SIGNATURE_HEADER))?;
    let stamp = headers
        .timestamp
        .ok_or(Refusal::MissingHeader(TIMESTAMP_HEADER))?;
    let timestamp: i64 = stamp
        .parse()
        .map_err(|_| Refusal::BadTimestamp(stamp.to_string()))?;
    let age = now.saturating_sub(timestamp);
    if age > tolerance as i64 {
        return Err(Refusal::TooOld {
            secs: age as u64,
            tolerance,
        });
    }
    if -age > tolerance as i64 {
        return Err(Refusal::InFuture {
            secs: age.unsigned_abs(),
            tolerance,
        });
    }
    let expected = mac(key, id, timestamp, body);
    // Any `v1` entry may be the one (several during a key rotation);
    // entries of other versions (`v1a`, asymmetric) are not ours to check.
    let matches = signatures
        .split(' ')
        .filter_map(|entry| entry.split_once(','))
        .filter(|(version, _)| *version == VERSION)
        .filter_map(|(_, encoded)| BASE64.decode(encoded).ok())
        .fold(false, |any, candidate| {
            // Every candidate is compared, matched or not.
            constant_time_eq(&candidate, &expected) | any
        });
    if matches {
        Ok(id)
    } else {
        Err(Refusal::NoMatchingSignature)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    const ID: &str = "msg_p5jXN8AQM9LWM0D4loKWxJek";
    const TIMESTAMP: i64 = 1614265330;
    const BODY: &[u8] = br#"{"test": 2432232314}"#;
    const SIGNATURE: &str = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";

    fn headers(signature: &str) -> Headers<'_> {
        Headers {
            id: Some(ID),
            timestamp: Some("1614265330"),
            signature: Some(signature),
        }
    }

    /// The specification's published example.
    #[test]
    fn the_specifications_example_signature() {
        let key = decode_secret(SECRET).unwrap();
        assert_eq!(sign(&key, ID, TIMESTAMP, BODY), SIGNATURE);
        assert_eq!(
            verify(&key, &headers(SIGNATURE), BODY, TIMESTAMP, 300),
            Ok(ID)
        );
        // The prefix is optional, and a secret round-trips.
        assert_eq!(decode_secret(&SECRET[6..]).unwrap(), key);
        assert_eq!(encode_secret(&key), SECRET);
    }

    #[test]
    fn any_valid_signature_of_several_passes() {
        let key = decode_secret(SECRET).unwrap();
        let other = sign(b"an older key", ID, TIMESTAMP, BODY);
        let both = format!("{other} {SIGNATURE} v1a,c29tZXRoaW5n");
        assert!(verify(&key, &headers(&both), BODY, TIMESTAMP, 300).is_ok());
        assert_eq!(
            verify(&key, &headers(&other), BODY, TIMESTAMP, 300),
            Err(Refusal::NoMatchingSignature)
        );
    }

    #[test]
    fn a_changed_body_id_or_timestamp_fails() {
        let key = decode_secret(SECRET).unwrap();
        let tampered = br#"{"test": 2432232315}"#;
        assert_eq!(
            verify(&key, &headers(SIGNATURE), tampered, TIMESTAMP, 300),
            Err(Refusal::NoMatchingSignature)
        );
        let mut h = headers(SIGNATURE);
        h.id = Some("msg_other");
        assert_eq!(
            verify(&key, &h, BODY, TIMESTAMP, 300),
            Err(Refusal::NoMatchingSignature)
        );
        let mut h = headers(SIGNATURE);
        h.timestamp = Some("1614265331");
        assert_eq!(
            verify(&key, &h, BODY, TIMESTAMP, 300),
            Err(Refusal::NoMatchingSignature)
        );
    }

    #[test]
    fn timestamps_outside_the_tolerance_are_refused_either_way() {
        let key = decode_secret(SECRET).unwrap();
        let h = headers(SIGNATURE);
        assert!(verify(&key, &h, BODY, TIMESTAMP + 300, 300).is_ok());
        assert!(verify(&key, &h, BODY, TIMESTAMP - 300, 300).is_ok());
        assert_eq!(
            verify(&key, &h, BODY, TIMESTAMP + 301, 300),
            Err(Refusal::TooOld {
                secs: 301,
                tolerance: 300
            })
        );
        assert_eq!(
            verify(&key, &h, BODY, TIMESTAMP - 301, 300),
            Err(Refusal::InFuture {
                secs: 301,
                tolerance: 300
            })
        );
        let mut bad = headers(SIGNATURE);
        bad.timestamp = Some("yesterday");
        assert!(matches!(
            verify(&key, &bad, BODY, TIMESTAMP, 300),
            Err(Refusal::BadTimestamp(_))
        ));
    }

    #[test]
    fn missing_headers_and_bad_secrets_are_named() {
        let key = decode_secret(SECRET).unwrap();
        for missing in [ID_HEADER, TIMESTAMP_HEADER, SIGNATURE_HEADER] {
            let mut h = headers(SIGNATURE);
            match missing {
                ID_HEADER => h.id = None,
                TIMESTAMP_HEADER => h.timestamp = None,
                _ => h.signature = None,
            }
            let refusal = verify(&key, &h, BODY, TIMESTAMP, 300).unwrap_err();
            assert_eq!(refusal, Refusal::MissingHeader(missing));
            assert!(refusal.to_string().contains(missing));
        }
        assert!(matches!(
            decode_secret("whsec_not base64!"),
            Err(Refusal::BadSecret(_))
        ));
    }

    #[test]
    fn svix_header_names_are_read_too() {
        let pairs = vec![
            ("svix-id".to_string(), ID.to_string()),
            ("Svix-Timestamp".to_string(), "1614265330".to_string()),
            ("svix-signature".to_string(), SIGNATURE.to_string()),
        ];
        let key = decode_secret(SECRET).unwrap();
        let headers = Headers::from_pairs(&pairs);
        assert_eq!(verify(&key, &headers, BODY, TIMESTAMP, 300), Ok(ID));
    }

    #[test]
    fn constant_time_eq_is_plain_equality() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
        assert!(constant_time_eq(b"", b""));
    }
}
