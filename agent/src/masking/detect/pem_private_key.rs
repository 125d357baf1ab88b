//! PEM private key blocks: from `-----BEGIN <LABEL>PRIVATE KEY-----` to the next
//! `-----END <LABEL>PRIVATE KEY-----`, where the label is upper-case letters and spaces (`RSA `,
//! `EC `, `OPENSSH `, `ENCRYPTED `, or none). The whole block is one match.
//!
//! A block without its END line (a value cut short) fails closed: the match runs to the end of the
//! text, so the key material is never shown.
use crate::masking::Span;

const BEGIN: &str = "-----BEGIN ";
const END: &str = "-----END ";
const DASHES: &[u8] = b"-----";
const SUFFIX: &[u8] = b"PRIVATE KEY";
/// `-----BEGIN PRIVATE KEY-----`: the shortest text that can hold a (truncated) block.
const MIN_LEN: usize = 27;

/// Finds PEM private key blocks in `text`.
pub fn find(text: &str) -> Vec<Span> {
    let mut out = Vec::new();
    let b = text.as_bytes();
    if b.len() < MIN_LEN || !b.contains(&b'-') {
        return out;
    }
    let mut from = 0;
    while let Some(found) = text[from..].find(BEGIN) {
        let start = from + found;
        let Some(body) = boundary_end(b, start + BEGIN.len()) else {
            from = start + 1;
            continue;
        };
        let end = block_end(text, body).unwrap_or(b.len());
        out.push(Span::new(start, end));
        from = end;
    }
    out
}

/// After `-----BEGIN ` or `-----END `: the end of `<LABEL>PRIVATE KEY-----`, if that follows.
fn boundary_end(b: &[u8], label_start: usize) -> Option<usize> {
    let label_len = b[label_start..]
        .iter()
        .take_while(|c| c.is_ascii_uppercase() || **c == b' ')
        .count();
    let label_end = label_start + label_len;
    (b[label_start..label_end].ends_with(SUFFIX) && b[label_end..].starts_with(DASHES))
        .then_some(label_end + DASHES.len())
}

/// The end of the first private-key END line at or after `from`.
fn block_end(text: &str, mut from: usize) -> Option<usize> {
    while let Some(found) = text[from..].find(END) {
        let at = from + found;
        if let Some(end) = boundary_end(text.as_bytes(), at + END.len()) {
            return Some(end);
        }
        from = at + 1;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::masking::detect::tests::{assert_finds, assert_finds_nothing};

    const PKCS8: &str = "-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEIHn8l3K0RQmPqYx1Zl8wQbpPZb0zL6gmjXf0bI0n2mXl\n-----END PRIVATE KEY-----";
    const RSA: &str = "-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEAu1SU1LfVLPHCozMxH2Mo4lgOEePzNm0tRgeLezV6ffAt0gun\nVTLw7onLRnrq0/IzW7yWR7QkrmBL7jTKEn5u+qKhbwKfBstIs+bMY2Zkp18gnTxK\n-----END RSA PRIVATE KEY-----";
    const EC: &str = "-----BEGIN EC PRIVATE KEY-----\r\nMHcCAQEEIBkg4LVWM9nuwNSk3yByxZpYRTBnVJk5oJgTOd8ZVHxQoAoGCCqGSM49\r\n-----END EC PRIVATE KEY-----";
    const OPENSSH: &str = "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAABAAAAMwAAAAtzc2gtZW\n-----END OPENSSH PRIVATE KEY-----";
    const ENCRYPTED: &str = "-----BEGIN ENCRYPTED PRIVATE KEY-----\nMIIFHDBOBgkqhkiG9w0BBQ0wQTApBgkqhkiG9w0BBQwwHAQIS2qgprFqPxECAggA\n-----END ENCRYPTED PRIVATE KEY-----";

    #[test]
    fn positives() {
        let escaped = PKCS8.replace('\n', "\\n");
        let json = format!("{{\"private_key\":\"{escaped}\",\"id\":1}}");
        let two = format!("{RSA}\n\nsome text\n{EC}\n");
        let after_cert =
            format!("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n{OPENSSH}");
        let cases: Vec<(&str, Vec<&str>)> = vec![
            (PKCS8, vec![PKCS8]),
            (RSA, vec![RSA]),
            (EC, vec![EC]),
            (OPENSSH, vec![OPENSSH]),
            (ENCRYPTED, vec![ENCRYPTED]),
            (&json, vec![&escaped]),
            (&two, vec![RSA, EC]),
            (&after_cert, vec![OPENSSH]),
        ];
        for (text, want) in &cases {
            assert_finds(find, text, want);
        }
    }

    #[test]
    fn truncated_block_is_masked_to_the_end() {
        let cut = &RSA[..60];
        let text = format!("key: {cut}");
        assert_finds(find, &text, &[cut]);
        // An END line of another kind does not close it.
        let text = format!("{cut}\n-----END CERTIFICATE-----\nMIIB");
        assert_finds(find, &text, &[&text]);
    }

    #[test]
    fn negatives() {
        let cases = [
            "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----",
            "-----BEGIN PUBLIC KEY-----\nMIIB\n-----END PUBLIC KEY-----",
            "-----BEGIN RSA PUBLIC KEY-----\nMIIB\n-----END RSA PUBLIC KEY-----",
            "-----BEGIN PGP SIGNATURE-----\niQIz\n-----END PGP SIGNATURE-----",
            "-----BEGIN rsa private key-----\nMIIB\n-----END rsa private key-----",
            "-----BEGIN PRIVATE KEY----\nMIIB",
            "BEGIN PRIVATE KEY",
            "-----BEGIN PRIVATE KEYS-----",
            "a private key is secret",
            "",
        ];
        for text in cases {
            assert_finds_nothing(find, text);
        }
    }
}
