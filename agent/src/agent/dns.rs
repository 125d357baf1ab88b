//! Resolution of target DNS names, refreshed periodically and after each policy load.
use std::{collections::HashMap, sync::Arc, time::Duration};

use tracing::{debug, warn};

use crate::{policy::DnsTable, proxy::Context};

/// Resolves `names` and publishes the table. A name that fails keeps its previous addresses.
pub async fn refresh(ctx: &Context, names: &[String]) {
    let old = ctx.dns.load_full();
    let mut table = HashMap::new();
    for name in names {
        match tokio::net::lookup_host((name.as_str(), 0)).await {
            Ok(addrs) => {
                let mut ips: Vec<_> = addrs.map(|a| a.ip()).collect();
                ips.sort();
                ips.dedup();
                debug!(%name, ?ips, "resolved target name");
                table.insert(name.clone(), ips);
            }
            Err(e) => {
                warn!(%name, error = %e, "cannot resolve target name; keeping previous addresses");
                if let Some(prev) = old.0.get(name) {
                    table.insert(name.clone(), prev.clone());
                }
            }
        }
    }
    ctx.dns.store(Arc::new(DnsTable(table)));
}

/// Refreshes every `every` for the live policy's names.
pub async fn periodic(ctx: Arc<Context>, every: Duration) {
    let mut tick = tokio::time::interval(every);
    tick.tick().await;
    loop {
        tick.tick().await;
        let names = ctx.policy.load().policy.dns_names();
        if !names.is_empty() {
            refresh(&ctx, &names).await;
        }
    }
}
