//! Messages a client sends: startup-phase packets and tagged messages.
mod bind;
mod cancel_request;
mod close;
mod copy_fail;
mod describe;
mod execute;
mod function_call;
mod gss_enc_request;
mod parse;
mod password;
mod query;
mod ssl_request;
mod startup;

use bytes::Bytes;

pub use bind::Bind;
pub use cancel_request::{CANCEL_REQUEST_CODE, CancelRequest};
pub use close::Close;
pub use copy_fail::CopyFail;
pub use describe::{Describe, ObjectKind};
pub use execute::Execute;
pub use function_call::FunctionCall;
pub use gss_enc_request::{GSSENC_ACCEPTED, GSSENC_REFUSED, GSSENC_REQUEST_CODE, GssEncRequest};
pub use parse::Parse;
pub use password::{PasswordMessage, SaslInitialResponse, SaslResponse};
pub use query::Query;
pub use ssl_request::{SSL_ACCEPTED, SSL_REFUSED, SSL_REQUEST_CODE, SslRequest};
pub use startup::{ProtocolVersion, StartupMessage};

use super::copy_data::CopyData;
use super::empty::{CopyDone, Flush, Sync, Terminate};
use super::error::{ProtocolError, Side};
use super::frame::{MAX_AUTH_MESSAGE_LEN, MAX_SMALL_MESSAGE_LEN};
use super::wire::message_enum;

message_enum! {
    /// Any message a client sends.
    FrontendMessage {
        StartupMessage,
        SslRequest,
        GssEncRequest,
        CancelRequest,
        Query,
        Parse,
        Bind,
        Describe,
        Execute,
        Close,
        Sync,
        Flush,
        CopyData,
        CopyDone,
        CopyFail,
        FunctionCall,
        PasswordMessage,
        Terminate,
    }
}

impl FrontendMessage {
    /// Decodes the body of a tagged (post-startup) message with type byte `tag`.
    pub fn decode_tagged(tag: u8, body: Bytes) -> Result<Self, ProtocolError> {
        match tag {
            Query::TAG => Query::decode(body).map(Self::Query),
            Parse::TAG => Parse::decode(body).map(Self::Parse),
            Bind::TAG => Bind::decode(body).map(Self::Bind),
            Describe::TAG => Describe::decode(body).map(Self::Describe),
            Execute::TAG => Execute::decode(body).map(Self::Execute),
            Close::TAG => Close::decode(body).map(Self::Close),
            Sync::TAG => Sync::decode(body).map(Self::Sync),
            Flush::TAG => Flush::decode(body).map(Self::Flush),
            CopyData::TAG => CopyData::decode(body).map(Self::CopyData),
            CopyDone::TAG => CopyDone::decode(body).map(Self::CopyDone),
            CopyFail::TAG => CopyFail::decode(body).map(Self::CopyFail),
            FunctionCall::TAG => FunctionCall::decode(body).map(Self::FunctionCall),
            PasswordMessage::TAG => PasswordMessage::decode(body).map(Self::PasswordMessage),
            Terminate::TAG => Terminate::decode(body).map(Self::Terminate),
            tag => Err(ProtocolError::UnknownType {
                side: Side::Frontend,
                tag,
            }),
        }
    }
}

/// Name and length limit of a frontend type byte, or `None` if clients may not send it.
/// The limits mirror PostgreSQL's own (`usize::MAX` defers to the caller's `max_len`).
pub(crate) fn tagged_info(tag: u8) -> Option<(&'static str, usize)> {
    let large = usize::MAX;
    Some(match tag {
        Query::TAG => (Query::NAME, large),
        Parse::TAG => (Parse::NAME, large),
        Bind::TAG => (Bind::NAME, large),
        FunctionCall::TAG => (FunctionCall::NAME, large),
        CopyData::TAG => (CopyData::NAME, large),
        Describe::TAG => (Describe::NAME, MAX_SMALL_MESSAGE_LEN),
        Execute::TAG => (Execute::NAME, MAX_SMALL_MESSAGE_LEN),
        Close::TAG => (Close::NAME, MAX_SMALL_MESSAGE_LEN),
        Sync::TAG => (Sync::NAME, MAX_SMALL_MESSAGE_LEN),
        Flush::TAG => (Flush::NAME, MAX_SMALL_MESSAGE_LEN),
        CopyDone::TAG => (CopyDone::NAME, MAX_SMALL_MESSAGE_LEN),
        CopyFail::TAG => (CopyFail::NAME, MAX_SMALL_MESSAGE_LEN),
        Terminate::TAG => (Terminate::NAME, MAX_SMALL_MESSAGE_LEN),
        PasswordMessage::TAG => (PasswordMessage::NAME, MAX_AUTH_MESSAGE_LEN),
        _ => return None,
    })
}
