//! Masker tests: configuration, column rules vs detectors, counts, hashing.
use super::*;

const KEY: &[u8] = b"0123456789abcdef-test-key";

fn config(toml_text: &str) -> MaskingConfig {
    toml::from_str(toml_text).unwrap()
}

fn masker(toml_text: &str) -> Masker {
    Masker::new(&config(toml_text), Some(KEY)).unwrap()
}

const POLICY: &str = r#"
[[columns]]
name = "*card*"
style = "last4"

[[columns]]
name = "email"
table = "public.users"
style = "hash"

[[columns]]
name = "notes"
table = "audit*"
style = "redact"

[[detectors]]
detector = "email"
style = "redact"

[[detectors]]
detector = "card"
style = "last4"

[[detectors]]
detector = "ssn"
style = "hash"
bare_digits = true
"#;

#[test]
fn column_rules_match_by_glob_case_insensitively_first_wins() {
    let m = masker(POLICY);
    let cases: &[(Option<&str>, &str, Option<&str>)] = &[
        (None, "card_number", Some("*card*")),
        (Some("orders"), "CreditCard", Some("*card*")),
        (Some("public.users"), "email", Some("public.users.email")),
        (Some("PUBLIC.USERS"), "EMAIL", Some("public.users.email")),
        // Unknown table: the rule with a table still applies (fail closed).
        (None, "email", Some("public.users.email")),
        (Some("public.orders"), "email", None),
        (Some("audit_2024"), "notes", Some("audit*.notes")),
        (Some("users"), "notes", None),
        (Some("users"), "name", None),
        (None, "emails", None),
    ];
    for &(table, column, want) in cases {
        assert_eq!(
            m.column_style(table, column).map(ColumnMask::rule),
            want,
            "{table:?}.{column}"
        );
    }
}

#[test]
fn column_rule_masks_the_whole_value_and_takes_precedence() {
    let m = masker(POLICY);
    let mut counts = MaskCounts::default();
    let card = m.column_style(None, "card_number");
    // Whole value with the column's style, even where a detector would find something else.
    assert_eq!(
        m.mask_value(card, "4111 1111 1111 1111 alice@example.com", &mut counts)
            .as_deref(),
        Some("**** **** **** **** *****@******e.com")
    );
    // A column rule masks values no detector would find.
    assert_eq!(
        m.mask_value(card, "not a number at all", &mut counts)
            .as_deref(),
        Some("*** * ****** *t all")
    );
    // Without a column rule, detectors run.
    assert_eq!(
        m.mask_value(
            None,
            "mail alice@example.com, card 4111111111111111",
            &mut counts
        )
        .as_deref(),
        Some("mail [REDACTED:email], card ************1111")
    );
    let mut want = MaskCounts::default();
    want.by_column.insert("*card*".into(), 2);
    want.by_detector.insert("email".into(), 1);
    want.by_detector.insert("card".into(), 1);
    assert_eq!(counts, want);
}

#[test]
fn unchanged_values_return_none_and_count_nothing() {
    let m = masker(POLICY);
    let mut counts = MaskCounts::default();
    let card = m.column_style(None, "card");
    let cases = [
        (None, "plain text"),
        (None, "order 12345, total 99.50"),
        (None, "4111111111111112"), // Luhn-invalid
        (None, ""),
        (card, ""), // nothing to hide in an empty value
    ];
    for (column, value) in cases {
        assert_eq!(m.mask_value(column, value, &mut counts), None, "{value:?}");
    }
    assert_eq!(m.mask_text("nothing to see here", &mut counts), None);
    assert!(counts.is_empty());
}

