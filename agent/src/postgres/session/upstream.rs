//! The server side of a session: TLS as the target requires (never downgraded), the startup
//! packet, and authentication with the credential only tollgate holds.
use bytes::{Bytes, BytesMut};
use tokio::net::TcpStream;
use tracing::debug;

use crate::{
    policy::{CredentialSecret, PostgresTarget, UpstreamTls},
    postgres::{
        auth::{md5, scram::ScramClient},
        protocol::{
            Authentication, BackendKeyData, BackendMessage, PasswordMessage, SaslInitialResponse,
            SaslResponse, SslRequest, StartupMessage, TransactionStatus,
        },
    },
    tls,
};

use super::stream::{BoxStream, ReadError, read_backend, read_byte, send};

/// Why the server side could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    /// I/O or malformed bytes.
    #[error("{0}")]
    Read(#[from] ReadError),
    /// The target requires TLS and the server refused or the handshake failed.
    #[error("TLS: {0}")]
    Tls(String),
    /// Authentication failed or asked for a method tollgate does not speak.
    #[error("authentication: {0}")]
    Auth(String),
    /// The server answered with an error (role missing, database missing, ...).
    #[error("server: {0}")]
    Server(String),
}

impl From<std::io::Error> for UpstreamError {
    fn from(e: std::io::Error) -> Self {
        Self::Read(ReadError::Io(e))
    }
}

/// A ready server session.
pub struct Upstream {
    /// The stream.
    pub stream: BoxStream,
    /// Bytes read past ReadyForQuery (normally empty).
    pub buf: BytesMut,
    /// Raw ParameterStatus (and notice) frames to replay to the client.
    pub replay: Vec<Bytes>,
    /// The real cancellation key.
    pub key: Option<BackendKeyData>,
    /// Transaction status of the first ReadyForQuery.
    pub status: TransactionStatus,
    /// The server's `server_encoding` (reported at startup; fixed for the database).
    pub server_encoding: Option<String>,
}

/// Negotiates TLS per `cfg` on `tcp`.
pub async fn connect_tls(
    mut tcp: TcpStream,
    cfg: &PostgresTarget,
    host: &str,
) -> Result<BoxStream, UpstreamError> {
    if cfg.upstream_tls == UpstreamTls::Disable {
        return Ok(Box::new(tcp));
    }
    let mut req = BytesMut::new();
    SslRequest.encode(&mut req);
    send(&mut tcp, &req).await?;
    match read_byte(&mut tcp).await? {
        b'S' => {}
        b'N' if cfg.upstream_tls == UpstreamTls::Prefer => {
            debug!("server refused TLS; prefer → plain");
            return Ok(Box::new(tcp));
        }
        b'N' => return Err(UpstreamError::Tls("server does not accept TLS".into())),
        other => {
            return Err(UpstreamError::Tls(format!(
                "unexpected answer {other:#x} to SSLRequest"
            )));
        }
    }
    let verify = match cfg.upstream_tls {
        UpstreamTls::VerifyFull => tls::Verify::Full,
        _ => tls::Verify::Insecure,
    };
    let client_cert = cfg.credentials.iter().find_map(|c| match &c.secret {
        CredentialSecret::ClientCert { cert, key } => Some((cert.as_path(), key.as_path())),
        _ => None,
    });
    let config = tls::client_config(verify, cfg.ca_file.as_deref(), client_cert)
        .map_err(|e| UpstreamError::Tls(e.to_string()))?;
    let name = cfg.server_name.clone().unwrap_or_else(|| host.to_owned());
    let server_name = rustls::pki_types::ServerName::try_from(name)
        .map_err(|e| UpstreamError::Tls(format!("server name: {e}")))?;
    let stream = tokio_rustls::TlsConnector::from(config)
        .connect(server_name, tcp)
        .await
        .map_err(|e| UpstreamError::Tls(e.to_string()))?;
    Ok(Box::new(stream))
}

