//! The `tcp` protocol handler: L4 only, bytes are copied and counted, nothing else.
use tokio::net::TcpStream;

use crate::proxy::{
    context::Context,
    copy::{self, Transfer},
};

/// Copies between the client and the target until both close, the idle timeout, or shutdown.
pub async fn serve(ctx: &Context, client: &mut TcpStream, upstream: &mut TcpStream) -> Transfer {
    // `TCP_NODELAY` is on the client: inherited from the listener (`proxy::bind`).
    copy::bidirectional(client, upstream, ctx.settings.idle_timeout, ctx.stopped()).await
}
