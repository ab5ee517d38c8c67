//! Connections the node proxy delivered to its workload, authorized again whenever the
//! policies change: one that a new policy no longer allows is closed, as ztunnel's policy
//! watcher does (policy.md §4.2).

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};

use hbone::identity::SpiffeId;
use mesh_policy::l4::{Connection, authorize};
use tokio::sync::Notify;

use super::snapshot::NodeSnapshot;

/// One delivered connection, as its policies saw it.
#[derive(Debug)]
pub(crate) struct LiveConnection {
    source: IpAddr,
    destination: SocketAddr,
    identity: Option<SpiffeId>,
    close: Notify,
}

impl LiveConnection {
    /// Resolves once the connection must be closed.
    pub(crate) async fn closed(self: Arc<Self>) {
        self.close.notified().await;
    }
}

/// The live connections (weakly held: a finished connection drops out by itself).
#[derive(Debug, Default)]
pub(crate) struct LiveConnections {
    entries: Mutex<Vec<Weak<LiveConnection>>>,
    tracked: AtomicUsize,
}

impl LiveConnections {
    /// Tracks a connection from `source` (with `identity`) to `destination` (the address it
    /// was made to, with the final port).
    pub(crate) fn track(
        &self,
        source: IpAddr,
        destination: SocketAddr,
        identity: Option<SpiffeId>,
    ) -> Arc<LiveConnection> {
        let live = Arc::new(LiveConnection {
            source,
            destination,
            identity,
            close: Notify::new(),
        });
        if let Ok(mut entries) = self.entries.lock() {
            // Forget finished connections now and then, so the list stays as long as the
            // connections that are open.
            if self.tracked.fetch_add(1, Ordering::Relaxed) % 256 == 255 {
                entries.retain(|entry| entry.strong_count() > 0);
            }
            entries.push(Arc::downgrade(&live));
        }
        live
    }

    /// Authorizes every open connection against `snapshot`'s policies; closes those refused
    /// and returns how many.
    pub(crate) fn recheck(&self, snapshot: &NodeSnapshot) -> usize {
        let Some(local) = snapshot.local.as_deref() else {
            return 0;
        };
        let Ok(mut entries) = self.entries.lock() else {
            return 0;
        };
        entries.retain(|entry| entry.strong_count() > 0);
        let mut closed = 0;
        for live in entries.iter().filter_map(Weak::upgrade) {
            let connection = Connection {
                source: live.source,
                destination: live.destination,
                identity: live.identity.as_ref(),
            };
            if authorize(snapshot.state.policies_for(local), &connection).is_err() {
                live.close.notify_one();
                closed += 1;
            }
        }
        closed
    }
}
