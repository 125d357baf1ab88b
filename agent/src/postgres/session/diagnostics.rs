//! Server text that may carry row values, masked as result rows are: the free text of errors
//! and notices (`invalid input syntax for type integer: "078-05-1120"`, `relation
//! "078-05-1120" does not exist` after a `::regclass` cast, `Key (ssn)=(…) already exists`, a
//! function's `RAISE NOTICE '%', ssn`) and notification payloads (`pg_notify('c', ssn)`, a
//! trigger's `row_to_json(NEW)`).
//!
//! On a target that masks, detectors read that text. Where column rules apply, a masked
//! column's value can appear in it anywhere, unmarked and with nothing to tell which column it
//! came from, so the text is withheld: an error or notice keeps its severity, SQLSTATE, position
//! and the names of the schema, table, column, data type and constraint it concerns; a
//! notification keeps its channel. tollgate's own denials (raised by the server for tollgate's own
//! statement, which the expectation queue marks) are recognised and shown as they are.
use crate::masking::{MaskCounts, Masker};

/// Free-text fields of ErrorResponse and NoticeResponse: message, detail, hint, context
/// ("where") and internal query.
const FREE_TEXT: &[u8] = b"MDHWq";

/// SQLSTATEs whose primary message PostgreSQL writes without values from rows or statements
/// (`canceling statement due to user request`, `current transaction is aborted, commands
/// ignored until end of transaction block`, `could not serialize access due to concurrent
/// update`, `deadlock detected`...): kept where column rules withhold other messages, since
/// clients and people act on them (their detail, which may quote other sessions' statements,
/// is still withheld).
const FIXED_MESSAGES: &[&str] = &[
    "25001", "25006", "25P01", "25P02", "40001", "40P01", "53100", "53200", "53300", "55P03",
    "57014", "57P01", "57P02", "57P03",
];

/// What replaces a withheld message.
pub const MESSAGE_WITHHELD: &str =
    "tollgate: message withheld on a target with column masking (it may hold masked values)";
/// What replaces other withheld text: detail, hint, context, internal query, a payload.
pub const WITHHELD: &str = "[withheld by tollgate]";

/// Whether an error answering tollgate's own raising statement (the expectation queue says
/// which statement an error answers: `Expect::is_raising`) is the denial it raises: its SQLSTATE
/// and message prefix. Any other error of that statement (a cancel, a timeout) is masked as any
/// error is; so is an error with the same words answering the client's own statement (its DO
/// block or function can raise anything, a masked value in it included).
pub fn is_own(fields: &[(u8, String)]) -> bool {
    let get = |code: u8| {
        fields
            .iter()
            .find(|(c, _)| *c == code)
            .map(|(_, v)| v.as_str())
    };
    matches!(
        get(b'C'),
        Some(super::deny::SQLSTATE_DENIED | super::deny::SQLSTATE_REFUSED)
    ) && get(b'M').is_some_and(|m| m.starts_with(super::deny::MESSAGE_PREFIX))
}

/// Masks the free text of an error's or notice's `fields` in place (see the module's
/// documentation); whether anything changed.
pub fn mask_fields(masker: &Masker, fields: &mut [(u8, String)], counts: &mut MaskCounts) -> bool {
    if masker.is_empty() {
        return false;
    }
    let fixed = fields
        .iter()
        .any(|(c, v)| *c == b'C' && FIXED_MESSAGES.contains(&v.as_str()));
    let mut changed = false;
    for (code, value) in fields.iter_mut().filter(|(c, _)| FREE_TEXT.contains(c)) {
        if masker.has_column_rules() && !(fixed && *code == b'M') {
            *value = if *code == b'M' {
                MESSAGE_WITHHELD
            } else {
                WITHHELD
            }
            .to_owned();
            changed = true;
        } else if let Some(masked) = masker.mask_text(value, counts) {
            *value = masked;
            changed = true;
        }
    }
    changed
}

