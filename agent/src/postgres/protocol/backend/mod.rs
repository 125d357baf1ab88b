//! Messages a server sends.
mod authentication;
mod backend_key_data;
mod command_complete;
mod copy_response;
mod data_row;
mod error_response;
mod fields;
mod function_call_response;
mod negotiate_protocol_version;
mod notice_response;
mod notification_response;
mod parameter_description;
mod parameter_status;
mod ready_for_query;
mod row_description;

use bytes::Bytes;

pub use authentication::Authentication;
pub use backend_key_data::BackendKeyData;
pub use command_complete::CommandComplete;
pub use copy_response::{CopyBothResponse, CopyInResponse, CopyOutResponse};
pub use data_row::{DataRow, RowValues};
pub use error_response::ErrorResponse;
pub use fields::field;
pub use function_call_response::FunctionCallResponse;
pub use negotiate_protocol_version::NegotiateProtocolVersion;
pub use notice_response::NoticeResponse;
pub use notification_response::NotificationResponse;
pub use parameter_description::ParameterDescription;
pub use parameter_status::ParameterStatus;
pub use ready_for_query::{ReadyForQuery, TransactionStatus};
pub use row_description::{FieldDescription, RowDescription};

use super::copy_data::CopyData;
use super::empty::{
    BindComplete, CloseComplete, CopyDone, EmptyQueryResponse, NoData, ParseComplete,
    PortalSuspended,
};
use super::error::{ProtocolError, Side};
use super::wire::message_enum;

message_enum! {
    /// Any message a server sends (the unframed SSL/GSSENC answers excepted).
    BackendMessage {
        Authentication,
        ParameterStatus,
        BackendKeyData,
        ReadyForQuery,
        RowDescription,
        DataRow,
        CommandComplete,
        ErrorResponse,
        NoticeResponse,
        EmptyQueryResponse,
        ParseComplete,
        BindComplete,
        CloseComplete,
        NoData,
        PortalSuspended,
        ParameterDescription,
        CopyInResponse,
        CopyOutResponse,
        CopyBothResponse,
        CopyData,
        CopyDone,
        NotificationResponse,
        NegotiateProtocolVersion,
        FunctionCallResponse,
    }
}

impl BackendMessage {
    /// Decodes the body of a message with type byte `tag`.
    pub fn decode_tagged(tag: u8, body: Bytes) -> Result<Self, ProtocolError> {
        match tag {
            Authentication::TAG => Authentication::decode(body).map(Self::Authentication),
            ParameterStatus::TAG => ParameterStatus::decode(body).map(Self::ParameterStatus),
            BackendKeyData::TAG => BackendKeyData::decode(body).map(Self::BackendKeyData),
            ReadyForQuery::TAG => ReadyForQuery::decode(body).map(Self::ReadyForQuery),
            RowDescription::TAG => RowDescription::decode(body).map(Self::RowDescription),
            DataRow::TAG => DataRow::decode(body).map(Self::DataRow),
            CommandComplete::TAG => CommandComplete::decode(body).map(Self::CommandComplete),
            ErrorResponse::TAG => ErrorResponse::decode(body).map(Self::ErrorResponse),
            NoticeResponse::TAG => NoticeResponse::decode(body).map(Self::NoticeResponse),
            EmptyQueryResponse::TAG => {
                EmptyQueryResponse::decode(body).map(Self::EmptyQueryResponse)
            }
            ParseComplete::TAG => ParseComplete::decode(body).map(Self::ParseComplete),
            BindComplete::TAG => BindComplete::decode(body).map(Self::BindComplete),
            CloseComplete::TAG => CloseComplete::decode(body).map(Self::CloseComplete),
            NoData::TAG => NoData::decode(body).map(Self::NoData),
            PortalSuspended::TAG => PortalSuspended::decode(body).map(Self::PortalSuspended),
            ParameterDescription::TAG => {
                ParameterDescription::decode(body).map(Self::ParameterDescription)
            }
            CopyInResponse::TAG => CopyInResponse::decode(body).map(Self::CopyInResponse),
            CopyOutResponse::TAG => CopyOutResponse::decode(body).map(Self::CopyOutResponse),
            CopyBothResponse::TAG => CopyBothResponse::decode(body).map(Self::CopyBothResponse),
            CopyData::TAG => CopyData::decode(body).map(Self::CopyData),
            CopyDone::TAG => CopyDone::decode(body).map(Self::CopyDone),
            NotificationResponse::TAG => {
                NotificationResponse::decode(body).map(Self::NotificationResponse)
            }
            NegotiateProtocolVersion::TAG => {
                NegotiateProtocolVersion::decode(body).map(Self::NegotiateProtocolVersion)
            }
            FunctionCallResponse::TAG => {
                FunctionCallResponse::decode(body).map(Self::FunctionCallResponse)
            }
            tag => Err(ProtocolError::UnknownType {
                side: Side::Backend,
                tag,
            }),
        }
    }
}

/// Name of a backend type byte, or `None` if servers do not send it.
pub(crate) fn tagged_info(tag: u8) -> Option<&'static str> {
    Some(match tag {
        Authentication::TAG => Authentication::NAME,
        ParameterStatus::TAG => ParameterStatus::NAME,
        BackendKeyData::TAG => BackendKeyData::NAME,
        ReadyForQuery::TAG => ReadyForQuery::NAME,
        RowDescription::TAG => RowDescription::NAME,
        DataRow::TAG => DataRow::NAME,
        CommandComplete::TAG => CommandComplete::NAME,
        ErrorResponse::TAG => ErrorResponse::NAME,
        NoticeResponse::TAG => NoticeResponse::NAME,
        EmptyQueryResponse::TAG => EmptyQueryResponse::NAME,
        ParseComplete::TAG => ParseComplete::NAME,
        BindComplete::TAG => BindComplete::NAME,
        CloseComplete::TAG => CloseComplete::NAME,
        NoData::TAG => NoData::NAME,
        PortalSuspended::TAG => PortalSuspended::NAME,
        ParameterDescription::TAG => ParameterDescription::NAME,
        CopyInResponse::TAG => CopyInResponse::NAME,
        CopyOutResponse::TAG => CopyOutResponse::NAME,
        CopyBothResponse::TAG => CopyBothResponse::NAME,
        CopyData::TAG => CopyData::NAME,
        CopyDone::TAG => CopyDone::NAME,
        NotificationResponse::TAG => NotificationResponse::NAME,
        NegotiateProtocolVersion::TAG => NegotiateProtocolVersion::NAME,
        FunctionCallResponse::TAG => FunctionCallResponse::NAME,
        _ => return None,
    })
}
