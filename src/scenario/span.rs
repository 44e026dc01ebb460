//! Spans of simulated time as scenario files write them: `250ms`, `5s`, `2m`.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::time::Duration;

/// A span of simulated time, written in scenario files as `250ms`, `5s`, `2m`,
/// `1.5s` or `0`. Stored in microseconds, the resolution of the trace.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Span(pub u64);

impl Span {
    pub const ZERO: Span = Span(0);

    pub fn from_millis(ms: u64) -> Span {
        Span(ms * 1000)
    }
    pub fn from_secs(s: u64) -> Span {
        Span(s * 1_000_000)
    }
    pub fn as_micros(self) -> u64 {
        self.0
    }
    pub fn as_millis_f64(self) -> f64 {
        self.0 as f64 / 1000.0
    }
    pub fn to_std(self) -> Duration {
        Duration::from_micros(self.0)
    }
    pub fn from_std(d: Duration) -> Span {
        Span(d.as_micros() as u64)
    }

    /// Parses `250ms`, `5s`, `2m`, `1h`, `1.5s`, `300us` or a bare `0`.
    pub fn parse(text: &str) -> Result<Span, String> {
        let text = text.trim();
        let wrong = || {
            format!(
                "invalid duration {text:?}: write a number and a unit, like \"250ms\", \"5s\", \"2m\" (units: us, ms, s, m, h)"
            )
        };
        if text == "0" {
            return Ok(Span::ZERO);
        }
        let split = text
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(wrong)?;
        let (number, unit) = text.split_at(split);
        let micros_per_unit: f64 = match unit {
            "us" => 1.0,
            "ms" => 1e3,
            "s" => 1e6,
            "m" | "min" => 60e6,
            "h" => 3600e6,
            _ => return Err(wrong()),
        };
        let value: f64 = number.parse().map_err(|_| wrong())?;
        let micros = value * micros_per_unit;
        if !micros.is_finite() || micros > 1e15 {
            return Err(format!("duration {text:?} is too long"));
        }
        Ok(Span(micros.round() as u64))
    }
}

impl fmt::Display for Span {
    /// Prints the shortest exact form: `250ms`, `5s`, `1m30s` is written `90s`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let us = self.0;
        if us == 0 {
            write!(f, "0s")
        } else if us.is_multiple_of(1_000_000) {
            write!(f, "{}s", us / 1_000_000)
        } else if us.is_multiple_of(1000) {
            write!(f, "{}ms", us / 1000)
        } else {
            write!(f, "{us}us")
        }
    }
}

impl Serialize for Span {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Span {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Span, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = Span;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                write!(f, "a duration such as \"250ms\" or \"5s\"")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Span, E> {
                Span::parse(v).map_err(E::custom)
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Span, E> {
                if v == 0 {
                    Ok(Span::ZERO)
                } else {
                    Err(E::custom(format!(
                        "a bare number ({v}) has no unit: write \"{v}ms\" or \"{v}s\""
                    )))
                }
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Span, E> {
                self.visit_i64(v as i64)
            }
            fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<Span, E> {
                Err(E::custom(format!(
                    "a bare number ({v}) has no unit: write \"{v}ms\" or \"{v}s\""
                )))
            }
        }
        d.deserialize_any(Visitor)
    }
}

/// A signed offset: a span ahead (`"90s"`) or behind (`"-90s"`), for a
/// clock that is wrong.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct Offset(pub i64);

impl Offset {
    pub fn as_secs_f64(self) -> f64 {
        self.0 as f64 / 1e6
    }
}

impl fmt::Display for Offset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sign = if self.0 < 0 { "-" } else { "" };
        write!(f, "{sign}{}", Span(self.0.unsigned_abs()))
    }
}

