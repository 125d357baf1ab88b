//! The `http` protocol handler: HTTP/1.1 and HTTP/2 requests decided one by one.
mod body;
mod decode;
mod deny;
mod json;
mod request;
mod response;
mod sni;