/// Masks a notification's payload (see the module's documentation); `None` when unchanged.
pub fn mask_payload(masker: &Masker, payload: &str, counts: &mut MaskCounts) -> Option<String> {
    if masker.is_empty() || payload.is_empty() {
        return None;
    }
    if masker.has_column_rules() {
        return Some(WITHHELD.to_owned());
    }
    masker.mask_text(payload, counts)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::masking::{ColumnRule, Detector, DetectorRule, MaskingConfig, Style};

    fn masker(columns: bool) -> Masker {
        Masker::new(
            &MaskingConfig {
                columns: if columns {
                    vec![ColumnRule {
                        name: "ssn".into(),
                        table: None,
                        style: Style::Redact,
                    }]
                } else {
                    vec![]
                },
                detectors: vec![DetectorRule::new(Detector::Ssn, Style::Redact)],
            },
            None,
        )
        .unwrap()
    }

    fn fields(pairs: &[(u8, &str)]) -> Vec<(u8, String)> {
        pairs.iter().map(|(c, v)| (*c, (*v).to_owned())).collect()
    }

    const ERROR: &[(u8, &str)] = &[
        (b'S', "ERROR"),
        (b'C', "23505"),
        (
            b'M',
            "duplicate key value violates unique constraint \"people_ssn_key\"",
        ),
        (b'D', "Key (ssn)=(078-05-1121) already exists."),
        (b's', "public"),
        (b't', "people"),
        (b'n', "people_ssn_key"),
        (b'P', "8"),
    ];

    #[test]
    fn detectors_mask_the_free_text() {
        let mut f = fields(ERROR);
        let mut counts = MaskCounts::default();
        assert!(mask_fields(&masker(false), &mut f, &mut counts));
        let mut want = fields(ERROR);
        want[3].1 = "Key (ssn)=([REDACTED:ssn]) already exists.".to_owned();
        assert_eq!(f, want);
        assert_eq!(counts.by_detector.get("ssn"), Some(&1));
        // Nothing detected: unchanged.
        let mut plain = fields(&[(b'C', "42P01"), (b'M', "relation \"nope\" does not exist")]);
        assert!(!mask_fields(&masker(false), &mut plain, &mut counts));
        assert!(!mask_fields(
            &Masker::default(),
            &mut fields(ERROR),
            &mut counts
        ));
    }

    #[test]
    fn column_rules_withhold_the_free_text_and_keep_the_names() {
        let mut f = fields(&[
            (b'C', "42P01"),
            (b'M', "relation \"Ada Lovelace\" does not exist"),
            (b'H', "a hint"),
            (b'W', "SQL function \"f\" statement 1"),
            (b'q', "select 'Ada Lovelace'::regclass"),
            (b'P', "8"),
            (b't', "people"),
        ]);
        assert!(mask_fields(
            &masker(true),
            &mut f,
            &mut MaskCounts::default()
        ));
        assert_eq!(
            f,
            fields(&[
                (b'C', "42P01"),
                (b'M', MESSAGE_WITHHELD),
                (b'H', WITHHELD),
                (b'W', WITHHELD),
                (b'q', WITHHELD),
                (b'P', "8"),
                (b't', "people"),
            ])
        );
    }

    /// A message PostgreSQL writes without values is kept (detectors still read it); its other
    /// text is withheld.
    #[test]
    fn fixed_messages_are_kept_under_column_rules() {
        let mut f = fields(&[
            (b'C', "57014"),
            (b'M', "canceling statement due to user request"),
            (b'W', "SQL statement \"select 'Ada'\""),
        ]);
        assert!(mask_fields(
            &masker(true),
            &mut f,
            &mut MaskCounts::default()
        ));
        assert_eq!(
            f,
            fields(&[
                (b'C', "57014"),
                (b'M', "canceling statement due to user request"),
                (b'W', WITHHELD),
            ])
        );
    }

    #[test]
    fn payloads() {
        let mut counts = MaskCounts::default();
        let ssn = "{\"ssn\": \"078-05-1121\"}";
        assert_eq!(
            mask_payload(&masker(false), ssn, &mut counts).as_deref(),
            Some("{\"ssn\": \"[REDACTED:ssn]\"}")
        );
        assert_eq!(mask_payload(&masker(false), "id=7", &mut counts), None);
        assert_eq!(
            mask_payload(&masker(true), "Ada", &mut counts).as_deref(),
            Some(WITHHELD)
        );
        assert_eq!(mask_payload(&masker(true), "", &mut counts), None);
        assert_eq!(mask_payload(&Masker::default(), ssn, &mut counts), None);
    }

    #[test]
    fn own_denials_are_told_by_sqlstate_and_prefix() {
        let own = [
            (b'C', "42501"),
            (b'M', "tollgate: statement denied by rule \"no-drop\""),
            (b'W', "PL/pgSQL function inline_code_block line 1 at RAISE"),
        ];
        assert!(is_own(&fields(&own)));
        // In any language the server speaks, and without a context.
        let mut german = fields(&own);
        german[2].1 = "PL/pgSQL-Funktion inline_code_block Zeile 1 bei RAISE".into();
        assert!(is_own(&german));
        assert!(is_own(&fields(&own[..2])));
        // Another error of the raising statement: a cancel, a timeout.
        let mut other_state = fields(&own);
        other_state[0].1 = "57014".into();
        assert!(!is_own(&other_state));
        let mut other_text = fields(&own);
        other_text[1].1 = "denied".into();
        assert!(!is_own(&other_text));
    }
}