impl Serialize for Offset {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Offset {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Offset, D::Error> {
        let text = String::deserialize(d)?;
        let (negative, magnitude) = match text.trim().strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, text.trim()),
        };
        let span = Span::parse(magnitude).map_err(serde::de::Error::custom)?;
        let micros = i64::try_from(span.0).map_err(serde::de::Error::custom)?;
        Ok(Offset(if negative { -micros } else { micros }))
    }
}

/// Serde for a span where `0` means "off": `None` in the code, `"0s"` in a
/// file, so that every timeout a learner can switch off is switched off the
/// same way, and the code says `Option` where it means "maybe never".
pub mod zero_is_off {
    use super::Span;
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    pub fn serialize<S: Serializer>(value: &Option<Span>, s: S) -> Result<S::Ok, S::Error> {
        value.unwrap_or(Span::ZERO).serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Span>, D::Error> {
        let span = Span::deserialize(d)?;
        Ok((span != Span::ZERO).then_some(span))
    }
}

/// A link's bandwidth, written `10Mbps`, `512kbps`, `1Gbps`, `2000bps` (SI
/// prefixes, bits per second, as networks count) or `0` for unlimited.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Bandwidth(pub Option<u64>);

impl Bandwidth {
    pub fn parse(text: &str) -> Result<Bandwidth, String> {
        let text = text.trim();
        if text == "0" {
            return Ok(Bandwidth(None));
        }
        let wrong = || {
            format!(
                "invalid bandwidth {text:?}: write a number and a unit, like \"10Mbps\" (units: bps, kbps, Mbps, Gbps), or 0 for unlimited"
            )
        };
        let split = text
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(wrong)?;
        let (number, unit) = text.split_at(split);
        let scale = match unit {
            "bps" => 1.0,
            "kbps" => 1e3,
            "Mbps" => 1e6,
            "Gbps" => 1e9,
            _ => return Err(wrong()),
        };
        let value: f64 = number.parse().map_err(|_| wrong())?;
        let bps = value * scale;
        if !(1.0..=1e12).contains(&bps) {
            return Err(format!(
                "bandwidth {text:?} must be between 1bps and 1000Gbps, or 0"
            ));
        }
        Ok(Bandwidth(Some(bps.round() as u64)))
    }
}

impl fmt::Display for Bandwidth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            None => write!(f, "0"),
            Some(b) if b % 1_000_000_000 == 0 => write!(f, "{}Gbps", b / 1_000_000_000),
            Some(b) if b % 1_000_000 == 0 => write!(f, "{}Mbps", b / 1_000_000),
            Some(b) if b % 1000 == 0 => write!(f, "{}kbps", b / 1000),
            Some(b) => write!(f, "{b}bps"),
        }
    }
}

impl Serialize for Bandwidth {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Bandwidth {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Bandwidth, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = Bandwidth;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                write!(f, "a bandwidth such as \"10Mbps\", or 0")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Bandwidth, E> {
                Bandwidth::parse(v).map_err(E::custom)
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Bandwidth, E> {
                if v == 0 {
                    Ok(Bandwidth(None))
                } else {
                    Err(E::custom(format!(
                        "a bare number ({v}) has no unit: write \"{v}Mbps\" or \"{v}kbps\""
                    )))
                }
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Bandwidth, E> {
                self.visit_i64(v as i64)
            }
        }
        d.deserialize_any(Visitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bandwidths_parse_and_print() {
        assert_eq!(Bandwidth::parse("10Mbps"), Ok(Bandwidth(Some(10_000_000))));
        assert_eq!(Bandwidth::parse("1.5Mbps"), Ok(Bandwidth(Some(1_500_000))));
        assert_eq!(Bandwidth::parse("0"), Ok(Bandwidth(None)));
        assert!(Bandwidth::parse("10MB").is_err());
        assert!(Bandwidth::parse("fast").is_err());
        assert_eq!(Bandwidth(Some(512_000)).to_string(), "512kbps");
        assert_eq!(Bandwidth(None).to_string(), "0");
    }
}
