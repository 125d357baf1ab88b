//! Parsing of the session id the CLI is given: a full uuid or a unique prefix.
use super::StoreError;

/// Shortest prefix accepted by `get`.
pub(crate) const MIN_PREFIX: usize = 8;

/// Positions of the dashes in a hyphenated uuid.
const DASHES: [usize; 4] = [8, 13, 18, 23];

/// How to look a session up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum IdQuery {
    /// A full uuid, lowercase hyphenated.
    Exact(String),
    /// The start of a lowercase hyphenated uuid.
    Prefix(String),
}

/// Parses a full uuid (any format `uuid` accepts) or a prefix of at least [`MIN_PREFIX`]
/// characters of the hyphenated form (case-insensitive).
pub(crate) fn parse_id(s: &str) -> Result<IdQuery, StoreError> {
    let s = s.trim();
    if let Ok(id) = uuid::Uuid::parse_str(s) {
        return Ok(IdQuery::Exact(id.hyphenated().to_string()));
    }
    let prefix = s.to_ascii_lowercase();
    let valid = (MIN_PREFIX..36).contains(&prefix.len())
        && prefix.bytes().enumerate().all(|(i, b)| {
            if DASHES.contains(&i) {
                b == b'-'
            } else {
                b.is_ascii_hexdigit()
            }
        });
    if valid {
        Ok(IdQuery::Prefix(prefix))
    } else {
        Err(StoreError::BadId(s.to_owned()))
    }
}

/// A full uuid (any format `uuid` accepts), lowercase hyphenated.
pub(crate) fn parse_full(s: &str) -> Result<String, StoreError> {
    uuid::Uuid::parse_str(s.trim())
        .map(|id| id.hyphenated().to_string())
        .map_err(|_| StoreError::NotUuid(s.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_id_cases() {
        let full = "0190f3a2-7b4c-7d1e-8f00-123456789abc";
        let cases: &[(&str, Option<IdQuery>)] = &[
            (full, Some(IdQuery::Exact(full.into()))),
            (
                "0190F3A2-7B4C-7D1E-8F00-123456789ABC",
                Some(IdQuery::Exact(full.into())),
            ),
            (
                "0190f3a27b4c7d1e8f00123456789abc",
                Some(IdQuery::Exact(full.into())),
            ),
            ("  0190f3a2 ", Some(IdQuery::Prefix("0190f3a2".into()))),
            ("0190F3A2-7b", Some(IdQuery::Prefix("0190f3a2-7b".into()))),
            ("0190f3a2-", Some(IdQuery::Prefix("0190f3a2-".into()))),
            ("0190f3a", None),
            ("", None),
            ("0190f3a27b", None),
            ("0190f3g2", None),
            ("0190f3a2%", None),
            ("0190f3a2-7b4c-7d1e-8f00-123456789abcd", None),
        ];
        for (input, want) in cases {
            match (parse_id(input), want) {
                (Ok(got), Some(want)) => assert_eq!(&got, want, "{input:?}"),
                (Err(StoreError::BadId(_)), None) => {}
                (got, want) => panic!("{input:?}: got {got:?}, want {want:?}"),
            }
        }
    }
}