#[test]
fn mask_text_masks_every_kind_in_a_body() {
    let m = masker(
        r#"
        detectors = [
          { detector = "card", style = "redact" },
          { detector = "email", style = "redact" },
          { detector = "ssn", style = "redact" },
          { detector = "iban", style = "last4" },
          { detector = "phone", style = "redact" },
          { detector = "jwt", style = "redact" },
          { detector = "aws_access_key", style = "redact" },
          { detector = "pem_private_key", style = "redact" },
        ]
        "#,
    );
    let body = concat!(
        r#"{"user":"alice@example.com","ssn":"078-05-1121","pan":"4111111111111111","#,
        r#""iban":"DE89 3704 0044 0532 0130 00","tel":"+44 20 7946 0958","key":"AKIAIOSFODNN7EXAMPLE","#,
        r#""token":"eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJl","#,
        r#""pem":"-----BEGIN PRIVATE KEY-----\nMIIB\n-----END PRIVATE KEY-----","n":42}"#,
    );
    let mut counts = MaskCounts::default();
    let masked = m.mask_text(body, &mut counts).unwrap();
    assert_eq!(
        masked,
        concat!(
            r#"{"user":"[REDACTED:email]","ssn":"[REDACTED:ssn]","pan":"[REDACTED:card]","#,
            r#""iban":"**** **** **** **** **30 00","tel":"[REDACTED:phone]","key":"[REDACTED:aws_access_key]","#,
            r#""token":"[REDACTED:jwt]","#,
            r#""pem":"[REDACTED:pem_private_key]","n":42}"#,
        )
    );
    assert!(counts.by_column.is_empty());
    for detector in Detector::ALL {
        assert_eq!(
            counts.by_detector.get(detector.name()),
            Some(&1),
            "{detector}"
        );
    }
}

#[test]
fn overlapping_matches_are_masked_once_by_the_longest() {
    // `+1 078051121` is a phone number; `078051121` alone passes the bare SSN rules.
    let m = masker(
        r#"
        detectors = [
          { detector = "ssn", style = "last4", bare_digits = true },
          { detector = "phone", style = "redact" },
        ]
        "#,
    );
    let mut counts = MaskCounts::default();
    assert_eq!(
        m.mask_text("call +1 078051121 or 078051121", &mut counts)
            .as_deref(),
        Some("call [REDACTED:phone] or *****1121")
    );
    assert_eq!(counts.by_detector.get("phone"), Some(&1));
    assert_eq!(counts.by_detector.get("ssn"), Some(&1));

    // A short JWT followed by a domain is also an email address: one span, the email's.
    let m = masker(
        r#"
        detectors = [
          { detector = "jwt", style = "redact" },
          { detector = "email", style = "redact" },
        ]
        "#,
    );
    let mut counts = MaskCounts::default();
    let text = "x eyJhbGciOiJub25lIn0.e30.c2ln@example.com y";
    assert_eq!(
        m.mask_text(text, &mut counts).as_deref(),
        Some("x [REDACTED:email] y")
    );
    assert_eq!(counts.by_detector.len(), 1);
}

#[test]
fn hash_is_deterministic_and_keyed() {
    let cfg = config(
        r#"
        columns = [{ name = "email", style = "hash" }]
        detectors = [{ detector = "email", style = "hash" }]
        "#,
    );
    let a = Masker::new(&cfg, Some(b"key-a")).unwrap();
    let a2 = Masker::new(&cfg, Some(b"key-a")).unwrap();
    let b = Masker::new(&cfg, Some(b"key-b")).unwrap();
    let mut counts = MaskCounts::default();
    let col = |m: &Masker, v: &str, counts: &mut MaskCounts| {
        m.mask_value(m.column_style(None, "email"), v, counts)
            .unwrap()
    };
    let h = col(&a, "alice@example.com", &mut counts);
    assert!(
        h.starts_with(HASH_PREFIX) && h.len() == HASH_PREFIX.len() + 16,
        "{h}"
    );
    assert_eq!(col(&a, "alice@example.com", &mut counts), h);
    assert_eq!(
        col(&a2, "alice@example.com", &mut counts),
        h,
        "same key, same hash"
    );
    assert_ne!(col(&b, "alice@example.com", &mut counts), h, "another key");
    assert_ne!(col(&a, "bob@example.com", &mut counts), h);
    // The same value found by a detector hashes the same as the whole column value: joins work.
    assert_eq!(
        a.mask_text("to: alice@example.com", &mut counts).as_deref(),
        Some(format!("to: {h}").as_str())
    );
}