/// Sends the startup packet and authenticates as `role` with `secret`.
pub async fn login(
    mut stream: BoxStream,
    startup: &StartupMessage,
    role: &str,
    secret: &CredentialSecret,
) -> Result<Upstream, UpstreamError> {
    let mut out = BytesMut::new();
    startup.encode(&mut out);
    send(&mut stream, &out).await?;
    let mut buf = BytesMut::new();
    let mut scram: Option<ScramClient> = None;
    let password = match secret {
        CredentialSecret::Password(p) => Some(p.expose()),
        CredentialSecret::ClientCert { .. } => None,
    };
    // Authentication.
    loop {
        let frame = read_backend(&mut stream, &mut buf).await?;
        let msg = frame.decode().map_err(ReadError::Protocol)?;
        let reply = match msg {
            BackendMessage::Authentication(a) => match a {
                Authentication::Ok => break,
                Authentication::CleartextPassword => {
                    let pw = password.ok_or_else(|| {
                        auth("server asks for a password; the credential is a certificate")
                    })?;
                    encoded(|o| PasswordMessage::from_password(pw).encode(o))
                }
                Authentication::Md5Password { salt } => {
                    let pw = password.ok_or_else(|| {
                        auth("server asks for md5; the credential is a certificate")
                    })?;
                    let answer = md5::answer(role, pw, salt);
                    encoded(|o| PasswordMessage::from_password(answer.as_bytes()).encode(o))
                }
                Authentication::Sasl { mechanisms } => {
                    if !mechanisms.iter().any(|m| m == "SCRAM-SHA-256") {
                        return Err(auth(&format!(
                            "no supported SASL mechanism in {mechanisms:?}"
                        )));
                    }
                    let pw = password.ok_or_else(|| {
                        auth("server asks for SCRAM; the credential is a certificate")
                    })?;
                    let c = ScramClient::new(pw);
                    let mut o = BytesMut::new();
                    SaslInitialResponse {
                        mechanism: "SCRAM-SHA-256".into(),
                        data: Some(Bytes::from(c.client_first().into_bytes())),
                    }
                    .encode(&mut o);
                    scram = Some(c);
                    o.freeze()
                }
                Authentication::SaslContinue { data } => {
                    let c = scram
                        .as_mut()
                        .ok_or_else(|| auth("SASLContinue before SASL"))?;
                    let first = std::str::from_utf8(&data)
                        .map_err(|_| auth("server-first is not UTF-8"))?;
                    let fin = c.client_final(first).map_err(|e| auth(&e.to_string()))?;
                    let mut o = BytesMut::new();
                    SaslResponse {
                        data: Bytes::from(fin.into_bytes()),
                    }
                    .encode(&mut o);
                    o.freeze()
                }
                Authentication::SaslFinal { data } => {
                    let c = scram
                        .as_ref()
                        .ok_or_else(|| auth("SASLFinal before SASL"))?;
                    let fin = std::str::from_utf8(&data)
                        .map_err(|_| auth("server-final is not UTF-8"))?;
                    c.verify_server_final(fin)
                        .map_err(|e| auth(&e.to_string()))?;
                    continue;
                }
                Authentication::Unsupported { code, .. } => {
                    return Err(auth(&format!("unsupported authentication request {code}")));
                }
            },
            BackendMessage::ErrorResponse(e) => {
                return Err(UpstreamError::Server(format!(
                    "{}: {}",
                    e.sqlstate().unwrap_or("?????"),
                    e.message().unwrap_or_default()
                )));
            }
            BackendMessage::NegotiateProtocolVersion(_) => continue,
            other => {
                return Err(auth(&format!(
                    "unexpected {} during authentication",
                    other.name()
                )));
            }
        };
        send(&mut stream, &reply).await?;
    }
    // Parameters and key, up to ReadyForQuery.
    let mut replay = Vec::new();
    let mut key = None;
    let mut server_encoding = None;
    loop {
        let frame = read_backend(&mut stream, &mut buf).await?;
        match frame.decode().map_err(ReadError::Protocol)? {
            BackendMessage::BackendKeyData(k) => key = Some(k),
            BackendMessage::ReadyForQuery(r) => {
                return Ok(Upstream {
                    stream,
                    buf,
                    replay,
                    key,
                    status: r.status,
                    server_encoding,
                });
            }
            BackendMessage::ErrorResponse(e) => {
                return Err(UpstreamError::Server(format!(
                    "{}: {}",
                    e.sqlstate().unwrap_or("?????"),
                    e.message().unwrap_or_default()
                )));
            }
            BackendMessage::ParameterStatus(p) if p.name == "server_encoding" => {
                server_encoding = Some(p.value);
                replay.push(frame.into_raw());
            }
            BackendMessage::ParameterStatus(p)
                if !crate::postgres::sql::reported_value_is_safe(&p.name, &p.value) =>
            {
                // A role or database default tollgate cannot read SQL under.
                return Err(UpstreamError::Server(format!(
                    "the server reads SQL with {} = {}, which tollgate cannot follow",
                    p.name, p.value
                )));
            }
            _ => replay.push(frame.into_raw()),
        }
    }
}

fn encoded(f: impl FnOnce(&mut BytesMut)) -> Bytes {
    let mut o = BytesMut::new();
    f(&mut o);
    o.freeze()
}

fn auth(msg: &str) -> UpstreamError {
    UpstreamError::Auth(msg.to_owned())
}
