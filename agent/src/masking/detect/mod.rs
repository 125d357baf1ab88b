//! Detectors: pure functions that find sensitive values inside text, as byte [`Span`]s.
//!
//! Each detector first runs a cheap pre-filter (enough digits, an `@`, the `-----BEGIN` marker...)
//! and returns an empty `Vec` (no allocation) when the text cannot contain a match; the scanners
//! are hand-written, byte-level and linear, so nothing is compiled per call. Each aims at few false
//! positives: checksums (Luhn, mod-97), known prefixes and lengths, word boundaries.
use std::fmt;

use serde::{Deserialize, Serialize};

use super::Span;

pub mod aws_access_key;
pub mod card;
pub mod email;
pub mod iban;
pub mod jwt;
pub mod pem_private_key;
pub mod phone;
mod scan;
pub mod ssn;

/// A kind of sensitive value. Configuration names: `card`, `email`, `ssn`, `iban`, `phone`, `jwt`,
/// `aws_access_key`, `pem_private_key`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Detector {
    /// Payment card numbers: known brand prefix and length, Luhn-valid ([`card`]).
    Card,
    /// Email addresses, `local@domain.tld` ([`email`]).
    Email,
    /// US social security numbers, `AAA-GG-SSSS` ([`ssn`]).
    Ssn,
    /// IBANs of known countries and lengths, mod-97-valid ([`iban`]).
    Iban,
    /// E.164 and North-American phone numbers ([`phone`]).
    Phone,
    /// JSON Web Tokens (JWS and JWE compact forms) ([`jwt`]).
    Jwt,
    /// AWS access key ids ([`aws_access_key`]).
    AwsAccessKey,
    /// PEM private key blocks ([`pem_private_key`]).
    PemPrivateKey,
}

impl Detector {
    /// Every detector.
    pub const ALL: [Self; 8] = [
        Self::Card,
        Self::Email,
        Self::Ssn,
        Self::Iban,
        Self::Phone,
        Self::Jwt,
        Self::AwsAccessKey,
        Self::PemPrivateKey,
    ];

    /// The configuration name, also the key of the audit counts.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Card => "card",
            Self::Email => "email",
            Self::Ssn => "ssn",
            Self::Iban => "iban",
            Self::Phone => "phone",
            Self::Jwt => "jwt",
            Self::AwsAccessKey => "aws_access_key",
            Self::PemPrivateKey => "pem_private_key",
        }
    }

    /// Finds this kind of value in `text`, with the detector's default options (`ssn`: dashed
    /// form only; see [`ssn::find`] for bare digits). Spans are sorted and disjoint.
    pub fn find(&self, text: &str) -> Vec<Span> {
        match self {
            Self::Card => card::find(text),
            Self::Email => email::find(text),
            Self::Ssn => ssn::find(text, false),
            Self::Iban => iban::find(text),
            Self::Phone => phone::find(text),
            Self::Jwt => jwt::find(text),
            Self::AwsAccessKey => aws_access_key::find(text),
            Self::PemPrivateKey => pem_private_key::find(text),
        }
    }
}

impl fmt::Display for Detector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Asserts that `find` returns exactly the spans whose texts are `want`, in order.
    #[track_caller]
    pub(crate) fn assert_finds(find: impl Fn(&str) -> Vec<Span>, text: &str, want: &[&str]) {
        let got: Vec<&str> = find(text).iter().map(|s| &text[s.start..s.end]).collect();
        assert_eq!(got, want, "in {text:?}");
    }

    /// Asserts that `find` returns nothing.
    #[track_caller]
    pub(crate) fn assert_finds_nothing(find: impl Fn(&str) -> Vec<Span>, text: &str) {
        assert_finds(find, text, &[]);
    }

    #[test]
    fn names_round_trip_through_serde() {
        for detector in Detector::ALL {
            let json = serde_json::to_string(&detector).unwrap();
            assert_eq!(json, format!("\"{}\"", detector.name()));
            assert_eq!(serde_json::from_str::<Detector>(&json).unwrap(), detector);
        }
        assert!(serde_json::from_str::<Detector>("\"Card\"").is_err());
        assert!(serde_json::from_str::<Detector>("\"credit_card\"").is_err());
    }

    #[test]
    fn dispatch_reaches_each_detector() {
        let samples = [
            (Detector::Card, "4111111111111111"),
            (Detector::Email, "alice@example.com"),
            (Detector::Ssn, "078-05-1121"),
            (Detector::Iban, "DE89370400440532013000"),
            (Detector::Phone, "+14155552671"),
            (
                Detector::Jwt,
                "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJl",
            ),
            (Detector::AwsAccessKey, "AKIAIOSFODNN7EXAMPLE"),
            (
                Detector::PemPrivateKey,
                "-----BEGIN PRIVATE KEY-----\nMIIB\n-----END PRIVATE KEY-----",
            ),
        ];
        for (detector, text) in samples {
            for other in Detector::ALL {
                let want = if other == detector {
                    vec![Span::new(0, text.len())]
                } else {
                    vec![]
                };
                assert_eq!(
                    other.find(text),
                    want,
                    "{other} on {detector} sample {text:?}"
                );
            }
        }
    }
}