#[test]
fn configuration_errors() {
    let cases: &[(&str, Option<&[u8]>, &str)] = &[
        (
            r#"columns = [{ name = "x", style = "hash" }]"#,
            None,
            "x: style \"hash\" needs a hash key",
        ),
        (
            r#"detectors = [{ detector = "jwt", style = "hash" }]"#,
            None,
            "jwt: style \"hash\"",
        ),
        (
            r#"columns = [{ name = "x", style = "hash" }]"#,
            Some(b""),
            "hash key is empty",
        ),
        (
            r#"columns = [{ name = "a[", style = "redact" }]"#,
            Some(KEY),
            "rule 0: invalid name glob",
        ),
        (
            r#"columns = [{ name = "a", style = "redact" }, { name = "b", table = "{x", style = "redact" }]"#,
            Some(KEY),
            "rule 1: invalid table glob",
        ),
        (
            r#"detectors = [{ detector = "card", style = "redact" }, { detector = "card", style = "last4" }]"#,
            Some(KEY),
            "card is configured twice",
        ),
        (
            r#"detectors = [{ detector = "phone", style = "redact", bare_digits = true }]"#,
            Some(KEY),
            "bare_digits applies to the ssn detector only",
        ),
    ];
    for &(text, key, want) in cases {
        let err = Masker::new(&config(text), key).unwrap_err().to_string();
        assert!(err.contains(want), "{text}: {err}");
    }
    // A key is only needed when a rule hashes.
    assert!(
        Masker::new(
            &config(r#"columns = [{ name = "x", style = "redact" }]"#),
            None
        )
        .is_ok()
    );
}

#[test]
fn configuration_is_strict() {
    let cases = [
        r#"colums = []"#,
        r#"columns = [{ name = "x", style = "redact", extra = 1 }]"#,
        r#"columns = [{ name = "x" }]"#,
        r#"columns = [{ name = "x", style = "blur" }]"#,
        r#"detectors = [{ detector = "passport", style = "redact" }]"#,
        r#"detectors = [{ detector = "card", style = "redact", key = "k" }]"#,
    ];
    for text in cases {
        assert!(toml::from_str::<MaskingConfig>(text).is_err(), "{text}");
    }
    let empty = config("");
    let m = Masker::new(&empty, None).unwrap();
    assert!(m.is_empty() && !m.has_detectors());
    assert!(!masker(POLICY).is_empty());
}

#[test]
fn no_detector_runs_unless_enabled() {
    let m = masker(r#"columns = [{ name = "secret", style = "redact" }]"#);
    let mut counts = MaskCounts::default();
    let text = "alice@example.com 4111111111111111 078-05-1121 AKIAIOSFODNN7EXAMPLE";
    assert_eq!(m.mask_text(text, &mut counts), None);
    assert_eq!(m.mask_value(None, text, &mut counts), None);
    let only_email = masker(r#"detectors = [{ detector = "email", style = "redact" }]"#);
    assert_eq!(
        only_email.mask_text(text, &mut counts).as_deref(),
        Some("[REDACTED:email] 4111111111111111 078-05-1121 AKIAIOSFODNN7EXAMPLE")
    );
}

#[test]
fn debug_never_shows_the_key() {
    let key = b"very-secret-hash-key";
    let m = Masker::new(&config(POLICY), Some(key)).unwrap();
    let text = format!("{m:?} {m:#?}");
    assert!(text.contains("<redacted>"), "{text}");
    assert!(!text.contains("very-secret"), "{text}");
    let bytes = format!("{:?}", &key[..4]);
    assert!(!text.contains(&bytes[1..bytes.len() - 1]), "{text}");
}
