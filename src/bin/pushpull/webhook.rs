//! `pushpull webhook sign|verify`: the Standard Webhooks signature of a
//! payload, and a receiver's verdict on a delivery, for checking a real
//! provider's deliveries or another implementation's test vectors.

use clap::Subcommand;
use pushpull::wire::webhook::{self, Headers};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Subcommand)]
pub enum Action {
    /// Print the `webhook-signature` value for the payload in FILE
    /// (standard input if omitted), signed byte for byte as given.
    Sign {
        /// The endpoint's secret, `whsec_` + base64 of the key.
        #[arg(long)]
        secret: String,
        /// The message id (`webhook-id`).
        #[arg(long)]
        id: String,
        /// The send time in unix seconds (`webhook-timestamp`).
        #[arg(long, allow_hyphen_values = true)]
        timestamp: i64,
        file: Option<PathBuf>,
    },
    /// Check a delivery as a receiver does: prints `valid` and exits 0, or
    /// prints why it is refused and exits 1.
    Verify {
        #[arg(long)]
        secret: String,
        /// The receiver's clock, unix seconds (default: this machine's).
        #[arg(long, allow_hyphen_values = true)]
        now: Option<i64>,
        /// How far the timestamp may be from `now`, either way, in seconds.
        #[arg(long, default_value_t = webhook::DEFAULT_TOLERANCE_SECS)]
        tolerance: u64,
        /// A header of the delivery, `name: value` (repeatable): give
        /// `webhook-id`, `webhook-timestamp` and `webhook-signature`.
        #[arg(long = "header", value_name = "NAME: VALUE")]
        headers: Vec<String>,
        /// The raw body (standard input if omitted).
        file: Option<PathBuf>,
    },
}

pub fn run(action: Action) -> Result<ExitCode, String> {
    match action {
        Action::Sign {
            secret,
            id,
            timestamp,
            file,
        } => {
            let key = webhook::decode_secret(&secret).map_err(|e| e.to_string())?;
            let body = crate::decode::read_all(&file)?;
            println!("{}", webhook::sign(&key, &id, timestamp, &body));
            Ok(ExitCode::SUCCESS)
        }
        Action::Verify {
            secret,
            now,
            tolerance,
            headers,
            file,
        } => {
            let mut pairs = Vec::new();
            for header in &headers {
                let Some((name, value)) = header.split_once(':') else {
                    return Err(format!("--header {header:?}: write it as 'name: value'"));
                };
                pairs.push((name.trim().to_string(), value.trim().to_string()));
            }
            let body = crate::decode::read_all(&file)?;
            let now = match now {
                Some(now) => now,
                None => std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_err(|e| format!("the system clock is before 1970: {e}"))?
                    .as_secs() as i64,
            };
            let verdict = webhook::decode_secret(&secret).and_then(|key| {
                webhook::verify(&key, &Headers::from_pairs(&pairs), &body, now, tolerance)
                    .map(|_| ())
            });
            match verdict {
                Ok(()) => {
                    println!("valid");
                    Ok(ExitCode::SUCCESS)
                }
                Err(refusal) => {
                    println!("{refusal}");
                    Ok(ExitCode::from(1))
                }
            }
        }
    }
}
