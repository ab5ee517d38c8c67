//! Process shutdown signals for the example servers.

use std::future::Future;
use std::io;

/// Registers handlers for SIGTERM and SIGINT now, and returns a future that resolves when one
/// of them arrives.
///
/// Registration happens before this returns, so a server that calls it before announcing that
/// it listens cannot be killed by a signal that arrives in between. Every server subcommand
/// selects on the future so that it exits promptly when asked to stop.
pub fn terminate_signal() -> io::Result<impl Future<Output = ()> + Send> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut terminate = signal(SignalKind::terminate())?;
    let mut interrupt = signal(SignalKind::interrupt())?;
    Ok(async move {
        tokio::select! {
            _ = terminate.recv() => {}
            _ = interrupt.recv() => {}
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn resolves_on_sigterm_sent_right_after_registration() {
        let signalled = terminate_signal().unwrap();
        let pid = std::process::id();
        let status = std::process::Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        let outcome = tokio::time::timeout(std::time::Duration::from_secs(5), signalled).await;
        assert!(outcome.is_ok());
    }
}
