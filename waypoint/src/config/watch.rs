//! What every product runs after start-up: [`ReloadTicker`] polls the configuration source's
//! stamp and tells when a change has settled or shutdown came; [`LastReloadError`] is what
//! the admin endpoints report about the last reload.

use std::future::Future;
use std::pin::Pin;
use std::sync::Mutex;
use std::time::Duration;

use super::SettledChange;

/// Polls a source's stamp on a ticker and tells when a change has settled
/// ([`SettledChange`]). Products loop on [`ReloadTicker::settled_change`] and reload on that
/// task, so reloads never overlap:
///
/// ```no_run
/// # async fn run(source: waypoint::config::ConfigSource, shutdown: impl std::future::Future<Output = ()>) {
/// use waypoint::config::ReloadTicker;
/// let loaded = source.fingerprint(); // taken before the first load
/// // ... load and serve ...
/// tokio::pin!(shutdown);
/// let mut ticker = ReloadTicker::new(std::time::Duration::from_millis(500), loaded);
/// while ticker.settled_change(shutdown.as_mut(), || source.fingerprint()).await {
///     // load again; swap in or keep the old state
/// }
/// # }
/// ```
#[derive(Debug)]
pub struct ReloadTicker<T> {
    changes: SettledChange<T>,
    ticker: tokio::time::Interval,
}

impl<T: PartialEq + Clone> ReloadTicker<T> {
    /// Polling every `interval`, from `loaded`: the stamp taken before the running
    /// configuration was loaded (so a change made during start-up is not missed).
    pub fn new(interval: Duration, loaded: T) -> Self {
        let mut ticker = tokio::time::interval(interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        ReloadTicker {
            changes: SettledChange::new(loaded),
            ticker,
        }
    }

    /// Waits until `stamp` has settled on a new value (true) or `shutdown` resolves (false).
    pub async fn settled_change<S: Future<Output = ()>>(
        &mut self,
        mut shutdown: Pin<&mut S>,
        stamp: impl Fn() -> T,
    ) -> bool {
        loop {
            tokio::select! {
                () = shutdown.as_mut() => return false,
                _ = self.ticker.tick() => {
                    if self.changes.poll(stamp()) {
                        return true;
                    }
                }
            }
        }
    }
}

/// Why the last reload was refused; cleared by the next one that is applied.
#[derive(Debug, Default)]
pub struct LastReloadError(Mutex<Option<String>>);

impl LastReloadError {
    /// Records a reload's outcome: `None` when it was applied, the reason when refused.
    pub fn record(&self, refused: Option<String>) {
        if let Ok(mut last) = self.0.lock() {
            *last = refused;
        }
    }

    /// The reason the last reload was refused, if it was.
    pub fn get(&self) -> Option<String> {
        self.0.lock().ok().and_then(|last| last.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    #[tokio::test(start_paused = true)]
    async fn a_settled_change_is_told_once_and_shutdown_ends_the_wait() {
        let stamp = AtomicU32::new(1);
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let shutdown = async {
            let _ = stopped.await;
        };
        tokio::pin!(shutdown);
        let mut ticker = ReloadTicker::new(Duration::from_millis(10), 1);
        let read = || stamp.load(Ordering::Relaxed);
        let unchanged = tokio::time::timeout(
            Duration::from_millis(35),
            ticker.settled_change(shutdown.as_mut(), read),
        )
        .await;
        assert!(unchanged.is_err(), "nothing changed");
        stamp.store(2, Ordering::Relaxed);
        assert!(ticker.settled_change(shutdown.as_mut(), read).await);
        let _ = stop.send(());
        assert!(
            !ticker.settled_change(shutdown.as_mut(), read).await,
            "shut down"
        );
    }

    #[test]
    fn the_last_error_is_cleared_by_an_applied_reload() {
        let last = LastReloadError::default();
        last.record(Some("bad".into()));
        assert_eq!(last.get().as_deref(), Some("bad"));
        last.record(None);
        assert_eq!(last.get(), None);
    }
}
